"""The four defects the review of the v1 series found, one section each.

Each test here failed on the v1 kernel (see kernel/ABI.md, "v1 -> v2"):
name access that a rename can tear, errnos a handler could leak to io_uring
and to system calls, user copies and fp_init under the group's mark_mutex,
and privilege that was opt-out with no way to revoke an attachment.
"""
import ctypes
import errno
import fcntl
import mmap
import multiprocessing
import os
import select
import struct
import subprocess
import threading

import pytest

import fanbpf
from fanbpf import EventMask, Group, Handler, InitFlag, MarkFlag

from kabi import (EIOCBQUEUED, ERESTARTSYS, TOP, FAN_CLASS_NOTIF, FAN_CLOSE_WRITE,
                  FAN_FP_ADD_BPF_FD, FAN_OPEN, FAN_REPORT_FID, KMOD, STRESS, SYSFS, add_fp, attached,
                  churn, del_fp, fan_init, fan_mark, raises_errno, read_paths, subtree_args,
                  touch, vm_object)

URING_READ = os.path.join(TOP, "build", "tests", "uring_read")
libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def tree(tmpfs):
    for d in ("in", "out"):
        os.mkdir(os.path.join(tmpfs, d))
    return tmpfs


def in_child(fn, *args):
    """Run fn(*args) in a child process; return what it returned (or its errno)."""
    def target(conn):
        try:
            conn.send(fn(*args))
        except OSError as e:
            conn.send(e.errno)
    parent, child = multiprocessing.Pipe()
    p = multiprocessing.Process(target=target, args=(child,))
    p.start()
    result = parent.recv()
    p.join()
    return result


# --- 1. name access ---------------------------------------------------------

def test_verifier_refuses_a_dentrys_own_name():
    """bpf_fanotify_read_name() takes only the name fanotify built for the
    event; &dentry->d_name, which a rename rewrites under the copy, is refused."""
    with pytest.raises(fanbpf.VerifierError) as err:
        Handler.load(vm_object("name_from_dentry"))
    assert "fanotify_fastpath_name" in err.value.log


def _rename_storm(root, n, rounds):
    short, long = f"{root}/s{n}", f"{root}/{'L' * 200}{n}"
    for _ in range(rounds):
        os.rename(short, long)
        os.rename(long, short)


def _write_storm(fd, stop):
    # MODIFY events on the dentry the other process keeps renaming
    while not stop.is_set():
        os.pwrite(fd, b"x", 0)


def test_name_copies_race_renames_between_short_and_long_names(tmpfs):
    """Inline (short) and external (long) names swapped under the copies:
    every copy stays within NAME_MAX, nothing splats (KASAN would see it)."""
    with Handler.load(vm_object("names")) as h, \
            Group(InitFlag.REPORT_DFID_NAME | InitFlag.REPORT_FID) as g:
        g.mark(tmpfs, EventMask.MODIFY | EventMask.MOVED_FROM | EventMask.MOVED_TO,
               MarkFlag.FILESYSTEM)
        g.attach(h)
        stop = multiprocessing.Event()
        fds = [os.open(f"{tmpfs}/s{n}", os.O_WRONLY | os.O_CREAT) for n in range(2)]
        writers = [multiprocessing.Process(target=_write_storm, args=(fd, stop))
                   for fd in fds]
        renamers = [multiprocessing.Process(target=_rename_storm, args=(tmpfs, n, 2000 * STRESS))
                    for n in range(2)]
        for p in writers + renamers:
            p.start()
        for p in renamers:
            p.join()
        stop.set()
        for p in writers:
            p.join()
        for fd in fds:
            os.close(fd)
        assert [p.exitcode for p in writers + renamers] == [0] * 4
        assert h.obj.get_global("copies") > 0
        assert h.obj.get_global("too_long") == 0


# --- 2. deny errnos ---------------------------------------------------------

def attach_fd(group, handler):
    """Attach a private handler by its link fd, in the running kernel's ABI."""
    add_fp(group.fileno(), flags=FAN_FP_ADD_BPF_FD, bpf_fd=handler.link_fd)


def deny_handler(deny, init_ret=0):
    return Handler.load(vm_object("deny"), globals={"deny": deny, "init_ret": init_ret})


@pytest.mark.parametrize("deny,expected", [
    (-errno.EIO, errno.EIO),
    (-errno.EACCES, errno.EACCES),
    (-EIOCBQUEUED, errno.EPERM),   # v1: the io_uring request never completed
    (-ERESTARTSYS, errno.EPERM),
    (-errno.EINTR, errno.EPERM),
])
def test_io_uring_read_denied_by_a_handler_completes(tmpfs, deny, expected):
    path = f"{tmpfs}/f"
    touch(path)
    with deny_handler(deny) as h, Group(InitFlag.CLASS_CONTENT) as g:
        g.mark(tmpfs, EventMask.ACCESS_PERM, MarkFlag.FILESYSTEM)
        attach_fd(g, h)
        # uring_read opens the file after the mark: it gets permission events
        out = subprocess.run([URING_READ, path], capture_output=True, text=True)
    assert out.stdout.strip() == f"res={-expected}", out.stderr


