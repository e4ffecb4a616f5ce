# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Build the init args of the built-in ``fanbpf_rules`` handler.

One handler composes every built-in filter, because a fanotify group has
exactly one handler: :func:`rules` turns keyword arguments into the dict
:meth:`fanbpf.Handler.encode_args` lays out as ``struct fanbpf_rules_args``
(``src/bpf/fanbpf_rules.h``)::

    from fanbpf import Group, Handler
    from fanbpf.flags import EventMask, MarkFlag
    from fanbpf.rules import rules

    with Handler.load("rules") as handler, Group() as group:
        group.mark("/srv", EventMask.CREATE | EventMask.CLOSE_WRITE, MarkFlag.FILESYSTEM)
        group.attach(handler, rules(subtree=["/srv/data"], names=["*.log"],
                                    exclude_pid=True))

An event is delivered when it matches every rule given (see
:mod:`fanbpf.model` for the exact semantics).  Inputs are checked here,
with errors that name the offending argument, before anything reaches the
kernel: :class:`RulesError` (a :class:`ValueError`), or the ``OSError`` of
``stat`` for a root that does not exist.
"""

from __future__ import annotations

import errno as _errno
import functools
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, Union, overload

from fanbpf.errors import ArgsError, os_error
from fanbpf.flags import EventMask
from fanbpf.model import (COMM_LEN, MAX_GLOBS, MAX_ROOTS, NAME_MAX, NameList, NamesMode, Node,
                          Pattern, PatternKind, ProcessFlag, RulesArgs, Section, name_listed)
from fanbpf.support import kernel_support

__all__ = ["rules", "Rules", "exact", "prefix", "suffix", "glob", "NamePattern", "RulesError",
           "kernel_dev", "root_of", "resolve_dirs", "name_dirs", "nested_mounts", "mounts",
           "Mount", "ResolvedDir", "cgroup2_mount", "cgroup_tree_of", "DENY_ERRNOS"]

#: Event bits the names rule may be restricted to (FAN_* event bits and FAN_ONDIR).
_EVENT_BITS = 0x0007FFFF | 0x10000000 | 0x40000000


class RulesError(ArgsError):
    """Arguments for :func:`rules` that the handler cannot take (a ValueError too)."""


@dataclass(frozen=True)
class NamePattern:
    """A name pattern with an explicit kind (see :func:`exact` and friends)."""

    kind: PatternKind
    text: bytes

    def __repr__(self) -> str:
        return f"{self.kind.name.lower()}({self.text!r})"


def _pattern_bytes(text: object, what: str) -> bytes:
    if isinstance(text, str):
        data = os.fsencode(text)
    elif isinstance(text, (bytes, bytearray)):
        data = bytes(text)
    else:
        raise RulesError(f"{what}: a pattern is a str or bytes, not {type(text).__name__}")
    if not data:
        raise RulesError(f"{what}: empty pattern (names are never empty)")
    if len(data) >= NAME_MAX:
        raise RulesError(f"{what}: pattern {data!r} is {len(data)} bytes; the handler "
                         f"takes at most {NAME_MAX - 1}")
    if b"\0" in data or b"/" in data:
        raise RulesError(f"{what}: pattern {data!r} contains NUL or '/', which no "
                         "file name does (patterns match names, not paths)")
    return data


def exact(text: str | bytes) -> NamePattern:
    """Names equal to ``text``."""
    return NamePattern(PatternKind.EXACT, _pattern_bytes(text, "exact"))


def prefix(text: str | bytes) -> NamePattern:
    """Names starting with ``text`` (taken literally: ``*`` is not special)."""
    return NamePattern(PatternKind.PREFIX, _pattern_bytes(text, "prefix"))


def suffix(text: str | bytes) -> NamePattern:
    """Names ending with ``text`` (taken literally)."""
    return NamePattern(PatternKind.SUFFIX, _pattern_bytes(text, "suffix"))


def glob(text: str | bytes) -> NamePattern:
    """A glob: ``*`` matches any run of bytes, ``?`` one byte; nothing else is special."""
    return NamePattern(PatternKind.GLOB, _pattern_bytes(text, "glob"))


PatternArg = Union[str, bytes, NamePattern]
#: A file system path, as ``os.fsencode`` takes it.
PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def _as_pattern(item: PatternArg, what: str) -> NamePattern:
    """A plain str/bytes is a glob; kept as the cheapest kind that means the same."""
    if isinstance(item, NamePattern):
        return item
    data = _pattern_bytes(item, what)
    wild = [i for i, c in enumerate(data) if c in b"*?"]
    if not wild:
        return NamePattern(PatternKind.EXACT, data)
    if data.count(b"*") == 1 and b"?" not in data:
        if data.endswith(b"*"):
            return NamePattern(PatternKind.PREFIX, data[:-1])
        if data.startswith(b"*"):
            return NamePattern(PatternKind.SUFFIX, data[1:])
    return NamePattern(PatternKind.GLOB, data)


def kernel_dev(st_dev: int) -> int:
    """``st_dev`` as the kernel's dev_t (``major << 20 | minor``), which s_dev holds."""
    return os.major(st_dev) << 20 | os.minor(st_dev)


