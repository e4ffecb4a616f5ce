# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""fanotify events: frozen dataclasses and a pure parser for ``read(2)`` buffers.

:func:`parse_events` turns the bytes read from a fanotify fd into
:class:`Event` objects. It makes no system calls, so it can be tested with
byte fixtures and fuzzed; :class:`fanbpf.group.Group` reads the fd, calls it
and then fills in :attr:`Event.path`.

A buffer is a run of events, each a 24-byte ``fanotify_event_metadata``
followed by zero or more info records (``fanotify_event_info_header`` plus
a body). The kernel never splits an event across reads, so anything that
does not add up is corruption and raises :class:`ValueError`. Info record
types this module does not know (newer kernels add them) are kept as
:class:`UnknownInfo` and skipped by their length.

File descriptors: an event may carry an open fd (groups without FID
reporting) and a pidfd (``InitFlag.REPORT_PIDFD``). The event owns them.
Use :meth:`Event.fileno` to use the fd, :meth:`Event.take_fd` to keep it
past the event's life, and :meth:`Event.close` (or ``with event:``) to close
it early; a :class:`~fanbpf.group.Group` closes whatever is left when it
reads its next batch. :attr:`Event.fd` is only the number the kernel
reported, kept for logging and for matching permission responses.
"""

from __future__ import annotations

import os
import struct
import sys
from dataclasses import dataclass, field, fields
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, Union

from .flags import PERMISSION_EVENTS, EventMask, InfoType

__all__ = [
    "Event",
    "FidInfo",
    "DirFidNameInfo",
    "PidfdInfo",
    "ErrorInfo",
    "RangeInfo",
    "MntInfo",
    "UnknownInfo",
    "InfoRecord",
    "parse_events",
    "METADATA_VERSION",
]

#: ``FANOTIFY_METADATA_VERSION``: the only layout this parser understands.
METADATA_VERSION = 3

_METADATA = struct.Struct("=IBBHQii")  # event_len vers reserved metadata_len mask fd pid
_HEADER = struct.Struct("=BBH")  # info_type pad len
_FSID_HANDLE = struct.Struct("=IIIi")  # fsid.val[0] fsid.val[1] handle_bytes handle_type
_FILE_HANDLE = struct.Struct("=Ii")  # struct file_handle: handle_bytes handle_type
_PIDFD = struct.Struct("=i")
_ERROR = struct.Struct("=iI")
_RANGE = struct.Struct("=IQQ")  # pad offset count
_MNT = struct.Struct("=IQ")  # pad (u64 alignment) mnt_id
_NOFD = -1


class _Handle:
    """Shared by the two handle-carrying records."""

    __slots__ = ()
    handle_type: int
    handle: bytes

    @property
    def file_handle(self) -> bytes:
        """The handle as a raw ``struct file_handle``, as ``open_by_handle_at(2)`` takes it."""
        return _FILE_HANDLE.pack(len(self.handle), self.handle_type) + self.handle


@dataclass(frozen=True, slots=True)
class FidInfo(_Handle):
    """A file handle: of the object (``InfoType.FID``) or its directory (``DFID``).

    ``fsid`` is the filesystem id as one 64-bit number (``val[0] | val[1] << 32``),
    the same value ``os.statvfs(path).f_fsid`` gives, so it can be matched
    to a marked path. ``handle`` is opaque: only the filesystem can decode it.
    """

    info_type: InfoType
    fsid: int
    handle_type: int
    handle: bytes


@dataclass(frozen=True, slots=True)
class DirFidNameInfo(_Handle):
    """A directory handle plus an entry name in it.

    ``info_type`` is ``DFID_NAME`` (the entry the event is about; ``"."``
    for the directory itself), or ``OLD_DFID_NAME``/``NEW_DFID_NAME`` (both
    ends of a ``RENAME`` event).
    """

    info_type: InfoType
    fsid: int
    handle_type: int
    handle: bytes
    name: str


@dataclass(frozen=True, slots=True)
class PidfdInfo:
    """The acting process as a pidfd (``-1``: none, ``-2``: the process is gone)."""

    info_type: ClassVar[InfoType] = InfoType.PIDFD
    pidfd: int


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A filesystem error (``FS_ERROR`` events): the first errno and how many followed."""

    info_type: ClassVar[InfoType] = InfoType.ERROR
    error: int
    error_count: int


