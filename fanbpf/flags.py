# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""fanotify flag and mask values as :class:`enum.IntFlag` classes.

Every value is copied from the kernel's ``include/uapi/linux/fanotify.h``
(Linux 6.12 for the base set; members marked "Linux 6.13+" / "6.14+" come
from later uapi headers). They are spelled out here instead of read from the
compiled binding so that the pure parts of fanbpf (event parsing, the CLI's
argument handling) import without a C extension. ``tests/host/test_flags.py``
checks them against the system's and the 6.12 kernel source's header.

The classes use :class:`enum.IntFlag`'s default ``KEEP`` boundary, so bits a
newer kernel sets and this module does not know survive a round trip instead
of raising.
"""

from __future__ import annotations

import enum

__all__ = ["InitFlag", "EventMask", "MarkFlag", "Response", "InfoType", "PERMISSION_EVENTS"]


class InitFlag(enum.IntFlag):
    """Flags for ``fanotify_init(2)``: the group's class and event format.

    The three ``CLASS_*`` values are a two-bit field, not independent bits:
    ``CLASS_NOTIF`` is 0, so it is the default whenever neither of the others
    is set. The ``REPORT_*`` flags choose what each event carries: an open fd
    (none of the FID flags), or file handles and names (``REPORT_FID``,
    ``REPORT_DIR_FID``, ``REPORT_NAME``), which also make directory-entry
    events (create, delete, move) reportable at all.
    """

    #: Notification only; no permission events (the default class).
    CLASS_NOTIF = 0x00000000
    #: May receive permission events, after the file content is final.
    CLASS_CONTENT = 0x00000004
    #: May receive permission events before content is final (HSM use).
    CLASS_PRE_CONTENT = 0x00000008
    #: Set close-on-exec on the fanotify fd.
    CLOEXEC = 0x00000001
    #: Make the fanotify fd non-blocking.
    NONBLOCK = 0x00000002
    #: Lift the 16384-event queue limit (overflow events are then never sent).
    UNLIMITED_QUEUE = 0x00000010
    #: Lift the per-user mark limit.
    UNLIMITED_MARKS = 0x00000020
    #: Allow permission responses to carry ``Response.AUDIT``.
    ENABLE_AUDIT = 0x00000040
    #: Add a pidfd info record for the acting process (Linux 5.15+).
    REPORT_PIDFD = 0x00000080
    #: Report the thread id instead of the process id in ``Event.pid``.
    REPORT_TID = 0x00000100
    #: Report a file handle of the object instead of an open fd (Linux 5.1+).
    REPORT_FID = 0x00000200
    #: Report a file handle of the parent directory (Linux 5.9+).
    REPORT_DIR_FID = 0x00000400
    #: Report the entry name with the directory handle; needs ``REPORT_DIR_FID``.
    REPORT_NAME = 0x00000800
    #: Also report the child's handle for directory-entry events (Linux 5.17+).
    REPORT_TARGET_FID = 0x00001000
    #: Let ``Event.fd`` carry ``-errno`` when the kernel could not open the file (Linux 6.13+).
    REPORT_FD_ERROR = 0x00002000
    #: Report mount attach/detach events with a mount id record (Linux 6.14+).
    REPORT_MNT = 0x00004000
    #: ``REPORT_DIR_FID | REPORT_NAME``: directory handle plus entry name.
    REPORT_DFID_NAME = REPORT_DIR_FID | REPORT_NAME
    #: ``REPORT_DFID_NAME | REPORT_FID | REPORT_TARGET_FID``: everything.
    REPORT_DFID_NAME_TARGET = REPORT_DFID_NAME | REPORT_FID | REPORT_TARGET_FID


class EventMask(enum.IntFlag):
    """Event bits, used both in ``fanotify_mark(2)`` masks and in ``Event.mask``.

    ``ONDIR`` and ``EVENT_ON_CHILD`` are modifiers: in a mark they ask for
    events on directories and on a directory's children; in an event,
    ``ONDIR`` says the object is a directory.
    """

    #: A file was read.
    ACCESS = 0x00000001
    #: A file was written.
    MODIFY = 0x00000002
    #: Metadata changed (needs a FID group).
    ATTRIB = 0x00000004
    #: A file opened for writing was closed.
    CLOSE_WRITE = 0x00000008
    #: A file opened read-only was closed.
    CLOSE_NOWRITE = 0x00000010
    #: A file or directory was opened.
    OPEN = 0x00000020
    #: An entry was moved out of a watched directory (FID groups).
    MOVED_FROM = 0x00000040
    #: An entry was moved into a watched directory (FID groups).
    MOVED_TO = 0x00000080
    #: An entry was created in a watched directory (FID groups).
    CREATE = 0x00000100
    #: An entry was deleted from a watched directory (FID groups).
    DELETE = 0x00000200
    #: The watched object itself was deleted (FID groups).
    DELETE_SELF = 0x00000400
    #: The watched object itself was moved (FID groups).
    MOVE_SELF = 0x00000800
    #: A file was opened to be executed.
    OPEN_EXEC = 0x00001000
    #: The event queue overflowed; events were lost (never in a mark mask).
    Q_OVERFLOW = 0x00004000
    #: A filesystem error was reported (filesystem marks, FID groups).
    FS_ERROR = 0x00008000
    #: Permission to open a file is requested.
    OPEN_PERM = 0x00010000
    #: Permission to read a file is requested.
    ACCESS_PERM = 0x00020000
    #: Permission to open a file for execution is requested.
    OPEN_EXEC_PERM = 0x00040000
    #: Permission before content access (pre-content groups, Linux 6.14+).
    PRE_ACCESS = 0x00100000
    #: A mount was attached (``REPORT_MNT`` groups, Linux 6.14+).
    MNT_ATTACH = 0x01000000
    #: A mount was detached (``REPORT_MNT`` groups, Linux 6.14+).
    MNT_DETACH = 0x02000000
    #: Mark modifier: also report events on the children of a marked directory.
    EVENT_ON_CHILD = 0x08000000
    #: An entry was renamed; one event with old and new names (Linux 5.17+).
    RENAME = 0x10000000
    #: The object is a directory (mark: also report events on directories).
    ONDIR = 0x40000000
    #: ``CLOSE_WRITE | CLOSE_NOWRITE``.
    CLOSE = CLOSE_WRITE | CLOSE_NOWRITE
    #: ``MOVED_FROM | MOVED_TO``.
    MOVE = MOVED_FROM | MOVED_TO


#: The events that wait for a :class:`Response` from user space.
PERMISSION_EVENTS = (
    EventMask.OPEN_PERM | EventMask.ACCESS_PERM | EventMask.OPEN_EXEC_PERM | EventMask.PRE_ACCESS
)


class MarkFlag(enum.IntFlag):
    """Flags for ``fanotify_mark(2)``, without the operation bits.

    ``Group.mark``/``unmark``/``flush`` choose the operation (add, remove,
    flush) themselves. The mark type is a two-bit field: ``INODE`` (0, the
    default), ``MOUNT``, ``FILESYSTEM`` or ``MNTNS`` (both bits).
    """

    #: Mark the inode the path names (the default type).
    INODE = 0x00000000
    #: Mark the mount containing the path.
    MOUNT = 0x00000010
    #: Mark the whole filesystem containing the path (Linux 4.20+).
    FILESYSTEM = 0x00000100
    #: Mark a mount namespace given by an nsfs path (Linux 6.14+).
    MNTNS = 0x00000110
    #: Do not follow a trailing symlink.
    DONT_FOLLOW = 0x00000004
    #: Fail with ``ENOTDIR`` unless the path is a directory.
    ONLYDIR = 0x00000008
    #: The mask is an ignore mask (legacy; prefer ``IGNORE``).
    IGNORED_MASK = 0x00000020
    #: The ignore mask survives modification of the file.
    IGNORED_SURV_MODIFY = 0x00000040
    #: The inode mark may be evicted with the inode (Linux 5.19+).
    EVICTABLE = 0x00000200
    #: The mask is an ignore mask that also honours ``ONDIR``/``EVENT_ON_CHILD`` (Linux 6.0+).
    IGNORE = 0x00000400
    #: ``IGNORE | IGNORED_SURV_MODIFY``: required for non-inode ignore marks.
    IGNORE_SURV = IGNORE | IGNORED_SURV_MODIFY
    #: The directory is a subtree root: every directory below it carries a
    #: mark with the same mask, made, moved in or looked up later too, and
    #: events outside never reach the group (fanbpf's kernel series;
    #: ``CAP_SYS_ADMIN``; implies ``EVENT_ON_CHILD``). A root is changed and
    #: removed only with this flag. See :func:`fanbpf.support.subtree_marks`.
    SUBTREE = 0x00000800


class Response(enum.IntFlag):
    """Answers to a permission event, written back to the group."""

    #: Let the access proceed.
    ALLOW = 0x01
    #: Fail the access (with ``EPERM`` unless a custom errno is encoded).
    DENY = 0x02
    #: Also write an audit record (needs ``InitFlag.ENABLE_AUDIT``).
    AUDIT = 0x10


class InfoType(enum.IntEnum):
    """Types of the variable-length info records that follow event metadata."""

    FID = 1
    DFID_NAME = 2
    DFID = 3
    PIDFD = 4
    ERROR = 5
    RANGE = 6  # Linux 6.14+
    MNT = 7  # Linux 6.14+
    OLD_DFID_NAME = 10
    NEW_DFID_NAME = 12
