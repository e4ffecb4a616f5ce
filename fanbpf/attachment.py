# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""What attaching a handler to a group gives back: :class:`Attachment`.

Every :meth:`fanbpf.Group.attach` (and :func:`fanbpf.handler.attach`)
returns one.  For a ``fanbpf_rules`` rule set attached as a loaded
:class:`~fanbpf.Handler` it is also the live rule set: its roots and
excluded subtrees are entries in the handler's maps, changed in place
(effective for the next event, no detach), and its counters say what the
handler decided::

    with Handler.load("rules", private=True) as handler, Group() as group:
        group.mark("/home", mask, MarkFlag.FILESYSTEM)
        att = group.attach(handler, fanbpf.rules(subtree=[], exclude_dirs=[".git"]))
        att.add_roots(f"/home/{user}" for user in users)
        ...
        att.remove_root("/home/alice")
        print(att.stats)

Ownership: the group owns the kernel hook (closing the group detaches the
handler); the attachment owns its map entries and the O_PATH fds holding
its overlayfs directories.  They are released when it is detached
(:meth:`Attachment.detach`), when the group closes, or when the handler
closes (the kernel then revokes it from every group).  Once closed,
:attr:`stats` gives the counts as they were at that moment.  The
attachment refers to its group weakly, so a group dropped unclosed goes
(detaching the handler, dropping the entries) at once, not at a gc.

Threads: rule changes come from the group's owning thread, but
:meth:`fanbpf.Group.close` may run in any thread; a change then either
completes before the close drops the entries or raises ValueError saying
the attachment is closed.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from .model import Node, NodeKind, Section
from .rules import DirArg, ResolvedDir, Rules, close_pins, name_dirs, nested_mounts, resolve_dirs

if TYPE_CHECKING:
    from .group import Group
    from .handler import Handler
    from .rulesmaps import RulesMaps, RulesStats

__all__ = ["Attachment", "pin_overlay"]

P = ParamSpec("P")
R = TypeVar("R")


def _locked(method: Callable[Concatenate[Attachment, P], R]) -> Callable[Concatenate[Attachment, P], R]:
    """Run ``method`` holding the attachment's lock (see Attachment.__init__)."""
    def locked(self: Attachment, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)
    functools.update_wrapper(locked, method)
    return locked


def pin_overlay(rules: Rules) -> tuple[Rules, list[ResolvedDir]]:
    """Hold the rule set's overlayfs directories open; ``rules`` named through the fds.

    Without a reference an overlayfs directory's inode can leave the cache,
    and the next one made for it may get another i_ino; named again through
    an fd that holds it, the name stays valid as long as the fd is open.
    """
    if not rules.overlay:
        return rules, []
    pins = resolve_dirs([path for _, path in rules.overlay], pin=True)
    renamed = {old: d.key for (old, _), d in zip(rules.overlay, pins) if old != d.key}
    if not renamed:
        return rules, pins

    def rename(keys: Iterable[Node]) -> tuple[Node, ...]:
        return tuple(dict.fromkeys(renamed.get(k, k) for k in keys))

    args = replace(rules.args, roots=rename(rules.args.roots), excluded=rename(rules.args.excluded))
    nested = tuple((renamed.get(a, a), renamed.get(b, b)) for a, b in rules.nested)
    overlay = tuple((d.key, d.path) for d in pins)
    return replace(rules, args=args, nested=nested, overlay=overlay), pins


