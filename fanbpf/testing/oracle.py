# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""An oracle for events on a tree of :class:`~fanbpf.testing.fs.FsOp` s.

:class:`FsTree` records every object's identity as it appears, so that an
event read later is explained without asking the file system again;
:func:`expected_keys` says which events the rules handler delivers
according to :mod:`fanbpf.model`; :class:`OpsRun` applies ops on a fresh
tmpfs with a reference group watching.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Tuple, overload

from fanbpf import model
from fanbpf.events import DirFidNameInfo, FidInfo
from fanbpf.fallback import FLAG_BITS, kernel_pieces, proc_ancestors, rule_set, walk_path
from fanbpf.flags import EventMask, MarkFlag
from fanbpf.group import Group, with_record_paths
from fanbpf.model import Facts, RulesArgs
from fanbpf.rules import kernel_dev, rules
from fanbpf.testing.fs import (OPS_DIRS, FsOp, PrettyPrinter, Workers, file_handle,
                               tmpfs_mount)

if TYPE_CHECKING:
    from fanbpf.events import Event
    from fanbpf.rules import PatternArg, Rules

__all__ = ["FsTree", "OpsRun", "RulesSpec", "EventKey", "describe_keys", "event_keys",
           "expected_keys"]

#: One event bit, comparable across groups: ``(bit, flags, pid, records)``,
#: each record ``(info_type, handle, name)`` (name None for a FID record).
EventKey = Tuple[int, int, int, Tuple[Tuple[int, bytes, Optional[str]], ...]]


@dataclass
class _Node:
    dev: int
    ino: int
    is_dir: bool
    path: Optional[str]  # relative; None once removed
    last: str  # the last path it had


class FsTree:
    """What a test knows about the tree under ``base``, kept in step with :class:`FsOp` s.

    Every object's ``(dev, ino)`` and file handle are recorded when it
    appears, and its path is updated on renames, so an event read later
    can be explained without asking the file system again: which object
    its records name, where it was, and the walk the kernel made from
    there (:meth:`facts`).  The directories from ``base`` up to its file
    system's root (where the kernel's walk ends) are read once, when the
    tree is made: the test must not change them.
    """

    def __init__(self, base: str) -> None:
        self.base = os.path.abspath(base)
        self.nodes: dict[str, _Node] = {}  # relative path -> live objects
        self.by_handle: dict[bytes, _Node] = {}  # handle -> object, removed ones too
        self.removed: dict[str, _Node] = {}  # relative path -> the object removed from it last
        # base's own name and the directories above it, up to its file
        # system's root, which the test never changes
        above = walk_path(self.base)
        self._base_name, self._above = above[0].name, above[1:]
        self._add("")
        for dirpath, dirnames, filenames in os.walk(self.base):
            for name in dirnames + filenames:
                self._add(os.path.relpath(os.path.join(dirpath, name), self.base))

    def _abs(self, rel: str) -> str:
        return os.path.join(self.base, rel) if rel else self.base

    def _add(self, rel: str) -> None:
        path = self._abs(rel)
        st = os.lstat(path)
        node = _Node(kernel_dev(st.st_dev), st.st_ino, stat.S_ISDIR(st.st_mode), rel, rel)
        self.nodes[rel] = node
        self.by_handle[file_handle(path)] = node

    def after(self, op: FsOp) -> None:
        """Record the effect of ``op``, which has just been applied."""
        if op.kind in ("create", "mkdir"):
            self._add(op.path)
        elif op.kind in ("unlink", "rmdir"):
            node = self.nodes.pop(op.path)
            node.path = None
            self.removed[op.path] = node
        elif op.kind == "rename":
            if op.dest is None:  # as apply_op: the op cannot have been applied
                raise ValueError(f"a rename needs a destination: {op!r}")
            dest = op.dest
            moved = [p for p in self.nodes if p == op.path or p.startswith(op.path + "/")]
            for rel in sorted(moved):
                node = self.nodes.pop(rel)
                node.path = node.last = dest + rel[len(op.path):]
                self.nodes[node.path] = node

    # -- explaining events ---------------------------------------------------

    def _record_path(self, record: FidInfo | DirFidNameInfo, last: bool = False
                     ) -> Optional[str]:
        node = self.by_handle.get(record.handle)
        if node is None:
            return None
        rel = node.last if last and node.path is None else node.path
        if rel is None:
            return None
        name = getattr(record, "name", ".")
        return self._abs(rel) if name == "." else os.path.join(self._abs(rel), name)

    def resolve(self, event: Event, last: bool = False) -> Event:
        """``event`` with ``path``, ``old_path`` and ``new_path`` set from the tree,
        the way :class:`~fanbpf.group.Group` sets them from the file system.
        ``last``: a removed object's FID resolves to the path it had last."""
        return with_record_paths(event, lambda record: self._record_path(
            record, last and not isinstance(record, DirFidNameInfo)))

    @overload
    def chain(self, path: Optional[str], first_dir: bool = True) -> model.Chain: ...
    @overload
    def chain(self, path: str | model.NoDentry | None, first_dir: bool = True
              ) -> model.Walked: ...

    def chain(self, path: str | model.NoDentry | None, first_dir: bool = True) -> model.Walked:
        """The kernel's walk from the dentry at ``path``: a
        :class:`~fanbpf.model.ChainNode` for it and each ancestor up to the
        file system's root (named ``/``).  ``first_dir``: the event's ONDIR.
        None: not walked; :data:`~fanbpf.model.NO_DENTRY` stays."""
        if path is None:
            return ()
        if path is model.NO_DENTRY:
            return path
        rel = os.path.relpath(path, self.base)
        rel = "" if rel == "." else rel
        chain: list[model.ChainNode] = []
        node = self.nodes.get(rel) or self.removed[rel]  # removed: explained by its last path
        is_dir = first_dir
        while True:
            name = self._base_name if rel == "" else os.fsencode(os.path.basename(rel))
            chain.append(model.ChainNode(node.dev, node.ino, name, is_dir))
            if rel == "":
                return tuple(chain) + self._above
            rel = os.path.dirname(rel)
            node, is_dir = self.nodes[rel], True

    def facts(self, event: Event, bit: int, args: RulesArgs, dir_fid: bool = True) -> Facts:
        """The facts the kernel handler gathered for event ``bit`` of ``event``.

        Which pointers the kernel passed comes from
        :func:`fanbpf.fallback.kernel_pieces` (the kernel's table); where
        they pointed comes from this tree, not from the file system.  One
        case the file system cannot tell after the fact: a link-count
        ATTRIB on an unlinked file was sent while its dentry was still in
        place, so its FID resolves to the last path.
        """
        link_count = bit == 0x4 and not event.mask & 0x40000000 and event.dfid is None
        pieces = kernel_pieces(self.resolve(event, last=link_count), bit, dir_fid)
        mask = bit | (event.mask & FLAG_BITS)
        name = pieces.name
        if name is None and pieces.dentry is not None:
            rel = os.path.relpath(pieces.dentry, self.base)
            name = self._base_name if rel == "." else os.fsencode(os.path.basename(rel))
        first = pieces.dentry if pieces.dentry is not None else pieces.inode
        above = self.chain(pieces.dir or None)
        chains = (self.chain(first or None, bool(mask & model.ONDIR)),
                  model.dir_chain(pieces.name, mask, above) if above else ())
        ancestors: tuple[int, ...] = ()
        if args.process_flags & model.ProcessFlag.ANCESTOR:
            # the test's processes are all alive: /proc still knows their parents
            found = proc_ancestors(event.pid)
            if found is None:
                raise RuntimeError(f"pid {event.pid} is gone from /proc: the oracle needs the "
                                   "test's processes alive to know their ancestry")
            ancestors = found
        return Facts(mask=mask, name=name, tgid=event.pid, chains=chains, ancestors=ancestors)


