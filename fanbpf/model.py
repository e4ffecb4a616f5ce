# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The fanbpf_rules decision in Python: the model the BPF code is tested against.

``decide(facts, args)`` returns what the ``fanbpf_rules`` handler's
``fp_handler`` returns for an event described by ``facts`` when attached
with the rule set ``args``: ``SEND`` (0), ``SKIP`` (1) or ``-errno`` (deny a
permission event).  ``check(args)`` is what its ``fp_init`` answers (0 or
``-EINVAL``).  Both are pure functions of plain data.  They restate
``src/bpf/fanbpf_rules_logic.h`` independently (globs by a set-of-states
simulation, not the BPF matcher's greedy algorithm); the host tests run the
compiled logic through ``BPF_PROG_TEST_RUN`` and compare the two, and the
user-space fallback (:mod:`fanbpf.fallback`) uses this module to filter
events on kernels without the fastpath hook.

A rule set (:class:`RulesArgs`) is an attachment's init args
(``struct fanbpf_rules_args``) together with what user space put in the
rules maps under its ``set_id`` (:mod:`fanbpf.rulesmaps` writes them):
subtree roots and excluded subtrees by ``(dev, ino)``, and two name lists,
NAMES and DIRS, each of exact names and globs.

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
    ``UNDECIDED``.
``NAMES``
    applies to events with a bit in ``names.events`` (0: to all); others
    pass.  The event's name (its name argument, else its dentry's name;
    ``None`` for events with neither) must be on the NAMES list
    (``INCLUDE``) or not (``EXCLUDE``); ``None`` is on no list.
``SUBTREE`` and ``EXCLUDE``: the walks
    Each of the event's chains (:attr:`Facts.chains`) is walked up from
    its first node, looking at most at ``MAX_DEPTH`` dentries (virtual
    nodes are no dentries); the FIRST node that decides wins:

    - a root -- an init-args root, or a ROOT node of the set (``map_roots``)
      -- with ``SUBTREE`` on: the chain is ``INSIDE``;
    - an excluded node of the set (``excluded``), or a directory whose
      name is on the DIRS list, with ``EXCLUDE`` on: ``EXCLUDED``.

    A node that is both a root and excluded is a root; a root's name is
    never looked at; virtual nodes (no dev/ino) are only names.  No node
    decides up to the chain's end (the superblock's root): ``OUTSIDE``;
    ``MAX_DEPTH`` dentries looked at without reaching the end, or a walk
    without a dentry (:data:`NO_DENTRY`; a dir chain of only its virtual
    node): ``UNDECIDED``.  With ``SUBTREE`` on, the sections match when some
    chain is ``INSIDE``, else they are undecided when some chain is, else
    they do not match.  With ``SUBTREE`` off and ``EXCLUDE`` on, they match
    when some chain is ``OUTSIDE``, else undecided when some chain is,
    else (every chain ``EXCLUDED``) not.  An event with nothing to walk
    (no chain) counts as one ``OUTSIDE`` chain.

