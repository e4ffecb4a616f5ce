# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The rules handler's filtering in user space, for kernels without the fastpath hook.

:class:`RulesGroup` wraps a :class:`~fanbpf.group.Group` and applies
:func:`fanbpf.rules.rules` args to it: in the kernel (the ``fanbpf_rules``
handler) when the kernel has the hook, else in user space on every event
read, with the same semantics (:mod:`fanbpf.model`).  The application
reads the same events either way; it is only slower, because every event
is queued, read and judged here.  :attr:`RulesGroup.mode` says which mode
is in use (``"kernel"`` or ``"userspace"``)::

    group = Group()
    group.mark("/srv", EventMask.CREATE | EventMask.ONDIR, MarkFlag.FILESYSTEM)
    with RulesGroup(group, rules(subtree=["/srv/www"], exclude_pid=True)) as watcher:
        print("filtering in", watcher.mode)
        for event in watcher:
            ...

:class:`RulesFilter` is the user-space half on its own: it rebuilds, from
a delivered event, the facts the kernel handler would have gathered (which
pointers the kernel passes for that kind of event, the ancestry of those
objects by ``lstat`` walking up their paths, the name, and the process by
``/proc/<pid>``) and asks the model.

Limits of the user-space fallback (the kernel handler has none of these):

- Facts are gathered when the event is *read*, not when it happened.  If
  the object was moved or deleted in between, its path (resolved from the
  file handle) is the new one or unknown.  An event whose pieces cannot be
  resolved at all is delivered (fail open) and counted in
  :attr:`RulesFilter.uncertain`.
- The process may be gone by then: uid, comm and cgroup are read from
  ``/proc/<pid>`` best-effort; when they cannot be read, conditions on
  them are taken as met (fail open, counted in ``uncertain``).  comm is
  the process's, not the thread's (the kernel sees the thread's).
  ``tgid`` and ``not_tgid`` compare the event's pid, which is the tgid
  unless the group reports thread ids.  Ancestry follows ``PPid`` in
  ``/proc`` at read time: a process whose parent exited in between has
  been re-parented, and the fallback sees the new parent.
- The walk up the tree is done on paths: it stops at the mount it went
  through.  The kernel walks dentries up to the filesystem's root, so
  for a bind mount of a subdirectory it would also see the directories
  above the bind mount's root, which the fallback cannot.  The name of
  such a bind mount's root is taken as ``/`` (the kernel uses its real
  name).
- Hard-link creation and plain creation look the same in user space (the
  kernel passes a dentry for one, not the other).  This makes a
  difference only at exactly ``FANBPF_MAX_DEPTH`` levels.  Likewise,
  events on directories are assumed to come without parent information.
  The kernel adds it when another watcher watches the parent, which also
  matters only at the depth limit.
- Permission events can only be denied with ``EPERM`` unless the kernel
  supports ``FAN_DENY_ERRNO``.
- User space sees merged events (several bits) and judges each bit on
  its own, as the kernel judged the separate events it merged.  A few
  kernel events carry several bits at once (a setattr that changes both
  size and mode: ``ATTRIB | MODIFY``), which the handler judged as one.
  This differs only when ``names.events`` selects some of those bits and
  not the others.
- Matching ``ATTRIB`` events on non-directories: an event with a
  directory-and-name record is a setattr (dentry), one without is a
  link-count change (inode only).  Groups without ``REPORT_DIR_FID``
  cannot tell the two apart; for them every non-directory ``ATTRIB`` is
  treated as a setattr.