def describe_keys(tree: FsTree, keys: Iterable[EventKey]) -> list[str]:
    """Keys of :func:`event_keys`, readable: ``"MOVED_TO|ONDIR out/a (pid 42)"``."""
    out = []
    for bit, flags, pid, records in sorted(keys, key=repr):
        where = []
        for _, handle, name in records:
            node = tree.by_handle.get(handle)
            rel = "?" if node is None else (node.path if node.path is not None else f"{node.last} (gone)")
            where.append(rel if name in (None, ".") else os.path.join(rel, name))
        what = EventMask(bit | flags).name or hex(bit | flags)
        out.append(f"{what} {' '.join(where)} (pid {pid})")
    return out


def _event_bits(mask: int) -> list[int]:
    events = int(mask) & ~FLAG_BITS
    return [1 << i for i in range(32) if events >> i & 1]


def _key(event: Event, bit: int) -> EventKey:
    records = tuple((int(r.info_type), r.handle, getattr(r, "name", None))
                    for r in event.info if isinstance(r, (FidInfo, DirFidNameInfo)))
    return bit, int(event.mask) & FLAG_BITS, event.pid, records


def event_keys(events: Iterable[Event]) -> set[EventKey]:
    """Events as a set of ``(bit, flags, pid, records)``: one per event bit.

    Comparing sets makes the comparison blind to merging (the kernel
    merges identical events while they wait in the queue, differently in
    groups that drop different events) and to order.
    """
    return {_key(event, bit) for event in events for bit in _event_bits(event.mask)}


