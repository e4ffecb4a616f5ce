"""The shim's fanotify/fastpath calls and the probe, on the host kernel (no fastpath hook).

The host kernel answers the fastpath ioctls with ENOTTY; that must come out
as KernelSupportError naming what is missing.  Argument checks that need no
kernel (sizes, names) must fire before any syscall.
"""

import errno
import os

import pytest

from bpfobjs import needs_root, open_fds
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