class Attachment:
    """A handler attached to a fanotify group (see the module docstring).

    ``closed``: detached, or its group or handler closed; ``reason`` says
    which.  ``revoked``: the kernel no longer runs this handler for the
    group although nobody here detached it (its handler was unregistered,
    or the group detached behind this object's back).
    """

    def __init__(self, fan_fd: int, name: str, *, group: Group | None = None,
                 handler: Handler | None = None, set_id: int = 0, rules: Rules | None = None,
                 pins: Iterable[ResolvedDir] = ()) -> None:
        self._fan_fd = fan_fd
        self.name = name
        self.set_id = set_id  #: the rule set's id in the handler's maps (0: none)
        # Weak: the group holds its attachment, and a cycle would keep a
        # dropped group (its fd, the handler's link and maps) until gc.
        self._group = weakref.ref(group) if group is not None else None
        self._handler = handler
        # Group.close() may run in another thread: a rule change and the
        # release of the map entries must not interleave.
        self._lock = threading.RLock()
        self.reason: str | None = None  #: why it is closed (None while attached)
        self._final_stats: RulesStats | None = None
        # roots given by the user -> the directories of filesystems mounted below them
        self._explicit: dict[Node, tuple[Node, ...]] = {}
        self._nested: dict[Node, int] = {}  # a nested root -> how many explicit roots claim it
        self._excluded: set[Node] = set()
        self._sections = 0
        self._pins: dict[Node, int] = {}  # overlayfs directory -> its O_PATH fd
        if rules is not None:
            args = rules.args
            by_root: dict[Node, list[Node]] = {}
            for root, below in rules.nested:
                by_root.setdefault(root, []).append(below)
            nested = {below for _, below in rules.nested}
            for key in args.roots:
                if key not in nested:
                    self._explicit[key] = tuple(by_root.get(key, ()))
            for belows in by_root.values():
                for key in belows:
                    self._nested[key] = self._nested.get(key, 0) + 1
            self._excluded = set(args.excluded)
            self._sections = args.sections
        for d in pins:
            if d.fd is not None:
                self._pins[d.key] = d.fd
        if handler is not None:
            handler._attachments.add(self)

    def __repr__(self) -> str:
        state = f"closed: {self.reason}" if self.closed else f"fd={self._fan_fd}"
        rules = f" set {self.set_id}, {len(self._roots())} roots" if self.set_id else ""
        return f"<Attachment {self.name!r}{rules} ({state})>"

    # --- state ------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.reason is not None

    @property
    def revoked(self) -> bool:
        """The kernel dropped the handler from the group: nobody here detached it."""
        if self.reason is not None:
            return self.reason.startswith("revoked")
        from .handler import attached

        try:
            return attached(self._fan_fd) != self.name
        except OSError:
            return True

    def _check_rules(self, what: str) -> None:
        if self.closed:
            raise ValueError(f"{what}: the attachment of {self.name!r} is closed ({self.reason})")
        if not self.set_id:
            raise ValueError(f"{what}: this attachment has no rule set in maps (only a "
                             "fanbpf_rules rule set attached as a loaded Handler has)")
        if self.revoked:
            raise ValueError(f"{what}: the kernel revoked {self.name!r} from the group "
                             "(its handler was unregistered or detached); the group now "
                             "receives every event its marks match")

    # --- roots --------------------------------------------------------------

    @property
    def roots(self) -> frozenset[Node]:
        """Every root in the handler's map: those added and those of nested mounts."""
        self._check_rules("roots")
        return frozenset(self._roots())

    @property
    def excluded(self) -> frozenset[Node]:
        """The excluded subtrees."""
        self._check_rules("excluded")
        return frozenset(self._excluded)

    def add_root(self, root: DirArg) -> None:
        """Add a subtree root: a directory path or a ``(dev, ino)`` pair.

        Filesystems mounted below it are covered too (see
        :func:`fanbpf.rules.nested_mounts`): their events come only from
        marks on them.  Effective for the next event.
        """
        self.add_roots([root])

    @_locked
    def add_roots(self, roots: Iterable[DirArg]) -> None:
        """Add many roots at once: looked up in batches, written in one map update."""
        self._check_rules("add_root")
        keys, dirs = name_dirs(roots, "add_root", pin=True)
        saved = dict(self._explicit), dict(self._nested)
        try:
            new = [k for k in keys if k not in self._explicit]
            nested = nested_mounts(new, self._excluded, pin=True)
            dirs += [d for _, d in nested]
            present = self._roots()
            for key in new:
                self._explicit[key] = ()
            for root, d in nested:
                self._explicit[root] += (d.key,)
                self._nested[d.key] = self._nested.get(d.key, 0) + 1
            self._store(k for k in dict.fromkeys([*new, *(d.key for _, d in nested)])
                        if k not in present)
        except BaseException:
            self._explicit, self._nested = saved
            close_pins(dirs)
            raise
        self._keep_pins(dirs)

    def remove_root(self, root: DirArg) -> None:
        """Remove a root added before (and the roots of mounts it brought).

        KeyError if it is not one; effective for the next event.
        """
        self.remove_roots([root])

    @_locked
    def remove_roots(self, roots: Iterable[DirArg]) -> None:
        self._check_rules("remove_root")
        keys, _ = name_dirs(roots, "remove_root")
        missing = [k for k in keys if k not in self._explicit]
        if missing:
            raise KeyError(f"remove_root: {missing[0]} is not a root of this attachment "
                           "(the roots of nested mounts go with the root they are below)")
        changed = []
        for key in keys:
            changed.append(key)
            for below in self._explicit.pop(key):
                self._nested[below] -= 1
                if not self._nested[below]:
                    del self._nested[below]
                    changed.append(below)
        self._store(dict.fromkeys(changed))

    # --- excluded subtrees ------------------------------------------------

    @_locked
    def exclude_subtree(self, path: DirArg) -> None:
        """Drop events below directory ``path`` (unless a root lies nearer)."""
        self._check_rules("exclude_subtree")
        if not self._sections & Section.EXCLUDE:
            raise ValueError("exclude_subtree: this rule set has no exclusions; give "
                             "exclude_subtrees=[] (or exclude_dirs) to rules()")
        keys, dirs = name_dirs([path], "exclude_subtree", pin=True)
        added = [k for k in keys if k not in self._excluded]
        self._excluded.update(added)
        try:
            self._store(added)
        except BaseException:
            self._excluded.difference_update(added)
            close_pins(dirs)
            raise
        self._keep_pins(dirs)

    @_locked
    def include_subtree(self, path: DirArg) -> None:
        """Undo :meth:`exclude_subtree` (KeyError if it is not excluded)."""
        self._check_rules("include_subtree")
        keys, _ = name_dirs([path], "include_subtree")
        if keys[0] not in self._excluded:
            raise KeyError(f"include_subtree: {keys[0]} is not an excluded subtree")
        self._excluded.discard(keys[0])
        self._store(keys)

    # --- counters -----------------------------------------------------------

    @property
    def stats(self) -> RulesStats:
        """What the handler decided for this attachment: a :class:`~fanbpf.rulesmaps.RulesStats`
        (delivered, skipped, denied, undecided; undecided events are delivered too).

        Once closed, the counts at that moment.  OSError if the kernel
        revoked the handler (it dropped the counters with it).
        """
        if self.closed:
            if self._final_stats is None:
                raise ValueError(f"stats: the attachment of {self.name!r} closed ({self.reason}) "
                                 "before its counters could be read")
            return self._final_stats
        if not self.set_id:
            raise ValueError("stats: only a fanbpf_rules rule set attached as a loaded "
                             "Handler has counters")
        try:
            return self._maps().read_stats(self.set_id)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"stats: the kernel revoked {self.name!r} from the group (its handler was "
                "unregistered or detached) and dropped its counters") from None

    # --- lifetime ---------------------------------------------------------

    @_locked
    def detach(self) -> None:
        """Detach the handler from the group and drop the rule set; idempotent."""
        if self.closed:
            return
        from .handler import detach

        self._snapshot()
        try:
            detach(self._fan_fd, self.name)
        except FileNotFoundError:
            pass  # revoked already: nothing attached
        self._release("detached")

    @_locked
    def _snapshot(self) -> None:
        if self.set_id and self._final_stats is None:
            try:
                self._final_stats = self._maps().read_stats(self.set_id)
            except OSError:
                pass  # revoked: the counters are gone

    @_locked
    def _release(self, reason: str, maps_alive: bool = True) -> None:
        """Drop the map entries and pins (the hook is gone already)."""
        if self.closed:
            return
        self.reason = reason
        try:
            if self.set_id and maps_alive:
                self._maps().delete_set(self.set_id)
        finally:
            for fd in self._pins.values():
                os.close(fd)
            self._pins.clear()
            self._explicit.clear()
            self._nested.clear()
            self._excluded.clear()
            group = self._group() if self._group is not None else None
            if group is not None and group._attachment is self:
                group._attachment = None
            if self._handler is not None:
                self._handler._attachments.discard(self)

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    # --- helpers -------------------------------------------------------------

    def _roots(self) -> set[Node]:
        return self._explicit.keys() | self._nested.keys()

    def _store(self, keys: Iterable[Node]) -> None:
        """Make the nodes map say what this object does about ``keys``: each is a
        root, excluded, both (a value of both bits) or, being neither, absent."""
        roots = self._roots()
        by_kind: dict[NodeKind, list[Node]] = {}
        for key in keys:
            kind = (NodeKind.ROOT if key in roots else NodeKind(0)) | \
                (NodeKind.EXCLUDED if key in self._excluded else NodeKind(0))
            by_kind.setdefault(kind, []).append(key)
        maps = self._maps()
        for kind, group in by_kind.items():
            if kind:
                maps.add_nodes(self.set_id, group, kind)
        maps.delete_nodes(self.set_id, by_kind.get(NodeKind(0), ()))
        self._unpin(k for k in by_kind.get(NodeKind(0), ()))

    def _maps(self) -> RulesMaps:
        maps = self._handler.rules_maps if self._handler is not None else None
        if maps is None:
            raise ValueError(f"the attachment of {self.name!r} has no rules maps")
        return maps

    def _keep_pins(self, dirs: Iterable[ResolvedDir]) -> None:
        for d in dirs:
            if d.fd is None:
                continue
            if d.key in self._pins:
                os.close(d.fd)  # held already
            else:
                self._pins[d.key] = d.fd

    def _unpin(self, keys: Iterable[Node]) -> None:
        for key in keys:
            fd = self._pins.pop(key, None)
            if fd is not None:
                os.close(fd)
