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
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Union

from fanbpf.errors import ArgsError
from fanbpf.model import (COMM_LEN, MAX_GLOBS, MAX_ROOTS, NAME_MAX,
                          NamesMode, PatternKind, ProcessFlag, Section)

# (until rules() builds a rule set for the maps: rulespy's branch)
MAX_PATTERNS, PATTERN_MAX = MAX_GLOBS, NAME_MAX

__all__ = ["rules", "exact", "prefix", "suffix", "glob", "NamePattern", "RulesError",
           "kernel_dev", "root_of", "cgroup2_mount", "cgroup_tree_of", "DENY_ERRNOS"]

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


def _pattern_bytes(text, what: str) -> bytes:
    if isinstance(text, str):
        data = os.fsencode(text)
    elif isinstance(text, (bytes, bytearray)):
        data = bytes(text)
    else:
        raise RulesError(f"{what}: a pattern is a str or bytes, not {type(text).__name__}")
    if not data:
        raise RulesError(f"{what}: empty pattern (names are never empty)")
    if len(data) >= PATTERN_MAX:
        raise RulesError(f"{what}: pattern {data!r} is {len(data)} bytes; the handler "
                         f"takes at most {PATTERN_MAX - 1}")
    if b"\0" in data or b"/" in data:
        raise RulesError(f"{what}: pattern {data!r} contains NUL or '/', which no "
                         "file name does (patterns match names, not paths)")
    return data


def exact(text) -> NamePattern:
    """Names equal to ``text``."""
    return NamePattern(PatternKind.EXACT, _pattern_bytes(text, "exact"))


def prefix(text) -> NamePattern:
    """Names starting with ``text`` (taken literally: ``*`` is not special)."""
    return NamePattern(PatternKind.PREFIX, _pattern_bytes(text, "prefix"))


def suffix(text) -> NamePattern:
    """Names ending with ``text`` (taken literally)."""
    return NamePattern(PatternKind.SUFFIX, _pattern_bytes(text, "suffix"))


def glob(text) -> NamePattern:
    """A glob: ``*`` matches any run of bytes, ``?`` one byte; nothing else is special."""
    return NamePattern(PatternKind.GLOB, _pattern_bytes(text, "glob"))


PatternArg = Union[str, bytes, NamePattern]


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


def root_of(path) -> tuple[int, int]:
    """The ``(dev, ino)`` the handler knows directory ``path`` by.

    Raises the OSError of ``stat`` (FileNotFoundError...) and
    :class:`RulesError` if ``path`` is not a directory.  Limit: on
    filesystems whose ``st_dev`` is not the superblock's (btrfs
    subvolumes, overlayfs) the root never matches.
    """
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RulesError(f"subtree: {os.fsdecode(path)!r} is not a directory")
    return kernel_dev(st.st_dev), st.st_ino


def _event_mask(events) -> int:
    if isinstance(events, int):
        mask = events
    else:
        from fanbpf.flags import EventMask

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