"""

from __future__ import annotations

import errno as _errno
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Optional, Union

from fanbpf import model
from fanbpf.errors import KernelSupportError
from fanbpf.events import Event
from fanbpf.flags import EventMask, InitFlag
from fanbpf.model import Chain, Facts, NoDentry, RulesArgs, Section
from fanbpf.rules import Rules, cgroup2_mount, kernel_dev
from fanbpf.support import kernel_support

if TYPE_CHECKING:
    from fanbpf.group import Group
    from fanbpf.handler import Handler

__all__ = ["RulesGroup", "RulesFilter", "Pieces", "kernel_pieces", "walk_path", "rule_set"]

log = logging.getLogger("fanbpf.fallback")
log.addHandler(logging.NullHandler())  # a library does not print unless logging is set up

#: Bits of an event mask that are not events.
FLAG_BITS = int(EventMask.ONDIR | EventMask.EVENT_ON_CHILD)
_DIRENT = {EventMask.CREATE, EventMask.DELETE, EventMask.MOVED_FROM, EventMask.MOVED_TO}
_SELF = {EventMask.DELETE_SELF, EventMask.MOVE_SELF}


@dataclass(frozen=True)
class Pieces:
    """What ``fp_handler`` was given for one event, as paths.

    ``dentry``: path of the event's dentry (None: the kernel passed none);
    ``dir``: path of its ``dir`` (None: none); ``name``: its ``name``
    argument (None: none); ``inode``: for events with neither dentry nor
    dir, the path of the inode's dentry, or :data:`~fanbpf.model.NO_DENTRY`
    if it has none left.  A path of ``""`` means the kernel had the piece
    but it cannot be resolved now.
    """

    dentry: Optional[str] = None
    dir: Optional[str] = None
    name: Optional[bytes] = None
    inode: Union[str, None, model.NoDentry] = None


def _fs(path: Optional[str]) -> Optional[bytes]:
    return None if path is None else os.fsencode(path)


def kernel_pieces(event: Event, bit: int, dir_fid: bool = True) -> Pieces:
    """The pointers the kernel passes ``fp_handler`` for event ``bit`` of ``event``.

    ``event`` must have its paths resolved (a :class:`~fanbpf.group.Group`
    with ``resolve_paths``).  ``dir_fid``: the group reports directory
    handles (``REPORT_DIR_FID``), which makes the kernel pass the parent
    and name for events on non-directories.  The table is the kernel's
    (``kernel/ABI.md``, fp_handler):

    - open/access/modify/close/``*_PERM``, setattr ``ATTRIB``: the dentry;
      on non-directories also the parent and name when ``dir_fid``;
    - ``CREATE``: the new dentry, the parent and the name;
    - ``DELETE``, ``MOVED_FROM``, ``MOVED_TO``: the parent and the name;
    - ``RENAME``: the dentry at its new place, the old parent, the old name;
    - ``DELETE_SELF``, ``MOVE_SELF``, link-count ``ATTRIB``: only the inode
      (``DELETE_SELF``'s has no dentry left).
    """
    unknown = ""
    ondir = bool(event.mask & EventMask.ONDIR)
    path = event.path
    parent = os.path.dirname(path) if path else unknown

    if bit == EventMask.RENAME:
        old_dir = os.path.dirname(event.old_path) if event.old_path else unknown
        name = event.old_name
        return Pieces(dentry=event.new_path or unknown, dir=old_dir,
                      name=_fs(name) if name is not None else None)
    if bit in _DIRENT:
        name = event.name
        return Pieces(dir=parent, name=_fs(name) if name is not None else None)
    if bit in _SELF:
        if bit == EventMask.DELETE_SELF:
            return Pieces(inode=model.NO_DENTRY)  # the last dentry went before the event
        return Pieces(inode=path or unknown)
    if bit == EventMask.ATTRIB and not ondir and dir_fid and event.dfid is None:
        return Pieces(inode=path or unknown)  # link count: fsnotify_inode()
    # path events and setattr: the object's dentry
    if ondir or not dir_fid:
        return Pieces(dentry=path or unknown)
    return Pieces(dentry=path or unknown, dir=parent,
                  name=_fs(event.name) if event.name is not None else None)


def walk_path(path: str, first_dir: bool = True) -> Chain:
    """The kernel's walk, done on a path: a :class:`~fanbpf.model.ChainNode`
    for it and for each of its ancestors.

    ``lstat`` of ``path``, then of each parent directory, up to the root of
    the filesystem (the parent is on another device, or ``/``), the whole
    way (the model applies the handler's depth bound); dev as the kernel's
    dev_t, names as the dentries have them (``/`` for the filesystem's
    root).  ``first_dir``: whether ``path`` is a directory (the event's
    ``ONDIR``).  Raises OSError.
    """
    chain: list[model.ChainNode] = []
    st: Optional[os.stat_result] = os.lstat(path)
    path = os.path.abspath(path)
    is_dir = first_dir
    while True:
        parent_path = os.path.dirname(path)
        assert st is not None  # the loop ends before the root's parent
        parent = os.lstat(parent_path) if parent_path != path else None
        top = parent is None or parent.st_dev != st.st_dev
        name = b"/" if top else os.fsencode(os.path.basename(path))
        chain.append(model.ChainNode(kernel_dev(st.st_dev), st.st_ino, name, is_dir))
        if top:
            return tuple(chain)
        path, st, is_dir = parent_path, parent, True


def rule_set(args: Rules | RulesArgs | Mapping[str, Any]) -> RulesArgs:
    """The :class:`~fanbpf.model.RulesArgs` of what :func:`fanbpf.rules`
    returns (or of an init-args dict), as user space applies it: every
    root, exclusion and name as if in the handler's maps (a set id), which
    in user space hold any number."""
    args = getattr(args, "args", args)  # a fanbpf.rules.Rules
    if isinstance(args, Mapping):
        args = RulesArgs.from_dict(args)
    assert isinstance(args, RulesArgs)
    return args if args.set_id else replace(args, set_id=1)


def _dentry_name(path: str) -> bytes:
    """A dentry's name: the last component, ``/`` for a filesystem's root."""
    if os.path.ismount(path):
        return b"/"
    return os.fsencode(os.path.basename(os.path.normpath(path)))


class _Uncertain(Exception):
    """A fact the kernel had cannot be found now."""


def proc_ancestors(pid: int, proc_dir: str = "/proc") -> Optional[tuple[int, ...]]:
    """The :attr:`fanbpf.model.Facts.ancestors` of process ``pid`` as ``/proc``
    shows them now: its tgid, its parent's (PPid)... down to the idle task
    (0), cut after ``MAX_ANCESTRY + 1``; None if a process is gone."""
    out: list[int] = []
    while pid and len(out) <= model.MAX_ANCESTRY:
        out.append(pid)
        try:
            with open(os.path.join(proc_dir, str(pid), "status")) as f:
                pid = next(int(line.split()[1]) for line in f if line.startswith("PPid:"))
        except (OSError, ValueError, IndexError, StopIteration):
            return None
    return tuple(out) + ((0,) if not pid else ())


@dataclass
class _Proc:
    uid: Optional[int] = None
    comm: Optional[bytes] = None
    cgroup_id: Optional[int] = None
    cgroup_path: Optional[tuple[int, ...]] = None
    ancestors: Optional[tuple[int, ...]] = None


class RulesFilter:
    """Apply rules args to events in user space, as the kernel handler would.

    ``args``: the dict :func:`fanbpf.rules.rules` builds, or a
    :class:`fanbpf.model.RulesArgs`.  ``dir_fid``: whether the events come
    from a group with ``REPORT_DIR_FID`` (see :func:`kernel_pieces`).
    ``proc``: where ``/proc`` is.
    """

    def __init__(self, args: Rules | RulesArgs | Mapping[str, Any], *, dir_fid: bool = True,
                 proc: str = "/proc") -> None:
        self.args = rule_set(args)
        if model.check(self.args):
            raise ValueError(f"the rules handler would refuse these args: {self.args!r}")
        self.dir_fid = dir_fid
        self._proc_dir = proc
        self._cgroup_root: Optional[str] = None
        #: How many event bits were delivered because a fact could not be found.
        self.uncertain = 0
        #: Set to a list to collect those ``(event, bit)`` pairs (tests do).
        self.uncertain_log: Optional[list[tuple[Event, int]]] = None

    # -- facts -------------------------------------------------------------

    def _process(self, pid: int) -> _Proc:
        info = _Proc()
        base = os.path.join(self._proc_dir, str(pid))
        try:
            with open(os.path.join(base, "status")) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        info.uid = int(line.split()[1])  # real uid
                        break
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open(os.path.join(base, "comm"), "rb") as f:
                info.comm = f.read().rstrip(b"\n")[:model.COMM_LEN - 1]
        except OSError:
            pass
        flags = self.args.process_flags
        if flags & (model.ProcessFlag.CGROUP | model.ProcessFlag.CGROUP_TREE):
            info.cgroup_path = self._cgroup_path(base)
            info.cgroup_id = info.cgroup_path[-1] if info.cgroup_path else None
        if flags & model.ProcessFlag.ANCESTOR:
            info.ancestors = proc_ancestors(pid, self._proc_dir)
        return info

    def _cgroup_path(self, base: str) -> Optional[tuple[int, ...]]:
        """The ids of the task's cgroup v2 and those above it, the root first."""
        if self._cgroup_root is None:
            self._cgroup_root = cgroup2_mount() or ""
        if not self._cgroup_root:
            return None
        try:
            with open(os.path.join(base, "cgroup")) as f:
                for line in f:
                    if line.startswith("0::"):
                        parts = [p for p in line[3:].strip().split("/") if p]
                        return tuple(os.stat(os.path.join(self._cgroup_root, *parts[:i])).st_ino
                                     for i in range(len(parts) + 1))
        except OSError:
            pass
        return None

    def _chain(self, path: Optional[str] | NoDentry, first_dir: bool) -> Chain | NoDentry:
        if path is None:
            return ()
        if path is model.NO_DENTRY:
            return path
        if path == "":
            raise _Uncertain("path")
        try:
            return walk_path(path, first_dir)
        except OSError:
            raise _Uncertain(path) from None

    def facts(self, event: Event, bit: int, proc: Optional[_Proc] = None) -> Facts:
        """The :class:`~fanbpf.model.Facts` of event ``bit`` of ``event``.

        Raises ``_Uncertain`` when something the kernel had cannot be found.
        """
        args = self.args
        pieces = kernel_pieces(event, bit, self.dir_fid)
        mask = bit | (event.mask & FLAG_BITS)
        chains: tuple[Chain | NoDentry, Chain] = ((), ())
        if args.sections & (Section.SUBTREE | Section.EXCLUDE):
            ondir = bool(mask & EventMask.ONDIR)
            first = pieces.dentry if pieces.dentry is not None else pieces.inode
            above = self._chain(pieces.dir, True)
            chains = (self._chain(first, ondir),
                      model.dir_chain(pieces.name, mask, above)
                      if above and not isinstance(above, NoDentry) else ())
        name = None
        if args.sections & Section.NAMES:
            name = pieces.name
            if name is None and pieces.dentry is not None:
                if pieces.dentry == "":
                    raise _Uncertain("name")
                name = _dentry_name(pieces.dentry)
        fields: dict[str, Any] = {}
        if args.sections & Section.PROCESS:
            proc = proc or self._process(event.pid)
            flags = args.process_flags
            if (flags & model.ProcessFlag.UID and proc.uid is None) or \
                    (flags & model.ProcessFlag.COMM and proc.comm is None) or \
                    (flags & model.ProcessFlag.CGROUP and proc.cgroup_id is None) or \
                    (flags & model.ProcessFlag.CGROUP_TREE and proc.cgroup_path is None) or \
                    (flags & model.ProcessFlag.ANCESTOR and proc.ancestors is None):
                raise _Uncertain("process")
            fields = dict(uid=proc.uid or 0, comm=proc.comm or b"", cgroup_id=proc.cgroup_id or 0,
                          cgroup_path=proc.cgroup_path or (), ancestors=proc.ancestors or ())
        return Facts(mask=mask, name=name, tgid=event.pid, chains=chains, **fields)

    # -- decisions -----------------------------------------------------------

    def decide(self, event: Event) -> int:
        """What the kernel handler returns for ``event``: SEND, SKIP or -errno.

        A merged event (several event bits) is delivered if any bit is.
        """
        verdicts = [verdict for _, verdict in self._verdicts(event)]
        if any(v < 0 for v in verdicts):
            return int(min(verdicts))
        return model.SEND if model.SEND in verdicts else model.SKIP

    def _verdicts(self, event: Event) -> Iterator[tuple[int, int]]:
        events = int(event.mask) & ~FLAG_BITS
        bits = [1 << i for i in range(32) if events >> i & 1]
        proc = None
        if self.args.sections & Section.PROCESS:
            proc = self._process(event.pid)
        for bit in bits:
            try:
                facts = self.facts(event, bit, proc)
            except _Uncertain as what:
                log.debug("fallback: delivering %r, %s unknown", event, what)
                self.uncertain += 1
                if self.uncertain_log is not None:
                    self.uncertain_log.append((event, bit))
                yield bit, model.SEND
                continue
            yield bit, model.decide(facts, self.args)

    def filter(self, event: Event) -> Optional[Event]:
        """``event`` with only the bits the kernel handler would deliver, or None.

        Queue overflows are always delivered (no handler sees them).  For a
        permission event, returns it unchanged when it is to be sent to user
        space; use :meth:`decide` to tell allow (SKIP) from deny (-errno).
        """
        if event.is_overflow:
            return event
        delivered = 0
        for bit, verdict in self._verdicts(event):
            if verdict != model.SKIP:
                delivered |= bit
        if not delivered:
            return None
        if delivered == event.mask & ~FLAG_BITS:
            return event
        return replace(event, mask=EventMask(delivered | (event.mask & FLAG_BITS)))


class RulesGroup:
    """A group filtered by rules args: in the kernel if it can, else in user space.

    ``mode``: ``"auto"`` (kernel when the fastpath hook is there and BPF
    may be loaded, else user space, with a warning logged), ``"kernel"``
    (raise if it cannot) or ``"userspace"``.  ``handler``: a
    loaded rules :class:`~fanbpf.handler.Handler` to attach (default: load
    the built-in one, private to this group, and close it with the group).
    The wrapped group is closed with this object.  In user space, the group
    must resolve paths (the default).
    """

    def __init__(self, group: Group, args: Rules | RulesArgs | Mapping[str, Any], *,
                 mode: str = "auto", handler: Optional[Handler] = None) -> None:
        if mode not in ("auto", "kernel", "userspace"):
            raise ValueError(f"mode must be auto, kernel or userspace, not {mode!r}")
        self.group = group
        self._handler: Optional[Handler] = None
        self._own_handler = False
        self.filter: Optional[RulesFilter] = None
        rule_set = None
        if isinstance(args, Rules):  # attached as it is: its entries go into the maps
            rule_set, args = args, args.model_args
        elif isinstance(args, Mapping):
            args = dict(args)
        self.mode = "userspace"
        #: Why ``auto`` mode filters in user space (the error of the attempt), else None.
        self.fallback_reason: Optional[OSError] = None
        if mode != "userspace":
            try:
                self._attach(rule_set or args, handler)
                self.mode = "kernel"
            except OSError as err:
                if mode == "kernel" or not _no_hook(err):
                    raise
                self.fallback_reason = err
                log.warning("fanbpf: filtering events in user space: %s", err)
        if self.mode == "userspace":
            self.filter = RulesFilter(args, dir_fid=bool(group.flags & InitFlag.REPORT_DIR_FID))

    def _attach(self, args: Rules | RulesArgs | dict[str, Any],
                handler: Optional[Handler]) -> None:
        from fanbpf.handler import Handler

        if handler is None:
            kernel_support().require()
            handler = Handler.load("rules", private=True)
            self._own_handler = True
        self._handler = handler
        try:
            self.group.attach(handler, args)
        except BaseException:
            self._close_handler()
            raise

    def _close_handler(self) -> None:
        if self._own_handler and self._handler is not None:
            self._handler.close()
        self._handler = None

    # -- reading -----------------------------------------------------------

    def read_events(self, timeout: Optional[float] = None) -> list[Event]:
        """The next batch of events that pass the rules (``[]`` on timeout).

        In user space, permission events the rules skip are allowed and
        those they deny are denied (with ``EPERM`` if the kernel cannot
        deny with the chosen errno) before this returns; only those sent
        to user space are returned, to be answered by the caller.
        """
        if self.filter is None:
            return self.group.read_events(timeout)
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
            events = self.group.read_events(remaining)
            if not events:
                return []
            out = self._filter_batch(events)
            if out:
                return out
            # everything in the batch was dropped: keep reading until the timeout

    def drain(self, deadline: float | None = None) -> list[Event]:
        """Every event queued now that passes the rules, without waiting (see
        :meth:`~fanbpf.group.Group.drain`)."""
        events = self.group.drain(deadline)
        return events if self.filter is None else self._filter_batch(events)

    def _filter_batch(self, events: list[Event]) -> list[Event]:
        rules_filter = self.filter
        assert rules_filter is not None  # user-space mode
        out = []
        for event in events:
            if event.is_permission:
                verdict = rules_filter.decide(event)
                if verdict == model.SKIP:
                    self.group.allow(event)
                    continue
                if verdict < 0:
                    self._deny(event, -verdict)
                    continue
                out.append(event)
                continue
            kept = rules_filter.filter(event)
            if kept is None:
                event.close()
            else:
                out.append(kept)
        return out

    def _deny(self, event: Event, err: int) -> None:
        try:
            self.group.deny(event, err)
        except ValueError:
            self.group.deny(event, _errno.EPERM)

    def __iter__(self) -> Iterator[Event]:
        """Blocking iteration over the events that pass; ends when the group is closed."""
        while not self.group.closed:
            yield from self.read_events()

    def __aiter__(self) -> RulesGroup:
        """``async for`` over the events that pass (the group's loop.add_reader wait)."""
        self.group.__aiter__()  # refuses a closed group
        return self

    async def __anext__(self) -> Event:
        while True:
            event = await self.group.__anext__()  # StopAsyncIteration once closed
            if self.filter is None:
                return event
            passed = self._filter_batch([event])
            if passed:
                return passed[0]

    def fileno(self) -> int:
        """The group's fanotify fd (for select)."""
        return self.group.fileno()

    @property
    def closed(self) -> bool:
        return self.group.closed

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close the group (which detaches the handler), then the handler if ours."""
        self.group.close()
        self._close_handler()

    def __enter__(self) -> RulesGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RulesGroup {self.mode} {self.group!r}>"


def _no_hook(err: OSError) -> bool:
    """Does this error mean the in-kernel filter cannot be had here?

    No fastpath hook (KernelSupportError, ENOTTY from the ioctl), or no
    privilege to load BPF: user space can still filter.
    """
    return isinstance(err, (KernelSupportError, PermissionError)) or \
        err.errno in (_errno.ENOTTY, _errno.ENOTSUP, _errno.EPERM, _errno.EACCES)
