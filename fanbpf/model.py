# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The fanbpf_rules decision in Python: the model the BPF code is tested against.

``decide(facts, args)`` returns what the ``fanbpf_rules`` handler's
``fp_handler`` returns for an event described by ``facts`` when attached
with ``args``: ``SEND`` (0), ``SKIP`` (1) or ``-errno`` (deny a permission
event).  ``check(args)`` is what its ``fp_init`` answers (0 or ``-EINVAL``).
Both are pure functions of plain data.  They restate
``src/bpf/fanbpf_rules_logic.h`` independently (globs by a set-of-states
simulation, not the BPF matcher's greedy algorithm); the host tests run the
compiled logic through ``BPF_PROG_TEST_RUN`` and compare the two, and the
user-space fallback (:mod:`fanbpf.fallback`) uses this module to filter
events on kernels without the fastpath hook.

The semantics, section by section (an event MATCHES when every section
enabled in ``args.sections`` matches):

``PROCESS``
    every condition enabled in ``process.flags`` holds for the task that
    caused the event: ``tgid == process.tgid``; ``tgid != process.not_tgid``;
    real ``uid == process.uid``; cgroup v2 id ``== process.cgroup_id``;
    ``comm == process.comm`` (C strings, at most 16 bytes); ``ANCESTOR``:
    ``ancestor_tgid`` is among the first ``MAX_ANCESTRY`` thread-group ids
    of ``facts.ancestors`` (the task's own first, up to the top of the
    tree); ``CGROUP_TREE``: ``facts.cgroup_path[cgroup_tree_level] ==
    cgroup_tree_id`` (the task's cgroup is that one or below it).  When
    ``ancestors`` is at least ``MAX_ANCESTRY`` long and the first
    ``MAX_ANCESTRY`` do not hold ``ancestor_tgid``, the walk cannot decide:
    the event is ``UNDECIDED`` -- delivered (never denied) and counted.
``NAMES``
    applies to events with a bit in ``names.events`` (0: to all); others
    pass.  The event's name (its name argument, else its dentry's name;
    ``None`` for events with neither) must match some pattern
    (``INCLUDE``) or none (``EXCLUDE``); ``None`` matches no pattern.
    Patterns compare bytes: ``EXACT``, ``PREFIX``, ``SUFFIX``, ``GLOB``
    (``*`` any run of bytes, ``?`` one byte, nothing else special).
``SUBTREE``
    a root ``(dev, ino)`` is on one of the event's chains: the positive
    dentries met walking up from the event's dentry, from its dir's
    dentry, or (with neither) from a dentry of its inode -- the start and
    up to ``FANBPF_MAX_DEPTH`` dentries above it.

A matching event is delivered (``SEND``), except a matching permission
event when ``deny_errno`` is set: ``-deny_errno``; an undecided one is
delivered (``SEND``).  Other events: ``SKIP``.
"""

from __future__ import annotations

import enum
import errno as _errno
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional, Tuple

__all__ = [
    "MAX_ROOTS", "MAX_PATTERNS", "PATTERN_MAX", "NAME_MAX", "MAX_DEPTH", "CHAIN_MAX",
    "COMM_LEN", "MAX_ANCESTRY", "ERRNO_MAX", "Match", "match", "ancestry", "in_cgroup_tree", "PERM_EVENTS", "SEND", "SKIP",
    "Section", "PatternKind", "NamesMode", "ProcessFlag",
    "Pattern", "RulesArgs", "Facts", "Node", "Chain",
    "check", "decide", "matches", "pattern_matches", "process_matches",
    "names_match", "subtree_matches", "chains_of", "glob_matches",
]

# --- constants of src/bpf/fanbpf_rules.h ------------------------------------

MAX_ROOTS = 16
MAX_PATTERNS = 8
PATTERN_MAX = 32  #: bytes with the NUL: patterns are at most 31 bytes
NAME_MAX = 256  #: bytes with the NUL: names are at most 255 bytes
MAX_DEPTH = 64  #: dentries walked above the start
CHAIN_MAX = MAX_DEPTH + 1  #: dentries a walk looks at, the start included
COMM_LEN = 16
MAX_ANCESTRY = 32  #: thread-group leaders an ancestry walk looks at
ERRNO_MAX = 4095

PERM_EVENTS = 0x00010000 | 0x00020000 | 0x00040000  #: FAN_{OPEN,ACCESS,OPEN_EXEC}_PERM
SEND = 0  #: FAN_FP_RET_SEND_TO_USERSPACE
SKIP = 1  #: FAN_FP_RET_SKIP_EVENT
_EINVAL = -_errno.EINVAL
_U32 = (1 << 32) - 1


class Section(enum.IntFlag):
    """``fanbpf_rules_args.sections``."""

    SUBTREE = 1 << 0
    NAMES = 1 << 1
    PROCESS = 1 << 2


class PatternKind(enum.IntEnum):
    """``fanbpf_pattern.kind``."""

    EXACT = 1
    PREFIX = 2
    SUFFIX = 3
    GLOB = 4


class NamesMode(enum.IntEnum):
    """``fanbpf_names_args.mode``."""

    INCLUDE = 0
    EXCLUDE = 1


class ProcessFlag(enum.IntFlag):
    """``fanbpf_process_args.flags``."""

    TGID = 1 << 0
    NOT_TGID = 1 << 1
    UID = 1 << 2
    CGROUP = 1 << 3
    COMM = 1 << 4
    ANCESTOR = 1 << 5
    CGROUP_TREE = 1 << 6


class Match(enum.IntEnum):
    """``enum fanbpf_match``: whether an event matches the rules."""

    NO = 0
    YES = 1
    UNDECIDED = 2  #: the ancestry walk hit its bound: delivered, counted


_SECTIONS_ALL = int(Section.SUBTREE | Section.NAMES | Section.PROCESS)
_PROC_ALL = int(ProcessFlag.TGID | ProcessFlag.NOT_TGID | ProcessFlag.UID
                | ProcessFlag.CGROUP | ProcessFlag.COMM | ProcessFlag.ANCESTOR
                | ProcessFlag.CGROUP_TREE)

#: A positive dentry met on a walk: ``(dev, ino)``, dev the kernel's s_dev.
Node = Tuple[int, int]
#: The dentries of one walk, the start first.
Chain = Tuple[Node, ...]


def _bytes(value) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


# --- args ---------------------------------------------------------------------

@dataclass(frozen=True)
class Pattern:
    """One name pattern; ``length`` defaults to ``len(text)`` (the C ``len`` field)."""

    kind: int
    text: bytes
    length: Optional[int] = None

    @property
    def effective(self) -> bytes:
        """The bytes the handler compares: ``text[:len]``."""
        n = len(self.text) if self.length is None else self.length
        return self.text[:n]

    @property
    def len(self) -> int:
        return len(self.text) if self.length is None else self.length


@dataclass(frozen=True)
class RulesArgs:
    """``struct fanbpf_rules_args`` as plain data.

    The ``nr_*`` counts default to the lengths of the lists; set them
    explicitly to describe any struct, valid or not (:func:`check` decides).
    """

    sections: int = 0
    deny_errno: int = 0
    # subtree
    roots: Tuple[Node, ...] = ()
    nr_roots: Optional[int] = None
    subtree_reserved: int = 0
    # names
    names_mode: int = NamesMode.INCLUDE
    patterns: Tuple[Pattern, ...] = ()
    nr_patterns: Optional[int] = None
    events: int = 0
    # process
    process_flags: int = 0
    tgid: int = 0
    not_tgid: int = 0
    uid: int = 0
    cgroup_id: int = 0
    comm: bytes = b""
    ancestor_tgid: int = 0
    cgroup_tree_id: int = 0
    cgroup_tree_level: int = 0

    @property
    def n_roots(self) -> int:
        return len(self.roots) if self.nr_roots is None else self.nr_roots

    @property
    def n_patterns(self) -> int:
        return len(self.patterns) if self.nr_patterns is None else self.nr_patterns

    def active_roots(self) -> Tuple[Node, ...]:
        """The roots the handler compares: the first ``nr_roots`` slots (zero-filled)."""
        n = min(self.n_roots, MAX_ROOTS)
        return tuple(self.roots[:n]) + ((0, 0),) * max(0, n - len(self.roots))

    def active_patterns(self) -> Tuple[Pattern, ...]:
        """The patterns the handler uses: the first ``nr_patterns`` slots (zero-filled)."""
        n = min(self.n_patterns, MAX_PATTERNS)
        return tuple(self.patterns[:n]) + (Pattern(0, b"", 0),) * max(0, n - len(self.patterns))

    @classmethod
    def from_dict(cls, d: Mapping) -> RulesArgs:
        """From the dict :func:`fanbpf.rules.rules` builds (the struct's fields)."""
        subtree = d.get("subtree", {})
        names = d.get("names", {})
        process = d.get("process", {})
        roots = tuple((r.get("dev", 0), r.get("ino", 0)) for r in subtree.get("roots", ()))
        patterns = tuple(Pattern(p.get("kind", 0), _bytes(p.get("text", b"")), p.get("len", 0))
                         for p in names.get("patterns", ()))
        return cls(
            sections=d.get("sections", 0),
            deny_errno=d.get("deny_errno", 0),
            roots=roots,
            nr_roots=subtree.get("nr_roots", 0),
            subtree_reserved=subtree.get("reserved", 0),
            names_mode=names.get("mode", 0),
            patterns=patterns,
            nr_patterns=names.get("nr_patterns", 0),
            events=names.get("events", 0),
            process_flags=process.get("flags", 0),
            tgid=process.get("tgid", 0),
            not_tgid=process.get("not_tgid", 0),
            uid=process.get("uid", 0),
            cgroup_id=process.get("cgroup_id", 0),
            comm=_bytes(process.get("comm", b"")),
            ancestor_tgid=process.get("ancestor_tgid", 0),
            cgroup_tree_id=process.get("cgroup_tree_id", 0),
            cgroup_tree_level=process.get("cgroup_tree_level", 0),
        )

    def to_dict(self) -> dict:
        """The dict for :meth:`fanbpf.Handler.encode_args` (btfargs)."""
        return {
            "sections": self.sections,
            "deny_errno": self.deny_errno,
            "subtree": {
                "nr_roots": self.n_roots,
                "reserved": self.subtree_reserved,
                "roots": [{"dev": dev, "ino": ino} for dev, ino in self.roots],
            },
            "names": {
                "mode": self.names_mode,
                "nr_patterns": self.n_patterns,
                "events": self.events,
                "patterns": [{"kind": p.kind, "len": p.len, "text": p.text}
                             for p in self.patterns],
            },
            "process": {
                "flags": self.process_flags,
                "tgid": self.tgid,
                "not_tgid": self.not_tgid,
                "uid": self.uid,
                "cgroup_id": self.cgroup_id,
                "comm": self.comm,
                "ancestor_tgid": self.ancestor_tgid,
                "cgroup_tree_id": self.cgroup_tree_id,
                "cgroup_tree_level": self.cgroup_tree_level,
            },
        }


# --- facts --------------------------------------------------------------------

@dataclass(frozen=True)
class Facts:
    """What the handler knows about one event.

    ``chains[0]``: the walk from the event's dentry (or, for events with
    neither dentry nor dir, from a dentry of its inode); ``chains[1]``: the
    walk from the dentry of its dir.  Each lists the positive dentries the
    walk met, start first (a walk looks at ``CHAIN_MAX`` dentries at most).
    ``name``: the event's name argument, else its dentry's name, else None.
    The task fields describe the task that caused the event;
    ``ancestors`` are the thread-group ids met walking up from it through
    real parents, its own first, to the top of the tree (the idle task,
    tgid 0) -- a walk that goes on further than ``MAX_ANCESTRY`` can be
    cut there; ``cgroup_path`` the ids of its cgroup v2 and the cgroups
    above it, the root cgroup first.
    """

    mask: int
    name: Optional[bytes] = None
    tgid: int = 0
    uid: int = 0
    cgroup_id: int = 0
    comm: bytes = b""
    chains: Tuple[Chain, Chain] = field(default=((), ()))
    ancestors: Tuple[int, ...] = ()
    cgroup_path: Tuple[int, ...] = ()


# --- the decision ---------------------------------------------------------------

def check(args: RulesArgs) -> int:
    """``fp_init``'s answer for these args: 0, or ``-EINVAL``."""
    if args.sections & ~_SECTIONS_ALL:
        return _EINVAL
    if not 0 <= args.deny_errno <= ERRNO_MAX:
        return _EINVAL
    if args.n_roots > MAX_ROOTS or args.subtree_reserved:
        return _EINVAL
    if args.names_mode not in (NamesMode.INCLUDE, NamesMode.EXCLUDE) \
            or args.n_patterns > MAX_PATTERNS:
        return _EINVAL
    for pat in args.active_patterns():
        if pat.kind not in tuple(PatternKind) or pat.len >= PATTERN_MAX:
            return _EINVAL
    if args.process_flags & ~_PROC_ALL:
        return _EINVAL
    if args.process_flags & ProcessFlag.ANCESTOR and not args.ancestor_tgid:
        return _EINVAL
    if args.process_flags & ProcessFlag.CGROUP_TREE and not args.cgroup_tree_id:
        return _EINVAL
    return 0


def _cstr(value: bytes, size: int) -> bytes:
    return value[:size].split(b"\0", 1)[0]


def ancestry(target: int, ancestors: Sequence[int]) -> Match:
    """The ancestry walk: is ``target`` among the first ``MAX_ANCESTRY``?"""
    if target in ancestors[:MAX_ANCESTRY]:
        return Match.YES
    return Match.NO if len(ancestors) < MAX_ANCESTRY else Match.UNDECIDED


def in_cgroup_tree(args: RulesArgs, cgroup_path: Sequence[int]) -> bool:
    """Is the task's cgroup ``cgroup_tree_id`` or below it?"""
    level = args.cgroup_tree_level
    return level < len(cgroup_path) and cgroup_path[level] == args.cgroup_tree_id


def process_matches(args: RulesArgs, facts: Facts) -> Match:
    """The PROCESS section."""
    flags = args.process_flags
    if flags & ProcessFlag.TGID and facts.tgid != args.tgid:
        return Match.NO
    if flags & ProcessFlag.NOT_TGID and facts.tgid == args.not_tgid:
        return Match.NO
    if flags & ProcessFlag.UID and facts.uid != args.uid:
        return Match.NO
    if flags & ProcessFlag.CGROUP and facts.cgroup_id != args.cgroup_id:
        return Match.NO
    if flags & ProcessFlag.COMM and _cstr(facts.comm, COMM_LEN) != _cstr(args.comm, COMM_LEN):
        return Match.NO
    if flags & ProcessFlag.CGROUP_TREE and not in_cgroup_tree(args, facts.cgroup_path):
        return Match.NO
    if flags & ProcessFlag.ANCESTOR:
        return ancestry(args.ancestor_tgid, facts.ancestors)
    return Match.YES


def glob_matches(text: bytes, name: bytes) -> bool:
    """``*`` any run of bytes, ``?`` any one byte, every other byte itself.

    A set-of-states simulation (O(len(name) * len(text))), not a regular
    expression: ``re`` backtracks exponentially on patterns like
    ``*a*a*a*b``, and the BPF side uses yet another algorithm (greedy
    with one backtrack point), which this one checks.
    """
    states = {0}
    for c in name:
        states = _glob_closure(text, states)
        states = {i + 1 for i in states if i < len(text) and text[i] in (c, 0x3F)} | \
                 {i for i in states if i < len(text) and text[i] == 0x2A}
        if not states:
            return False
    return len(text) in _glob_closure(text, states)


def _glob_closure(text: bytes, states: set) -> set:
    """Add the positions past any run of '*' (which may match nothing)."""
    out = set(states)
    for i in sorted(states):
        while i < len(text) and text[i] == 0x2A:
            i += 1
            out.add(i)
    return out


def pattern_matches(pattern: Pattern, name: bytes) -> bool:
    """Does ``name`` match one pattern?"""
    text = pattern.effective
    if pattern.kind == PatternKind.EXACT:
        return name == text
    if pattern.kind == PatternKind.PREFIX:
        return name.startswith(text)
    if pattern.kind == PatternKind.SUFFIX:
        return name.endswith(text)
    if pattern.kind == PatternKind.GLOB:
        return glob_matches(text, name)
    return False


def names_match(args: RulesArgs, facts: Facts) -> bool:
    """The NAMES section."""
    if args.events and not facts.mask & args.events:
        return True  # the section does not apply to this event
    name = facts.name
    hit = False
    if name is not None and len(name) < NAME_MAX:
        hit = any(pattern_matches(p, name) for p in args.active_patterns())
    return not hit if args.names_mode == NamesMode.EXCLUDE else hit


def subtree_matches(args: RulesArgs, facts: Facts) -> bool:
    """The SUBTREE section: is a root on one of the walks?"""
    roots = set(args.active_roots())
    return any((dev & _U32, ino) in roots
               for chain in facts.chains for dev, ino in chain[:CHAIN_MAX])


def match(facts: Facts, args: RulesArgs) -> Match:
    """Does the event match every enabled section?  (UNDECIDED: maybe.)"""
    result = Match.YES
    if args.sections & Section.PROCESS:
        result = process_matches(args, facts)
    if result == Match.NO \
            or (args.sections & Section.NAMES and not names_match(args, facts)) \
            or (args.sections & Section.SUBTREE and not subtree_matches(args, facts)):
        return Match.NO
    return result


def matches(facts: Facts, args: RulesArgs) -> bool:
    """Is the event delivered as a match (undecided ones included)?"""
    return match(facts, args) != Match.NO


def decide(facts: Facts, args: RulesArgs | Mapping) -> int:
    """``fp_handler``'s return value: ``SEND``, ``SKIP`` or ``-errno``.

    ``args`` must pass :func:`check` (the kernel never runs a handler
    whose ``fp_init`` refused them); ValueError otherwise.
    """
    if isinstance(args, Mapping):
        args = RulesArgs.from_dict(args)
    if check(args):
        raise ValueError(f"fp_init would refuse these args: {args!r}")
    result = match(facts, args)
    if result == Match.NO:
        return SKIP
    if result == Match.YES and facts.mask & PERM_EVENTS and 0 < args.deny_errno <= ERRNO_MAX:
        return -args.deny_errno
    return SEND


def chains_of(walks: Sequence[Sequence[Node]]) -> Tuple[Chain, Chain]:
    """Normalise up to two walks into ``Facts.chains``."""
    walks = [tuple(tuple(n) for n in w) for w in walks]
    walks += [()] * (2 - len(walks))
    return walks[0], walks[1]
