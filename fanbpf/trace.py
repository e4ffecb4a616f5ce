# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Trace the file activity of one command and everything it starts (fantrace).

::

    import fanbpf

    result = fanbpf.trace(["make", "-C", "proj"])
    for f in result.files.values():
        print(f.path, sorted(f.ops))

How it works.  The tracer forks a *root* process, a subreaper: every
process the command starts stays below it, even a daemon whose parent
exits.  In ``"cgroup"`` mode the root first moves itself into a fresh
cgroup v2 (and the rule is "that cgroup or below"), in ``"ancestry"``
mode the rule is "the root or a descendant" (fanbpf.rules'
``descendants_of``).  Two fanotify groups watch every file system the
command can reach, each with the built-in rules handler attached, so the
events of other processes are dropped in the kernel: a group whose events
carry an open fd (opens for reading and writing, executions: the path
comes from the fd, so even a file deleted since is named), and a FID group
with directory handles and names (creations, deletions, renames).  Only
once both are attached does the root fork the command and exec it.  The
trace ends when the root has reaped every process below it (in cgroup
mode: when the cgroup is empty), then the queues are drained.

What is reported, per file: ``read`` (closed after being opened
read-only), ``write`` (closed after being opened for writing), ``exec``
(opened for execution: programs, script interpreters, the ELF
interpreter), ``create``, ``delete``, ``rename`` (from the old path to
the new one); directories as ``mkdir``/``rmdir``.  ``read``, ``write``
and ``exec`` name the file by its fd's path when the trace reads the
event: a file renamed before then (``cp a b; mv b c``, read late) is
named ``c``.  The FID group's events carry the name as it was (and their
directory's path as it is when read).  fanotify reports what happened: a
failed open is no event.  Events the handler could not decide
(an ancestry deeper than its walk) are delivered and counted in
:attr:`TraceResult.undecided`; a queue overflow is counted in
:attr:`TraceResult.overflows` and reported -- the trace is then
incomplete.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, TextIO

from fanbpf.flags import EventMask, InitFlag, MarkFlag
from fanbpf.group import Group, PathArg
from fanbpf.rules import cgroup2_mount, rules

if TYPE_CHECKING:
    from fanbpf.events import Event

__all__ = ["trace", "Tracer", "TraceResult", "FileRecord", "TraceEvent", "reachable_filesystems"]

#: Events of the fd group (content: the path comes from the event's fd).
_CONTENT_MASK = EventMask.OPEN_EXEC | EventMask.CLOSE_WRITE | EventMask.CLOSE_NOWRITE
#: Events of the FID group (directory entries).
_ENTRY_MASK = EventMask.CREATE | EventMask.DELETE | EventMask.RENAME | EventMask.ONDIR
_FID_FLAGS = InitFlag.CLASS_NOTIF | InitFlag.REPORT_FID | InitFlag.REPORT_DFID_NAME | \
    InitFlag.UNLIMITED_QUEUE
_FD_FLAGS = InitFlag.CLASS_NOTIF | InitFlag.UNLIMITED_QUEUE
_DELETED = " (deleted)"

#: Report order of the operations.
OPS = ("exec", "read", "write", "create", "mkdir", "delete", "rmdir", "rename")


@dataclass(frozen=True)
class TraceEvent:
    """One operation of the traced tree: ``op`` on ``path`` by ``pid``
    (``rename``: ``path`` is the old path, ``new_path`` the new one)."""

    op: str
    path: str
    pid: int
    new_path: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "event", "op": self.op, "path": self.path, "pid": self.pid}
        if self.new_path is not None:
            out["new_path"] = self.new_path
        return out


@dataclass
class FileRecord:
    """Everything the tree did to one path: ``ops`` counts each operation."""

    path: str
    ops: dict[str, int] = field(default_factory=dict)  # op -> count
    pids: set[int] = field(default_factory=set)
    renamed_to: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "file", "path": self.path, "ops": self.ops, "pids": sorted(self.pids)}
        if self.renamed_to:
            out["renamed_to"] = self.renamed_to
        return out