def _uint(value, what: str, bits: int = 32) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RulesError(f"{what}: expected an int, got {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise RulesError(f"{what}: {value} is out of range (0..{(1 << bits) - 1})")
    return value


def _cgroup_id(cgroup) -> int:
    if isinstance(cgroup, int) and not isinstance(cgroup, bool):
        return _uint(cgroup, "cgroup", 64)
    try:
        st = os.stat(cgroup)
    except TypeError:
        raise RulesError(f"cgroup: expected an id or a cgroup v2 directory, "
                         f"got {type(cgroup).__name__}") from None
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


def cgroup_tree_of(cgroup) -> tuple[int, int]:
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


def _errno_value(value) -> int:
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


def rules(*, subtree: Iterable | None = None,
          names: Iterable[PatternArg] | None = None,
          exclude_names: Iterable[PatternArg] | None = None,
          events=None,
          tgid: int | None = None,
          exclude_pid: int | bool | None = None,
          uid: int | None = None,
          cgroup=None,
          comm: str | bytes | None = None,
          descendants_of: int | None = None,
          cgroup_tree=None,
          deny_errno: int | str | None = None) -> dict:
    """Init args for ``fanbpf_rules``: deliver only events that match every rule given.

    ``subtree``
        directories (paths, or ``(dev, ino)`` pairs with dev as the kernel's
        dev_t): only objects under one of them, the directory itself
        included; at most 16.  An object is "under" a root when the root is
        it or one of its 64 nearest ancestors (see :mod:`fanbpf.model`).
    ``names`` / ``exclude_names``
        name patterns (at most 8): only names that match one of them /
        that match none.  A str or bytes is a glob (``*``, ``?``); use
        :func:`exact`, :func:`prefix`, :func:`suffix` for literal text.
        Patterns are at most 31 bytes.  Events without a name (``*_SELF``)
        match no pattern.
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
        event is delivered and counted in the handler's global
        ``fanbpf_rules_undecided``.  Daemons re-parented to init leave the tree.
    ``cgroup_tree``
        only events from this cgroup v2 directory or a cgroup below it.
    ``deny_errno``
        permission events that match are denied with this errno (a number
        or a name such as ``"EPERM"``; one of :data:`DENY_ERRNOS`) instead
        of being sent to user space; the others are allowed in the kernel.
    """
    args: dict = {"sections": 0}
    sections = 0

    if subtree is not None:
        if isinstance(subtree, (str, bytes, os.PathLike)):
            subtree = [subtree]
        roots = []
        for item in subtree:
            if isinstance(item, tuple):
                if len(item) != 2:
                    raise RulesError(f"subtree: {item!r} is not a (dev, ino) pair")
                roots.append((_uint(item[0], "subtree dev", 64), _uint(item[1], "subtree ino", 64)))
            else:
                roots.append(root_of(item))
        roots = list(dict.fromkeys(roots))  # the same directory twice counts once
        if not roots:
            raise RulesError("subtree: no roots given (an empty subtree matches nothing)")
        if len(roots) > MAX_ROOTS:
            raise RulesError(f"subtree: {len(roots)} roots; the handler takes at most {MAX_ROOTS}")
        sections |= Section.SUBTREE
        args["subtree"] = {"nr_roots": len(roots),
                           "roots": [{"dev": d, "ino": i} for d, i in roots]}

    if names is not None and exclude_names is not None:
        raise RulesError("names and exclude_names cannot be combined: give one list")
    patterns_arg = names if names is not None else exclude_names
    if patterns_arg is not None:
        what = "names" if names is not None else "exclude_names"
        if isinstance(patterns_arg, (str, bytes, NamePattern)):
            patterns_arg = [patterns_arg]
        patterns = [_as_pattern(p, what) for p in patterns_arg]
        if not patterns:
            raise RulesError(f"{what}: no patterns given")
        if len(patterns) > MAX_PATTERNS:
            raise RulesError(f"{what}: {len(patterns)} patterns; the handler takes at most {MAX_PATTERNS}")
        sections |= Section.NAMES
        args["names"] = {
            "mode": int(NamesMode.INCLUDE if names is not None else NamesMode.EXCLUDE),
            "nr_patterns": len(patterns),
            "events": _event_mask(events) if events is not None else 0,
            "patterns": [{"kind": int(p.kind), "len": len(p.text), "text": p.text}
                         for p in patterns],
        }
    elif events is not None:
        raise RulesError("events: only restricts the name rule; give names or exclude_names")

    process: dict = {}
    flags = 0
    if tgid is not None:
        flags |= ProcessFlag.TGID
        process["tgid"] = _uint(tgid, "tgid")
    if exclude_pid is not None and exclude_pid is not False:
        flags |= ProcessFlag.NOT_TGID
        process["not_tgid"] = os.getpid() if exclude_pid is True else _uint(exclude_pid, "exclude_pid")
    if uid is not None:
        flags |= ProcessFlag.UID
        process["uid"] = _uint(uid, "uid")
    if cgroup is not None:
        flags |= ProcessFlag.CGROUP
        process["cgroup_id"] = _cgroup_id(cgroup)
    if comm is not None:
        data = comm.encode() if isinstance(comm, str) else bytes(comm)
        if not data or len(data) >= COMM_LEN or b"\0" in data:
            raise RulesError(f"comm: {data!r} is not a task name (1..{COMM_LEN - 1} bytes, "
                             "no NUL); the kernel truncates names to 15 bytes")
        flags |= ProcessFlag.COMM
        process["comm"] = data
    if descendants_of is not None:
        process["ancestor_tgid"] = _uint(descendants_of, "descendants_of")
        if not descendants_of:
            raise RulesError("descendants_of: 0 is not a process (every task descends from it)")
        flags |= ProcessFlag.ANCESTOR
    if cgroup_tree is not None:
        process["cgroup_tree_id"], process["cgroup_tree_level"] = cgroup_tree_of(cgroup_tree)
        flags |= ProcessFlag.CGROUP_TREE
    if flags:
        sections |= Section.PROCESS
        process["flags"] = int(flags)
        args["process"] = process

    if deny_errno is not None:
        args["deny_errno"] = _errno_value(deny_errno)
    args["sections"] = int(sections)
    return args