def expected_keys(tree: FsTree, events: Iterable[Event],
                  args: Rules | RulesArgs | Mapping[str, Any], dir_fid: bool = True
                  ) -> set[EventKey]:
    """The keys of the ``events`` (read from a group without a handler) that
    the rules handler, attached with ``args`` (what :func:`fanbpf.rules`
    returns, a RulesArgs, or an init-args dict), delivers according to the model."""
    rule_args = rule_set(args)
    keep = set()
    for event in events:
        for bit in _event_bits(event.mask):
            if model.decide(tree.facts(event, bit, rule_args, dir_fid), rule_args) != model.SKIP:
                keep.add(_key(event, bit))
    return keep




class OpsRun:
    """Apply :class:`FsOp` s on a fresh tmpfs (or in a fresh directory of the
    file system mounted at ``fs``), with a reference group watching.

    ``dirs`` are created first (and never touched by :func:`fs_ops`);
    ``procs`` :class:`Workers` are started, unless ``workers`` are given.  Mark the groups under test on
    :attr:`base`, then call :meth:`start`, which marks the reference group
    (a group without a handler that sees every event) *last*: marking a
    group that resolves paths opens the directory, an event for groups
    marked before.  :meth:`step` applies one op, updates :attr:`tree` and
    returns the reference group's events for it.
    """

    def __init__(self, dirs: Iterable[str] = OPS_DIRS, procs: int = 2,
                 workers: Optional[Workers] = None, fs: Optional[str] = None) -> None:
        self._dirs = dirs
        self._procs = procs
        self._stack = contextlib.ExitStack()
        self._fs = fs
        self.ref: Optional[Group] = None  # set by start()
        self.workers = workers  # shared across runs: forking is slow in an emulated VM

    def _fresh_dir(self) -> str:
        """A new directory on ``fs`` (mounting a file system per run would
        be slow), removed after the run."""
        path = tempfile.mkdtemp(prefix="run-", dir=self._fs)
        self._stack.callback(shutil.rmtree, path, ignore_errors=True)
        return path

    def __enter__(self) -> OpsRun:
        try:
            self.base = self._stack.enter_context(tmpfs_mount()) if self._fs is None \
                else self._fresh_dir()
            for d in self._dirs:
                os.mkdir(os.path.join(self.base, d))
            if self.workers is None:
                self.workers = self._stack.enter_context(Workers(self._procs))
            self.pids = self.workers.pids
            self.tree = FsTree(self.base)
        except BaseException:
            self._stack.close()
            raise
        return self

    def start(self, mask: int) -> None:
        self.ref = ref = self._stack.enter_context(Group(resolve_paths=False))
        ref.mark(self.base, mask, MarkFlag.FILESYSTEM)

    def step(self, op: FsOp) -> list[Event]:
        if self.ref is None or self.workers is None:
            raise RuntimeError("OpsRun.step outside its with block or before start()")
        self.workers.apply(self.base, op)
        self.tree.after(op)
        return self.ref.drain()

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


@dataclass(frozen=True)
class RulesSpec:
    """:func:`fanbpf.rules.rules` keyword arguments with directories named
    relative to a test tree (``""`` is its base) and processes by worker number, so that
    hypothesis can draw them before the tree exists; :meth:`build` makes
    the args.  ``exclude_proc``/``only_proc``/``descendants_of``: 0 is the
    test process."""

    subtree: Tuple[str, ...] = ()
    exclude_dirs: Tuple[PatternArg, ...] = ()
    exclude_subtrees: Tuple[str, ...] = ()
    names: Tuple[PatternArg, ...] = ()
    exclude_names: bool = False
    events: int = 0
    exclude_proc: Optional[int] = None
    only_proc: Optional[int] = None
    descendants_of: Optional[int] = None

    def build(self, base: str, pids: Sequence[int] = ()) -> Rules:
        pid = [os.getpid(), *pids]
        kwargs: dict[str, Any] = {}  # rules()' keyword arguments
        if self.subtree:
            kwargs["subtree"] = [os.path.join(base, d) if d else base for d in self.subtree]
        if self.exclude_dirs:
            kwargs["exclude_dirs"] = list(self.exclude_dirs)
        if self.exclude_subtrees:
            kwargs["exclude_subtrees"] = [os.path.join(base, d) if d else base
                                          for d in self.exclude_subtrees]
        if self.names:
            kwargs["exclude_names" if self.exclude_names else "names"] = list(self.names)
            if self.events:
                kwargs["events"] = self.events
        if self.exclude_proc is not None:
            kwargs["exclude_pid"] = pid[self.exclude_proc]
        if self.only_proc is not None:
            kwargs["tgid"] = pid[self.only_proc]
        if self.descendants_of is not None:  # the workers descend from the test process
            kwargs["descendants_of"] = pid[self.descendants_of]
        return rules(**kwargs)

    def _repr_pretty_(self, printer: PrettyPrinter, cycle: bool) -> None:
        printer.text(repr(self))

    def __repr__(self) -> str:
        fields = [f"{k}={v!r}" for k, v in self.__dict__.items()
                  if v != RulesSpec.__dataclass_fields__[k].default]
        return f"RulesSpec({', '.join(fields)})"