def test_read_denied_with_a_restart_code_gets_eperm(tmpfs):
    path = f"{tmpfs}/f"
    touch(path)
    with deny_handler(-ERESTARTSYS) as h, Group(InitFlag.CLASS_CONTENT) as g:
        g.mark(tmpfs, EventMask.ACCESS_PERM, MarkFlag.FILESYSTEM)
        attach_fd(g, h)
        with open(path, "rb") as f:
            with pytest.raises(OSError) as err:  # v1: errno 512
                f.read()
    assert err.value.errno == errno.EPERM
    log = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    assert "fastpath handler t_deny denied with -512, denying with EPERM" in log


@pytest.mark.parametrize("init_ret,expected", [
    (-errno.EEXIST, errno.EEXIST),
    (-errno.ENOSPC, errno.ENOSPC),
    (-ERESTARTSYS, errno.EPERM),   # v1: errno 512 out of the ioctl
    (-EIOCBQUEUED, errno.EPERM),
    (7, errno.EPERM),
])
def test_fp_init_errors_are_vetted(tmpfs, init_ret, expected):
    with deny_handler(-errno.EPERM, init_ret) as h, Group() as g:
        g.mark(tmpfs, EventMask.OPEN, MarkFlag.FILESYSTEM)
        with pytest.raises(OSError) as err:
            attach_fd(g, h)
        assert err.value.errno == expected
        assert g.handler is None


# --- 3. no user copy or fp_init under the group's mark_mutex -----------------

UFFDIO_API = 0xc018aa3f
UFFDIO_REGISTER = 0xc020aa00
UFFDIO_COPY = 0xc028aa03
UFFD_EVENT_PAGEFAULT = 0x12
PAGE = mmap.PAGESIZE


