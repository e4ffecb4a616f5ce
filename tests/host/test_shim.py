"""The shim's fanotify/fastpath calls and the probe, on the host kernel (no fastpath hook).

The host kernel answers the fastpath ioctls with ENOTTY; that must come out
as KernelSupportError naming what is missing.  Argument checks that need no
kernel (sizes, names) must fire before any syscall.
"""

import errno
import os
import re
import subprocess

import pytest

from bpfobjs import bpf_objs, needs_root, open_fds  # noqa: F401 (a fixture)
from fanbpf import errors, handler, support
from fanbpf._binding import ffi, lib

FAN_CLASS_NOTIF = 0
FAN_CLOEXEC = 0x1
FAN_REPORT_FID = 0x200

pytestmark = pytest.mark.skipif(support.kernel_support().fastpath,
                                reason="this kernel has fastpath handlers (see tests/vm)")


@pytest.fixture
def fan_fd():
    fd = lib.fanbpf_fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_REPORT_FID, os.O_RDONLY)
    assert fd >= 0, os.strerror(-fd)
    yield fd
    os.close(fd)


def _iow(nr: int, size: int) -> int:
    """_IOW('F', nr, size) as <asm-generic/ioctl.h> builds it."""
    return (1 << 30) | (size << 16) | (ord("F") << 8) | nr


def test_uapi_constants():
    assert lib.FAN_IOC_ADD_FP == 0x40584600 == _iow(0, 88)
    assert lib.FAN_IOC_DEL_FP == 0x4601  # _IO('F', 1): no argument
    assert (lib.FAN_FP_NAME_MAX, lib.FAN_FP_ARGS_MAX, lib.FAN_FP_ARGS_SIZE_VER0) == (64, 1024, 88)
    assert (lib.FAN_FP_ADD_BPF_FD, lib.FAN_FP_F_UNPRIV, lib.FAN_FP_F_PRIVATE) == (1, 1, 2)
    assert errors.ARGS_MAX == lib.FAN_FP_ARGS_MAX


def test_raw_ioctls_say_enotty(fan_fd):
    assert lib.fanbpf_fp_attach_name(fan_fd, b"rules", ffi.NULL, 0) == -errno.ENOTTY
    assert ffi.errno == errno.ENOTTY
    assert lib.fanbpf_fp_attach_fd(fan_fd, 0, b"\0" * 8, 8) == -errno.ENOTTY
    assert lib.fanbpf_fp_detach(fan_fd, ffi.NULL) == -errno.ENOTTY
    assert lib.fanbpf_fp_detach(fan_fd, b"rules") == -errno.ENOTTY


def test_raw_argument_checks(fan_fd):
    assert lib.fanbpf_fp_attach_name(fan_fd, b"x" * 64, ffi.NULL, 0) == -errno.EINVAL
    assert lib.fanbpf_fp_attach_name(fan_fd, ffi.NULL, ffi.NULL, 0) == -errno.EINVAL
    assert lib.fanbpf_fp_attach_name(fan_fd, b"x", ffi.NULL, 4) == -errno.EINVAL
    assert lib.fanbpf_fp_detach(fan_fd, b"x" * 64) == -errno.EINVAL
    assert lib.fanbpf_fp_attach_name(-1, b"x", ffi.NULL, 0) == -errno.EBADF


def test_fanotify_wrappers(tmp_path):
    assert lib.fanbpf_fanotify_init(0xFFFFFFFF, 0) == -errno.EINVAL
    fd = lib.fanbpf_fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_REPORT_FID, os.O_RDONLY)
    try:
        FAN_MARK_ADD, FAN_CREATE = 0x1, 0x100
        assert lib.fanbpf_fanotify_mark(fd, FAN_MARK_ADD, FAN_CREATE, -100,
                                         str(tmp_path).encode()) == 0
        assert lib.fanbpf_fanotify_mark(fd, FAN_MARK_ADD, FAN_CREATE, -100,
                                         str(tmp_path / "nope").encode()) == -errno.ENOENT
        dirfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert lib.fanbpf_fanotify_mark(fd, FAN_MARK_ADD, FAN_CREATE, dirfd, ffi.NULL) == 0
        finally:
            os.close(dirfd)
    finally:
        os.close(fd)


def test_attach_detach_raise_kernel_support_error(fan_fd):
    for call in (lambda: handler.attach(fan_fd, "rules"),
                 lambda: handler.attach(fan_fd, "rules", b"\1\2"),
                 lambda: handler.detach(fan_fd),
                 lambda: handler.detach(fan_fd, "rules")):
        with pytest.raises(errors.KernelSupportError) as info:
            call()
        err = info.value
        assert err.errno == errno.ENOTTY
        assert any("fanotify_fastpath_ops" in m for m in err.missing)
        assert str(err).startswith(("attach failed: this kernel", "detach failed: this kernel"))
        assert "make" not in str(err) and "\n" not in str(err)