@dataclass(frozen=True, slots=True)
class RangeInfo:
    """The byte range a pre-content event is about (Linux 6.14+)."""

    info_type: ClassVar[InfoType] = InfoType.RANGE
    offset: int
    count: int


@dataclass(frozen=True, slots=True)
class MntInfo:
    """The mount a mount event is about, as a ``statmount(2)`` id (Linux 6.14+)."""

    info_type: ClassVar[InfoType] = InfoType.MNT
    mnt_id: int


@dataclass(frozen=True, slots=True)
class UnknownInfo:
    """A record of a type this version does not parse: its type and its body."""

    info_type: int
    data: bytes


InfoRecord = Union[FidInfo, DirFidNameInfo, PidfdInfo, ErrorInfo, RangeInfo, MntInfo, UnknownInfo]
_R = TypeVar("_R", FidInfo, DirFidNameInfo, ErrorInfo)


class _OwnedFds:
    """The fds an event owns, shared by an event and its ``dataclasses.replace`` copies.

    One shared box, not per-copy state, so that no copy can close an fd a
    sibling already closed (the number may belong to another file by then).
    """

    __slots__ = ("fd", "pidfd", "pinned")

    def __init__(self, fd: int | None, pidfd: int | None) -> None:
        self.fd = fd
        self.pidfd = pidfd
        # Set by the group while a permission event awaits its response: the
        # kernel matches a response by fd number, so the number must not be
        # freed (and maybe reused by the next permission event) before then.
        self.pinned = False

    def close(self) -> None:
        fds = [self.pidfd] if self.pinned else [self.fd, self.pidfd]
        if not self.pinned:
            self.fd = None
        self.pidfd = None
        for fd in fds:
            if fd is not None:
                os.close(fd)

    def release(self) -> None:
        """Unpin and close everything (the group answered, or is closing)."""
        self.pinned = False
        self.close()