@dataclass
class TraceResult:
    """What :func:`trace` saw."""

    argv: list[str]
    mode: str  #: "cgroup" or "ancestry"
    returncode: int = 0  #: the command's exit status (128 + N: killed by signal N)
    events: list[TraceEvent] = field(default_factory=list)  #: in the order read
    filesystems: list[str] = field(default_factory=list)  #: mount points marked
    skipped: list[tuple[str, str]] = field(default_factory=list)  #: (mount point, why) not traced
    overflows: int = 0  #: queue overflows: events were lost, the trace is incomplete
    undecided: int = 0  #: events delivered because the handler could not decide

    @property
    def files(self) -> dict[str, FileRecord]:
        """path -> :class:`FileRecord`, in the order paths first appeared."""
        files: dict[str, FileRecord] = {}
        for e in self.events:
            rec = files.setdefault(e.path, FileRecord(e.path))
            rec.ops[e.op] = rec.ops.get(e.op, 0) + 1
            rec.pids.add(e.pid)
            if e.new_path is not None:
                rec.renamed_to.append(e.new_path)
        return files

    def paths(self, op: str) -> set[str]:
        """The paths ``op`` happened to (``rename``: the old paths)."""
        return {e.path for e in self.events if e.op == op}

    def text(self) -> str:
        """A human-readable report."""
        lines = [f"fanbpf trace: {' '.join(self.argv)} (exit {self.returncode}, {self.mode} mode, "
                 f"{len(self.events)} events, {len(self.filesystems)} file systems)"]
        if self.overflows:
            lines.append(f"WARNING: the event queue overflowed {self.overflows} times: "
                         "events were lost, this trace is incomplete")
        if self.undecided:
            lines.append(f"note: {self.undecided} events of processes too deep to decide "
                         "were included (they may belong to other processes)")
        for mount, why in self.skipped:
            lines.append(f"not traced: {mount}: {why}")
        files = self.files
        for op in OPS:
            recs = [r for r in files.values() if op in r.ops]
            if not recs:
                continue
            lines.append(f"{op} ({len(recs)}):")
            for r in recs:
                extra = f" -> {', '.join(r.renamed_to)}" if op == "rename" else ""
                pids = ",".join(map(str, sorted(r.pids)))
                lines.append(f"  {r.path}{extra}  [{r.ops[op]}x, pid {pids}]")
        return "\n".join(lines)

    def json_lines(self) -> Iterable[str]:
        """JSON Lines: one ``event`` object per event, one ``file`` per path,
        then one ``summary``."""
        for e in self.events:
            yield json.dumps(e.to_json())
        for r in self.files.values():
            yield json.dumps(r.to_json())
        yield json.dumps({"type": "summary", "argv": self.argv, "mode": self.mode,
                          "returncode": self.returncode, "events": len(self.events),
                          "overflows": self.overflows, "undecided": self.undecided,
                          "filesystems": self.filesystems,
                          "skipped": [{"mount": m, "why": w} for m, w in self.skipped]})


def reachable_filesystems() -> list[str]:
    """One mount point per file system visible to this process (mount
    namespace), the first mount of each (``/proc/self/mountinfo`` order)."""
    seen: set[str] = set()
    out: list[str] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dev = fields[2]  # major:minor of the superblock
            mount = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
            if dev not in seen:
                seen.add(dev)
                out.append(mount)
    return out


class _Root:
    """The forked root of the traced tree.  It waits on a pipe until the
    tracer has attached, then forks the command, reaps everything below it
    (it is a subreaper) and exits with the command's status."""

    def __init__(self, argv: Sequence[str], env: Optional[Mapping[str, str]], cwd: Optional[PathArg],
                 cgroup: Optional[str]) -> None:
        from fanbpf._binding import lib  # here: the root must not open files once traced

        self._lib = lib
        self.go_r, self.go_w = os.pipe()
        self.err_r, self.err_w = os.pipe2(os.O_CLOEXEC)
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover (the child)
            self._child(list(argv), env, cwd, cgroup)
        os.close(self.go_r)
        os.close(self.err_w)
        self.pidfd = os.pidfd_open(self.pid)

    def _child(self, argv: list[str], env: Optional[Mapping[str, str]], cwd: Optional[PathArg],
               cgroup: Optional[str]) -> None:  # pragma: no cover
        status = 127
        try:
            os.close(self.go_w)
            os.close(self.err_r)
            if cgroup is not None:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write("0")  # this process
            os.write(self.err_w, b"R")  # ready to be released
            if os.read(self.go_r, 1) != b"x":
                os._exit(126)
            os.close(self.go_r)
            # traced from here on (ancestry mode): touch no file
            if self._lib.fanbpf_set_child_subreaper() < 0:
                os._exit(126)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command decides
            cmd = os.fork()
            if cmd == 0:
                try:
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    if cwd is not None:
                        os.chdir(cwd)
                    os.execvpe(argv[0], argv, os.environ if env is None else env)
                except OSError as err:
                    os.write(self.err_w, f"E{err.errno}:{err.strerror}: {argv[0]}".encode())
                os._exit(127)
            os.close(self.err_w)
            while True:  # reap the command and every orphan re-parented here
                try:
                    pid, wstatus = os.wait()
                except ChildProcessError:
                    break
                if pid == cmd:
                    status = os.waitstatus_to_exitcode(wstatus)
                    status = 128 - status if status < 0 else status
        finally:
            os._exit(status)

    def wait_ready(self) -> None:
        """Until the root is in its cgroup (or failed to get there)."""
        if os.read(self.err_r, 1) != b"R":
            os.waitpid(self.pid, 0)
            raise OSError("fanbpf trace: the traced process could not start "
                          "(could not enter its cgroup?)")

    def release(self) -> None:
        os.write(self.go_w, b"x")
        os.close(self.go_w)

    def exec_error(self) -> Optional[OSError]:
        """The command's exec error, once the root has exited."""
        data = b""
        while chunk := os.read(self.err_r, 4096):
            data += chunk
        os.close(self.err_r)
        if not data.startswith(b"E"):
            return None
        code, _, message = data[1:].decode(errors="replace").partition(":")
        return OSError(int(code), message)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