def test_attach_accepts_objects_with_fileno(fan_fd):
    class Group:
        def fileno(self):
            return fan_fd

    with pytest.raises(errors.KernelSupportError):
        handler.attach(Group(), "rules")


def test_attach_validates_before_the_syscall(fan_fd):
    # these would be ENOTTY if they reached the kernel
    with pytest.raises(errors.ArgsError) as info:
        handler.attach(fan_fd, "rules", bytes(1025))
    assert info.value.errno == errno.E2BIG and "1024" in str(info.value)
    # one name rule everywhere: the kernel's (what a registered handler can be called)
    for bad in ("x" * 64, "", "has space", "a/b"):
        with pytest.raises(errors.ArgsError, match="1 to 63 characters from A-Z a-z 0-9 _ ."):
            handler.attach(fan_fd, bad)
        with pytest.raises(errors.ArgsError):
            handler.detach(fan_fd, bad)
    with pytest.raises(TypeError, match="Handler.encode_args"):
        handler.attach(fan_fd, "rules", {"sections": 1})
    with pytest.raises(TypeError, match="dict or bytes"):
        handler.attach(fan_fd, "rules", "text")
    with pytest.raises(TypeError, match="Handler or a handler name"):
        handler.attach(fan_fd, 3)


def test_probe_reports_the_missing_type():
    probe = ffi.new("struct fanbpf_probe *")
    assert lib.fanbpf_probe(probe) == 0
    assert probe.vmlinux_btf == os.path.exists("/sys/kernel/btf/vmlinux")
    assert not probe.fastpath_btf
    assert not probe.fastpath_ioctl and probe.fanotify_errno == 0
    assert lib.fanbpf_probe(ffi.NULL) == -errno.EINVAL

    ks = support.kernel_support()
    assert not ks.fastpath
    assert ks.vmlinux_btf == bool(probe.vmlinux_btf)
    assert any("fanotify_fastpath_ops" in m for m in ks.missing)
    assert any("FAN_IOC_ADD_FP" in m for m in ks.missing)
    with pytest.raises(errors.KernelSupportError) as info:
        ks.require()
    assert info.value.missing == list(ks.missing)


def test_probe_tells_whether_vmlinux_describes_btrfs():
    """The rules handler and fanbpf.rules() name btrfs directories by
    subvolume only when vmlinux BTF has struct btrfs_inode: the probe must
    say what bpftool reads from the same BTF."""
    dump = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                          capture_output=True, text=True, check=True).stdout
    has = re.search(r"^\[\d+\] STRUCT 'btrfs_inode' ", dump, re.M) is not None
    assert support.kernel_support().btrfs_subvolumes == has


@needs_root
def test_probe_sees_struct_ops_maps():
    assert support.kernel_support().struct_ops_maps


def test_available_handlers_empty_without_sysfs():
    assert not support.SYSFS_DIR.exists()
    assert support.available_handlers() == []


def test_available_handlers_parses_sysfs_layout(tmp_path, monkeypatch):
    # the reader only; the real directory is checked in tests/vm
    for name, flags, desc, owner in [("rules", "", "fanbpf rules", "bpf"),
                                     ("subtree", "UNPRIV", "kmod", "module")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "flags").write_text(flags + "\n")
        (tmp_path / name / "desc").write_text(desc + "\n")
        (tmp_path / name / "owner").write_text(owner + "\n")
    monkeypatch.setattr(support, "SYSFS_DIR", tmp_path)
    rules, subtree = support.available_handlers()
    assert rules == support.HandlerInfo("rules", frozenset(), "fanbpf rules", "bpf")
    assert subtree.unpriv and not rules.unpriv
    assert subtree.owner == "module"


@pytest.mark.parametrize("op,err,cls,words", [
    ("attach", errno.ENOENT, FileNotFoundError, ["'x'", "registered now: none"]),
    ("attach", errno.EBUSY, OSError, ["detach the current handler first"]),
    ("attach", errno.E2BIG, OSError, ["1024"]),
    ("attach", errno.EINVAL, OSError, ["fp_init"]),
    ("attach", errno.EPERM, PermissionError, ["CAP_SYS_ADMIN"]),
    ("attach", errno.EBADF, OSError, ["Handler closed"]),
    ("attach", errno.ENOMEM, OSError, ["attach failed", "memory"]),
    ("detach", errno.ENOENT, FileNotFoundError, ["no handler named 'x' is attached"]),
    ("register", errno.EEXIST, FileExistsError, ["name='other'", "private=True"]),
    ("load", errno.EPERM, PermissionError, ["CAP_BPF"]),
    ("load", errno.EACCES, PermissionError, ["load failed"]),
])
def test_check_maps_errno_to_exceptions(op, err, cls, words):
    # one path: the OSError subclass Python picks for the errno, filename set
    with pytest.raises(OSError) as info:
        errors.check(-err, op, name="x", filename="x.bpf.o")
    assert type(info.value) is cls and info.value.errno == err
    assert info.value.filename == "x.bpf.o"
    for word in words:
        assert word in str(info.value)
    assert errors.check(5, op) == 5