@dataclass(frozen=True, slots=True)
class Event:
    """One fanotify event.

    ``mask`` says what happened (possibly several bits: the kernel merges
    identical events). ``pid`` is the acting process (thread with
    ``REPORT_TID``). ``fd`` is the number of the open file the kernel
    reported (``None``: FID groups, overflow, or an error, then in
    ``fd_error``). ``info`` holds the info records in kernel order.
    ``path``, ``old_path`` and ``new_path`` are filled in by the group
    when it can resolve them; the parser leaves them ``None``.
    """

    mask: EventMask
    pid: int = 0
    fd: int | None = None
    info: tuple[InfoRecord, ...] = ()
    fd_error: int | None = None
    path: str | None = None
    old_path: str | None = None
    new_path: str | None = None
    _fds: _OwnedFds | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._fds is None:
            object.__setattr__(self, "_fds", _owned_fds(self.fd, self.info))

    def _set_paths(self, path: str | None, old_path: str | None = None, new_path: str | None = None) -> None:
        """Fill in the paths: for the group, before it hands the event out.
        In place, as a ``dataclasses.replace`` copy per event cost the reader
        a fifth of its time."""
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "old_path", old_path)
        object.__setattr__(self, "new_path", new_path)

    # --- the info records, by role ---------------------------------------

    def _record(self, cls: type[_R], *types: InfoType) -> _R | None:
        return next((r for r in self.info if isinstance(r, cls) and r.info_type in types), None)

    @property
    def fid(self) -> FidInfo | None:
        """The object's handle (``REPORT_FID``), if reported."""
        return self._record(FidInfo, InfoType.FID)

    @property
    def dfid(self) -> FidInfo | DirFidNameInfo | None:
        """The directory's handle (``DFID`` or ``DFID_NAME`` record), if reported."""
        return self._record(FidInfo, InfoType.DFID) or \
            self._record(DirFidNameInfo, InfoType.DFID_NAME)

    @property
    def name(self) -> str | None:
        """The entry name (``REPORT_NAME``); ``"."`` when the event is on the directory itself."""
        record = self._record(DirFidNameInfo, InfoType.DFID_NAME)
        return record.name if record else None

    @property
    def old_name(self) -> str | None:
        """For ``RENAME``: the entry's name before the rename."""
        record = self._record(DirFidNameInfo, InfoType.OLD_DFID_NAME)
        return record.name if record else None

    @property
    def new_name(self) -> str | None:
        """For ``RENAME``: the entry's name after the rename."""
        record = self._record(DirFidNameInfo, InfoType.NEW_DFID_NAME)
        return record.name if record else None

    @property
    def error(self) -> ErrorInfo | None:
        """For ``FS_ERROR``: the error record."""
        return self._record(ErrorInfo, InfoType.ERROR)

    # int.__and__: a flag & would build an EventMask per call, which the
    # reader asks of every event.

    @property
    def is_dir(self) -> bool:
        """Whether the object is a directory (``ONDIR``)."""
        return bool(int.__and__(self.mask, EventMask.ONDIR))

    @property
    def is_permission(self) -> bool:
        """Whether the kernel waits for a response to this event."""
        return bool(int.__and__(self.mask, PERMISSION_EVENTS))

    @property
    def is_overflow(self) -> bool:
        """Whether this is the queue-overflow marker: events were lost before it."""
        return bool(int.__and__(self.mask, EventMask.Q_OVERFLOW))

    # --- owned file descriptors -------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the event holds no open fd (closed, taken, or never had one)."""
        return self._fds is None or (self._fds.fd is None and self._fds.pidfd is None)

    def fileno(self) -> int:
        """The event's open fd, while the event still owns it.

        Raises ValueError if the event has no fd or it was closed or taken:
        unlike ``fd``, this never hands out a number that may have been reused.
        """
        if self._fds is None or self._fds.fd is None:
            raise ValueError(f"event has no open fd (reported fd: {self.fd})")
        return self._fds.fd

    @property
    def pidfd(self) -> int | None:
        """The open pidfd of the acting process (``REPORT_PIDFD``), while owned."""
        return self._fds.pidfd if self._fds else None

    def take_fd(self) -> int:
        """Take over the event's fd: the library will not close it; you must."""
        fd = self.fileno()
        assert self._fds is not None
        self._fds.fd = None
        return fd

    def take_pidfd(self) -> int:
        """Take over the pidfd: the library will not close it; you must."""
        pidfd = self.pidfd
        if pidfd is None:
            raise ValueError("event has no open pidfd")
        assert self._fds is not None
        self._fds.pidfd = None
        return pidfd

    def close(self) -> None:
        """Close the fds the event still owns. Idempotent.

        The fd of a permission event that is still unanswered stays open
        until the group responds (or closes): the response names the event
        by that number.
        """
        if self._fds is not None:
            self._fds.close()

    def __enter__(self) -> Event:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _owned_fds(fd: int | None, info: tuple[InfoRecord, ...]) -> _OwnedFds | None:
    """The box for the fds a new event owns: its fd and its pidfd record's, if any."""
    pidfd = -1
    for record in info:  # a loop: next() over a generator cost the reader 5%
        if isinstance(record, PidfdInfo):
            pidfd = record.pidfd
            break
    if fd is None and pidfd < 0:
        return None
    return _OwnedFds(fd, pidfd if pidfd >= 0 else None)


