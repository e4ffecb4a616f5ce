# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A fanotify group: the fd, its marks, reading events and answering permissions.

:class:`Group` is the single owner of a fanotify fd and of every fd that
reading it produces::

    with Group() as group:
        group.mark("/srv/data", EventMask.CREATE | EventMask.DELETE | EventMask.ONDIR)
        for event in group:
            print(event.mask, event.path)

File descriptors and their lifetime:

* the fanotify fd: closed by :meth:`Group.close` (or ``with``); closing it
  also detaches any fastpath handler and lets the kernel allow every
  permission event still waiting;
* event fds and pidfds: owned by the :class:`~fanbpf.events.Event`; the
  group closes them when it reads its next batch, unless you took them
  (:meth:`Event.take_fd`), and you may close them sooner (:meth:`Event.close`).
  A permission event's fd stays open until it is answered;
* one directory fd per filesystem marked by a FID group, used to open the
  reported file handles (:attr:`Event.path`); closed with the group. Note
  that it keeps the mount busy.

Threads: use a group from one thread (or one event loop) at a time, with
one exception: :meth:`Group.close` may be called from any thread (or a
signal handler). It wakes a ``for`` or ``async for`` blocked on the group,
which then ends, and returns once no thread uses the fd any more, so an fd
number is never closed under a read.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import errno as _errno
import math
import os
import select
import stat
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, NoReturn, Union

from .errors import os_error
from .events import DirFidNameInfo, Event, FidInfo, _OwnedFds, parse_events
from .flags import EventMask, InfoType, InitFlag, MarkFlag, Response

if TYPE_CHECKING:
    from .attachment import Attachment
    from .handler import Handler, InitArgs

__all__ = ["Group", "DEFAULT_FLAGS", "DEFAULT_EVENT_FLAGS"]

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

#: FID mode with directory handles and names: every event type can be
#: marked (create, delete and move need FID mode), events carry the entry
#: names that name and subtree rules match on, and no fd is opened per event.
DEFAULT_FLAGS = InitFlag.CLASS_NOTIF | InitFlag.REPORT_FID | InitFlag.REPORT_DFID_NAME
#: How the kernel opens event fds for groups without FID reporting.
DEFAULT_EVENT_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_LARGEFILE

# Always added: the group polls before reading (and asyncio needs a read
# that cannot block), and a fanotify fd leaking into children is a hazard.
_FORCED_INIT_FLAGS = InitFlag.CLOEXEC | InitFlag.NONBLOCK
_FID_FLAGS = InitFlag.REPORT_FID | InitFlag.REPORT_DIR_FID
_MARK_ADD, _MARK_REMOVE, _MARK_FLUSH = 0x01, 0x02, 0x80
_AT_FDCWD = -100
_RESPONSE = struct.Struct("=iI")  # struct fanotify_response
_DENY_ERRNO_SHIFT = 24  # FAN_DENY_ERRNO(err): the errno in the top byte (Linux 6.13+)
# Reads are sized so that one batch cannot exhaust RLIMIT_NOFILE when
# every event carries an fd; FID events carry none and are bigger.
_READ_SIZE_FDS, _READ_SIZE_FID = 4096, 65536


