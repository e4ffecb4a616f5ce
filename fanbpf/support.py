# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""What the running kernel offers: registered handlers and fastpath support."""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fanbpf.errors import SERIES, KernelSupportError
from fanbpf.flags import EventMask, InitFlag, MarkFlag
from fanbpf.group import Group

if TYPE_CHECKING:  # btfargs loads the extension, which `import fanbpf` must not
    from fanbpf.btfargs import Btf

__all__ = ["HandlerInfo", "KernelSupport", "available_handlers", "kernel_support", "subtree_marks",
           "fastpath_series", "missing_kfuncs", "SERIES", "SYSFS_DIR"]

#: Where the kernel lists registered (non-private) handlers.
SYSFS_DIR = Path("/sys/fs/fanotify/fastpath")
#: Where the kernel publishes its BTF: vmlinux's, and a file per module.
KERNEL_BTF = Path("/sys/kernel/btf")
#: What each revision of the series added to the kernel's BTF, newest first
#: (kernel/ABI.md, "v1 -> v2" and on).
_SERIES_MARKS = ((4, "fanotify_fastpath_step", "struct"),
                 (3, "bpf_iter_fanotify_parents_new", "func"),
                 (2, "bpf_fanotify_inode_dentry", "func"),
                 (1, "fanotify_fastpath_ops", "struct"))


@dataclass(frozen=True)
class HandlerInfo:
    """A registered handler, as /sys/fs/fanotify/fastpath/<name>/ shows it."""

    name: str
    #: Handler flags by name; the kernel shows ``UNPRIV`` or nothing.
    flags: frozenset[str]
    description: str
    #: ``"bpf"`` or ``"module"``.
    owner: str

    @property
    def unpriv(self) -> bool:
        """Groups without CAP_SYS_ADMIN may attach it (FAN_FP_F_UNPRIV)."""
        return "UNPRIV" in self.flags


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:  # unregistered while we looked
        return ""