def test_own_classes_only_where_no_errno_fits():
    from fanbpf.rules import RulesError

    assert issubclass(RulesError, errors.ArgsError)
    assert issubclass(errors.ArgsError, ValueError)
    for cls in (errors.ArgsError, errors.VerifierError, errors.KernelSupportError):
        assert issubclass(cls, errors.FanbpfError) and issubclass(cls, OSError)
    assert type(errors.os_error(errno.EPERM, "m", b"/x")) is PermissionError
    assert errors.os_error(errno.EPERM, "m", b"/x").filename == "/x"


def test_no_fd_leaks_on_error_paths(fan_fd):
    before = open_fds()
    for _ in range(20):
        with pytest.raises(errors.KernelSupportError):
            handler.attach(fan_fd, "rules", b"args")
        with pytest.raises(errors.KernelSupportError):
            handler.detach(fan_fd)
        support.kernel_support()  # the probe makes a group and loads BTF
    assert open_fds() == before


# --- map operations (on the rules test object, which loads anywhere) -----------------

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2


@pytest.fixture(scope="module")
def maps_obj():
    """The rules test object, loaded: hash and array maps."""
    if os.geteuid() != 0:
        pytest.skip("loading BPF needs root")
    obj = handler.BpfObject(handler.builtin_path("rules").with_name("fanbpf_rules_test.bpf.o"))
    try:
        obj.load()
        yield obj._obj()
    finally:
        obj.close()


def _possible_cpus() -> int:
    with open("/sys/devices/system/cpu/possible") as f:  # e.g. "0-3,8"
        ranges = [r.partition("-") for r in f.read().strip().split(",")]
    return sum(int(b or a) - int(a) + 1 for a, _, b in ranges)


def _info(obj, name):
    info = ffi.new("struct fanbpf_map_info *")
    assert lib.fanbpf_obj_map_info(obj, name.encode(), info) == 0
    return info


def test_map_info(maps_obj):
    nodes = _info(maps_obj, "fanbpf_rules_nodes")
    assert (nodes.type, nodes.key_size, nodes.value_size, nodes.max_entries) == (1, 24, 4, 1 << 20)
    assert nodes.map_flags & 1 and nodes.value_stride == 4  # BPF_F_NO_PREALLOC
    sets = _info(maps_obj, "fanbpf_rules_sets")
    assert (sets.type, sets.key_size, sets.value_size, sets.value_stride) == (1, 8, 8, 8)
    info = ffi.new("struct fanbpf_map_info *")
    assert lib.fanbpf_obj_map_info(maps_obj, b"no_such_map", info) == -errno.ENOENT


def test_map_elements(maps_obj):
    key, value = b"\1" * 24, b"\2\0\0\0"
    out = ffi.new("char[4]")
    name = b"fanbpf_rules_nodes"
    assert lib.fanbpf_obj_map_lookup(maps_obj, name, key, 24, out, 4, 0) == -errno.ENOENT
    assert lib.fanbpf_obj_map_update(maps_obj, name, key, 24, value, 4, BPF_EXIST) == -errno.ENOENT
    assert lib.fanbpf_obj_map_update(maps_obj, name, key, 24, value, 4, BPF_NOEXIST) == 0
    assert lib.fanbpf_obj_map_update(maps_obj, name, key, 24, value, 4, BPF_NOEXIST) == -errno.EEXIST
    assert lib.fanbpf_obj_map_lookup(maps_obj, name, key, 24, out, 4, 0) == 0
    assert ffi.buffer(out)[:] == value
    # sizes that are not the map's
    assert lib.fanbpf_obj_map_lookup(maps_obj, name, key, 16, out, 4, 0) == -errno.EINVAL
    assert lib.fanbpf_obj_map_update(maps_obj, name, key, 24, value, 8, 0) == -errno.EINVAL
    assert lib.fanbpf_obj_map_delete(maps_obj, name, key, 24, 0) == 0
    assert lib.fanbpf_obj_map_delete(maps_obj, name, key, 24, 0) == -errno.ENOENT


