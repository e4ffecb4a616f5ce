"""The fastpath ABI spoken raw (ctypes + fcntl), independent of fanbpf.

The kernel tests use this so that they check the kernel itself; the library
is tested against the same kernel in its own files.
"""
import ctypes
import errno
import fcntl
import os
import struct

libc = ctypes.CDLL(None, use_errno=True)
libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64,
                               ctypes.c_int, ctypes.c_char_p]

FAN_CLASS_NOTIF = 0x0
FAN_CLASS_CONTENT = 0x4
FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_REPORT_FID = 0x200
FAN_MARK_ADD = 0x1
FAN_MARK_FILESYSTEM = 0x100
FAN_OPEN = 0x20
FAN_CLOSE_WRITE = 0x8
FAN_OPEN_PERM = 0x10000
FAN_ONDIR = 0x40000000
FAN_EVENT_ON_CHILD = 0x08000000
FAN_ALLOW = 1
AT_FDCWD = -100

FAN_IOC_ADD_FP = 0x40584600
FAN_IOC_DEL_FP = 0x4601
FAN_FP_ADD_BPF_FD = 0x1
FAN_FP_ARGS_MAX = 1024
# name, flags, init_args_len, init_args, bpf_fd, reserved: 88 bytes, no holes
ARGS = struct.Struct("<64sIIQiI")
METADATA = struct.Struct("<IBBHQii")
SYSFS = "/sys/fs/fanotify/fastpath"
KMOD = "fanbpf_subtree_kmod"
EIOCBQUEUED = 529  # kernel-internal errnos a handler must not leak
ERESTARTSYS = 512


def check(ret):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


def fan_init(flags=FAN_CLASS_NOTIF, event_flags=os.O_RDONLY):
    return check(libc.fanotify_init(flags | FAN_CLOEXEC | FAN_NONBLOCK, event_flags))


def fan_mark(fd, mask, path, flags=FAN_MARK_ADD | FAN_MARK_FILESYSTEM):
    check(libc.fanotify_mark(fd, flags, mask, AT_FDCWD, os.fsencode(path)))


def ioc_add_fp(size):
    """FAN_IOC_ADD_FP for an argument struct of `size` bytes (_IOW('F', 0, size))."""
    return (1 << 30) | (size << 16) | (ord("F") << 8)


def v1_kernel():
    """True on the v1 series (it listed handlers under /sys/kernel): the
    defect tests then speak v1's ABI, so that they show the defects, not
    the ABI change (FANBPF_VM_KERNEL=<v1 image> kernel/vm.sh ...)."""
    return os.path.isdir("/sys/kernel/fanotify_fastpath")


def add_fp(fd, name=b"", args=b"", *, flags=0, bpf_fd=0, args_len=None, args_ptr=None,
           reserved=0, tail=b""):
    """FAN_IOC_ADD_FP.  args_len may lie about len(args) to test the limit,
    args_ptr replaces the pointer, tail is appended (a later, bigger struct)."""
    blob = ctypes.create_string_buffer(args, max(len(args), 1))
    length = len(args) if args_len is None else args_len
    if args_ptr is None:
        args_ptr = ctypes.addressof(blob) if args else 0
    if v1_kernel():  # packed: name, version 1, flags, init_args, len, bpf_fd
        req = struct.pack("<64sIIQIi", name, 1, flags, args_ptr, length, bpf_fd)
        fcntl.ioctl(fd, ioc_add_fp(len(req)), req)
        return
    req = ARGS.pack(name, flags, length, args_ptr, bpf_fd, reserved) + tail
    fcntl.ioctl(fd, ioc_add_fp(len(req)), req)


def del_fp(fd, arg=0):
    fcntl.ioctl(fd, 0x40404601 if v1_kernel() else FAN_IOC_DEL_FP, arg)


def attached(fd):
    """(name, id) of the handler fdinfo shows for fanotify fd `fd`, or None."""
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("fanotify fastpath "):
                fields = dict(kv.split(":", 1) for kv in line.split()[2:])
                return fields["name"], int(fields["id"])
    return None


