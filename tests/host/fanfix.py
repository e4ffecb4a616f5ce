"""Byte fixtures: fanotify read buffers built the way the kernel lays them out.

Independent of fanbpf.events (struct formats written out from
include/uapi/linux/fanotify.h), so the parser is checked against the layout,
not against itself.
"""

import struct

FAN_NOFD = -1


def pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def record(info_type: int, body: bytes, *, pad: bool = True) -> bytes:
    """fanotify_event_info_header + body (padded to 4 like the kernel does)."""
    body = pad4(body) if pad else body
    return struct.pack("=BBH", info_type, 0, 4 + len(body)) + body


def fid(info_type: int, fsid=(0x11223344, 0x55667788), handle_type=1, handle=b"\x01" * 8, name=None) -> bytes:
    """fanotify_event_info_fid: fsid, struct file_handle, optional NUL-terminated name."""
    body = struct.pack("=iiIi", *fsid, len(handle), handle_type) + handle
    if name is not None:
        body += name + b"\0"
    return record(info_type, body)


def pidfd(fd: int) -> bytes:
    return record(4, struct.pack("=i", fd))


def error(err: int, count: int) -> bytes:
    return record(5, struct.pack("=iI", err, count))


def range_(offset: int, count: int) -> bytes:
    return record(6, struct.pack("=IQQ", 0, offset, count))


def mnt(mnt_id: int) -> bytes:
    return record(7, struct.pack("=IQ", 0, mnt_id))


def event(mask: int, *records: bytes, fd: int = FAN_NOFD, pid: int = 1234, vers: int = 3) -> bytes:
    """fanotify_event_metadata (24 bytes) followed by the info records."""
    info = b"".join(records)
    return struct.pack("=IBBHQii", 24 + len(info), vers, 0, 24, mask, fd, pid) + info