class Group:
    """A fanotify group (``fanotify_init(2)``) and everything read from it.

    ``flags`` are :class:`InitFlag` bits (``CLOEXEC`` and ``NONBLOCK`` are
    always added); the default, :data:`DEFAULT_FLAGS`, is a notification
    group in FID mode with names. Permission events need
    ``InitFlag.CLASS_CONTENT`` without FID flags, e.g.
    ``Group(InitFlag.CLASS_CONTENT)``. ``event_flags`` are the ``open(2)``
    flags of event fds. With ``resolve_paths`` (default) each event's
    :attr:`~Event.path` is looked up when it is read; turn it off to save a
    ``readlink`` (and for FID groups an ``open_by_handle_at``) per event.

    Raises OSError (``PermissionError`` without ``CAP_SYS_ADMIN`` for most
    flags, ``OSError(EINVAL)`` for combinations the kernel refuses).
    """

    def __init__(
        self,
        flags: int = DEFAULT_FLAGS,
        event_flags: int = DEFAULT_EVENT_FLAGS,
        *,
        resolve_paths: bool = True,
    ) -> None:
        self._fd = -1  # first, so close() and __del__ work if __init__ fails
        self._lock = threading.Condition()  # guards the fields below, for close()
        self._closing = False
        self._users: dict[int, int] = {}  # thread id -> depth, threads reading the fd
        self._wake: tuple[int, int] | None = None  # a pipe close() writes to wake a poll
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        flags = InitFlag(_check_uint(flags, "flags", 32)) | _FORCED_INIT_FLAGS
        event_flags = _check_uint(event_flags, "event_flags", 32)
        from ._binding import lib

        self._lib = lib
        fd = lib.fanbpf_fanotify_init(flags, event_flags)
        if fd < 0:
            _raise(-fd, f"fanotify_init {_names(flags)}", hints=_INIT_HINTS)
        self._fd = fd
        self._flags = flags
        self._fid_mode = bool(flags & _FID_FLAGS)
        self._read_size = (
            _READ_SIZE_FID if self._fid_mode and not flags & InitFlag.REPORT_PIDFD else _READ_SIZE_FDS
        )
        self._resolve_paths = resolve_paths
        self._mount_fds: dict[int, int] = {}  # fsid -> a directory fd on that filesystem
        self._batch: list[_OwnedFds] = []  # fds of the last batch, closed on the next read
        self._unanswered: dict[int, _OwnedFds] = {}  # event fd -> permission event's fds
        self._backlog: collections.deque[Event] = collections.deque()  # read, not yet iterated
        self._overflows = 0
        self._attachment: Attachment | None = None  # the one attached through attach()

    # --- the fd ----------------------------------------------------------

    def fileno(self) -> int:
        """The fanotify fd (for ``select``, or to attach a handler by hand)."""
        self._check_open()
        return self._fd

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (also while it waits for a reader)."""
        return self._fd < 0 or self._closing

    @property
    def flags(self) -> InitFlag:
        """The ``fanotify_init`` flags in effect (with the forced ones)."""
        return self._flags

    @property
    def overflows(self) -> int:
        """How many queue-overflow events were read: each means events were lost."""
        return self._overflows

    def close(self) -> None:
        """Close the group and every fd it still owns. Idempotent; any thread.

        The kernel allows all permission events still waiting and detaches
        any fastpath handler. Events already handed out lose their fds. A
        ``for``/``async for`` blocked on the group (in any thread) wakes up
        and ends; close() waits for it to let go of the fd.
        """
        with self._lock:
            if self._fd < 0:
                return
            if self._attachment is not None and not self._closing:
                self._attachment._snapshot()  # its counters go with the hook
            self._closing = True
            self._wake_readers()
            if threading.get_ident() in self._users:
                return  # a signal handler inside our own read: the read closes on its way out
            self._lock.wait_for(lambda: not self._users and self._waiter is None)
            self._close_fds()

    def _wake_readers(self) -> None:
        if self._wake is not None:
            try:
                os.write(self._wake[1], b"\0")
            except BlockingIOError:
                pass  # already woken
        if self._waiter is not None:
            loop, future = self._waiter
            try:
                same_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                same_loop = False
            if same_loop:
                self._waiter = None
                loop.remove_reader(self._fd)
                _resolve(future)
            else:
                try:
                    loop.call_soon_threadsafe(_resolve, future)
                except RuntimeError:  # the loop is closed: nobody is waiting
                    self._waiter = None

    def _close_fds(self) -> None:
        """Close everything; called with the lock held and no reader left."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        owned = [*self._batch, *self._unanswered.values(), *(e._fds for e in self._backlog if e._fds)]
        self._batch, self._unanswered = [], {}
        self._backlog.clear()
        for box in owned:
            box.release()
        attachment = self._attachment
        if attachment is None:
            os.close(fd)  # first: closing the mount fds must not queue events
        else:
            # Under the attachment's lock: a rule change in the owning thread
            # either ends before the fd closes or finds the attachment closed.
            with attachment._lock:
                os.close(fd)
                attachment._release("its group was closed")
        for mount_fd in self._mount_fds.values():
            os.close(mount_fd)
        self._mount_fds.clear()
        if self._wake is not None:
            for end in self._wake:
                os.close(end)
            self._wake = None
        self._lock.notify_all()

    def _enter(self) -> bool:
        """Start using the fd in this thread; False if the group is closed."""
        with self._lock:
            if self.closed:
                return False
            me = threading.get_ident()
            self._users[me] = self._users.get(me, 0) + 1
            return True

    def _leave(self) -> None:
        with self._lock:
            me = threading.get_ident()
            depth = self._users.pop(me) - 1
            if depth:
                self._users[me] = depth
            self._finish_close()

    def _finish_close(self) -> None:
        """The last reader of a closing group closes it (the closer may be a signal handler)."""
        if self._closing and not self._users and self._waiter is None:
            self._close_fds()
        self._lock.notify_all()

    def __enter__(self) -> Group:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<{type(self).__name__} {state} flags={getattr(self, '_flags', None)!r}>"

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("fanotify group is closed")

    # --- marks -------------------------------------------------------------

    def mark(self, path: PathArg, mask: int, flags: int = MarkFlag.INODE) -> None:
        """Add ``mask`` (:class:`EventMask`) to the mark on ``path``.

        ``flags`` (:class:`MarkFlag`) choose what is marked: the inode
        (default), ``MOUNT`` or ``FILESYSTEM``, plus modifiers such as
        ``ONLYDIR`` or ``IGNORE``. Directories report events on themselves
        only with ``ONDIR`` and on their children only with
        ``EVENT_ON_CHILD`` (or, for create/delete/move, always).
        Raises FileNotFoundError (naming the path) and the other OSErrors of
        ``fanotify_mark(2)``, TypeError/ValueError for bad arguments.
        """
        self._check_open()
        mount = None
        if self._fid_mode and self._resolve_paths:
            # Opened before the mark exists, so that the open is not an event.
            mount = self._open_mount_fd(os.fsencode(path), flags)
        try:
            self._modify_mark(_MARK_ADD, path, mask, flags)
        except BaseException:
            if mount:
                os.close(mount[1])
            raise
        if mount:
            self._mount_fds[mount[0]] = mount[1]

    def unmark(self, path: PathArg, mask: int, flags: int = MarkFlag.INODE) -> None:
        """Remove ``mask`` from the mark on ``path`` (the mark goes when its mask is empty)."""
        self._modify_mark(_MARK_REMOVE, path, mask, flags)

    def flush(self, flags: int = MarkFlag.INODE) -> None:
        """Remove all marks of one type: ``MarkFlag.INODE``, ``MOUNT`` or ``FILESYSTEM``."""
        self._check_open()
        flags = _check_uint(flags, "flags", 32)
        if flags & ~MarkFlag.MNTNS:
            raise ValueError(f"flush() takes only a mark type, not {MarkFlag(flags)!r}")
        from ._binding import ffi

        rc = self._lib.fanbpf_fanotify_mark(self._fd, _MARK_FLUSH | flags, 0, _AT_FDCWD, ffi.NULL)
        if rc < 0:
            _raise(-rc, f"flush {_names(MarkFlag(flags))} marks")

    def _modify_mark(self, op: int, path: PathArg, mask: int, flags: int) -> None:
        self._check_open()
        raw = os.fsencode(path)  # TypeError for anything that is not a path
        if b"\0" in raw:
            raise ValueError(f"embedded null byte in path {path!r}")
        mask = _check_uint(mask, "mask", 64)
        if not mask:
            raise ValueError("mask is empty")
        flags = _check_uint(flags, "flags", 32)
        if flags & (_MARK_ADD | _MARK_REMOVE | _MARK_FLUSH):
            raise ValueError("flags must not hold the add/remove/flush bits: use mark(), unmark(), flush()")
        rc = self._lib.fanbpf_fanotify_mark(self._fd, op | flags, mask, _AT_FDCWD, raw)
        if rc < 0:
            verb = "mark" if op == _MARK_ADD else "unmark"
            what = f"{verb} {_names(EventMask(mask))} with {_names(MarkFlag(flags))}"
            hints = _MARK_HINTS
            if flags & MarkFlag.SUBTREE:
                hints = {**_MARK_HINTS, _errno.EINVAL: _SUBTREE_HINT}
            _raise(-rc, what, os.fsdecode(raw), hints=hints)

    def _open_mount_fd(self, raw: bytes, flags: int) -> tuple[int, int] | None:
        """An fd to decode handles of the filesystem ``raw`` is on, if it is a new one.

        ``open_by_handle_at`` refuses ``O_PATH`` fds, so this is a directory
        opened for reading: the marked directory's parent on the same mount
        (see :func:`_open_parent_or_dir`), else the directory; a file's
        parent. Returns
        ``(fsid, fd)``; None if the filesystem is known or it cannot be
        opened (its paths then stay None).
        """
        nofollow = os.O_NOFOLLOW if flags & MarkFlag.DONT_FOLLOW else 0
        try:
            probe = os.open(raw, os.O_PATH | os.O_CLOEXEC | nofollow)
        except (OSError, ValueError):
            return None  # the mark reports the error
        try:
            fsid = os.fstatvfs(probe).f_fsid
            if fsid in self._mount_fds:
                return None
            readable = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
            if stat.S_ISDIR(os.fstat(probe).st_mode):
                return fsid, _open_parent_or_dir(probe, readable)
            fd = os.open(os.path.dirname(os.path.abspath(raw)), readable)
            if os.fstatvfs(fd).f_fsid != fsid:  # a file mounted over another filesystem
                os.close(fd)
                return None
            return fsid, fd
        except OSError:
            return None
        finally:
            os.close(probe)

    # --- reading -------------------------------------------------------

    def read_events(self, timeout: float | None = None) -> list[Event]:
        """Wait up to ``timeout`` seconds (``None``: forever) and return the next batch.

        Returns ``[]`` on timeout, and when another thread closes the group
        meanwhile. Reading a batch closes the fds of the previous one (see
        the module docstring). Events that iteration has read but not yet
        yielded come first. Paths are resolved as the batch is read, each
        directory once a batch: the paths of one batch are one snapshot.
        """
        if not self._enter():
            raise ValueError("fanotify group is closed")
        try:
            if self._backlog:
                events = list(self._backlog)
                self._backlog.clear()
                return events
            deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
            while True:
                remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
                if self._wait_readable(remaining):
                    events = self._read_batch()
                    if events:
                        return events
                if remaining == 0 or self._closing:
                    return []
        finally:
            self._leave()

    def drain(self, deadline: float | None = None) -> list[Event]:
        """Every event queued now, in as many batches as it takes, without waiting.

        ``deadline`` (a :func:`time.monotonic` time): read no further batch
        after it, leaving the rest queued -- while events come in as fast
        as they are read, "everything queued" has no end.

        As :meth:`read_events`, reading closes the fds of earlier batches:
        only the last batch's events keep theirs.
        """
        events: list[Event] = []
        while batch := self.read_events(timeout=0):
            events.extend(batch)
            if deadline is not None and time.monotonic() > deadline:
                break
        return events

    def _wait_readable(self, timeout: float | None) -> bool:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        if timeout != 0:  # a blocking wait: close() must be able to end it
            with self._lock:
                if self._wake is None:
                    self._wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                poller.register(self._wake[0], select.POLLIN)
        ready = poller.poll(None if timeout is None else math.ceil(timeout * 1000))
        return not self._closing and any(fd == self._fd for fd, _ in ready)

    def _read_batch(self) -> list[Event]:
        for stale in self._batch:
            stale.close()
        self._batch = []
        try:
            data = os.read(self._fd, self._read_size)
        except BlockingIOError:
            return []
        events = []
        record_path = self._batch_record_path()  # one a batch, see there
        for event in parse_events(data):
            if event.is_overflow:
                self._overflows += 1
            box = event._fds
            if box is not None:
                if event.is_permission and event.fd is not None:
                    box.pinned = True
                    self._unanswered[event.fd] = box
                else:
                    self._batch.append(box)
            if self._resolve_paths:
                self._set_paths(event, record_path)
            events.append(event)
        return events

    def __iter__(self) -> Iterator[Event]:
        """Blocking iteration; ends when the group is closed."""
        self._check_open()
        return self

    def __next__(self) -> Event:
        while not self._backlog:
            if self.closed:
                raise StopIteration
            self._backlog.extend(self.read_events())
        return self._backlog.popleft()

    def __aiter__(self) -> Group:
        """``async for``: waits with ``loop.add_reader``, no threads; ends when closed."""
        self._check_open()
        return self

    async def __anext__(self) -> Event:
        while not self._backlog:
            if self.closed:
                raise StopAsyncIteration
            await self._readable()
            if not self._enter():
                raise StopAsyncIteration
            try:
                self._backlog.extend(self._read_batch())
            finally:
                self._leave()
        return self._backlog.popleft()

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self.closed:
                return
            fd = self._fd
            loop.add_reader(fd, _resolve, future)
            self._waiter = (loop, future)
        try:
            await future
        finally:
            with self._lock:
                if self._waiter is not None and self._waiter[1] is future:
                    self._waiter = None
                    loop.remove_reader(fd)  # still open: close() waits for this
                self._finish_close()

    # --- paths -------------------------------------------------------------

    def _set_paths(self, event: Event,
                   record_path: Callable[[FidInfo | DirFidNameInfo], str | None]) -> None:
        """Fill in the event's paths, as they are when the batch is read."""
        if event.fd is not None:
            event._set_paths(_readlink(event.fd))
        elif event.info and self._mount_fds:
            event._set_paths(*record_paths(event, record_path))

    def _batch_record_path(self) -> Callable[[FidInfo | DirFidNameInfo], str | None]:
        """The path of a FID record, each handle resolved once for one batch.

        A batch of events in a few directories opens each directory once,
        not once an event. Within a batch the paths are one snapshot anyway
        (all are resolved after the kernel queued the whole batch); the
        next batch resolves anew, so a directory renamed meanwhile has its
        new path.
        """
        handle_paths: dict[tuple[int, int, bytes], str | None] = {}

        def record_path(record: FidInfo | DirFidNameInfo) -> str | None:
            key = (record.fsid, record.handle_type, record.handle)
            try:
                path = handle_paths[key]
            except KeyError:
                path = handle_paths[key] = self._handle_path(record)
            if path is None or not isinstance(record, DirFidNameInfo) or record.name == ".":
                return path
            return f"{path}/{record.name}" if path != "/" else "/" + record.name  # os.path.join, faster

        return record_path

    def _handle_path(self, record: FidInfo | DirFidNameInfo) -> str | None:
        mount_fd = self._mount_fds.get(record.fsid)
        if mount_fd is None:
            return None
        fd = _open_by_handle_at(mount_fd, record.file_handle, os.O_PATH | os.O_CLOEXEC)
        if fd < 0:
            return None  # ESTALE: gone already
        try:
            return _readlink(fd)
        finally:
            os.close(fd)

    # --- permission events ---------------------------------------------

    def respond(self, event: Event, allow: bool, *, errno: int = _errno.EPERM, audit: bool = False) -> None:
        """Answer a permission event: let the access proceed or fail it with ``errno``.

        Any errno but ``EPERM`` needs ``FAN_DENY_ERRNO`` (Linux 6.13+; the
        kernel also limits it to pre-content groups and a few errnos): if
        the kernel refuses, ValueError is raised and the event stays
        unanswered, so it can be denied with ``EPERM`` instead. Answering a
        non-permission event, an event twice or another group's event raises
        ValueError. The event's fd is closed once answered (unless taken).
        """
        self._check_open()
        if not isinstance(event, Event):
            raise TypeError(f"respond() needs an Event, not {type(event).__name__}")
        if not event.is_permission:
            raise ValueError(f"{event.mask!r} is not a permission event")
        box_fd = event.fd
        box = self._unanswered.get(box_fd) if box_fd is not None else None
        if box_fd is None or box is None or box is not event._fds:
            raise ValueError("event is already answered, or was not read from this group")
        response = Response.ALLOW if allow else Response.DENY
        if not allow and errno != _errno.EPERM:
            if not _check_uint(errno, "errno", 8):
                raise ValueError("errno must be a positive errno value, not 0")
            response |= errno << _DENY_ERRNO_SHIFT
        if audit:
            response |= Response.AUDIT
        try:
            os.write(self._fd, _RESPONSE.pack(event.fd, response))
        except OSError as err:
            if err.errno == _errno.EINVAL and response >> _DENY_ERRNO_SHIFT:
                raise ValueError(
                    f"the kernel refused to deny with errno {errno} ({_errno.errorcode.get(errno, '?')}): "
                    "errnos other than EPERM need Linux 6.13+ and a CLASS_PRE_CONTENT group, and only "
                    "EIO, EPERM, EBUSY, ETXTBSY, EAGAIN, ENOSPC or EDQUOT; the event is still unanswered"
                ) from None
            raise
        del self._unanswered[box_fd]
        box.release()

    def allow(self, event: Event, *, audit: bool = False) -> None:
        """Let the access behind a permission event proceed."""
        self.respond(event, True, audit=audit)

    def deny(self, event: Event, errno: int = _errno.EPERM, *, audit: bool = False) -> None:
        """Fail the access behind a permission event with ``errno`` (see :meth:`respond`)."""
        self.respond(event, False, errno=errno, audit=audit)

    # --- fastpath handlers -------------------------------------------------

    def attach(self, target: Handler | str, args: InitArgs = None) -> Attachment:
        """Attach a fastpath handler to this group: see :func:`fanbpf.handler.attach`.

        Returns its :class:`~fanbpf.Attachment`. The group owns the hook:
        closing the group detaches the handler and closes the attachment.
        """
        fd = self.fileno()
        from . import handler

        old = self._attachment
        if old is not None and old.revoked:  # the kernel dropped it: attaching anew is fine
            old._release("revoked: the kernel detached its handler")
        self._attachment = handler.attach(fd, target, args, group=self)
        return self._attachment

    @property
    def attachment(self) -> Attachment | None:
        """The :class:`~fanbpf.Attachment` of the handler attached with :meth:`attach`, or None."""
        return self._attachment

    @property
    def handler(self) -> str | None:
        """Name of the attached fastpath handler, or None (see :func:`fanbpf.handler.attached`).

        Turns None when the kernel revokes the handler (it was unregistered);
        the group then receives every event its marks match.
        """
        fd = self.fileno()
        from . import handler

        return handler.attached(fd)

    def detach(self, name: str | Handler | None = None) -> None:
        """Detach the fastpath handler (``name``: only if it is that one): see :func:`fanbpf.handler.detach`."""
        fd = self.fileno()
        from . import handler

        att = self._attachment
        if att is not None and getattr(name, "name", name) in (None, att.name):
            return att.detach()
        return handler.detach(fd, name)


