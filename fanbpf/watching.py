# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Watching directory trees: the one place that picks how, and the one interface.

:func:`open_source` watches paths (directories, recursively or not, and
files) and returns a :class:`Source`, whose :meth:`~Source.read` gives
:class:`FsEvent` items -- created, deleted, moved, modified, ... -- for
what happens below them. :func:`fanbpf.watch` and
:class:`fanbpf.watchdog.FanotifyObserver` are built on it, so both use
whatever it picks, and a new mechanism is one more :class:`Source` here,
picked in :func:`open_source`, with no change to either API.

The mechanisms (``Source.mode``), in the order they are tried:

``"subtree-marks"``
    a subtree mark (``MarkFlag.SUBTREE``, fanbpf's kernel series) on each
    watched directory and on each filesystem mounted below one: the
    kernel marks every directory below, also those made or moved in
    later, so events outside the trees never reach fanotify at all.
    ``exclude_dirs`` are dropped in the kernel by the ``fanbpf_rules``
    handler with only that rule (no handler without them). Needs
    CAP_SYS_ADMIN. Setup marks the cached directories, nothing else.
``"kernel"``
    one fanotify filesystem mark per filesystem, and the ``fanbpf_rules``
    handler in the kernel dropping everything outside the trees (and below
    ``exclude_dirs``) before it is queued. Needs the fastpath hook and
    CAP_SYS_ADMIN (+ CAP_BPF). Setup does not depend on the tree's size.
``"userspace"``
    the same mark, the same rules applied in user space
    (:class:`fanbpf.fallback.RulesGroup`): a stock kernel with
    CAP_SYS_ADMIN. Every event of the filesystem is read and judged.
``"inode-marks"``
    without privilege (Linux 5.13+ lets anyone add inode marks to a FID
    group): a mark on every directory, like recursive inotify, and each
    new directory is marked and then scanned, so what was made in it
    before its mark is reported too. Also used for ``recursive=False``
    (one mark per path is the exact tool for that). Setup walks the trees.

Privileged modes use an unlimited queue, so they cannot overflow; in
``subtree-marks`` mode the kernel queues an overflow when it could not
mark a directory (no memory): logged, and every root is marked again,
which marks what was missed. In ``inode-marks`` mode an overflow (the queue holds 16384 events) is logged
as a warning, counted in :attr:`Source.overflows`, and the trees are
rescanned: directories made meanwhile are marked and their contents
reported as created. Events between the overflow and the rescan that
did not create directories are lost, and the warning says so.

A watched directory's own deletion is reported in every mode (a
``deleted`` :class:`FsEvent` with ``root`` set, whatever ``kinds``): each
root is marked for ``DELETE_SELF`` and known by its file handle, as the
event names no path. Nothing below it is watched after that. (In
``subtree-marks`` mode the root's mask is its subtree's, so every
directory deleted below a root costs one more event, dropped here.) A
root below another watched directory is reported as that one's entry.
"""

from __future__ import annotations

import errno as _errno
import fnmatch
import logging
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Optional, Protocol

from .fallback import RulesGroup  # imported now, not by the first watch: a watch starts fast
from .flags import EventMask, InfoType, InitFlag, MarkFlag
from .events import DirFidNameInfo, Event, FidInfo
from .group import DEFAULT_FLAGS, Group, PathArg, record_paths
from .model import Section
from .rules import Mount, kernel_dev, mount_points_below, mounts, rules
from .support import kernel_support, subtree_marks

__all__ = ["FsEvent", "Source", "open_source", "MODES", "KINDS", "WatchError"]

log = logging.getLogger("fanbpf.watching")
log.addHandler(logging.NullHandler())

#: The mechanisms :func:`open_source` can pick, best first.
MODES = ("subtree-marks", "kernel", "userspace", "inode-marks")

M = EventMask
#: Event kinds a Source reports, and the fanotify bit behind each.
KIND_BITS = {
    "created": M.CREATE,
    "opened": M.OPEN,
    "modified": M.MODIFY,
    "attrib": M.ATTRIB,
    "closed": M.CLOSE_WRITE,
    "closed_nowrite": M.CLOSE_NOWRITE,
    "deleted": M.DELETE,
    "moved": M.RENAME,
}
KINDS = tuple(KIND_BITS)
# A merged event (several bits on one object) is reported in this order,
# the order the bits can happen in.
_ORDER = tuple((bit, kind) for kind, bit in KIND_BITS.items() if kind != "moved")

#: Filesystem types fanotify cannot watch, and why (for the error message).
_UNWATCHABLE = {
    "proc": "a pseudo filesystem whose files fanotify does not report",
    "sysfs": "a pseudo filesystem whose files fanotify does not report",
    "9p": "a filesystem without file handles, which fanotify needs to name what changed",
    "v9fs": "a filesystem without file handles, which fanotify needs to name what changed",
}


class WatchError(OSError):
    """A path that cannot be watched, with what to do instead."""


#: ``(path, old_path, new_path)`` of an event (None: not reported or not found).
_Paths = tuple[Optional[str], Optional[str], Optional[str]]


class _Reader(Protocol):
    """What a Source reads events from: its :class:`Group` or a :class:`RulesGroup` on it."""

    def read_events(self, timeout: Optional[float] = None) -> list[Event]: ...

    def drain(self, deadline: Optional[float] = None) -> list[Event]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FsEvent:
    """One change below a watched path.

    ``kind``: one of :data:`KINDS`; ``path``: what changed, spelled as the
    watched path was given (a path below it); ``dest``: where a ``moved``
    object went (a move in or out of the watched trees is a ``created`` or
    ``deleted``); ``is_dir``: the object is a directory; ``scanned``: found
    by scanning a new directory, not reported by the kernel (it was made
    before the directory's mark); ``root``: a ``deleted`` watched directory
    itself (nothing more is reported for it).
    """

    kind: str
    path: str
    is_dir: bool
    dest: Optional[str] = None
    scanned: bool = False
    root: bool = False


class _Roots:
    """The watched paths: which event paths are inside, and how to spell them.

    Events name objects by their real path (the kernel's); they are given
    back below the path the caller gave (``/tmp/x`` watched as ``link/x``
    is reported as ``link/x/...``).
    """

    def __init__(self, paths: Sequence[PathArg], recursive: bool) -> None:
        if not paths:
            raise ValueError("give at least one path to watch")
        self.recursive = recursive
        self.dirs: list[str] = []  # real paths
        self.files: list[str] = []
        self._spelling: dict[str, str] = {}  # real -> as given (absolute)
        for given in paths:
            text = os.fsdecode(os.fspath(given))
            try:
                st = os.stat(text)
            except FileNotFoundError:
                raise FileNotFoundError(_errno.ENOENT, f"cannot watch {text!r}: No such file or "
                                        "directory (fanbpf watches existing paths only)", text) from None
            real = os.path.realpath(text)
            # Spelled as given, relative or not, as inotify watchers report them.
            self._spelling[real] = text.rstrip("/") or "/"
            (self.dirs if stat.S_ISDIR(st.st_mode) else self.files).append(real)
        self.dirs = list(dict.fromkeys(self.dirs))
        self.files = list(dict.fromkeys(self.files))
        self._prefixes = tuple(d.rstrip("/") + "/" for d in self.dirs)
        self._dir_set = frozenset(self.dirs)

    def inside(self, path: str) -> bool:
        if path in self._spelling:
            return True
        if self.recursive:
            return path.startswith(self._prefixes)
        return os.path.dirname(path) in self.dirs

    def spell(self, path: str) -> str:
        """``path`` (real) below the root as the caller spelled that root."""
        for real, given in self._spelling.items():
            if real == given:
                continue
            if path == real:
                return given
            if path.startswith(real + "/"):
                return given + path[len(real):]
        return path

    def below_another(self, root: str) -> bool:
        """Is watched directory ``root`` an entry another one reports (its
        deletion included)?  Its ancestors are looked up, not every other
        root compared: 20 000 roots are 20 000 lookups per level."""
        parent = os.path.dirname(root)
        while parent != root:
            if parent in self._dir_set:
                return True
            if not self.recursive:
                return False
            root, parent = parent, os.path.dirname(parent)
        return False

    def root_of(self, path: str) -> Optional[str]:
        for d in self.dirs:
            if path == d or path.startswith(d.rstrip("/") + "/"):
                return d
        return None


class Source:
    """What every mechanism implements: events below the watched paths.

    ``mode`` names the mechanism (one of :data:`MODES`), ``description``
    says it in words. :meth:`read` waits up to ``timeout`` seconds (None:
    forever) for events and returns them (``[]`` on timeout or once
    closed); :meth:`fileno` is the fd to wait on (``select``,
    ``loop.add_reader``). :meth:`close` may be called from any thread and
    ends a blocked :meth:`read`. ``overflows`` counts queue overflows,
    ``unresolved`` the events dropped because the object they named could
    no longer be found when read (its directory was deleted before).
    """

    mode: str = ""
    description: str = ""

    def __init__(self, roots: _Roots, kinds: Iterable[str], exclude_dirs: Sequence[str],
                 ignore_permission_denied: bool):
        kinds = frozenset(kinds)
        if kinds - set(KINDS):
            raise ValueError(f"unknown event kinds {sorted(kinds - set(KINDS))}; choose from {KINDS}")
        table = mounts()
        for path in roots.dirs + roots.files:
            if _fstype(path, table) in _UNWATCHABLE:  # marks may succeed there, and report nothing
                raise _mark_error(OSError(_errno.EOPNOTSUPP, os.strerror(_errno.EOPNOTSUPP)), path)
        self.roots = roots
        self.kinds = kinds
        self.exclude_dirs = tuple(exclude_dirs)
        self.ignore_permission_denied = ignore_permission_denied
        self.overflows = 0
        self.unresolved = 0
        self.group: Optional[Group] = None
        self._reader: Optional[_Reader] = None  # what events are read from: the group or a RulesGroup
        # DELETE_SELF names no path: a root's is known by its handle.
        self._root_handles: dict[bytes, str] = {}  # file_handle -> root (real path)

    def _mask(self) -> int:
        mask = M.ONDIR
        for kind in self.kinds:
            mask |= KIND_BITS[kind]
        return mask

    # -- reading ---------------------------------------------------------------

    def fileno(self) -> int:
        assert self.group is not None, "a Source's subclass makes its group"
        return self.group.fileno()

    @property
    def closed(self) -> bool:
        return self.group is None or self.group.closed

    def read(self, timeout: Optional[float] = None) -> list[FsEvent]:
        reader = self._reader
        if self.closed or reader is None:  # no group is no reader (set together)
            return []
        try:
            events = reader.read_events(timeout)
        except ValueError:  # closed by another thread meanwhile
            return []
        return self._convert(events)

    def drain(self, deadline: Optional[float] = None) -> list[FsEvent]:
        """Everything queued now, without waiting (what a signal leaves to
        report); with ``deadline``, what was read by then (the group's
        :meth:`~fanbpf.group.Group.drain`)."""
        reader = self._reader
        if self.closed or reader is None:
            return []
        return self._convert(reader.drain(deadline))

    def _convert(self, events: list[Event]) -> list[FsEvent]:
        out: list[FsEvent] = []
        roots = self.roots
        for event, (path, old, new) in zip(events, _paths_then(events, self._event_paths)):
            if event.is_overflow:
                self._overflowed(out)
                continue
            is_dir = bool(event.mask & M.ONDIR)
            if event.mask & M.DELETE_SELF:
                # Of a root, the news; of another directory (subtree-marks
                # mode), its parent's DELETE said it. What merged into it
                # happened to an object that is gone.
                self._self_deleted(event, out)
                continue
            if event.mask & M.RENAME:
                self._renamed(event, old, new, is_dir, out)
                continue
            if path is None:
                if event.name is not None:  # an entry whose directory went
                    self._unresolved(event)
                continue  # else the object itself is gone (its deletion is reported)
            if not roots.inside(path) or self._excluded(path):
                continue
            spelled = roots.spell(path)
            for bit, kind in _ORDER:
                if event.mask & bit and kind in self.kinds:
                    out.append(FsEvent(kind, spelled, is_dir))
            if event.mask & M.CREATE and is_dir:
                self._new_dir(path, out, moved_in=False)
        return out

    def _self_deleted(self, event: Event, out: list[FsEvent]) -> None:
        for record in event.info:
            if (isinstance(record, FidInfo) and record.info_type == InfoType.FID) or \
                    (isinstance(record, DirFidNameInfo) and record.name == "."):
                root = self._root_handles.pop(record.file_handle, None)
                if root is not None:
                    out.append(FsEvent("deleted", self.roots.spell(root), True, root=True))
                    return

    def _reported_roots(self) -> frozenset[str]:
        """The roots whose own deletion this Source reports (from DELETE_SELF),
        their handles noted: those no other root reports as its entry.  A set:
        subtree-marks mode asks it once per root."""
        for root in self.roots.dirs:
            if not self.roots.below_another(root):
                self._root_handles[_file_handle(root)] = root
        return frozenset(self._root_handles.values())

    def _event_paths(self, event: Event) -> _Paths:
        """``(path, old_path, new_path)`` of an event, as resolved when read."""
        return event.path, event.old_path, event.new_path

    def _renamed(self, event: Event, old: Optional[str], new: Optional[str], is_dir: bool,
                 out: list[FsEvent]) -> None:
        # The path when it is inside the trees (and not excluded), else None.
        old_in = old if old is not None and self.roots.inside(old) and not self._excluded(old) else None
        new_in = new if new is not None and self.roots.inside(new) and not self._excluded(new) else None
        if old is None or new is None:
            self._unresolved(event)
        spell = self.roots.spell
        if old_in is not None and new_in is not None:
            if "moved" in self.kinds:
                out.append(FsEvent("moved", spell(old_in), is_dir, spell(new_in)))
        elif old_in is not None:
            if "deleted" in self.kinds:
                out.append(FsEvent("deleted", spell(old_in), is_dir))
        elif new_in is not None:
            if "created" in self.kinds:
                out.append(FsEvent("created", spell(new_in), is_dir))
            if is_dir:
                self._new_dir(new_in, out, moved_in=True)

    def _excluded(self, path: str) -> bool:
        """Below (or on) a directory named like ``exclude_dirs``, below its root."""
        if not self.exclude_dirs:
            return False
        root = self.roots.root_of(path)
        if root is None:
            return False
        parts = path[len(root):].split("/")
        return any(fnmatch.fnmatchcase(part, pattern) for part in parts if part
                   for pattern in self.exclude_dirs)

    def _unresolved(self, event: Event) -> None:
        self.unresolved += 1
        log.warning("fanbpf: an event (%s) names an object that was gone before it could be "
                    "read (its directory was deleted): not reported (%d so far)",
                    event.mask.name, self.unresolved)

    def _overflowed(self, out: list[FsEvent]) -> None:
        self.overflows += 1
        log.warning("fanbpf: the fanotify queue overflowed: events were lost; rescanning %s",
                    ", ".join(self.roots.dirs) or "the watched paths")

    def _new_dir(self, path: str, out: list[FsEvent], moved_in: bool) -> None:
        """A directory appeared in a tree. One moved in brings what it holds,
        which no event reports: found by a scan, reported as created (as
        watchdog does). A new one's entries all have their events here."""
        if moved_in and self.roots.recursive and not self._excluded(path):
            self._scan_tree(path, out)

    def _scan_tree(self, top: str, found: Optional[list[FsEvent]]) -> None:
        """Visit ``top`` and every directory below it (not the excluded ones);
        with ``found``, add a ``created`` event for each entry below ``top``."""
        stack = [top]
        while stack:
            path = stack.pop()
            try:
                self._visit_dir(path)
                entries = list(os.scandir(path))
            except FileNotFoundError:
                continue  # gone already: its deletion is reported by its parent
            except PermissionError:
                if self.ignore_permission_denied:
                    continue
                raise
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir and self._excluded(entry.path):
                    continue
                if found is not None and "created" in self.kinds:
                    found.append(FsEvent("created", self.roots.spell(entry.path), is_dir,
                                         scanned=True))
                if is_dir:
                    stack.append(entry.path)

    def _visit_dir(self, path: str) -> None:
        """What a scan does in each directory before listing it."""

    # -- lifetime --------------------------------------------------------------

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.mode} {self.roots.dirs + self.roots.files}>"

    # -- marks -----------------------------------------------------------------

    def _mark(self, path: str, mask: int, flags: int) -> None:
        assert self.group is not None, "a Source's subclass makes its group"
        try:
            self.group.mark(path, mask, flags)
        except OSError as err:
            raise _mark_error(err, path) from err


def _paths_then(events: Sequence[Event], event_paths: Callable[[Event], _Paths]) -> list[_Paths]:
    """``(path, old_path, new_path)`` of each event as they were when it happened.

    Paths are resolved when events are read: a directory's handle names it
    where it is then, so the events queued before the directory was renamed
    name the new place. Undone here, from the renames read with them: going
    back in time, a path below a renamed directory's new name is put back
    below its old one.
    """
    out: list[_Paths] = []
    renames: list[tuple[str, str]] = []  # (old, new) of later directory renames, nearest first
    for event in reversed(events):
        paths = list(event_paths(event))
        for i, path in enumerate(paths):
            if path is None:
                continue
            for old, new in renames:
                if path.startswith(new) and path[len(new):len(new) + 1] == "/":
                    path = old + path[len(new):]
            paths[i] = path
        out.append((paths[0], paths[1], paths[2]))
        if event.mask & M.RENAME and event.mask & M.ONDIR and paths[1] and paths[2]:
            renames.insert(0, (paths[1], paths[2]))
    out.reverse()
    return out


def _file_handle(path: str) -> bytes:
    """``name_to_handle_at(path)`` as a FID record carries it (``file_handle``)."""
    from ._binding import ffi, lib

    buf = ffi.new("char[]", 256)
    n = lib.fanbpf_name_to_handle_at(-100, os.fsencode(path), buf, 256, 0)
    if n < 0:
        raise _mark_error(OSError(-n, os.strerror(-n)), path)
    return bytes(ffi.buffer(buf, n))


def _fstype(path: str, table: Optional[list[Mount]] = None) -> str:
    try:
        dev = kernel_dev(os.stat(path).st_dev)
    except OSError:
        return "?"
    return next((m.fstype for m in reversed(mounts() if table is None else table)
                 if m.dev == dev), "?")


def _mark_error(err: OSError, path: str) -> OSError:
    """The error of a mark that failed, saying what the filesystem is and what to do."""
    fstype = _fstype(path)
    if err.errno in (_errno.EOPNOTSUPP, _errno.EXDEV, _errno.ENODEV, _errno.EINVAL) or \
            fstype in _UNWATCHABLE:
        why = _UNWATCHABLE.get(fstype, f"a filesystem fanotify refuses to mark ({err.strerror})")
        return WatchError(err.errno, f"cannot watch {path!r}: it is on {fstype}, {why}; fanbpf "
                          "does not watch it (nothing is reported for it). Poll it instead "
                          "(watchfiles with force_polling=True, or watchdog's PollingObserver)",
                          path)
    if err.errno == _errno.ENOSPC:
        return WatchError(err.errno, f"cannot watch {path!r}: out of fanotify marks (one per "
                          "directory without privilege; raise fs.fanotify.max_user_marks, or run "
                          "with CAP_SYS_ADMIN for one filesystem mark)", path)
    return err


class _FilesystemSource(Source):
    """Modes ``kernel`` and ``userspace``: a filesystem mark and the rules."""

    def __init__(self, roots: _Roots, kinds: Iterable[str], exclude_dirs: Sequence[str],
                 ignore_permission_denied: bool, mode: str = "auto") -> None:
        super().__init__(roots, kinds, exclude_dirs, ignore_permission_denied)
        # A watched file is watched through its directory; _Roots keeps the
        # file's siblings out.
        dirs = list(dict.fromkeys([*roots.dirs, *(os.path.dirname(f) for f in roots.files)]))
        rule_set = rules(subtree=dirs, exclude_dirs=list(exclude_dirs) or None)
        # Raises PermissionError without CAP_SYS_ADMIN: open_source then
        # falls back to inode marks.
        group = self.group = Group(DEFAULT_FLAGS | InitFlag.UNLIMITED_QUEUE)
        reader: Optional[RulesGroup] = None
        try:
            reader = self._reader = RulesGroup(group, rule_set, mode=mode)
            # *_SELF events come after the object's last name is gone: no rule
            # can place them (every one on the filesystem would be delivered).
            for fs in rule_set.filesystems:
                self._mark(os.fsdecode(fs), self._mask(), MarkFlag.FILESYSTEM)
            # ...but a root's own can be had from a mark on the root alone.
            for root in self._reported_roots():
                self._mark(root, M.DELETE_SELF | M.ONDIR, MarkFlag.INODE)
        except BaseException:
            (reader or group).close()
            raise
        self.mode = reader.mode
        where = "in the kernel (fastpath handler fanbpf_rules)" if self.mode == "kernel" else \
            "in user space (this kernel has no fastpath hook)"
        self.description = (f"a fanotify filesystem mark on {len(rule_set.filesystems)} "
                            f"filesystem(s), subtree rules {where}")


#: A subtree-marks group: inherited marks must not run into fs.fanotify.max_user_marks.
_SUBTREE_FLAGS = DEFAULT_FLAGS | InitFlag.UNLIMITED_QUEUE | InitFlag.UNLIMITED_MARKS


class _SubtreeMarkSource(Source):
    """Mode ``subtree-marks``: a subtree mark on each root; the kernel marks the rest."""

    mode = "subtree-marks"

    def __init__(self, roots: _Roots, kinds: Iterable[str], exclude_dirs: Sequence[str],
                 ignore_permission_denied: bool) -> None:
        super().__init__(roots, kinds, exclude_dirs, ignore_permission_denied)
        mask = self._mask()
        group = self.group = self._reader = Group(_SUBTREE_FLAGS)
        try:
            # Marks do not cross mounts: what is mounted below a root is a root too.
            below = [p for p in mount_points_below(roots.dirs) if os.path.isdir(p)
                     and not self._excluded(p)]
            self.subtrees = list(dict.fromkeys([*roots.dirs, *below]))
            # Events name directories by handle, which the group must open
            # (open_by_handle_at) to say where they are: a filesystem that
            # cannot (overlayfs without nfs_export) refuses the handle here,
            # as it refuses a filesystem mark.
            for path in {os.stat(p).st_dev: p for p in self.subtrees}.values():
                _file_handle(path)
            # A root changes only with SUBTREE (EEXIST without): its own
            # deletion is in the mask it passes on.
            reported = self._reported_roots()
            self._subtree_masks = {path: mask | (M.DELETE_SELF if path in reported else 0)
                                   for path in self.subtrees}
            for path, subtree_mask in self._subtree_masks.items():
                self._mark(path, subtree_mask, MarkFlag.SUBTREE)
            # A watched file is watched through its directory (_Roots keeps
            # its siblings out); a root, or below one, has its mark already.
            for parent in dict.fromkeys(os.path.dirname(f) for f in roots.files):
                if parent not in self.subtrees:
                    self._mark(parent, mask | M.EVENT_ON_CHILD, MarkFlag.INODE)
            where = self._attach_exclusions(roots) if exclude_dirs else ""
        except BaseException:
            (self._reader or group).close()
            raise
        self.description = (f"fanotify subtree marks on {len(roots.dirs)} directories"
                            + (f" and {len(below)} mounts below them" if below else "")
                            + (f"; exclude_dirs {where}" if where else ""))

    def _attach_exclusions(self, roots: _Roots) -> str:
        """Drop what is below ``exclude_dirs`` in the kernel where it can be;
        says where it is done."""
        if not kernel_support().fastpath:
            return "applied in user space (this kernel has no fastpath hook)"
        assert self.group is not None
        rule_set = rules(exclude_dirs=list(self.exclude_dirs))
        if rule_set.walk_excludes(self.subtrees, mounts()):
            # A watched directory lies below one with an excluded name: the
            # handler's walk must stop at the roots, as in kernel mode.
            dirs = [*roots.dirs, *(os.path.dirname(f) for f in roots.files)]
            rule_set = rules(subtree=list(dict.fromkeys(dirs)), exclude_dirs=list(self.exclude_dirs))
        self._reader = RulesGroup(self.group, rule_set, mode="kernel")
        return "dropped in the kernel (fastpath handler fanbpf_rules" + \
            (", stopping at the roots)" if rule_set.args.sections & Section.SUBTREE else ")")

    def _overflowed(self, out: list[FsEvent]) -> None:
        # The kernel could not mark a directory: marking the roots again
        # marks every cached directory that lacks its mark.
        super()._overflowed(out)
        assert self.group is not None
        for path, subtree_mask in self._subtree_masks.items():
            try:
                self.group.mark(path, subtree_mask, MarkFlag.SUBTREE)
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone: its deletion is reported by its parent
        log.warning("fanbpf: rescan done: every directory is marked again; changes made "
                    "during the overflow were not reported")


class _InodeMarkSource(Source):
    """Mode ``inode-marks``: a mark on each directory; new ones marked, then scanned."""

    mode = "inode-marks"

    def __init__(self, roots: _Roots, kinds: Iterable[str], exclude_dirs: Sequence[str],
                 ignore_permission_denied: bool, why: str = "") -> None:
        super().__init__(roots, kinds, exclude_dirs, ignore_permission_denied)
        # New directories must be seen to be marked, whatever the caller wants.
        self._dir_mask = self._mask() | M.CREATE | M.RENAME | M.EVENT_ON_CHILD
        # Without CAP_DAC_READ_SEARCH no handle can be opened (open_by_handle_at),
        # so the group does not resolve paths: each marked directory's handle
        # is noted with its path when it is marked, and kept up to date.
        self._dir_paths: dict[bytes, str] = {}  # file_handle -> path (files too)
        group = self.group = self._reader = Group(DEFAULT_FLAGS, resolve_paths=False)
        self.marks = 0
        try:
            for path in roots.files:
                self._mark_one(path, self._mask())
            for path in roots.dirs:
                if roots.recursive:
                    self._scan_tree(path, None)
                else:
                    self._mark_one(path, self._dir_mask)
            for path in self._reported_roots():  # added to the root's mark
                self._mark(path, M.DELETE_SELF | M.ONDIR, MarkFlag.INODE)
        except BaseException:
            group.close()
            raise
        self.description = (f"fanotify inode marks on {self.marks} directories and files"
                            + (f" ({why})" if why else ""))

    def _mark_one(self, path: str, mask: int) -> None:
        self._mark(path, mask, MarkFlag.INODE)
        self._dir_paths[_file_handle(path)] = path
        self.marks += 1

    def _visit_dir(self, path: str) -> None:
        self._mark_one(path, self._dir_mask)

    def _new_dir(self, path: str, out: list[FsEvent], moved_in: bool) -> None:
        # Made or moved in, it is marked, then scanned: what was made in it
        # before its mark is reported (and may be reported twice).
        if self.roots.recursive and not self._excluded(path):
            self._scan_tree(path, out)

    def _event_paths(self, event: Event) -> _Paths:
        return record_paths(event, self._record_path)

    def _record_path(self, record: FidInfo | DirFidNameInfo) -> Optional[str]:
        path = self._dir_paths.get(record.file_handle)
        name = getattr(record, "name", None)
        if path is None or name is None or name == ".":
            return path
        return f"{path}/{name}"

    def _renamed(self, event: Event, old: Optional[str], new: Optional[str], is_dir: bool,
                 out: list[FsEvent]) -> None:
        if is_dir and old and new:  # the marks stay with the inodes: rename what we call them
            below = old + "/"
            for handle, path in list(self._dir_paths.items()):
                if path == old or path.startswith(below):
                    self._dir_paths[handle] = new + path[len(old):]
        super()._renamed(event, old, new, is_dir, out)

    def _overflowed(self, out: list[FsEvent]) -> None:
        super()._overflowed(out)
        if self.roots.recursive:
            for path in self.roots.dirs:
                self._scan_tree(path, None)
        log.warning("fanbpf: rescan done: every directory is marked again; changes made "
                    "during the overflow were not reported")


def open_source(paths: Sequence[PathArg], *, recursive: bool = True, kinds: Iterable[str] = KINDS,
                exclude_dirs: Sequence[str] = (), mode: Optional[str] = None,
                ignore_permission_denied: bool = False) -> Source:
    """Watch ``paths`` with the best mechanism this process may use.

    ``mode`` forces one of :data:`MODES` (None: pick). ``kinds``: the
    :data:`KINDS` to report. ``exclude_dirs``: names (``*``/``?``
    patterns) of directories whose contents are not reported, below the
    watched directories: dropped in the kernel in ``kernel`` mode, never
    marked in ``inode-marks`` mode (in ``subtree-marks`` mode dropped in the
    kernel too; the trees are marked whole). A log line (INFO, logger
    ``fanbpf.watching``) says which mechanism is used, and a WARNING why a
    better one could not be.

    Raises FileNotFoundError for a path that does not exist,
    :class:`WatchError` for a filesystem fanotify cannot watch (proc,
    sysfs, 9p) or when marks run out, PermissionError when ``mode``
    asks for a privileged mode without privilege.
    """
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (or None to pick), not {mode!r}")
    roots = _Roots(paths, recursive)
    args = (roots, kinds, exclude_dirs, ignore_permission_denied)
    why = ""
    source: Source
    if mode == "subtree-marks" or (mode is None and recursive and roots.dirs):
        if subtree_marks():  # the kernel has them, and this process may add them
            source = _SubtreeMarkSource(*args)
            log.info("fanbpf: watching %s with %s", _names(roots), source.description)
            return source
        if mode is not None:
            raise WatchError(_errno.EOPNOTSUPP, "subtree-marks mode needs a kernel with subtree "
                             "marks (fanbpf's kernel series) and CAP_SYS_ADMIN; "
                             "fanbpf.support.subtree_marks() says whether this process has both")
    if mode in (None, "kernel", "userspace") and (recursive or mode):
        try:
            source = _FilesystemSource(*args, mode=mode or "auto")
        except PermissionError as err:
            if mode is not None:
                raise PermissionError(err.errno, f"{mode} mode needs CAP_SYS_ADMIN for a "
                                      f"filesystem mark: {err.strerror}") from err
            why = "no CAP_SYS_ADMIN for a filesystem mark"
            log.warning("fanbpf: without CAP_SYS_ADMIN: watching with an inode mark per "
                        "directory (setup walks the tree; up to fs.fanotify.max_user_marks)")
        else:
            log.info("fanbpf: watching %s with %s", _names(roots), source.description)
            return source
    elif not recursive:
        why = "recursive=False"
    source = _InodeMarkSource(*args, why=why)
    log.info("fanbpf: watching %s with %s", _names(roots), source.description)
    return source


def _names(roots: _Roots) -> str:
    paths = roots.dirs + roots.files
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
