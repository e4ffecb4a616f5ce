# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""File-system operations as data, applied here or by helper processes; a tmpfs per test.

:class:`FsOp` s are what hypothesis draws (:func:`fanbpf.testing.strategies.fs_ops`)
and what :class:`~fanbpf.testing.oracle.OpsRun` applies; :class:`Workers`
perform them from other processes so that events come from other pids.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Optional, Protocol, Self

from fanbpf.errors import os_error

__all__ = ["FsOp", "apply_op", "Workers", "file_handle", "tmpfs_mount", "OPS_DIRS", "OPS_MASK"]

#: The directories :class:`~fanbpf.testing.oracle.OpsRun` creates (and
#: :func:`~fanbpf.testing.strategies.fs_ops` leaves alone).
OPS_DIRS = ("in", "out", "in/sub")
#: Every event the operations of :class:`FsOp` cause (FAN_* bits and FAN_ONDIR).
OPS_MASK = (0x100 | 0x200 | 0x40 | 0x80 | 0x10000000 | 0x400 | 0x800 | 0x20 | 0x1 | 0x2 | 0x8
            | 0x10 | 0x4 | 0x40000000)

_AT_FDCWD = -100
_MNT_DETACH = 2
_HANDLE_HEADER = 8  # struct file_handle: handle_bytes, handle_type


class PrettyPrinter(Protocol):
    """What hypothesis' (and IPython's) pretty printer gives ``_repr_pretty_``."""

    def text(self, obj: str) -> None: ...


@dataclass(frozen=True)
class FsOp:
    """One file-system operation, with paths relative to a base directory.

    ``kind`` is one of :data:`FsOp.KINDS`; ``dest`` is the target of a
    rename; ``proc`` says which process performs it (0: the test process,
    n: :class:`Workers` number n).  Its repr reads like a call, so that a
    shrunk counter-example is a readable list of operations.
    """

    kind: str
    path: str
    dest: Optional[str] = None
    proc: int = 0

    #: create: open(O_CREAT|O_EXCL) + close; write: open, write, close;
    #: open: open read-only + read + close; chmod; mkdir; rmdir; unlink;
    #: rename (to a name that does not exist).
    KINDS = ("create", "write", "open", "chmod", "mkdir", "rmdir", "unlink", "rename")

    def _repr_pretty_(self, printer: PrettyPrinter, cycle: bool) -> None:  # hypothesis prints examples with it
        printer.text(repr(self))

    def __repr__(self) -> str:
        args = [repr(self.path)]
        if self.dest is not None:
            args.append(repr(self.dest))
        if self.proc:
            args.append(f"proc={self.proc}")
        return f"{self.kind}({', '.join(args)})"


def apply_op(base: str, op: FsOp) -> None:
    """Perform ``op`` under ``base`` in this process."""
    path = os.path.join(base, op.path)
    if op.kind == "create":
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    elif op.kind == "write":
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
    elif op.kind == "open":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.read(fd, 1)
        finally:
            os.close(fd)
    elif op.kind == "chmod":
        os.chmod(path, 0o600 if os.stat(path).st_mode & 0o044 else 0o644)
    elif op.kind == "mkdir":
        os.mkdir(path)
    elif op.kind == "rmdir":
        os.rmdir(path)
    elif op.kind == "unlink":
        os.unlink(path)
    elif op.kind == "rename":
        if op.dest is None:
            raise ValueError(f"a rename needs a destination: {op!r}")
        os.rename(path, os.path.join(base, op.dest))
    else:
        raise ValueError(f"unknown operation {op!r}")


def _worker(conn: Connection) -> None:
    while True:
        msg = conn.recv()
        if msg is None:
            return
        base, op = msg
        try:
            apply_op(base, op)
            conn.send(None)
        except Exception as err:  # reported to the parent, which raises it
            conn.send(err)


class Workers:
    """Helper processes that perform :class:`FsOp` s, so events come from other pids.

    ``workers.pids[n - 1]`` is the pid of worker ``n``; :meth:`apply` runs
    an op in the process it names (``proc`` 0: this one) and returns once
    it is done, so its events are queued by then.
    """

    def __init__(self, count: int = 2):
        ctx = multiprocessing.get_context("fork")
        self._conns = []
        self._procs = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child,), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self.pids = [p.pid for p in self._procs]

    def apply(self, base: str, op: FsOp) -> None:
        if op.proc == 0:
            apply_op(base, op)
            return
        conn = self._conns[op.proc - 1]
        conn.send((os.fspath(base), op))
        err = conn.recv()
        if err is not None:
            raise err

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        self._conns = []
        self._procs = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def _check(ret: int, what: str, path: str | bytes) -> None:
    if ret < 0:
        raise os_error(-ret, f"{what}: {os.strerror(-ret)}", path)


def file_handle(path: str | bytes) -> bytes:
    """``name_to_handle_at(2)`` of ``path`` (a final symlink not followed).

    The bytes are those fanotify reports in FID records for the same
    object (same filesystem export operations).
    """
    from fanbpf._binding import ffi, lib

    buf = ffi.new("char[]", 256)
    size = lib.fanbpf_name_to_handle_at(_AT_FDCWD, os.fsencode(path), buf, len(buf), 0)
    _check(size, "name_to_handle_at", path)
    handle: bytes = ffi.unpack(buf, size)[_HANDLE_HEADER:]
    return handle


@contextlib.contextmanager
def tmpfs_mount() -> Iterator[str]:
    """Mount a fresh tmpfs on a new directory, yield its path, unmount it.

    Straight syscalls rather than mount(8): property tests mount one per
    example, and fork+exec is slow in an emulated test VM.
    """
    from fanbpf._binding import ffi, lib

    path = tempfile.mkdtemp(prefix="fanbpf-")
    raw = os.fsencode(path)
    try:
        _check(lib.fanbpf_mount(b"fanbpf-test", raw, b"tmpfs", 0, ffi.NULL), "mount tmpfs", path)
        try:
            yield path
        finally:
            _check(lib.fanbpf_umount2(raw, _MNT_DETACH), "umount", path)
    finally:
        os.rmdir(path)


