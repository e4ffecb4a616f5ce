"""fanbpf trace in the test kernel: what a process tree did to files, checked
against strace, and nothing of other processes.

The strace comparison runs each command twice, under ``strace -f -y -e
trace=%file`` and under :func:`fanbpf.trace`, and compares, within the
test's work directory and for executions everywhere, the sets of files
opened for reading, opened for writing, created, deleted and executed.
The differences that are inherent, and that the comparison allows
(the README's trace section lists them too):

- strace sees every attempt, fanotify only what happened: failed opens,
  execs and unlinks are dropped from the strace side;
- an ``O_RDWR`` open is a write to fanotify (``CLOSE_WRITE``), a read and a
  write to strace: strace's read set counts ``O_RDONLY`` opens only;
- fanotify reports the opens of the ELF interpreter and of ``#!``
  interpreters as executions (the kernel opens them for exec), strace
  shows the ``execve`` of the program only: fanotify's exec set may hold
  more, and only interpreters;
- strace cannot tell an ``O_CREAT`` open that created the file from one
  that found it: fanotify's created files must be among strace's
  ``O_CREAT`` opens, ``mkdir`` s and rename/link targets, and strace's
  ``mkdir`` s and ``O_EXCL`` creations among fanotify's.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import fanbpf
from fanbpf.trace import TraceResult

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "cproj")
INTERPRETER = re.compile(r"/ld-linux[^/]*\.so[^/]*$|/python3[.\d]*$|/(da|ba)?sh$")


@pytest.fixture
def work(tmpfs):
    """A work directory on a fresh tmpfs, the cwd of the commands."""
    return tmpfs


def real(path):
    return os.path.realpath(path)


# --- strace's side ----------------------------------------------------------------

# "PID  name(args) = ret<path>"; a resumed call's "=" is padded with spaces
_CALL = re.compile(r"^(\d+) +(\w+)\((.*)\) +=  ?(-?\d+)(?:<(.*)>)?(?: .*)?$")
_ARG = re.compile(r'(AT_FDCWD|\d+)<([^>]*)>, "((?:[^"\\]|\\.)*)"|"((?:[^"\\]|\\.)*)"')


class StraceSets:
    """The successful file operations in an ``strace -f -y`` log, as sets of
    absolute paths."""

    def __init__(self, log: str, cwd: str):
        self.read, self.write, self.created, self.maybe_created = set(), set(), set(), set()
        self.deleted, self.executed = set(), set()
        self.changed_dir = False
        pending = {}
        for line in log.splitlines():
            m = re.match(r"^(\d+) +(.*) <unfinished \.\.\.>$", line)
            if m:
                pending[m.group(1)] = m.group(2)
                continue
            m = re.match(r"^(\d+) +<\.\.\. \w+ resumed>(.*)$", line)
            if m:
                line = f"{m.group(1)} {pending.pop(m.group(1), '')}{m.group(2)}"
            call = _CALL.match(line)
            if call and int(call.group(4)) >= 0:
                self._add(call.group(2), call.group(3), call.group(5), cwd)

    def _paths(self, args: str, cwd: str):
        out = []
        for m in _ARG.finditer(args):
            if m.group(3) is not None:  # dirfd<dir>, "path"
                base, path = m.group(2), m.group(3)
            else:
                base, path = cwd, m.group(4)
                # -y names the cwd of *at calls only
                assert path.startswith("/") or not self.changed_dir, \
                    f"a relative path {path!r} after a chdir: ambiguous in this comparison"
            out.append(os.path.normpath(os.path.join(base, path)))
        return out

    _USED = {"open", "openat", "openat2", "creat", "execve", "execveat", "unlink", "unlinkat",
             "rmdir", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "link", "linkat",
             "symlink", "symlinkat"}

    def _add(self, name: str, args: str, result_path, cwd: str) -> None:
        if name in ("chdir", "fchdir"):
            self.changed_dir = True
        if name not in self._USED:
            return
        paths = self._paths(args, cwd)
        if name in ("open", "openat", "openat2", "creat"):
            if "O_PATH" in args or "O_DIRECTORY" in args:
                return  # no fanotify open/close events; directories are not reported
            path = result_path or paths[0]
            if "O_RDWR" in args or "O_WRONLY" in args or name == "creat":
                self.write.add(path)
            else:
                self.read.add(path)
            if "O_CREAT" in args or name == "creat":
                (self.created if "O_EXCL" in args else self.maybe_created).add(path)
        elif name == "execve" or name == "execveat":
            self.executed.add(real(paths[0]))
        elif name in ("unlink", "unlinkat", "rmdir"):
            self.deleted.add(paths[0])
        elif name in ("mkdir", "mkdirat"):
            self.created.add(paths[0])
        elif name in ("rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat"):
            self.maybe_created.add(paths[-1])


def strace(argv, cwd) -> StraceSets:
    log = os.path.join(cwd, "..", f"strace-{os.getpid()}.log")
    subprocess.run(["strace", "-f", "-qq", "-y", "-o", log, "-e", "trace=%file", *argv],
                   cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    try:
        with open(log) as f:
            return StraceSets(f.read(), cwd)
    finally:
        os.unlink(log)


# --- the comparison -----------------------------------------------------------------

def under(paths, base):
    return {p for p in paths if p == base or p.startswith(base + "/")}


def same_files(fan_paths, st_paths, renames) -> None:
    """The files of the fd group's events (read, write) are strace's: the
    trace names them by the fd's path when it reads the event, so a file
    renamed before then carries its new name (one of its later names)."""
    def names(path):
        out = [path]
        while out[-1] in renames and len(out) <= len(renames):
            out.append(renames[out[-1]])
        return out

    for path in st_paths:
        assert set(names(path)) & fan_paths, f"{path} (or its later names) not reported"
    assert fan_paths <= {n for path in st_paths for n in names(path)}


def compare(result: TraceResult, st: StraceSets, work: str) -> None:
    fan = {op: {p for p in result.paths(op)} for op in ("read", "write", "create", "mkdir",
                                                        "delete", "rmdir", "exec")}
    renames = {e.path: e.new_path for e in result.events if e.op == "rename"}
    assert result.overflows == 0 and result.undecided == 0
    same_files(under(fan["read"], work), under(st.read, work), renames)
    same_files(under(fan["write"], work), under(st.write, work), renames)
    assert under(fan["delete"] | fan["rmdir"], work) == under(st.deleted, work)
    created = under(fan["create"] | fan["mkdir"], work)
    assert under(st.created, work) <= created <= under(st.created | st.maybe_created, work)
    execs = {real(p) for p in fan["exec"]}
    assert st.executed <= execs
    extra = execs - st.executed
    assert all(INTERPRETER.search(p) for p in extra), extra


def both(argv, work, setup=None):
    """strace then fanbpf trace, from the same starting state."""
    if setup:
        setup()
    st = strace(argv, work)
    if setup:
        setup()
    result = fanbpf.trace(argv, cwd=work)
    assert result.returncode == 0
    return st, result


# --- the commands ---------------------------------------------------------------------

def _fresh(work, files):
    def setup():
        for name in os.listdir(work):
            path = os.path.join(work, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
        for name, text in files.items():
            with open(os.path.join(work, name), "w") as f:
                f.write(text)
    return setup


def test_shell_pipeline(work):
    setup = _fresh(work, {"in.txt": "b\na\nc\n", "old": "x"})
    argv = ["sh", "-c", "cat in.txt | sort | tr a-z A-Z > out.txt; mkdir d; "
            "cp out.txt d/copy; rm old; mv d/copy d/moved; wc -l < d/moved > /dev/null"]
    st, result = both(argv, work, setup)
    compare(result, st, work)
    assert f"{work}/in.txt" in result.paths("read")
    assert f"{work}/out.txt" in result.paths("write")
    assert f"{work}/old" in result.paths("delete")
    assert (f"{work}/d/copy", f"{work}/d/moved") in {
        (e.path, e.new_path) for e in result.events if e.op == "rename"}
    assert {real(shutil.which(p)) for p in ("sort", "tr", "cat")} <= \
        {real(p) for p in result.paths("exec")}


WORKERS = textwrap.dedent("""
    import multiprocessing, os, sys
    def work(i):
        with open(os.path.join(sys.argv[1], f"w{i}.out"), "w") as f:
            f.write(open(os.path.join(sys.argv[1], "input")).read() * i)
        return os.getpid()
    if __name__ == "__main__":
        with multiprocessing.get_context("fork").Pool(3) as pool:
            pids = set(pool.map(work, range(6)))
        os.unlink(os.path.join(sys.argv[1], "input"))