def test_init_args_in_a_faulting_mapping_hold_no_group_lock(tree):
    """ADD with init args in a userfaultfd page that nobody fills yet: the
    attach waits in its copy, and meanwhile fanotify_mark() on the same group
    must go through.  v1 copied under mark_mutex, so the mark waited too."""
    uffd = libc.syscall(323, os.O_CLOEXEC)  # userfaultfd(2)
    assert uffd >= 0, os.strerror(ctypes.get_errno())
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    addr = libc.mmap(None, PAGE, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    group = fan_init()
    try:
        fcntl.ioctl(uffd, UFFDIO_API, struct.pack("<QQQ", 0xAA, 0, 0))
        fcntl.ioctl(uffd, UFFDIO_REGISTER, struct.pack("<QQQQ", addr, PAGE, 1, 0))
        args = subtree_args(f"{tree}/in")
        attach = {}

        def do_attach():
            try:
                add_fp(group, KMOD.encode(), args_ptr=addr, args_len=len(args))
                attach["ret"] = 0
            except OSError as e:
                attach["ret"] = e.errno
        a = threading.Thread(target=do_attach)
        a.start()
        # The attach is now inside its copy from user space, stuck on the fault.
        assert select.select([uffd], [], [], 60)[0], "the attach never faulted"
        msg = os.read(uffd, 32)
        assert msg[0] == UFFD_EVENT_PAGEFAULT

        def do_mark():
            fan_mark(group, FAN_OPEN | FAN_CLOSE_WRITE, tree)
        m = threading.Thread(target=do_mark)
        m.start()
        # Not a timing check: on v1 the mark waits for as long as the fault
        # is unresolved, i.e. forever; 60 s only bounds that.
        m.join(60)
        mark_done = not m.is_alive()

        page = ctypes.create_string_buffer(args.ljust(PAGE, b"\0"), PAGE)
        fcntl.ioctl(uffd, UFFDIO_COPY,
                    struct.pack("<QQQQq", addr, ctypes.addressof(page), PAGE, 0, 0))
        a.join()
        m.join()
        assert mark_done, "fanotify_mark() waited for the attach's page fault"
        assert attach["ret"] == 0
        assert attached(group)[0] == KMOD
        touch(f"{tree}/in/a")
        touch(f"{tree}/out/b")
        assert sorted({p for _, p in read_paths(group)}) == [f"{tree}/in/a"]
    finally:
        os.close(group)
        os.close(uffd)
        libc.munmap(ctypes.c_void_p(addr), PAGE)


# --- 4. privilege opt-in, and revocation -------------------------------------

def _attach_as_nobody(tree, name):
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    with Group(InitFlag.REPORT_FID) as g:  # the only kind unprivileged users get
        g.mark(tree, EventMask.OPEN)
        add_fp(g.fileno(), name.encode())
    return 0


def test_unprivileged_attach_needs_an_unpriv_handler(tree):
    os.chmod(tree, 0o777)
    with Handler.load("rules", name="t_priv"):
        assert in_child(_attach_as_nobody, tree, "t_priv") == errno.EPERM  # v1: allowed
        with open(f"{SYSFS}/t_priv/flags") as f:
            assert f.read() == "\n"
    with Handler.load("rules", name="t_unpriv", unpriv=True):
        with open(f"{SYSFS}/t_unpriv/flags") as f:
            assert f.read() == "UNPRIV\n"
        # past the privilege check: the rules handler refuses empty args
        assert in_child(_attach_as_nobody, tree, "t_unpriv") == errno.EINVAL


def test_a_group_made_unprivileged_stays_unprivileged(tree):
    """As for fanotify_mark(): CAP_SYS_ADMIN of the caller is not enough if
    the group was made without it (fd passing)."""
    os.seteuid(65534)  # drops the effective capabilities
    try:
        fd = fan_init(FAN_CLASS_NOTIF | FAN_REPORT_FID)
    finally:
        os.seteuid(0)
    try:
        raises_errno(errno.EPERM, add_fp, fd, KMOD.encode(), subtree_args(tree))
    finally:
        os.close(fd)


CAP_SYS_ADMIN = 21


def _register_without_cap_sys_admin(private):
    # capget/capset, version 3: {effective, permitted, inheritable} x 2 words
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    assert libc.capget(header, data) == 0
    data[0] &= ~(1 << CAP_SYS_ADMIN)
    data[1] &= ~(1 << CAP_SYS_ADMIN)
    if libc.capset(header, data):
        return -ctypes.get_errno()
    with Handler.load("rules", name="t_token", private=private):
        return 0


def test_registering_a_listed_name_needs_cap_sys_admin():
    """A BPF token (CAP_BPF without CAP_SYS_ADMIN) must not claim a global name."""
    assert in_child(_register_without_cap_sys_admin, False) == errno.EPERM  # v1: allowed
    assert in_child(_register_without_cap_sys_admin, True) == 0


def map_id(fd):
    """The id of BPF map `fd` (BPF_OBJ_GET_INFO_BY_FD)."""
    info = ctypes.create_string_buffer(80)
    attr = struct.pack("<IIQ", fd, len(info), ctypes.addressof(info))
    buf = ctypes.create_string_buffer(attr, 128)
    if libc.syscall(321, 15, buf, 128):
        raise OSError(ctypes.get_errno(), "BPF_OBJ_GET_INFO_BY_FD")
    return struct.unpack_from("<I", info, 4)[0]


def map_exists(ident):
    buf = ctypes.create_string_buffer(struct.pack("<I", ident), 128)
    fd = libc.syscall(321, 14, buf, 128)  # BPF_MAP_GET_FD_BY_ID
    if fd >= 0:
        os.close(fd)
        return True
    assert ctypes.get_errno() == errno.ENOENT
    return False


def test_destroying_the_link_revokes_the_handler_while_events_flow(tree):
    stop = multiprocessing.Event()
    workers = [multiprocessing.Process(target=churn, args=(tree, n, stop)) for n in range(2)]
    for w in workers:
        w.start()
    groups = []
    try:
        h = Handler.load("rules", name="t_revoke")
        ident = map_id(h.map_fd)
        args = h.encode_args(fanbpf.rules(subtree=[f"{tree}/in"]))
        for _ in range(3):
            g = Group(InitFlag.CLASS_NOTIF, event_flags=os.O_RDONLY)
            groups.append(g)
            g.mark(tree, EventMask.OPEN | EventMask.CLOSE_WRITE, MarkFlag.FILESYSTEM)
            add_fp(g.fileno(), b"t_revoke", args)
        h.close()  # the link goes: unregistered, and detached from every group
        assert not os.path.exists(f"{SYSFS}/t_revoke")
    finally:
        stop.set()
        for w in workers:
            w.join()
    for g in groups:
        g.read_events(timeout=0)
        touch(f"{tree}/out/after")
        # v1: still attached, still filtering out/
        assert "after" in {os.path.basename(e.path) for e in g.read_events(timeout=0)}
        assert g.handler is None
        raises_errno(errno.ENOENT, del_fp, g.fileno())
        g.close()
    # Nothing holds the handler's map any more: it is freed (asynchronously;
    # the bound only keeps a leak from hanging the test).
    for _ in range(600):
        if not map_exists(ident):
            break
        threading.Event().wait(0.1)
    assert not map_exists(ident)