def _slot_setters(cls: type, *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The ``__set__`` of each slot of a frozen dataclass, for the parser's
    constructors below; ``names`` must be all its fields, in order."""
    if tuple(f.name for f in fields(cls)) != names:
        raise TypeError(f"{cls.__name__}'s fields changed: update the parser's constructor of it")
    return tuple(getattr(cls, name).__set__ for name in names)


# The parser's constructors of events and handle records. A frozen
# dataclass's __init__ sets each field through object.__setattr__; the slot
# descriptors' own setters take half the time, and the parser makes an event
# and one or two records per event read. Same objects as the __init__s make.
def _event_constructor() -> Callable[
        [EventMask, int, int | None, tuple[InfoRecord, ...], int | None], Event]:
    set_mask, set_pid, set_fd, set_info, set_fd_error, set_path, set_old_path, set_new_path, set_fds = (
        _slot_setters(Event, "mask", "pid", "fd", "info", "fd_error", "path", "old_path", "new_path", "_fds")
    )
    new = object.__new__

    def new_event(mask: EventMask, pid: int, fd: int | None, info: tuple[InfoRecord, ...],
                  fd_error: int | None) -> Event:
        event = new(Event)
        set_mask(event, mask)
        set_pid(event, pid)
        set_fd(event, fd)
        set_info(event, info)
        set_fd_error(event, fd_error)
        set_path(event, None)
        set_old_path(event, None)
        set_new_path(event, None)
        set_fds(event, _owned_fds(fd, info))
        return event

    return new_event


def _handle_record_constructors() -> tuple[Callable[[InfoType, int, int, bytes], FidInfo],
                                           Callable[[InfoType, int, int, bytes, str],
                                                    DirFidNameInfo]]:
    set_type, set_fsid, set_handle_type, set_handle = _slot_setters(
        FidInfo, "info_type", "fsid", "handle_type", "handle"
    )
    dir_type, dir_fsid, dir_handle_type, dir_handle, dir_name = _slot_setters(
        DirFidNameInfo, "info_type", "fsid", "handle_type", "handle", "name"
    )
    new = object.__new__

    def new_fid(info_type: InfoType, fsid: int, handle_type: int, handle: bytes) -> FidInfo:
        record = new(FidInfo)
        set_type(record, info_type)
        set_fsid(record, fsid)
        set_handle_type(record, handle_type)
        set_handle(record, handle)
        return record

    def new_dir_fid_name(
        info_type: InfoType, fsid: int, handle_type: int, handle: bytes, name: str
    ) -> DirFidNameInfo:
        record = new(DirFidNameInfo)
        dir_type(record, info_type)
        dir_fsid(record, fsid)
        dir_handle_type(record, handle_type)
        dir_handle(record, handle)
        dir_name(record, name)
        return record

    return new_fid, new_dir_fid_name


_new_event = _event_constructor()
_new_fid, _new_dir_fid_name = _handle_record_constructors()


def parse_events(buf: bytes | bytearray | memoryview) -> list[Event]:
    """Parse a buffer read from a fanotify fd into events.

    Pure: no system calls; the fds in the events are taken as they are (the
    returned events own them). Raises ValueError, naming the offset, when
    the buffer is truncated or inconsistent.
    """
    # bytes and offsets into them, not memoryview slices: a slice per event
    # and per record, then a copy of each handle and name, cost more than
    # the one copy of a buffer that is not bytes already.
    data = buf if isinstance(buf, bytes) else memoryview(buf).cast("B").tobytes()
    size = len(data)
    events = []
    offset = 0
    while offset < size:
        if size - offset < _METADATA.size:
            raise ValueError(
                f"truncated event at offset {offset}: {size - offset} bytes, metadata needs {_METADATA.size}"
            )
        event_len, vers, _, metadata_len, mask, fd, pid = _METADATA.unpack_from(data, offset)
        if vers != METADATA_VERSION:
            raise ValueError(f"event at offset {offset}: metadata version {vers}, expected {METADATA_VERSION}")
        if not _METADATA.size <= metadata_len <= event_len:
            raise ValueError(
                f"event at offset {offset}: bad lengths (event_len {event_len}, metadata_len {metadata_len})"
            )
        end = offset + event_len
        if end > size:
            raise ValueError(
                f"truncated event at offset {offset}: event_len {event_len}, {size - offset} bytes left"
            )
        event_mask = _MASKS.get(mask)
        if event_mask is None:
            event_mask = _MASKS[mask] = EventMask(mask)
        info = _parse_info(data, offset + metadata_len, end)
        events.append(_new_event(event_mask, pid, fd if fd >= 0 else None, info, -fd if fd < _NOFD else None))
        offset = end
    return events


def _parse_info(data: bytes, offset: int, end: int) -> tuple[InfoRecord, ...]:
    """Parse the info records of one event, from ``offset`` to ``end`` in ``data``."""
    records = []
    while offset < end:
        if end - offset < _HEADER.size:
            raise ValueError(f"truncated info record at offset {offset}: {end - offset} bytes")
        info_type, _, length = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > end:
            raise ValueError(
                f"info record at offset {offset}: length {length} does not fit the {end - offset} bytes left"
            )
        try:
            records.append(_parse_record(info_type, data, offset + _HEADER.size, offset + length))
        except ValueError as err:
            raise ValueError(f"info record at offset {offset} (type {info_type}): {err}") from None
        offset += length
    return tuple(records)


def _parse_record(info_type: int, data: bytes, start: int, end: int) -> InfoRecord:
    """The record whose body is ``data[start:end]``."""
    kind = _HANDLE_TYPES.get(info_type)
    if kind is not None:
        fsid0, fsid1, handle_bytes, handle_type = _body(_FSID_HANDLE, data, start, end)
        handle_start = start + _FSID_HANDLE.size
        handle_end = handle_start + handle_bytes
        if handle_end > end:
            raise ValueError(f"handle of {handle_bytes} bytes overruns the record")
        fsid = fsid0 | fsid1 << 32
        handle = data[handle_start:handle_end]
        if kind is InfoType.FID or kind is InfoType.DFID:
            return _new_fid(kind, fsid, handle_type, handle)
        nul = data.find(b"\0", handle_end, end)
        if nul < 0:
            raise ValueError("name is not NUL-terminated")
        name = data[handle_end:nul].decode(_FS_ENCODING, _FS_ERRORS)
        return _new_dir_fid_name(kind, fsid, handle_type, handle, name)
    if info_type == InfoType.PIDFD:
        return PidfdInfo(*_body(_PIDFD, data, start, end))
    if info_type == InfoType.ERROR:
        return ErrorInfo(*_body(_ERROR, data, start, end))
    if info_type == InfoType.RANGE:
        return RangeInfo(*_body(_RANGE, data, start, end)[1:])
    if info_type == InfoType.MNT:
        return MntInfo(_body(_MNT, data, start, end)[1])
    return UnknownInfo(info_type, data[start:end])


def _body(layout: struct.Struct, data: bytes, start: int, end: int) -> tuple[Any, ...]:
    """Unpack a record's body, which must hold at least ``layout``."""
    if end - start < layout.size:
        raise ValueError(f"body of {end - start} bytes, shorter than the {layout.size} its type needs")
    return layout.unpack_from(data, start)


# os.fsdecode's codec, without a call through it per name.
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
# Dict lookups, not enum calls: the enum constructors were a sixth of the reader's time.
_HANDLE_TYPES = {
    int(kind): kind
    for kind in (InfoType.FID, InfoType.DFID, InfoType.DFID_NAME, InfoType.OLD_DFID_NAME, InfoType.NEW_DFID_NAME)
}
# The masks seen so far (an event stream has few distinct ones; EventMask
# keeps every one it made anyway).
_MASKS: dict[int, EventMask] = {}