class Tracer:
    """A trace of one command; :meth:`run` it once (or use :func:`trace`).

    ``cgroup``: True to require a fresh cgroup v2, False for ancestry, None
    to use a cgroup when the cgroup v2 hierarchy is writable.  ``fs``: the
    paths whose file systems to watch (default: every file system this
    process can reach).  ``on_event``: called with each :class:`TraceEvent`
    as it is read.
    """

    def __init__(self, argv: Sequence[str], *, fs: Optional[Sequence[PathArg]] = None,
                 cgroup: Optional[bool] = None, env: Optional[Mapping[str, str]] = None,
                 cwd: Optional[PathArg] = None,
                 on_event: Optional[Callable[[TraceEvent], None]] = None) -> None:
        if not argv:
            raise ValueError("trace: no command given")
        self.argv = [os.fsdecode(a) for a in argv]
        self.fs = fs
        self.env = env
        self.cwd = cwd
        self.on_event = on_event
        self._cgroup = self._make_cgroup(cgroup)
        self.result = TraceResult(list(self.argv), "cgroup" if self._cgroup else "ancestry")

    @staticmethod
    def _make_cgroup(want: Optional[bool]) -> Optional[str]:
        if want is False:
            return None
        mount = cgroup2_mount()
        try:
            if mount is None:
                raise OSError("no cgroup v2 hierarchy is mounted")
            with open("/proc/self/cgroup") as f:
                own = next(line[3:].strip() for line in f if line.startswith("0::"))
            # a sibling of our own cgroup: a cgroup with processes may not have
            # children that have controllers, and ours has processes (us)
            parent = os.path.dirname(os.path.join(mount, own.lstrip("/")))
            return tempfile.mkdtemp(prefix="fanbpf-trace-", dir=parent)
        except (OSError, StopIteration) as err:
            if want:
                raise OSError(f"trace --cgroup: cannot create a cgroup v2: {err}") from None
            return None

    def _marks(self, groups: Sequence[tuple[Group, int, str]]) -> None:
        """Mark every file system, in each group on its own: a file system
        without file handles (9p, proc, ...) refuses the FID group's mark
        but may take the fd group's."""
        mounts = reachable_filesystems() if self.fs is None else [os.fsdecode(p) for p in self.fs]
        for mount in mounts:
            failed: list[str] = []
            for group, mask, what in groups:
                try:
                    group.mark(mount, mask, MarkFlag.FILESYSTEM)
                except OSError as err:
                    if self.fs is not None:
                        raise
                    failed.append(f"{what} not traced ({err.strerror or err})")
            if len(failed) < len(groups):
                self.result.filesystems.append(mount)
            if failed:
                self.result.skipped.append((mount, "; ".join(failed)))

    def _content(self, event: Event) -> Iterator[TraceEvent]:
        path = event.path
        if path is None:
            return
        if path.endswith(_DELETED) and event.fd is not None:
            with contextlib.suppress(OSError):
                if os.fstat(event.fd).st_nlink == 0:
                    path = path[:-len(_DELETED)]
        mask = event.mask
        if mask & EventMask.OPEN_EXEC:
            yield TraceEvent("exec", path, event.pid)
        if mask & EventMask.CLOSE_NOWRITE:
            yield TraceEvent("read", path, event.pid)
        if mask & EventMask.CLOSE_WRITE:
            yield TraceEvent("write", path, event.pid)

    def _entry(self, event: Event) -> Iterator[TraceEvent]:
        mask = event.mask
        ondir = bool(mask & EventMask.ONDIR)
        unknown = "?"
        if mask & EventMask.CREATE:
            yield TraceEvent("mkdir" if ondir else "create", event.path or unknown, event.pid)
        if mask & EventMask.DELETE:
            yield TraceEvent("rmdir" if ondir else "delete", event.path or unknown, event.pid)
        if mask & EventMask.RENAME:
            yield TraceEvent("rename", event.old_path or unknown, event.pid,
                             event.new_path or unknown)

    def _read(self, group: Group, convert: Callable[[Event], Iterable[TraceEvent]]) -> None:
        for event in group.drain():
            if event.mask & EventMask.Q_OVERFLOW:
                continue  # counted by the group
            for e in convert(event):
                self.result.events.append(e)
                if self.on_event is not None:
                    self.on_event(e)

    def run(self) -> TraceResult:
        from fanbpf.handler import Handler

        result = self.result
        with contextlib.ExitStack() as stack:
            if self._cgroup is not None:
                stack.callback(_remove_cgroup, self._cgroup)
            # private: never listed
            handler = stack.enter_context(Handler.load("rules", private=True))
            content = stack.enter_context(Group(_FD_FLAGS))
            entries = stack.enter_context(Group(_FID_FLAGS))
            root = _Root(self.argv, self.env, self.cwd, self._cgroup)
            stack.callback(os.close, root.pidfd)
            try:
                root.wait_ready()
                if self._cgroup is not None:
                    args = rules(cgroup_tree=self._cgroup, exclude_pid=True)
                else:
                    args = rules(descendants_of=root.pid, exclude_pid=True)
                # attach, then mark: a group marked first would queue other
                # processes' events, unfiltered, until the attach
                attachments = (content.attach(handler, args), entries.attach(handler, args))
                self._marks([(content, _CONTENT_MASK, "reads, writes and executions"),
                             (entries, _ENTRY_MASK, "creations, deletions and renames")])
                root.release()
            except BaseException:
                root.kill()
                raise
            groups = ((content, self._content), (entries, self._entry))
            try:
                while True:
                    ready, _, _ = select.select(
                        [content.fileno(), entries.fileno(), root.pidfd], [], [])
                    for group, convert in groups:
                        if group.fileno() in ready:
                            self._read(group, convert)
                    if root.pidfd in ready:
                        break
            except BaseException:
                root.kill()
                raise
            _, wstatus = os.waitpid(root.pid, 0)
            if self._cgroup is not None:
                _wait_empty(self._cgroup)
            for group, convert in groups:  # everything the tree did is queued now
                self._read(group, convert)
            result.overflows = content.overflows + entries.overflows
            result.undecided = sum(att.stats.undecided for att in attachments)
            error = root.exec_error()
            if error is not None:
                raise error
            result.returncode = os.waitstatus_to_exitcode(wstatus)
        return result