""")


def test_python_workers(work):
    setup = _fresh(work, {"input": "data\n", "workers.py": WORKERS})
    st, result = both([sys.executable, "workers.py", work], work, setup)
    compare(result, st, work)
    writers = {e.pid for e in result.events if e.op == "write" and e.path.endswith(".out")}
    script = {e.pid for e in result.events if e.op == "exec" and real(e.path) == real(sys.executable)}
    assert {f"{work}/w{i}.out" for i in range(6)} <= result.paths("create")
    assert writers and script and not writers & script  # the pool's processes wrote


def test_c_build(work):
    def setup():
        _fresh(work, {})()
        for name in os.listdir(DATA):
            shutil.copy(os.path.join(DATA, name), work)
    st, result = both(["make", "-s"], work, setup)
    compare(result, st, work)
    assert {f"{work}/{f}" for f in ("main.c", "greet.c", "greet.h", "Makefile")} <= \
        result.paths("read")
    assert {f"{work}/{f}" for f in ("main.o", "greet.o", "hello")} <= result.paths("write")
    execs = {real(p) for p in result.paths("exec")}
    assert {real(shutil.which(p)) for p in ("make", "cc", "as", "ld")} <= execs
    assert any(p.endswith("/cc1") for p in execs)


DAEMON = textwrap.dedent("""
    import os, sys, time
    if os.fork():
        sys.exit(0)  # the command returns at once
    os.setsid()
    if os.fork():
        os._exit(0)  # the daemon is re-parented
    time.sleep(1)
    with open(os.path.join(sys.argv[1], "daemon.out"), "w") as f:
        f.write(str(os.getppid()))