def test_per_cpu_values(bpf_objs):  # noqa: F811 (a fixture)
    """A per-CPU map's value is one per possible CPU, each rounded up to 8 bytes."""
    with handler.BpfObject(bpf_objs["maps"]) as obj:
        obj.load()
        info = _info(obj._obj(), "per_cpu")
        assert (info.type, info.value_size) == (6, 8)  # BPF_MAP_TYPE_PERCPU_ARRAY
        assert info.value_stride == 8 * _possible_cpus()
        key = (0).to_bytes(4, "little")
        vals = ffi.new("char[]", info.value_stride)
        assert lib.fanbpf_obj_map_update(obj._obj(), b"per_cpu", key, 4, vals, 8, 0) == \
            -errno.EINVAL
        assert lib.fanbpf_obj_map_update(obj._obj(), b"per_cpu", key, 4, vals,
                                         info.value_stride, 0) == 0


def test_map_batches_and_keys(maps_obj):
    name = b"fanbpf_rules_nodes"
    n = 3000
    keys = b"".join((77).to_bytes(8, "little") + (1).to_bytes(8, "little") + i.to_bytes(8, "little")
                    for i in range(n))
    values = b"\1\0\0\0" * n
    count = ffi.new("uint32_t *", n)
    assert lib.fanbpf_obj_map_update_batch(maps_obj, name, keys, len(keys), values,
                                           len(values) - 4, count, 0) == -errno.EINVAL
    assert lib.fanbpf_obj_map_update_batch(maps_obj, name, keys, len(keys), values, len(values),
                                           count, 0) == 0
    assert count[0] == n
    # all keys, with too little room first: the count says how many there are
    buf = ffi.new("char[]", 24 * 10)
    total = ffi.new("uint64_t *")
    assert lib.fanbpf_obj_map_keys(maps_obj, name, buf, 24 * 10, total) == 0
    assert total[0] == n
    buf = ffi.new("char[]", 24 * n)
    assert lib.fanbpf_obj_map_keys(maps_obj, name, buf, 24 * n, total) == 0
    got = ffi.buffer(buf)[:]
    assert sorted(got[i:i + 24] for i in range(0, len(got), 24)) == \
        sorted(keys[i:i + 24] for i in range(0, len(keys), 24))
    first, after = ffi.new("char[24]"), ffi.new("char[24]")
    assert lib.fanbpf_obj_map_next_key(maps_obj, name, ffi.NULL, first, 24) == 0
    assert lib.fanbpf_obj_map_next_key(maps_obj, name, first, after, 24) == 0
    # delete: stops at the first key that is not there, count = deleted before it
    missing = (78).to_bytes(8, "little") + b"\0" * 16
    chunk = keys[:24 * 5] + missing + keys[24 * 5:24 * 8]
    count[0] = 9
    assert lib.fanbpf_obj_map_delete_batch(maps_obj, name, chunk, len(chunk), count) == -errno.ENOENT
    assert count[0] == 5
    count[0] = n - 5
    assert lib.fanbpf_obj_map_delete_batch(maps_obj, name, keys[24 * 5:], len(keys) - 24 * 5,
                                           count) == 0
    assert lib.fanbpf_obj_map_keys(maps_obj, name, ffi.NULL, 0, total) == 0 and total[0] == 0


def test_map_ops_need_a_loaded_object():
    obj = handler.BpfObject(handler.builtin_path("rules").with_name("fanbpf_rules_test.bpf.o"))
    with obj:
        info = ffi.new("struct fanbpf_map_info *")
        assert lib.fanbpf_obj_map_info(obj._obj(), b"fanbpf_rules_nodes", info) == -errno.EBUSY
        assert lib.fanbpf_obj_map_info(ffi.NULL, b"fanbpf_rules_nodes", info) == -errno.EINVAL


@needs_root
def test_vmlinux_struct_ids(bpf_objs):
    """The load puts vmlinux BTF ids in fanbpf_vmlinux_struct__NAME globals
    (0: no such struct), so a guarded bpf_rdonly_cast() loads either way."""
    with handler.BpfObject(bpf_objs["vmlinux_ids"]) as obj:
        assert obj.get_global("fanbpf_vmlinux_struct__task_struct") == 0  # before load
        obj.load()
        assert obj.get_global("fanbpf_vmlinux_struct__task_struct") > 0
        assert obj.get_global("fanbpf_vmlinux_struct__fanbpf_no_such_struct") == 0
        assert obj.get_global("fanbpf_vmlinux_struct__wrong_size") == 0
        assert obj.test_run("cast").retval == 1