# --- how the kernel names a directory ------------------------------------------

#: Filesystems whose directories the rules name differently (see :func:`resolve_dirs`).
BTRFS, OVERLAY = "btrfs", "overlay"
_IN_ONLYDIR = 0x01000000  # ENOTDIR for anything but a directory
_IN_DELETE_SELF = 0x00000400  # a watch needs some event; this one is rare
_IN_CLOEXEC = 0o2000000
#: Watches per inotify fd before its fdinfo is read and it is closed:
#: below the smallest fs.inotify.max_user_watches a distribution ships.
_WATCH_BATCH = 4096
_FDINFO_RE = re.compile(rb"^inotify wd:([0-9a-f]+) ino:([0-9a-f]+) sdev:([0-9a-f]+) ", re.M)


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``."""

    dev: int  #: the superblock's s_dev (kernel dev_t)
    point: bytes  #: where it is mounted, as this process sees it
    fstype: str
    root: bytes = b"/"  #: the directory of the filesystem mounted there (a bind mount's source)


def _unescape(field: bytes) -> bytes:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field)


def mounts() -> list[Mount]:
    """The mounts this process sees, from ``/proc/self/mountinfo``."""
    with open("/proc/self/mountinfo", "rb") as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        fields = line.split(b" ")
        sep = fields.index(b"-")
        major, minor = fields[2].split(b":")
        out.append(Mount(int(major) << 20 | int(minor), _unescape(fields[4]),
                         fields[sep + 1].decode(errors="replace"), _unescape(fields[3])))
    return out


@dataclass(frozen=True)
class ResolvedDir:
    """A directory as the rules handler names it, and where it came from."""

    dev: int  #: the superblock's s_dev; on btrfs the subvolume's dev (= st_dev)
    ino: int  #: i_ino
    fstype: str
    path: bytes
    fd: int | None = None  #: an O_PATH fd holding an overlayfs directory (see resolve_dirs)

    @property
    def key(self) -> tuple[int, int]:
        return self.dev, self.ino


def _path_bytes(path: PathArg, what: str) -> bytes:
    try:
        raw = os.fsencode(path)
    except TypeError:
        raise RulesError(f"{what}: expected a directory path or a (dev, ino) pair, "
                         f"not {type(path).__name__}") from None
    if not raw or b"\0" in raw:
        raise RulesError(f"{what}: {path!r} is not a path (empty, or with a NUL byte)")
    return raw


@overload
def _watch_batch(raws: list[bytes], what: str, strict: Literal[True] = True) -> list[Node]: ...
@overload
def _watch_batch(raws: list[bytes], what: str, strict: Literal[False]) -> list[Node | None]: ...


def _watch_batch(raws: list[bytes], what: str, strict: bool = True
                 ) -> list[Node] | list[Node | None]:
    """``(s_dev, i_ino)`` of each directory, from one inotify fd's fdinfo.

    Not ``strict``: None for what cannot be looked up, and no automount is
    triggered (IN_ONLYDIR would make the lookup a directory lookup, which does).
    """
    from fanbpf._binding import lib

    fd = lib.fanbpf_inotify_init(_IN_CLOEXEC)
    if fd < 0:
        raise os_error(-fd, f"inotify_init1 (to learn how the kernel names the {what} "
                       "directories; see fs.inotify.max_user_instances)")
    mask = _IN_DELETE_SELF | (_IN_ONLYDIR if strict else 0)
    try:
        wds = []
        for raw in raws:
            wd = lib.fanbpf_inotify_add_watch(fd, raw, mask)
            if wd < 0 and strict:
                if wd == -_errno.ENOTDIR:
                    raise RulesError(f"{what}: {os.fsdecode(raw)!r} is not a directory")
                if wd == -_errno.ENOSPC:
                    raise os_error(-wd, f"{what}: out of inotify watches while resolving "
                                   "roots (raise fs.inotify.max_user_watches)", os.fsdecode(raw))
                raise os_error(-wd, f"{what}: cannot look up {os.fsdecode(raw)!r} "
                               "(inotify_add_watch)", os.fsdecode(raw))
            wds.append(wd)
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            info = {int(wd, 16): (int(sdev, 16), int(ino, 16))
                    for wd, ino, sdev in _FDINFO_RE.findall(f.read())}
        return [info.get(wd) for wd in wds]
    finally:
        os.close(fd)  # removes every watch of the batch


def resolve_dirs(paths: Iterable[PathArg], *, what: str = "subtree", pin: bool = False) -> list[ResolvedDir]:
    """Name directories as the rules handler does: ``(dev, ino)`` with dev the s_dev.

    ``stat`` does not say it everywhere: overlayfs may report another
    st_ino than the inode's i_ino, and btrfs reports the subvolume's dev.
    So the kernel is asked: an inotify watch per directory (batched, many
    per fd), whose fdinfo line carries the inode's i_ino and its
    superblock's s_dev.  On btrfs, where inode numbers repeat across
    subvolumes, the handler uses the subvolume's dev, st_dev -- when the
    kernel's BTF describes btrfs (built in).  With btrfs a module the
    handler cannot, and names btrfs directories by s_dev as everywhere
    else; then a root also covers the directories with its inode number
    in the filesystem's other subvolumes: more events, never fewer
    (docs/rules.md, Limits).  Symlinks
    are followed.  An overlayfs directory's i_ino can change once its
    inode leaves the cache; with ``pin`` each is opened ``O_PATH`` (the
    fd, in ``fd``, keeps the inode and is the caller's to close) and named
    through that fd.

    Raises :class:`RulesError` for what is not a directory and the OSError
    of the lookup (FileNotFoundError, PermissionError...).
    """
    raws = [_path_bytes(p, what) for p in paths]
    names: list[tuple[int, int]] = []
    for start in range(0, len(raws), _WATCH_BATCH):
        names += _watch_batch(raws[start:start + _WATCH_BATCH], what)
    fstypes = {m.dev: m.fstype for m in mounts()} if raws else {}
    out = []
    try:
        for raw, (dev, ino) in zip(raws, names):
            fstype = fstypes.get(dev, "")
            fd = None
            if fstype == BTRFS and _btrfs_subvolumes():
                dev = kernel_dev(os.stat(raw).st_dev)
            elif fstype == OVERLAY and pin:
                fd = os.open(raw, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:  # named again through the fd, which now holds the inode
                    dev, ino = _watch_batch([b"/proc/self/fd/%d" % fd], what)[0]
                except BaseException:
                    os.close(fd)
                    raise
            out.append(ResolvedDir(dev, ino, fstype, raw, fd))
    except BaseException:
        close_pins(out)
        raise
    return out


@functools.cache
def _btrfs_subvolumes() -> bool:
    """Does the handler name btrfs nodes by subvolume?  (It can when the
    kernel's BTF has struct btrfs_inode; fanbpf_rules.bpf.c, btrfs.)"""
    return kernel_support().btrfs_subvolumes


def close_pins(dirs: Iterable[ResolvedDir]) -> None:
    for d in dirs:
        if d.fd is not None:
            os.close(d.fd)


def root_of(path: PathArg) -> tuple[int, int]:
    """The ``(dev, ino)`` the handler knows directory ``path`` by (see :func:`resolve_dirs`).

    An overlayfs directory is named as it is now: hold it open (as an
    :class:`~fanbpf.Attachment` does) for the name to stay valid.
    """
    return resolve_dirs([path])[0].key


#: Directories are named by path or as ``(dev, ino)``; see :func:`name_dirs`.
DirArg = Union[PathArg, Node]


def name_dirs(items: Iterable[DirArg] | PathArg, what: str, pin: bool = False
              ) -> tuple[list[Node], list[ResolvedDir]]:
    """The ``(dev, ino)`` of each item (duplicates dropped, order kept) and the
    :class:`ResolvedDir` of those given as paths (``pin``: see :func:`resolve_dirs`)."""
    dir_args: Iterable[DirArg] = [items] if isinstance(items, (str, bytes, os.PathLike)) else items
    pending: list[Node | None] = []
    paths: list[PathArg] = []
    for item in dir_args:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise RulesError(f"{what}: {item!r} is not a (dev, ino) pair")
            pending.append((_uint(item[0], f"{what} dev", 64),
                            _uint(item[1], f"{what} ino", 64)))
        else:
            paths.append(item)
            pending.append(None)  # filled in below, in order
    dirs = resolve_dirs(paths, what=what, pin=pin)
    named = iter(dirs)
    keys = [key if key is not None else next(named).key for key in pending]
    return list(dict.fromkeys(keys)), dirs


def nested_mounts(roots: Iterable[Node], excluded: Iterable[Node] = (), *, pin: bool = False,
                  table: list[Mount] | None = None) -> list[tuple[Node, ResolvedDir]]:
    """Filesystems mounted below a root: ``(root, the mounted directory)`` pairs.

    A walk up from a file stops at its filesystem's root, so a root does
    not cover what is mounted below it: the handler must have the mounted
    directory as a root too.  Each mount point's ancestors are named as
    the handler names directories; the nearest one that is a root (and
    not, nearer, an excluded subtree) claims the mount.  Mounts this
    process cannot look up, and autofs triggers, are left out.
    """
    roots, excluded = set(roots), set(excluded)
    if not roots:
        return []
    table = mounts() if table is None else table
    points = [m.point for m in table if m.point != b"/" and m.fstype != "autofs"]
    points = list(dict.fromkeys(points))
    chains = {p: _ancestors(p) for p in points}
    lookups = list(dict.fromkeys(x for p in points for x in (p, *chains[p])))
    found = dict(zip(lookups, _watch_batches(lookups, "nested mount")))
    fstypes = {m.dev: m.fstype for m in table}
    out: list[tuple[Node, ResolvedDir]] = []
    for point in points:
        named = found[point]
        if named is None:
            continue
        for parent in chains[point]:
            key = _handler_key(found[parent], fstypes, parent)
            if key is not None and key in roots:
                key_below = _handler_key(named, fstypes, point)
                # None: the mount point went between the lookup and the stat
                if key_below is not None and key_below not in roots:
                    out.extend((key, d) for d in _pinned(point, pin, key_below,
                                                         fstypes.get(named[0], "")))
                break
            if key in excluded:
                break
    return out


def mount_points_below(dirs: Iterable[str], table: list[Mount] | None = None) -> list[str]:
    """The mount points strictly below ``dirs`` (real paths), in mount order.

    Marks do not cross mounts: a watcher of a directory marks these too.
    Autofs triggers are left out (marking one would mount it).
    """
    prefixes = tuple(d.rstrip("/") + "/" for d in dirs)
    table = mounts() if table is None else table
    points = [os.fsdecode(m.point) for m in table if m.fstype != "autofs"]
    return list(dict.fromkeys(p for p in points if p.startswith(prefixes)))


def names_to_top(path: str, table: list[Mount] | None = None) -> list[str]:
    """The names of ``path`` (a real path) and of its ancestors up to its
    filesystem's root, as the kernel's walk up the dentries meets them: a
    bind mount's walk goes on above the mount, through the directories
    ``/proc/self/mountinfo`` names as its root."""
    table = mounts() if table is None else table
    best: Mount | None = None
    for m in table:  # the last of the longest: what is on top
        point = os.fsdecode(m.point).rstrip("/")
        if (path == point or path.startswith(point + "/") or point == "") and \
                (best is None or len(point) >= len(os.fsdecode(best.point).rstrip("/"))):
            best = m
    if best is None:
        return [p for p in path.split("/") if p]
    below = path[len(os.fsdecode(best.point).rstrip("/")):]
    return [p for p in (os.fsdecode(best.root) + below).split("/") if p]


def _ancestors(point: bytes) -> list[bytes]:
    """``/a/b/c`` -> ``[/a/b, /a, /]``: a mount point's directories, nearest first."""
    out: list[bytes] = []
    while point != b"/":
        point = os.path.dirname(point)
        out.append(point)
    return out


def _watch_batches(raws: list[bytes], what: str) -> list[Node | None]:
    return [x for start in range(0, len(raws), _WATCH_BATCH)
            for x in _watch_batch(raws[start:start + _WATCH_BATCH], what, strict=False)]


def _handler_key(named: Node | None, fstypes: dict[int, str], raw: bytes) -> Node | None:
    """inotify's ``(s_dev, i_ino)`` as the handler's key: btrfs uses the subvolume's dev."""
    if named is None:
        return None
    dev, ino = named
    if fstypes.get(dev) == BTRFS:
        try:
            dev = kernel_dev(os.stat(raw).st_dev)
        except OSError:
            return None
    return dev, ino


def _pinned(raw: bytes, pin: bool, key: Node, fstype: str) -> list[ResolvedDir]:
    if fstype == OVERLAY and pin:
        return resolve_dirs([raw], what="nested mount", pin=True)
    return [ResolvedDir(*key, fstype, raw)]


def _event_mask(events: int | Iterable[str | int]) -> int:
    if isinstance(events, int):
        mask = events
    else:
        mask = 0
        for item in events:
            if isinstance(item, str):
                try:
                    item = EventMask[item.upper()]
                except KeyError:
                    raise RulesError(f"events: no event named {item!r}") from None
            if not isinstance(item, int):
                raise RulesError(f"events: {item!r} is not an event")
            mask |= item
    if mask < 0 or mask & ~_EVENT_BITS:
        raise RulesError(f"events: {mask:#x} has bits that are not fanotify events")
    return int(mask)


def _uint(value: object, what: str, bits: int = 32) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RulesError(f"{what}: expected an int, got {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise RulesError(f"{what}: {value} is out of range (0..{(1 << bits) - 1})")
    return value


def _cgroup_id(cgroup: int | PathArg) -> int:
    if isinstance(cgroup, bool) or not isinstance(cgroup, (int, str, bytes, os.PathLike)):
        # (os.stat would take True as fd 1)
        raise RulesError(f"cgroup: expected an id or a cgroup v2 directory, "
                         f"got {type(cgroup).__name__}")
    if isinstance(cgroup, int):
        return _uint(cgroup, "cgroup", 64)
    st = os.stat(cgroup)
    if not stat.S_ISDIR(st.st_mode):
        raise RulesError(f"cgroup: {os.fsdecode(cgroup)!r} is not a cgroup directory")
    return st.st_ino  # a cgroup v2 id is its directory's inode number


#: What the kernel lets a handler deny a permission event with: upstream's
#: FAN_DENY_ERRNO set plus EACCES.  It turns any other errno into EPERM (and
#: logs a warning), so asking for one is refused here, before any syscall.
DENY_ERRNOS = frozenset({_errno.EPERM, _errno.EACCES, _errno.EIO, _errno.EBUSY,
                         _errno.ETXTBSY, _errno.EAGAIN, _errno.ENOSPC, _errno.EDQUOT})


def cgroup2_mount() -> str | None:
    """Where the cgroup v2 hierarchy is mounted (None if it is not)."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return fields[1]
    except OSError:
        pass
    return None


def cgroup_tree_of(cgroup: PathArg) -> tuple[int, int]:
    """``(id, level)`` of a cgroup v2 directory: its inode number and how many
    cgroups lie above it (the root cgroup is level 0)."""
    mount = cgroup2_mount()
    if mount is None:
        raise RulesError("cgroup_tree: no cgroup v2 hierarchy is mounted")
    try:
        path = os.path.realpath(os.fsdecode(cgroup))
    except TypeError:
        raise RulesError(f"cgroup_tree: expected a cgroup v2 directory, got "
                         f"{type(cgroup).__name__}") from None
    rel = os.path.relpath(path, mount)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or not os.path.isdir(path):
        raise RulesError(f"cgroup_tree: {path!r} is not a cgroup directory under {mount}")
    level = 0 if rel == os.curdir else len(rel.split(os.sep))
    return os.stat(path).st_ino, level


def _errno_value(value: int | str) -> int:
    if isinstance(value, str):
        code = getattr(_errno, value.upper(), None)
        if code is None:
            raise RulesError(f"deny_errno: unknown errno name {value!r}")
        value = code
    value = _uint(value, "deny_errno")
    if value not in DENY_ERRNOS:
        allowed = ", ".join(sorted(_errno.errorcode[e] for e in DENY_ERRNOS))
        raise RulesError(f"deny_errno: the kernel denies only with {allowed}; "
                         f"{_errno.errorcode.get(value, value)} would become EPERM")
    return value


@dataclass(frozen=True)
class Rules:
    """A rule set for the ``fanbpf_rules`` handler, as :func:`rules` builds it.

    ``args`` is everything the handler decides with (the roots named as
    the kernel names them; :mod:`fanbpf.model` states the semantics).  The
    rest says where the directories came from, for whoever attaches it:
    ``nested`` pairs each root with the directories of filesystems mounted
    below it (roots too, see :func:`nested_mounts`), ``overlay`` the
    overlayfs directories (by path) an attachment holds open, and
    ``filesystems`` one directory on each filesystem a root lives on:
    what a watcher marks (``MarkFlag.FILESYSTEM``) to see their events.
    """

    args: RulesArgs
    nested: tuple[tuple[Node, Node], ...] = ()
    overlay: tuple[tuple[Node, bytes], ...] = ()
    filesystems: tuple[bytes, ...] = ()

    @property
    def needs_maps(self) -> bool:
        """Uses the rules maps: names, exclusions or more roots than init args hold.

        Such a rule set attaches only as a loaded :class:`~fanbpf.Handler`
        (whose maps fanbpf writes), not by a registered handler's name.
        """
        a = self.args
        return bool(a.patterns or a.dirs or a.excluded or len(a.roots) > MAX_ROOTS
                    or a.sections & Section.EXCLUDE)

    def init_args(self) -> dict[str, Any]:
        """The init args of a rule set without map entries (attached by name):
        RulesError if it needs maps."""
        if self.needs_maps:
            raise RulesError("this rule set has names, exclusions or more than "
                             f"{MAX_ROOTS} roots, which live in the rules handler's maps: "
                             "attach it as a loaded Handler (Handler.load(\"rules\")), "
                             "not by a handler's name or as encoded bytes")
        return self.args.to_dict()

    def dir_listed(self) -> Callable[[str], bool]:
        """Whether a directory name is on this rule set's ``exclude_dirs`` list
        (a function, which remembers the names it was asked about)."""
        args = self.model_args

        @functools.cache
        def listed(name: str) -> bool:
            return name_listed(args, NameList.DIRS, os.fsencode(name))
        return listed

    def walk_excludes(self, paths: Iterable[str], table: list[Mount] | None = None) -> list[str]:
        """The directories among ``paths`` (real paths) whose every event this
        rule set's ``exclude_dirs`` would exclude if no subtree rule stopped
        the walk at them: those with a listed name on the way up to their
        filesystem's root, their own included (see :func:`names_to_top`)."""
        listed = self.dir_listed()
        table = mounts() if table is None else table
        points = {os.fsdecode(m.point) for m in table}

        @functools.cache
        def excludes(path: str) -> bool:  # roots share their parents: each is asked once
            parent = os.path.dirname(path)
            if path in points or parent == path:
                return any(map(listed, names_to_top(path, table)))
            return excludes(parent) or listed(os.path.basename(path))
        return [p for p in paths if excludes(p.rstrip("/") or "/")]

    @property
    def model_args(self) -> RulesArgs:
        """``args`` as :mod:`fanbpf.model` (and the user-space filter) take them:
        with a set id, which only says that the set has map entries (attaching
        gives the set its own)."""
        return replace(self.args, set_id=self.args.set_id or 1)


def _patterns(items: PatternArg | Iterable[PatternArg], what: str) -> tuple[Pattern, ...]:
    """Any number of exact names, at most MAX_GLOBS other patterns."""
    if isinstance(items, (str, bytes, NamePattern)):
        items = [items]
    patterns = list(dict.fromkeys(_as_pattern(p, what) for p in items))
    others = sum(p.kind != PatternKind.EXACT for p in patterns)
    if others > MAX_GLOBS:
        raise RulesError(f"{what}: {others} patterns with wildcards (or prefix/suffix); the "
                         f"handler takes at most {MAX_GLOBS} (exact names: any number)")
    return tuple(Pattern(int(p.kind), p.text) for p in patterns)


def _sources(dirs: Iterable[ResolvedDir]) -> tuple[tuple[tuple[Node, bytes], ...], tuple[bytes, ...]]:
    """The overlayfs directories among ``dirs``, and one directory per filesystem."""
    dirs = list(dirs)
    overlay = tuple(dict.fromkeys((d.key, d.path) for d in dirs if d.fstype == OVERLAY))
    filesystems = tuple({d.dev: d.path for d in reversed(dirs)}.values())[::-1]
    return overlay, filesystems


def rules(*, subtree: Iterable[DirArg] | None = None,
          exclude_dirs: Iterable[PatternArg] | None = None,
          exclude_subtrees: Iterable[DirArg] | None = None,
          names: Iterable[PatternArg] | None = None,
          exclude_names: Iterable[PatternArg] | None = None,
          events: int | Iterable[str | int] | None = None,
          tgid: int | None = None,
          exclude_pid: int | bool | None = None,
          uid: int | None = None,
          cgroup: int | PathArg | None = None,
          comm: str | bytes | None = None,
          descendants_of: int | None = None,
          cgroup_tree: PathArg | None = None,
          deny_errno: int | str | None = None) -> Rules:
    """A rule set for ``fanbpf_rules``: deliver only events that match every rule given.

    ``subtree``
        directories (paths, or ``(dev, ino)`` pairs named as the kernel
        names them, see :func:`root_of`): only objects under one of them,
        the directory itself included.  Any number; ``[]`` starts with
        none (nothing under a root matches until
        :meth:`~fanbpf.Attachment.add_root` adds one).  A root is a
        directory, not a path: events reached through any bind mount of it
        match.  Filesystems mounted below a root are covered (their
        mounted directories become roots); mark them too.
    ``exclude_dirs``
        directory names (patterns, as ``names``): drop events whose object
        lies below a directory with such a name -- below the root, at any
        depth, e.g. ``[".git", "node_modules", "*.egg-info"]``.  A directory
        event on such a directory itself is dropped too.
    ``exclude_subtrees``
        directories (as ``subtree``): drop events below them (and on them),
        unless a root lies nearer (the nearest rule wins).
    ``names`` / ``exclude_names``
        name patterns: only names that match one of them / that match
        none.  A str or bytes is a glob (``*``, ``?``); use :func:`exact`,
        :func:`prefix`, :func:`suffix` for literal text.  Any number of
        exact names, at most 64 others, each at most 255 bytes.  Events
        without a name (``*_SELF``) match no pattern.
    ``events``
        restricts the name rule to these events (a mask, or an iterable of
        :class:`~fanbpf.flags.EventMask` or names); other events pass it.
    ``tgid``
        only events caused by this process.
    ``exclude_pid``
        drop events caused by this process; ``True`` means this one (so a
        watcher does not see its own accesses).
    ``uid``
        only events by this real uid.
    ``cgroup``
        only events from this cgroup v2 (an id, or its directory).
    ``comm``
        only events by tasks with this name (at most 15 bytes).
    ``descendants_of``
        only events by this process or its descendants (thread-group
        leaders walked up through real parents).  The walk looks at 32
        processes: a task deeper than that below the top of the tree,
        without the process among its 32 nearest, is undecided -- its
        event is delivered and counted (``Attachment.stats.undecided``).
        Daemons re-parented to init leave the tree.
    ``cgroup_tree``
        only events from this cgroup v2 directory or a cgroup below it.
    ``deny_errno``
        permission events that match are denied with this errno (a number
        or a name such as ``"EPERM"``; one of :data:`DENY_ERRNOS`) instead
        of being sent to user space; the others are allowed in the kernel.

    Everything is checked here, before any system call but the lookups of
    the directories: :class:`RulesError` (a ValueError) says what is
    wrong, or the OSError of a lookup (FileNotFoundError...).
    """
    fields: dict[str, Any] = {}  # RulesArgs' keyword arguments
    sections = 0
    dirs: list[ResolvedDir] = []
    roots: list[Node] = []
    excluded: list[Node] = []

    if subtree is not None:
        roots, named = name_dirs(subtree, "subtree")
        dirs += named
        sections |= Section.SUBTREE
    if exclude_subtrees is not None:
        excluded, named = name_dirs(exclude_subtrees, "exclude_subtrees")
        dirs += named
        sections |= Section.EXCLUDE
    if exclude_dirs is not None:
        fields["dirs"] = _patterns(exclude_dirs, "exclude_dirs")
        sections |= Section.EXCLUDE
    nested = nested_mounts(roots, excluded) if roots else []
    roots = list(dict.fromkeys([*roots, *(d.key for _, d in nested)]))
    fields["roots"] = tuple(roots)
    fields["excluded"] = tuple(excluded)

    if names is not None and exclude_names is not None:
        raise RulesError("names and exclude_names cannot be combined: give one list")
    patterns_arg = names if names is not None else exclude_names
    if patterns_arg is not None:
        what = "names" if names is not None else "exclude_names"
        fields["patterns"] = _patterns(patterns_arg, what)
        if not fields["patterns"]:
            raise RulesError(f"{what}: no patterns given")
        fields["names_mode"] = int(NamesMode.INCLUDE if names is not None else NamesMode.EXCLUDE)
        fields["events"] = _event_mask(events) if events is not None else 0
        sections |= Section.NAMES
    elif events is not None:
        raise RulesError("events: only restricts the name rule; give names or exclude_names")

    flags = 0
    if tgid is not None:
        flags |= ProcessFlag.TGID
        fields["tgid"] = _uint(tgid, "tgid")
    if exclude_pid is not None and exclude_pid is not False:
        flags |= ProcessFlag.NOT_TGID
        fields["not_tgid"] = os.getpid() if exclude_pid is True else _uint(exclude_pid, "exclude_pid")
    if uid is not None:
        flags |= ProcessFlag.UID
        fields["uid"] = _uint(uid, "uid")
    if cgroup is not None:
        flags |= ProcessFlag.CGROUP
        fields["cgroup_id"] = _cgroup_id(cgroup)
    if comm is not None:
        data = comm.encode() if isinstance(comm, str) else bytes(comm)
        if not data or len(data) >= COMM_LEN or b"\0" in data:
            raise RulesError(f"comm: {data!r} is not a task name (1..{COMM_LEN - 1} bytes, "
                             "no NUL); the kernel truncates names to 15 bytes")
        flags |= ProcessFlag.COMM
        fields["comm"] = data
    if descendants_of is not None:
        fields["ancestor_tgid"] = _uint(descendants_of, "descendants_of")
        if not descendants_of:
            raise RulesError("descendants_of: 0 is not a process (every task descends from it)")
        flags |= ProcessFlag.ANCESTOR
    if cgroup_tree is not None:
        fields["cgroup_tree_id"], fields["cgroup_tree_level"] = cgroup_tree_of(cgroup_tree)
        flags |= ProcessFlag.CGROUP_TREE
    if flags:
        sections |= Section.PROCESS
        fields["process_flags"] = int(flags)

    if deny_errno is not None:
        fields["deny_errno"] = _errno_value(deny_errno)
    overlay, filesystems = _sources([*dirs, *(d for _, d in nested)])
    return Rules(RulesArgs(sections=int(sections), **fields),
                 nested=tuple((root, d.key) for root, d in nested),
                 overlay=overlay, filesystems=filesystems)
