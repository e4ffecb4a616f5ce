# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""What the running kernel offers: registered handlers and fastpath support."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from fanbpf.errors import KernelSupportError

__all__ = ["HandlerInfo", "KernelSupport", "available_handlers", "kernel_support", "subtree_marks",
           "SYSFS_DIR"]

#: Where the kernel lists registered (non-private) handlers.
SYSFS_DIR = Path("/sys/fs/fanotify/fastpath")


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
    #: Everything BPF fastpath handlers need is there.
    fastpath: bool
    #: What is not there, in words; empty when ``fastpath``.
    missing: tuple[str, ...]

    def require(self) -> None:
        """Raise :class:`KernelSupportError` naming what is missing, if anything."""
        if self.missing:
            raise KernelSupportError(list(self.missing), errno.ENOTSUP)


def kernel_support() -> KernelSupport:
    """Probe the running kernel (cheap enough to call when needed)."""
    from fanbpf._binding import ffi, lib
    import fanbpf._log  # noqa: F401  (libbpf's messages go to logging)

    probe = ffi.new("struct fanbpf_probe *")
    ret = lib.fanbpf_probe(probe)
    if ret < 0:
        raise OSError(-ret, f"feature probe failed: {os.strerror(-ret)}")

    missing = []
    if not probe.vmlinux_btf:
        missing.append("kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)")
    elif not probe.fastpath_btf:
        missing.append("the BTF type fanotify_fastpath_ops (CONFIG_FANOTIFY_FASTPATH_BPF)")
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
    import sys

    from fanbpf.flags import EventMask, InitFlag, MarkFlag
    from fanbpf.group import Group

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