def with_record_paths(event: Event, record_path: Callable[[FidInfo | DirFidNameInfo], str | None]) -> Event:
    """``event`` with ``path``, ``old_path`` and ``new_path`` from its FID records (see record_paths)."""
    path, old_path, new_path = record_paths(event, record_path)
    return replace(event, path=path, old_path=old_path, new_path=new_path)


def record_paths(
    event: Event, record_path: Callable[[FidInfo | DirFidNameInfo], str | None]
) -> tuple[str | None, str | None, str | None]:
    """``path``, ``old_path`` and ``new_path`` of ``event`` from its FID records.

    ``record_path`` gives the path a directory-entry record (DFID_NAME and
    the old/new ones of a rename) or the object's FID record names, or
    None.  ``path`` is the entry's, else the object's, else a rename's new one.
    """
    entry = obj = old = new = None  # the last of each kind, as the kernel sends one
    for record in event.info:
        if isinstance(record, DirFidNameInfo):
            kind = record.info_type
            if kind == InfoType.DFID_NAME:
                entry = record
            elif kind == InfoType.OLD_DFID_NAME:
                old = record
            elif kind == InfoType.NEW_DFID_NAME:
                new = record
        elif isinstance(record, FidInfo) and record.info_type == InfoType.FID:
            obj = record
    path = None if entry is None else record_path(entry)
    # Lazily: the object's FID only when the entry has no path (the object
    # of a FID+DFID_NAME event is mostly gone when read, an open that fails).
    if not path and obj is not None:
        path = record_path(obj)
    new_path = None if new is None else record_path(new)
    return path or new_path, None if old is None else record_path(old), new_path


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _check_uint(value: object, what: str, bits: int) -> int:
    """Flags and masks: ints (IntFlags included) that fit the C type, nothing else."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int or a flag, not {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{what} {value:#x} does not fit an unsigned {bits}-bit field")
    return int(value)


def _open_by_handle_at(mount_fd: int, handle: bytes, flags: int) -> int:
    """``open_by_handle_at(2)`` on a FID record's handle: fd or -errno."""
    from ._binding import ffi, lib

    return int(lib.fanbpf_open_by_handle_at(mount_fd, ffi.from_buffer(handle), len(handle), flags))