A list (NAMES or DIRS) holds a name when it is one of the list's exact
names (looked up only when the list's ``nr_exact`` is not 0) or matches one
of its first ``nr_globs`` globs.  Patterns compare bytes: ``EXACT``,
``PREFIX``, ``SUFFIX``, ``GLOB`` (``*`` any run of bytes, ``?`` one byte,
nothing else special); a glob with an unknown kind or a length of
``NAME_MAX`` or more matches nothing.  Node devs are compared as the
kernel's 32-bit ``dev_t``.

A matching event is delivered (``SEND``), except a matching permission
event when ``deny_errno`` is set: ``-deny_errno``; an undecided one is
delivered (``SEND``, never denied).  Other events: ``SKIP``.  :func:`outcome`
also says which stats counter the handler bumps.
"""

from __future__ import annotations

import enum
import errno as _errno
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple, Optional, Tuple, Union

__all__ = [
    "MAX_ROOTS", "MAX_GLOBS", "NAME_MAX", "MAX_DEPTH", "COMM_LEN", "MAX_ANCESTRY",
    "ERRNO_MAX", "PERM_EVENTS", "ONDIR", "SEND", "SKIP",
    "Section", "PatternKind", "NamesMode", "ProcessFlag", "NodeKind", "NameList",
    "Match", "Walk", "Pattern", "RulesArgs", "Facts", "Node", "ChainNode", "Chain", "Walked",
    "check", "decide", "match", "matches", "outcome", "pattern_matches", "process_matches",
    "names_match", "name_listed", "walk", "walks_match", "chains_of", "glob_matches",
    "ancestry", "in_cgroup_tree", "dir_chain", "NO_DENTRY", "NoDentry",
]

# --- constants of src/bpf/fanbpf_rules.h ------------------------------------

MAX_ROOTS = 16  #: roots in the init args (any number more in the set's map)
MAX_GLOBS = 64  #: non-exact patterns per list
NAME_MAX = 256  #: bytes with the NUL: names and patterns are at most 255 bytes
MAX_DEPTH = 4096  #: dentries a walk looks at
COMM_LEN = 16
MAX_ANCESTRY = 32  #: thread-group leaders an ancestry walk looks at
ERRNO_MAX = 4095

PERM_EVENTS = 0x00010000 | 0x00020000 | 0x00040000  #: FAN_{OPEN,ACCESS,OPEN_EXEC}_PERM
ONDIR = 0x40000000  #: FAN_ONDIR
SEND = 0  #: FAN_FP_RET_SEND_TO_USERSPACE
SKIP = 1  #: FAN_FP_RET_SKIP_EVENT
_EINVAL = -_errno.EINVAL
_U32 = (1 << 32) - 1


class Section(enum.IntFlag):
    """``fanbpf_rules_args.sections``."""

    SUBTREE = 1 << 0
    NAMES = 1 << 1
    PROCESS = 1 << 2
    EXCLUDE = 1 << 3


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


class NodeKind(enum.IntFlag):
    """``enum fanbpf_node_kind``: the value bits of ``fanbpf_rules_nodes``."""

    ROOT = 1
    EXCLUDED = 2


class NameList(enum.IntEnum):
    """``enum fanbpf_name_list``."""

    NAMES = 1
    DIRS = 2


class Match(enum.IntEnum):
    """``enum fanbpf_match``: whether an event matches the rules."""

    NO = 0
    YES = 1
    UNDECIDED = 2  #: a walk hit its bound: delivered, counted


class Walk(enum.IntEnum):
    """``enum fanbpf_walk``: what one walk up a chain found."""

    NONE = -1  #: not walked
    OUTSIDE = 0  #: reached the top, no node decided
    INSIDE = 1  #: a root
    EXCLUDED = 2  #: an excluded node or directory name
    UNDECIDED = 3  #: no top: MAX_DEPTH dentries, or no dentry at all


_SECTIONS_ALL = int(Section.SUBTREE | Section.NAMES | Section.PROCESS | Section.EXCLUDE)
_SECTIONS_MAPS = int(Section.NAMES | Section.EXCLUDE)
_PROC_ALL = int(ProcessFlag.TGID | ProcessFlag.NOT_TGID | ProcessFlag.UID
                | ProcessFlag.CGROUP | ProcessFlag.COMM | ProcessFlag.ANCESTOR
                | ProcessFlag.CGROUP_TREE)


#: A directory's identity, ``(dev, ino)``: dev as the kernel's ``dev_t`` (the
#: superblock's ``s_dev``; on btrfs the subvolume's anonymous dev, stat's
#: ``st_dev``), ino as ``i_ino``.
Node = Tuple[int, int]


class ChainNode(NamedTuple):
    """One node of a walk.

    ``dev``/``ino``: the dentry's identity (see :data:`Node`); both
    ``None`` for the virtual node of an event's name, which starts the walk
    from the event's dir.  ``name``: the dentry's name (``b"/"`` for a
    superblock's root), ``None`` if unknown.  ``is_dir``: a directory --
    for the first node of a chain what the event's ``FAN_ONDIR`` says; the
    nodes above it are directories.
    """

    dev: Optional[int]
    ino: Optional[int]
    name: Optional[bytes] = None
    is_dir: bool = True

    @classmethod
    def virtual(cls, name: Optional[bytes], is_dir: bool) -> ChainNode:
        """The event's name before a walk from its dir."""
        return cls(None, None, name, is_dir)

    @property
    def is_virtual(self) -> bool:
        return self.dev is None

    @property
    def key(self) -> Node:
        """``(dev, ino)`` as the handler looks them up: dev cut to 32 bits."""
        if self.dev is None or self.ino is None:
            raise ValueError(f"{self!r} is a virtual node: it has no (dev, ino) to look up")
        return (self.dev & _U32, self.ino)


#: The nodes of one walk, nearest first, up to the superblock's root.
Chain = Tuple[ChainNode, ...]


class NoDentry(enum.Enum):
    """The type of :data:`NO_DENTRY` (a one-member enum: a sentinel)."""

    NO_DENTRY = "NO_DENTRY"


#: ``Facts.chains[0]`` of a walk from an inode that has no dentry to start
#: from (none hashed: after its last unlink, overwritten by a rename,
#: unhashed by overlayfs' unlink): walked, but it yields nothing.  Not
#: ``()``, which is "not walked".
NO_DENTRY = NoDentry.NO_DENTRY

#: One of ``Facts.chains``: a chain, or :data:`NO_DENTRY`.
Walked = Union[Chain, NoDentry]


def _bytes(value: str | bytes | Iterable[int]) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


# --- args ---------------------------------------------------------------------

@dataclass(frozen=True)
class Pattern:
    """One name pattern; ``length`` defaults to ``len(text)`` (the C ``len`` field)."""

    kind: int
    text: bytes
    length: Optional[int] = None

    @property
    def len(self) -> int:
        return len(self.text) if self.length is None else self.length

    @property
    def effective(self) -> bytes:
        """The bytes the handler compares: ``len`` bytes of the zero-filled text."""
        return self.text[:self.len].ljust(self.len, b"\0")


def _patterns(items: Iterable[Pattern | Tuple[int, bytes] | Tuple[int, bytes, Optional[int]]]
              ) -> Tuple[Pattern, ...]:
    return tuple(p if isinstance(p, Pattern) else Pattern(*p) for p in items)


def _nodes(items: Iterable[Sequence[int]]) -> Tuple[Node, ...]:
    return tuple(dict.fromkeys((int(d), int(i)) for d, i in items))


@dataclass(frozen=True)
class RulesArgs:
    """One rule set: ``struct fanbpf_rules_args`` and the set's map entries, as plain data.

    ``sections``, ``deny_errno``, ``names_mode``, ``events`` and the
    process fields are the init args'.  ``set_id`` names the set's entries
    in the rules maps (0: it has none; NAMES and EXCLUDE need one).

    ``roots``: every subtree root.  Without a set id the init args carry
    them (at most ``MAX_ROOTS``); with one, the nodes map does (ROOT
    nodes), unless ``args_roots`` says which go into the init args (the
    rest go to the map).  ``excluded``: the excluded subtrees (EXCLUDED
    nodes).  ``patterns``: the NAMES list, ``dirs``: the DIRS list; in
    each, EXACT patterns go to the names map (any number), the others to
    the globs map in order (at most ``MAX_GLOBS``).

    The ``nr_*`` counts and reserved fields default to what the lists say;
    set them to describe any struct, valid or not (:func:`check` decides).
    """

    sections: int = 0
    deny_errno: int = 0
    set_id: int = 0
    # subtree
    roots: Tuple[Node, ...] = ()
    args_roots: Optional[Tuple[Node, ...]] = None
    nr_roots: Optional[int] = None
    subtree_reserved: int = 0
    excluded: Tuple[Node, ...] = ()
    # names
    names_mode: int = NamesMode.INCLUDE
    patterns: Tuple[Pattern, ...] = ()
    nr_exact: Optional[int] = None
    nr_globs: Optional[int] = None
    names_reserved: int = 0
    events: int = 0
    # dirs
    dirs: Tuple[Pattern, ...] = ()
    dirs_nr_exact: Optional[int] = None
    dirs_nr_globs: Optional[int] = None
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

    def __post_init__(self) -> None:
        # any iterables in, tuples kept (hashable, comparable)
        object.__setattr__(self, "roots", _nodes(self.roots))
        object.__setattr__(self, "excluded", _nodes(self.excluded))
        if self.args_roots is not None:
            object.__setattr__(self, "args_roots", tuple(tuple(r) for r in self.args_roots))
        object.__setattr__(self, "patterns", _patterns(self.patterns))
        object.__setattr__(self, "dirs", _patterns(self.dirs))

    # -- where the entries go --------------------------------------------------

    @property
    def init_roots(self) -> Tuple[Node, ...]:
        """The roots in the init args."""
        if self.args_roots is not None:
            return self.args_roots
        return () if self.set_id else self.roots

    @property
    def map_roots(self) -> Tuple[Node, ...]:
        """The roots in the nodes map (ROOT nodes): none without a set id."""
        if not self.set_id:
            return ()
        init = set(self.init_roots)
        return tuple(r for r in self.roots if r not in init)

    @property
    def n_roots(self) -> int:
        return len(self.init_roots) if self.nr_roots is None else self.nr_roots

    def lists(self, which: NameList) -> Tuple[Tuple[bytes, ...], Tuple[Pattern, ...]]:
        """``(exact names, globs)`` of a list, as the names and globs maps hold them."""
        patterns = self.patterns if which == NameList.NAMES else self.dirs
        exact = tuple(dict.fromkeys(p.text for p in patterns if p.kind == PatternKind.EXACT))
        return exact, tuple(p for p in patterns if p.kind != PatternKind.EXACT)

    def counts(self, which: NameList) -> Tuple[int, int]:
        """``(nr_exact, nr_globs)`` of a list, as the init args carry them."""
        exact, globs = self.lists(which)
        if which == NameList.NAMES:
            nr_exact, nr_globs = self.nr_exact, self.nr_globs
        else:
            nr_exact, nr_globs = self.dirs_nr_exact, self.dirs_nr_globs
        return (len(exact) if nr_exact is None else nr_exact,
                len(globs) if nr_globs is None else nr_globs)

    def active_roots(self) -> Tuple[Node, ...]:
        """The init-args roots the handler compares: the first ``nr_roots`` slots (zero-filled)."""
        n = min(self.n_roots, MAX_ROOTS)
        roots = self.init_roots
        return tuple(roots[:n]) + ((0, 0),) * max(0, n - len(roots))

    @cached_property
    def _node_kinds(self) -> dict[Node, NodeKind]:
        kinds: dict[Node, NodeKind] = {}
        if self.set_id:
            for key in self.map_roots:
                kinds[key] = NodeKind.ROOT
            for key in self.excluded:
                kinds[key] = kinds.get(key, NodeKind(0)) | NodeKind.EXCLUDED
        return kinds

    def node_kind(self, key: Node) -> NodeKind:
        """The value of ``fanbpf_rules_nodes`` for ``key`` under this set (0: none)."""
        return self._node_kinds.get(key, NodeKind(0))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], **maps: Any) -> RulesArgs:
        """From the init-args dict (``struct fanbpf_rules_args``'s fields);
        ``maps`` gives the set's map entries (``roots=``, ``dirs=``...)."""
        subtree = d.get("subtree", {})
        names = d.get("names", {})
        dirs = d.get("dirs", {})
        process = d.get("process", {})
        init_roots = tuple((r.get("dev", 0), r.get("ino", 0)) for r in subtree.get("roots", ()))
        roots = maps.pop("roots", ())
        return cls(
            sections=d.get("sections", 0),
            deny_errno=d.get("deny_errno", 0),
            set_id=d.get("set_id", 0),
            roots=tuple(init_roots) + tuple(roots),
            args_roots=init_roots,
            nr_roots=subtree.get("nr_roots", 0),
            subtree_reserved=subtree.get("reserved", 0),
            names_mode=names.get("mode", 0),
            nr_exact=names.get("nr_exact", 0),
            nr_globs=names.get("nr_globs", 0),
            names_reserved=names.get("reserved", 0),
            events=names.get("events", 0),
            dirs_nr_exact=dirs.get("nr_exact", 0),
            dirs_nr_globs=dirs.get("nr_globs", 0),
            process_flags=process.get("flags", 0),
            tgid=process.get("tgid", 0),
            not_tgid=process.get("not_tgid", 0),
            uid=process.get("uid", 0),
            cgroup_id=process.get("cgroup_id", 0),
            comm=_bytes(process.get("comm", b"")),
            ancestor_tgid=process.get("ancestor_tgid", 0),
            cgroup_tree_id=process.get("cgroup_tree_id", 0),
            cgroup_tree_level=process.get("cgroup_tree_level", 0),
            **maps,
        )

    def to_dict(self) -> dict[str, Any]:
        """The init-args dict for :meth:`fanbpf.Handler.encode_args` (btfargs)."""
        names_exact, names_globs = self.counts(NameList.NAMES)
        dirs_exact, dirs_globs = self.counts(NameList.DIRS)
        return {
            "sections": self.sections,
            "deny_errno": self.deny_errno,
            "set_id": self.set_id,
            "subtree": {
                "nr_roots": self.n_roots,
                "reserved": self.subtree_reserved,
                "roots": [{"dev": dev, "ino": ino} for dev, ino in self.init_roots],
            },
            "names": {
                "mode": self.names_mode,
                "nr_exact": names_exact,
                "nr_globs": names_globs,
                "reserved": self.names_reserved,
                "events": self.events,
            },
            "dirs": {"nr_exact": dirs_exact, "nr_globs": dirs_globs},
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

    ``chains``: the walks the handler makes, each a :data:`Chain` of
    :class:`ChainNode` s from its start up to the superblock's root (the whole
    way, however long: the model applies ``MAX_DEPTH``): from the event's
    dentry (or, for events with neither dentry nor dir, from a dentry of
    its inode -- :data:`NO_DENTRY` if it has none); from the event's dir,
    starting with ``ChainNode.virtual(name, mask & ONDIR)`` (only that node
    if the dir has no dentry).  Empty chains ``()`` are not walked.
    ``name``: the event's name argument, else its dentry's name, else None
    (the NAMES section's name).  The task fields describe
    the task that caused the event; ``ancestors`` are the thread-group ids
    met walking up from it through real parents, its own first, to the top
    of the tree (the idle task, tgid 0) -- a walk that goes on further than
    ``MAX_ANCESTRY`` can be cut there; ``cgroup_path`` the ids of its
    cgroup v2 and the cgroups above it, the root cgroup first.
    """

    mask: int
    name: Optional[bytes] = None
    tgid: int = 0
    uid: int = 0
    cgroup_id: int = 0
    comm: bytes = b""
    chains: Tuple[Walked, ...] = field(default=((), ()))
    ancestors: Tuple[int, ...] = ()
    cgroup_path: Tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "chains", chains_of(self.chains, pad=False))


# --- the decision ---------------------------------------------------------------

def check(args: RulesArgs) -> int:
    """``fp_init``'s answer for these args: 0, or ``-EINVAL``.

    (fp_init also refuses a ``set_id`` another attachment uses, with
    ``-EEXIST``: a fact about the maps, not the args.)
    """
    if args.sections & ~_SECTIONS_ALL:
        return _EINVAL
    if args.sections & _SECTIONS_MAPS and not args.set_id:
        return _EINVAL
    if not 0 <= args.deny_errno <= ERRNO_MAX:
        return _EINVAL
    if args.n_roots > MAX_ROOTS or args.subtree_reserved:
        return _EINVAL
    if args.names_mode not in (NamesMode.INCLUDE, NamesMode.EXCLUDE) or args.names_reserved \
            or args.counts(NameList.NAMES)[1] > MAX_GLOBS \
            or args.counts(NameList.DIRS)[1] > MAX_GLOBS:
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


def _glob_closure(text: bytes, states: set[int]) -> set[int]:
    """Add the positions past any run of '*' (which may match nothing)."""
    out = set(states)
    for i in sorted(states):
        while i < len(text) and text[i] == 0x2A:
            i += 1
            out.add(i)
    return out


def pattern_matches(pattern: Pattern, name: bytes) -> bool:
    """Does ``name`` match one glob-map pattern?"""
    if pattern.len >= NAME_MAX or len(name) >= NAME_MAX:
        return False
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


def listed_lengths(patterns: Sequence[Pattern]) -> int:
    """A bit per length (below ``NAME_MAX``) that a name matching one of
    ``patterns`` can have, as a list's patterns are written to the maps
    (EXACT ones by their text).  The handler copies a directory's name
    only when its length's bit is set; more bits cost time, a missing one
    would miss an exclusion.  GLOB patterns allow every length."""
    every = (1 << NAME_MAX) - 1
    bits = 0
    for p in patterns:
        if p.kind == PatternKind.EXACT:
            if 0 < len(p.text) < NAME_MAX:
                bits |= 1 << len(p.text)
        elif p.len >= NAME_MAX:
            continue  # never matches
        elif p.kind in (PatternKind.PREFIX, PatternKind.SUFFIX):
            bits |= every & ~((1 << p.len) - 1)  # at least len bytes
        elif p.kind == PatternKind.GLOB:
            bits |= every
    return bits


def name_listed(args: RulesArgs, which: NameList, name: Optional[bytes]) -> bool:
    """Is ``name`` on list ``which`` of the rule set?"""
    if name is None or len(name) >= NAME_MAX:
        return False
    nr_exact, nr_globs = args.counts(which)
    exact, globs = args.lists(which)
    if nr_exact and name in exact:
        return True
    return any(pattern_matches(p, name) for p in globs[:min(nr_globs, MAX_GLOBS)])


def names_match(args: RulesArgs, facts: Facts) -> bool:
    """The NAMES section."""
    if args.events and not facts.mask & args.events:
        return True  # the section does not apply to this event
    hit = name_listed(args, NameList.NAMES, facts.name)
    return not hit if args.names_mode == NamesMode.EXCLUDE else hit


def _dirs_apply(args: RulesArgs) -> bool:
    return bool(args.sections & Section.EXCLUDE) and any(args.counts(NameList.DIRS))


def walk(args: RulesArgs, chain: Walked) -> Walk:
    """One walk up ``chain`` (or :data:`NO_DENTRY`): the nearest node that
    decides, or why none did."""
    subtree = bool(args.sections & Section.SUBTREE)
    exclude = bool(args.sections & Section.EXCLUDE)
    dirs = _dirs_apply(args)
    roots = set(args.active_roots())
    seen = 0
    for node in () if chain is NO_DENTRY else chain:
        if node.is_virtual:
            if dirs and node.is_dir and name_listed(args, NameList.DIRS, node.name):
                return Walk.EXCLUDED
            continue
        if seen == MAX_DEPTH:
            return Walk.UNDECIDED
        seen += 1
        key = node.key
        kind = args.node_kind(key)
        if subtree and (key in roots or kind & NodeKind.ROOT):
            return Walk.INSIDE
        if exclude and (kind & NodeKind.EXCLUDED or
                        (dirs and node.is_dir and name_listed(args, NameList.DIRS, node.name))):
            return Walk.EXCLUDED
    # the end is the top, when it is a dentry: a walk that met none cannot place the object
    return Walk.OUTSIDE if seen else Walk.UNDECIDED


def walks_match(args: RulesArgs, facts: Facts) -> Match:
    """The SUBTREE and EXCLUDE sections together."""
    walked = [c for c in facts.chains if c is NO_DENTRY or c]
    results = [walk(args, chain) for chain in walked] or [Walk.OUTSIDE]
    settles = Walk.INSIDE if args.sections & Section.SUBTREE else Walk.OUTSIDE
    if settles in results:
        return Match.YES
    return Match.UNDECIDED if Walk.UNDECIDED in results else Match.NO


def match(facts: Facts, args: RulesArgs) -> Match:
    """Does the event match every enabled section?  (UNDECIDED: maybe.)"""
    result = Match.YES
    if args.sections & Section.PROCESS:
        result = process_matches(args, facts)
    if result == Match.NO or (args.sections & Section.NAMES and not names_match(args, facts)):
        return Match.NO
    if args.sections & (Section.SUBTREE | Section.EXCLUDE):
        walked = walks_match(args, facts)
        if walked == Match.NO:
            return Match.NO
        if walked == Match.UNDECIDED:
            result = Match.UNDECIDED
    return result


def matches(facts: Facts, args: RulesArgs) -> bool:
    """Is the event delivered as a match (undecided ones included)?"""
    return match(facts, args) != Match.NO


def _as_args(args: RulesArgs | Mapping[str, Any]) -> RulesArgs:
    if isinstance(args, Mapping):
        args = RulesArgs.from_dict(args)
    if check(args):
        raise ValueError(f"fp_init would refuse these args: {args!r}")
    return args


def outcome(facts: Facts, args: RulesArgs | Mapping[str, Any]) -> Tuple[int, Match]:
    """``(decision, match)``: ``fp_handler``'s return value and whether the
    event matched.  The handler's stats count ``delivered`` for SEND,
    ``skipped`` for SKIP, ``denied`` for -errno, and ``undecided`` (too)
    when the match is UNDECIDED."""
    args = _as_args(args)
    result = match(facts, args)
    if result == Match.NO:
        return SKIP, result
    if result == Match.YES and facts.mask & PERM_EVENTS and 0 < args.deny_errno <= ERRNO_MAX:
        return -args.deny_errno, result
    return SEND, result


def decide(facts: Facts, args: RulesArgs | Mapping[str, Any]) -> int:
    """``fp_handler``'s return value: ``SEND``, ``SKIP`` or ``-errno``.

    ``args`` must pass :func:`check` (the kernel never runs a handler
    whose ``fp_init`` refused them); ValueError otherwise.
    """
    return outcome(facts, args)[0]


def dir_chain(name: Optional[bytes], mask: int, above: Iterable[ChainNode]) -> Chain:
    """The chain of a walk from an event's dir: the virtual node of the
    event's ``name``, then the dir's nodes ``above``."""
    return (ChainNode.virtual(name, bool(mask & ONDIR)),) + tuple(above)


def chains_of(walks: Iterable[Walked | Iterable[ChainNode | Sequence[Any]]],
              pad: bool = True) -> Tuple[Walked, ...]:
    """Normalise walks into ``Facts.chains``: nodes may be given as
    ``(dev, ino)`` pairs (directories without names) or :class:`ChainNode` s;
    :data:`NO_DENTRY` stays.  ``pad``: add not-walked chains up to two."""
    out = tuple(w if w is NO_DENTRY else
                tuple(n if isinstance(n, ChainNode) else ChainNode(*n) for n in w)
                for w in walks)
    return out + ((),) * (2 - len(out)) if pad else out