def subtree_args(*roots):
    """struct fanbpf_subtree_args for directories `roots`."""
    body = b""
    for path in roots:
        st = os.stat(path)
        body += struct.pack("<QQ", os.major(st.st_dev) << 20 | os.minor(st.st_dev),
                            st.st_ino)
    return struct.pack("<II", len(roots), 0) + body.ljust(16 * 16, b"\0")


def read_events(fd, describe):
    """Drain the queue of an fd-reporting group: [(mask, describe(event fd))]
    (describe gets -1 for events without an fd), fds closed."""
    out = []
    while True:
        try:
            buf = os.read(fd, 65536)
        except BlockingIOError:
            return out
        off = 0
        while off < len(buf):
            ev_len, _, _, _, mask, evfd, _ = METADATA.unpack_from(buf, off)
            try:
                out.append((mask, describe(evfd)))
            finally:
                if evfd >= 0:
                    os.close(evfd)
            off += ev_len


def read_paths(fd):
    """[(mask, path)] of the queued events (path None without an fd)."""
    return read_events(fd, lambda evfd: os.readlink(f"/proc/self/fd/{evfd}") if evfd >= 0 else None)


def read_inos(fd):
    """The inode numbers of the queued events' objects (for paths too long
    for readlink)."""
    inos = read_events(fd, lambda evfd: os.fstat(evfd).st_ino if evfd >= 0 else None)
    return {ino for _, ino in inos if ino is not None}


TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


#: rounds multiplier for the stress tests (make test-kasan-long sets it):
#: the defect-1 link/unlink race and the rename storm run this many times longer
STRESS = int(os.environ.get("FANBPF_STRESS", "1"))


def vm_object(name):
    """A handler built from tests/vm/bpf/ by `make build`."""
    return os.path.join(TOP, "build", "test-bpf-vm", f"{name}.bpf.o")


def deep_dirs(top, names):
    """mkdir top/names[0]/names[1]/... with dir fds (no chdir, no PATH_MAX);
    returns an fd of the deepest directory and its path."""
    fd = os.open(top, os.O_DIRECTORY)
    for n in names:
        os.mkdir(n, dir_fd=fd)
        sub = os.open(n, os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = sub
    return fd, os.path.join(top, *names)


def create(dir_fd, name):
    """Create (or truncate) file `name` in the directory open as `dir_fd`."""
    os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=dir_fd))


def parents_args(name, max_dentries):
    """Init args of tests/vm/bpf/parents_named.bpf.c: deliver events with
    an object or ancestor called `name`, walking at most `max_dentries`."""
    name = name.encode()
    return struct.pack("<II64s", max_dentries, len(name), name)


# bpf_iter_fanotify_parents_end(): how a walk ended (enum d_walk_up_end)
WALK_RUNNING, WALK_ROOT, WALK_DISCONNECTED, WALK_LIMIT, WALK_TORN = range(5)


def walk(handler, keys=("new_ret", "count", "match", "started_from_inode", "end")):
    """What the parents_named handler's last walk saw, and how it ended."""
    return {k: handler.obj.get_global(f"last_{k}") for k in keys}


def touch(path):
    with open(path, "w") as f:
        f.write("x")


def open_errno(path):
    """Open and close path for reading: 0, or the errno it failed with."""
    try:
        open(path).close()
    except OSError as e:
        return e.errno
    return 0


def open_in_child(path, conn):
    """multiprocessing target: open_errno(path), sent through conn (a child,
    so that the parent can answer the permission event the open waits on)."""
    conn.send(open_errno(path))


def raises_errno(code, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except OSError as e:
        assert e.errno == code, f"expected {errno.errorcode[code]}, got {e!r}"
        return
    raise AssertionError(f"expected {errno.errorcode[code]}, call succeeded")


def churn(root, worker, stop):
    """Create and unlink files in root/in and root/out until stop is set
    (a multiprocessing target: events while handlers come and go)."""
    i = 0
    while not stop.is_set():
        for d in ("in", "out"):
            path = f"{root}/{d}/w{worker}-{i % 50}"
            with open(path, "w") as f:
                f.write("x")
            os.unlink(path)
        i += 1