def available_handlers() -> list[HandlerInfo]:
    """The registered handlers, sorted by name; [] without fastpath support."""
    try:
        entries = sorted(p for p in SYSFS_DIR.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
    return [
        HandlerInfo(
            name=p.name,
            flags=frozenset(_read(p / "flags").split()),
            description=_read(p / "desc"),
            owner=_read(p / "owner"),
        )
        for p in entries
    ]


@dataclass(frozen=True)
class KernelSupport:
    """The feature probe's answers (``fanbpf_probe``), and what they add up to."""

    #: Kernel BTF loads (/sys/kernel/btf/vmlinux).
    vmlinux_btf: bool
    #: Kernel BTF has ``struct fanotify_fastpath_ops``.
    fastpath_btf: bool
    #: Kernel BTF has ``struct btrfs_inode`` (btrfs built in): the rules
    #: handler can tell btrfs subvolumes apart (see :func:`fanbpf.rules.resolve_dirs`).
    btrfs_subvolumes: bool
    #: BPF_MAP_TYPE_STRUCT_OPS maps can be created (needs CAP_BPF too).
    struct_ops_maps: bool
    #: fanotify fds know the FAN_IOC_*_FP ioctls.
    fastpath_ioctl: bool
    #: errno of fanotify_init if it failed (then fastpath_ioctl is unknown).
    fanotify_errno: int
    #: The revision of the fastpath series the kernel carries (0: none;
    #: :data:`SERIES` is the one fanbpf is built for).
    series: int
    #: Everything BPF fastpath handlers need is there.
    fastpath: bool
    #: What is not there, in words; empty when ``fastpath``.
    missing: tuple[str, ...]

    def require(self) -> None:
        """Raise :class:`KernelSupportError` naming what is missing, if anything."""
        if self.missing:
            raise KernelSupportError(list(self.missing), errno.ENOTSUP)


def fastpath_series(vmlinux: Btf | None = None) -> int:
    """Which revision of the fastpath series the running kernel carries, told
    by its BTF (or ``vmlinux``'s): 0 for none, else 1 to :data:`SERIES`."""
    if vmlinux is None:
        from fanbpf.btfargs import Btf

        with Btf.from_file(KERNEL_BTF / "vmlinux") as btf:
            return fastpath_series(btf)
    return next((rev for rev, name, kind in _SERIES_MARKS if vmlinux.has(name, kind)), 0)


def missing_kfuncs(names: list[str]) -> tuple[list[str], int]:
    """Which of the kfuncs ``names`` neither vmlinux nor a loaded module has,
    and the kernel's series revision (:func:`fastpath_series`)."""
    from fanbpf.btfargs import Btf

    with Btf.from_file(KERNEL_BTF / "vmlinux") as vmlinux:
        missing = [name for name in names if not vmlinux.has(name)]
        if missing:  # rare, so only then the modules' BTF (one file each)
            for path in sorted(KERNEL_BTF.iterdir()):
                if path.name == "vmlinux" or not missing:
                    continue
                try:
                    with Btf.from_split_file(path, vmlinux) as module:
                        missing = [name for name in missing if not module.has(name)]
                except OSError:  # unloaded while we looked
                    continue
        return missing, fastpath_series(vmlinux)


def kernel_support() -> KernelSupport:
    """Probe the running kernel (cheap enough to call when needed)."""
    from fanbpf._binding import ffi, lib
    import fanbpf._log  # noqa: F401  (libbpf's messages go to logging)

    probe = ffi.new("struct fanbpf_probe *")
    ret = lib.fanbpf_probe(probe)
    if ret < 0:
        raise OSError(-ret, f"feature probe failed: {os.strerror(-ret)}")

    missing = []
    series = 0
    if not probe.vmlinux_btf:
        missing.append("kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)")
    elif not probe.fastpath_btf:
        missing.append("the BTF type fanotify_fastpath_ops (CONFIG_FANOTIFY_FASTPATH_BPF)")
    else:
        series = fastpath_series()
        if series < SERIES:
            missing.append(f"series v{SERIES} of the fastpath patches (this kernel has v{series}: "
                           "its walk hands dentries to BPF)")
    if not probe.struct_ops_maps:
        missing.append("BPF struct_ops maps (BPF_MAP_TYPE_STRUCT_OPS; also needs CAP_BPF)")
    if probe.fanotify_errno:
        missing.append(f"fanotify itself (fanotify_init: {os.strerror(probe.fanotify_errno)})")
    elif not probe.fastpath_ioctl:
        missing.append("the FAN_IOC_ADD_FP/FAN_IOC_DEL_FP ioctls (CONFIG_FANOTIFY_FASTPATH)")

    return KernelSupport(
        vmlinux_btf=bool(probe.vmlinux_btf),
        fastpath_btf=bool(probe.fastpath_btf),
        btrfs_subvolumes=bool(probe.btrfs_inode_btf),
        struct_ops_maps=bool(probe.struct_ops_maps),
        fastpath_ioctl=bool(probe.fastpath_ioctl),
        fanotify_errno=probe.fanotify_errno,
        series=series,
        fastpath=not missing,
        missing=tuple(missing),
    )


def subtree_marks() -> bool:
    """Whether the running kernel has subtree marks (:attr:`~fanbpf.MarkFlag.SUBTREE`)
    and this process may add them (``CAP_SYS_ADMIN``).

    Asks the kernel to make a regular file a subtree root: a kernel with
    subtree marks refuses it with ``ENOTDIR``, one without refuses the
    unknown flag with ``EINVAL``, and without privilege it is ``EPERM``.
    The group reports no FIDs, so that the probe works on filesystems
    without file handles too.
    """
    try:
        group = Group(InitFlag.CLASS_NOTIF, resolve_paths=False)
    except OSError:
        return False
    # /proc/self/exe: the kernel follows the link straight to the file; a
    # realpath walks every component in Python (84 of 104 ms of a watch's
    # setup in the test VM, whose root is 9p under TCG). Without /proc, that.
    with group:
        for exe in ("/proc/self/exe", None):
            try:
                group.mark(exe or os.path.realpath(sys.executable), EventMask.CLOSE_WRITE, MarkFlag.SUBTREE)
            except NotADirectoryError:
                return True
            except FileNotFoundError:
                continue
            except OSError:
                return False
    return False  # no kernel makes a file a subtree root