def _wait_empty(cgroup: str) -> None:
    """Until no process is left in ``cgroup`` (cgroup.events: populated 0)."""
    events = os.path.join(cgroup, "cgroup.events")
    with open(events) as f:
        poller = select.poll()
        poller.register(f, select.POLLPRI)
        while True:
            f.seek(0)
            if "populated 0" in f.read():
                return
            poller.poll()  # the kernel signals a change as POLLPRI


def _remove_cgroup(cgroup: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(cgroup)


def trace(argv: Sequence[str], *, fs: Optional[Sequence[PathArg]] = None,
          cgroup: Optional[bool] = None, env: Optional[Mapping[str, str]] = None,
          cwd: Optional[PathArg] = None,
          on_event: Optional[Callable[[TraceEvent], None]] = None) -> TraceResult:
    """Run ``argv`` and return what it and every process it started did to
    files (see :mod:`fanbpf.trace` and :class:`Tracer` for the options).
    Needs root (CAP_SYS_ADMIN, CAP_BPF) and a kernel with the fastpath hook;
    raises :class:`fanbpf.KernelSupportError` without it -- there is no
    user-space fallback, which could not tell the tree's events from others'.
    An exec failure of the command is raised as its OSError."""
    return Tracer(argv, fs=fs, cgroup=cgroup, env=env, cwd=cwd, on_event=on_event).run()


def main_text(result: TraceResult, json_lines: bool, out: Optional[TextIO] = None) -> None:
    """Print ``result`` as the CLI does."""
    out = out or sys.stdout
    if json_lines:
        for line in result.json_lines():
            print(line, file=out)
    else:
        print(result.text(), file=out)