def _open_parent_or_dir(dir_fd: int, flags: int) -> int:
    """The parent of directory ``dir_fd`` opened with ``flags`` if it is on the
    same mount, else the directory: a directory the group holds open is not
    gone when deleted, and its ``DELETE_SELF`` waits for the group's close."""
    try:
        parent = os.open("..", os.O_PATH | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return os.open(f"/proc/self/fd/{dir_fd}", flags)
    try:
        mnt_id = _mnt_id(dir_fd)
        if mnt_id is not None and _mnt_id(parent) == mnt_id:
            try:
                return os.open(f"/proc/self/fd/{parent}", flags)
            except OSError:
                pass  # not readable: the directory, then
        return os.open(f"/proc/self/fd/{dir_fd}", flags)
    finally:
        os.close(parent)


def _mnt_id(fd: int) -> int | None:
    """The id of the mount ``fd`` is on (its fdinfo), None if unknown."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _readlink(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _names(flags: enum.IntFlag) -> str:
    """``CREATE|ONDIR`` rather than ``<EventMask.CREATE|ONDIR: 1073742080>``."""
    return flags.name or f"{flags.value:#x}"


_INIT_HINTS = {
    _errno.EINVAL: "unknown flags or a combination the kernel refuses, e.g. FID reporting with "
    "a permission class, or REPORT_NAME without REPORT_DIR_FID",
    _errno.EPERM: "fanotify needs CAP_SYS_ADMIN, except FID-mode notification groups on Linux 5.13+",
    _errno.EMFILE: "too many fanotify groups (see /proc/sys/fs/fanotify/max_user_groups) or fds",
}
#: EINVAL for a mark with MarkFlag.SUBTREE on a kernel without subtree marks.
_SUBTREE_HINT = ("this kernel may have no subtree marks (FAN_MARK_SUBTREE comes with fanbpf's "
                 "kernel series; fanbpf.support.subtree_marks() says), or the mark is not a "
                 "subtree root (roots change only with MarkFlag.SUBTREE), or SUBTREE was "
                 "combined with a mount/filesystem mark, an ignore mask or EVICTABLE")

_MARK_HINTS = {
    _errno.EINVAL: "the kernel refuses these events for this mark type or group, e.g. "
    "create/delete/move events need a FID group and no mount mark, permission events a "
    "CLASS_CONTENT group",
    _errno.ENOSPC: "too many marks (see /proc/sys/fs/fanotify/max_user_marks)",
    _errno.EXDEV: "the filesystem does not support FID reporting on this mark type",
    _errno.EOPNOTSUPP: "the filesystem does not support file handles (needed by FID groups)",
    _errno.EEXIST: "the mark exists with flags this call cannot change: a pinned mark cannot "
    "become evictable, an IGNORE mask cannot go back to IGNORED_MASK, and a subtree root "
    "changes only with MarkFlag.SUBTREE",
}


def _raise(err: int, what: str, filename: str | None = None, hints: dict[int, str] | None = None) -> NoReturn:
    """Raise the OSError for ``err`` (FileNotFoundError, PermissionError, ...) via errors.os_error."""
    hint = (hints or {}).get(err)
    raise os_error(err, f"{os.strerror(err)} ({what}{'; ' + hint if hint else ''})", filename)