""")


@pytest.mark.parametrize("cgroup", [True, False])
def test_daemon_is_followed(work, cgroup):
    """A double-forking daemon outlives the command: the trace waits for it
    and keeps its events, in a cgroup and by ancestry (the tracer's root
    process is a subreaper)."""
    _fresh(work, {"daemon.py": DAEMON})()
    result = fanbpf.trace([sys.executable, "daemon.py", work], cwd=work, cgroup=cgroup)
    assert result.mode == ("cgroup" if cgroup else "ancestry")
    assert f"{work}/daemon.out" in result.paths("create")
    assert os.path.exists(f"{work}/daemon.out")  # the trace ended after the daemon


def test_daemon_against_strace(work):
    setup = _fresh(work, {"daemon.py": DAEMON})
    st, result = both([sys.executable, "daemon.py", work], work, setup)
    # strace -f follows the daemon but returns when the command does: wait for the file
    compare(result, st, work)


def test_no_leak_from_other_processes(work):
    """Another process busy on the same files, and the tracer itself: none
    of their events is in the trace."""
    _fresh(work, {"shared": "x"})()
    other = subprocess.Popen(["sh", "-c", "while :; do cat shared > /dev/null; "
                              "echo y > other.out; rm -f other.out; done"], cwd=work)
    try:
        def tracer_busy(event):  # the tracer works on the same files meanwhile
            with open(os.path.join(work, "tracer.out"), "w") as f:
                f.write(open(os.path.join(work, "shared")).read())
        result = fanbpf.trace(["sh", "-c", "for i in 1 2 3; do cat shared > mine.$i; done"],
                              cwd=work, on_event=tracer_busy)
    finally:
        other.kill()
        other.wait()
    assert f"{work}/shared" in result.paths("read")
    paths = {e.path for e in result.events}
    assert not under(paths, work) - {f"{work}/shared"} - {f"{work}/mine.{i}" for i in (1, 2, 3)}
    root_pids = {e.pid for e in result.events}
    assert other.pid not in root_pids and os.getpid() not in root_pids


def test_exit_status_and_exec_error(work):
    assert fanbpf.trace(["sh", "-c", "exit 3"], cwd=work).returncode == 3
    with pytest.raises(FileNotFoundError):
        fanbpf.trace(["/no/such/program"], cwd=work)


def test_cli_make(work):
    """The issue's acceptance: trace a build, text and JSON Lines."""
    for name in os.listdir(DATA):
        shutil.copy(os.path.join(DATA, name), work)
    out = subprocess.run([sys.executable, "-m", "fanbpf", "trace", "--", "make", "-s", "-C", work],
                         capture_output=True, text=True, check=True).stdout
    assert re.search(rf"^  {re.escape(work)}/main\.c  \[1x, pid \d+\]$", out, re.M), out
    assert "write (" in out and f"{work}/hello" in out
    subprocess.run(["make", "-s", "-C", work, "clean"], check=True)
    lines = subprocess.run([sys.executable, "-m", "fanbpf", "trace", "--json", "--fs", work,
                            "--", "make", "-s", "-C", work],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    summary = records[-1]
    assert summary["type"] == "summary" and summary["overflows"] == 0
    assert summary["filesystems"] == [work]
    files = {r["path"]: r for r in records if r["type"] == "file"}
    assert files[f"{work}/hello"]["ops"]["create"] == 1
    assert files[f"{work}/main.c"]["ops"] == {"read": 1}
    assert all(r["path"].startswith(work) for r in records if r["type"] == "event")
