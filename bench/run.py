"""fanbpf benchmarks: fanbpf against the file watchers people run today.

Runs on the test kernel (``make bench`` = ``kernel/vm.sh python bench/run.py``;
``make bench-smoke`` = the same with ``--smoke``, tiny sizes, part of
``make test``).  Under TCG only the ratios mean anything.

Every watcher is its own process, started on the same tmpfs and the same
workload, and prints one line per event it reports ("<kind> <path>"):

  none          no watcher (the limit)
  inotifywait   inotifywait -r -m on the subtree (inotify-tools)
  watchdog      watchdog's InotifyObserver, recursive, on the subtree
  watchdog-fanbpf  watchdog with fanbpf.watchdog.FanotifyObserver (drop-in)
  watchfiles    watchfiles.watch() on the subtree (Rust notify, inotify)
  fanbpf-watch  fanbpf.watch() on the subtree (watchfiles' API, drop-in)
  fsnotifywait  fsnotifywait -S (one fanotify filesystem mark) with --include
  fanwatch      bench/fanwatch.c: a filesystem mark, C filter on the path
  pyfanotify    pyfanotify, a filesystem mark, its path_pattern rule
  fanbpf-bpf    fanbpf, a filesystem mark, the BPF rules handler (subtree)
  fanbpf-kmod   fanbpf, a filesystem mark, the reference kernel module
  fanbpf-marks  fanbpf, a subtree mark (FAN_MARK_SUBTREE) on the subtree, no handler

and, for the split part (``--parts split,profile``, ``make bench-cost``), the
configurations that split fanbpf's cost (bench/watchers.py FANBPF_CONFIGS):
a mark whose mask matches nothing, handlers that skip everything (module,
BPF), a FID-only group, inode marks on the subtree's directories.

The workload (bench/workload.c) runs a plan of file operations that this
script writes; the events each watcher should report are derived from the
same plan (``expected``), so missed and extra events are counted, not
assumed.  Runs of the watchers are interleaved (the order rotates every
round) and repeated; tables give the median and the spread (min-max).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import datetime
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("FANBPF_BENCH_BUILD", TOP / "build" / "bench"))
WORKLOAD = BUILD / "workload"
FANWATCH = BUILD / "fanwatch"
PY = sys.executable
sys.path[:0] = [str(TOP), str(TOP / "bench"), str(TOP / "tests" / "vm")]

from watchers import FID_ONLY, INOTIFY_KINDS, KINDS, SILENT  # noqa: E402

LIBC = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2
INOTIFY_EVENTS = "create,modify,close_write,moved_from,moved_to,delete"
WATCHERS = ("none", "inotifywait", "watchdog", "watchdog-fanbpf", "watchfiles", "fanbpf-watch",
            "fsnotifywait", "fanwatch", "pyfanotify", "fanbpf-bpf", "fanbpf-kmod", "fanbpf-marks")
#: Watchers that filter in the kernel (the test kernel has the hook): exact, or the bench fails.
EXACT = ("fanbpf-bpf", "fanbpf-kmod", "watchdog-fanbpf", "fanbpf-watch", "fid-bpf", "skip-bpf",
         "skip-kmod", "mark-nomatch", "fanbpf-marks")
#: The split part (make bench-cost, issue 18): what watching costs at f = 1 %,
#: split by configuration, each a row (watchers.py's FANBPF_CONFIGS).
SPLIT_WATCHERS = ("none", "mark-nomatch", "skip-kmod", "skip-bpf", "fid-bpf", "fanbpf-bpf",
                 "fanbpf-kmod", "inode-marks", "fanbpf-marks", "inotifywait")
#: Configurations profiled in the profile part (perf record in the workload).
PROFILED = ("none", "mark-nomatch", "fanbpf-bpf", "fid-bpf")
#: What make bench runs; split and profile are make bench-cost's (they need perf
#: and bench/kmod/'s module).
DEFAULT_PARTS = ("churn", "read", "burst", "readers", "setup", "handler")
PARTS = DEFAULT_PARTS + ("split", "profile")
FANOUT = 10  # children per directory in the generated trees



class BenchError(Exception):
    pass


# --- filesystems and trees ---------------------------------------------------

class Tmpfs:
    """A fresh tmpfs, unmounted on exit."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __enter__(self) -> str:
        self.path = os.path.realpath(tempfile.mkdtemp(prefix=self.prefix))
        if LIBC.mount(b"fanbpf-bench", self.path.encode(), b"tmpfs", 0, b"size=4g,nr_inodes=0"):
            raise OSError(ctypes.get_errno(), f"mount tmpfs on {self.path}")
        return self.path

    def __exit__(self, *exc) -> None:
        LIBC.umount2(self.path.encode(), MNT_DETACH)
        os.rmdir(self.path)


def tree_dirs(top: str, count: int) -> list[str]:
    """``count`` directories under ``top``, FANOUT children each (depth ~ log(count))."""
    dirs = [top]
    for k in range(1, count + 1):
        dirs.append(os.path.join(dirs[(k - 1) // FANOUT], f"d{k}"))
    return dirs[1:]


class Tree:
    """The scene: ``w/`` (watched) and ``o/`` (outside) with D directories each,
    and one small file in each of the first ``files`` directories of both (for
    the read workload).  Built with the workload binary itself."""

    def __init__(self, mount: str, dirs: int, files: int, scratch: str):
        self.mount = mount
        self.sub = os.path.join(mount, "w")
        self.out = os.path.join(mount, "o")
        self.inside = tree_dirs(self.sub, dirs)
        self.outside = tree_dirs(self.out, dirs)
        self.dirset = {mount, self.sub, self.out, *self.inside, *self.outside}
        self.files_in = [os.path.join(d, "r") for d in self.inside[:files]]
        self.files_out = [os.path.join(d, "r") for d in self.outside[:files]]
        ops = [f"M {d}" for d in (self.sub, self.out)]
        ops += [f"M {d}" for d in self.inside + self.outside]
        ops += [f"C {p}" for p in self.files_in + self.files_out]
        run_plan(ops, scratch, "tree")


# --- plans and the oracle ---------------------------------------------------

def inside_at(i: int, f: float) -> bool:
    """Operation i is inside the subtree: a fraction f of them, evenly spread."""
    return int((i + 1) * f) > int(i * f)


def churn_plan(tree: Tree, ops: int, f: float, tag: str, newdir_every: int = 10) -> list[str]:
    """create/write/close, rename, unlink; one in ``newdir_every`` operations
    inside (and outside) makes a new directory and a file in it at once (what
    recursive inotify races with).  The new directories are removed after
    the run, once the watcher is stopped: fanotify reports a directory by
    handle, and a directory already gone when the event is read has no path."""
    plan = []
    count = {True: 0, False: 0}
    for i in range(ops):
        inside = inside_at(i, f)
        dirs = tree.inside if inside else tree.outside
        d = dirs[(i * 7919) % len(dirs)]
        count[inside] += 1
        if newdir_every and count[inside] % newdir_every == newdir_every // 2:
            nd = os.path.join(d, f"{tag}.n{i}")
            plan += [f"M {nd}", f"C {nd}/f", f"U {nd}/f"]
        else:
            p = os.path.join(d, f"{tag}.f{i}")
            plan += [f"C {p}", f"R {p} {p}.r", f"U {p}.r"]
    return plan + [f"C {sentinel(tree, tag)}"]


def read_plan(tree: Tree, ops: int, f: float, tag: str) -> list[str]:
    """open/read/close of existing files, a fraction f of them inside."""
    plan = []
    for i in range(ops):
        files = tree.files_in if inside_at(i, f) else tree.files_out
        plan.append(f"O {files[i % len(files)]}")
    return plan + [f"C {sentinel(tree, tag)}"]


def sentinel(tree: Tree, tag: str) -> str:
    return os.path.join(tree.sub, f"{tag}.sentinel")


def expected(plan: list[str], subtree: str, kinds: tuple[str, ...]) -> set[tuple[str, str]]:
    """The (kind, path) pairs a watcher of ``subtree`` reporting ``kinds`` must
    print for ``plan``: file events only (directory events are not scored)."""
    prefix = subtree + os.sep
    inotify = kinds == INOTIFY_KINDS
    out = set()
    for line in plan:
        op, *paths = line.split(" ")
        if not paths[0].startswith(prefix):
            continue
        if op == "C":
            out |= {("create", paths[0]), ("modify", paths[0]), ("close_write", paths[0])} \
                if inotify else {("added", paths[0])}
        elif op == "R":
            out |= {("moved_from", paths[0]), ("moved_to", paths[1])} if inotify \
                else {("deleted", paths[0]), ("added", paths[1])}
        elif op == "U":
            out.add(("delete" if inotify else "deleted", paths[0]))
    return out


def plan_dirs(plan: list[str]) -> set[str]:
    return {line.split(" ")[1] for line in plan if line[0] in "MD"}


def run_plan(plan: list[str], scratch: str, name: str, wrap: list[str] = []) -> dict:
    """Run the workload on ``plan`` (under ``wrap``, e.g. perf record, if given)."""
    fd, path = tempfile.mkstemp(dir=scratch, prefix=name, suffix=".plan")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(plan) + "\n")
    proc = subprocess.run([*wrap, str(WORKLOAD), path], capture_output=True, text=True)
    os.unlink(path)
    if proc.returncode:
        raise BenchError(f"workload {name} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


# --- watchers -------------------------------------------------------------

def watcher_argv(name: str, tree: Tree) -> list[str]:
    if name == "inotifywait":
        return ["stdbuf", "-oL", "inotifywait", "-r", "-m", "-e", INOTIFY_EVENTS,
                "--format", "%e %w%f", tree.sub]
    if name == "fsnotifywait":
        return ["stdbuf", "-oL", "fsnotifywait", "-S", "-m", "-e", INOTIFY_EVENTS,
                "--include", "^" + re.escape(tree.sub) + "/", "--format", "%e %w%f", tree.mount]
    if name == "fanwatch":
        return [str(FANWATCH), tree.mount, tree.sub]
    return [PY, str(TOP / "bench" / "watchers.py"), name, tree.mount, tree.sub]


def watcher_kinds(name: str) -> tuple[str, ...]:
    return KINDS.get(name, INOTIFY_KINDS)


READY = re.compile(r"^(READY|Watches established\.)$", re.M)


def slab_kb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                pass
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += [c for c, pp in parents.items() if pp == p]
    return tree


TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants (reaped children included)."""
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, IndexError):
            pass
    return total / TICK


def kernel_objects(pid: int) -> dict:
    """inotify watches and fanotify marks held by a process tree (from fdinfo)."""
    watches = marks = 0
    for p in descendants(pid):
        try:
            fds = os.listdir(f"/proc/{p}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{p}/fdinfo/{fd}") as f:
                    for line in f:
                        watches += line.startswith("inotify wd:")
                        marks += line.startswith("fanotify ")
            except OSError:
                pass
    return {"inotify_watches": watches, "fanotify_marks": marks}


class Watcher:
    """One watcher process: started, waited for until it watches, stopped."""

    def __init__(self, name: str, tree: Tree, scratch: str, tag: str):
        self.name, self.tree = name, tree
        self.out_path = os.path.join(scratch, f"{tag}-{name}.out")
        self.err_path = os.path.join(scratch, f"{tag}-{name}.err")
        self.proc = None

    def start(self, timeout: float) -> dict:
        slab0 = slab_kb()
        t0 = time.monotonic()
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(watcher_argv(self.name, self.tree), stdout=out,
                                         stderr=err, start_new_session=True)
        while not READY.search(Path(self.err_path).read_text()):
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited ({self.proc.returncode}) before watching: "
                                 f"{Path(self.err_path).read_text()[-2000:]}")
            if time.monotonic() - t0 > timeout:
                self.stop()
                raise BenchError(f"{self.name}: not watching after {timeout:.0f}s")
            time.sleep(0.01)
        setup = time.monotonic() - t0
        # Kernel memory is read once the watcher sits idle (slab frees are lazy).
        time.sleep(0.2)
        return {"setup_s": setup, "slab_kb": slab_kb() - slab0, **kernel_objects(self.proc.pid)}

    def wait_for(self, path: str, timeout: float, quiet: float, settle: float = 0.3) -> float | None:
        """Seconds until ``path`` shows up in the output (None: it never did),
        then until the output has not grown for ``settle`` seconds (events
        of one batch may be printed out of order); gives up after ``quiet``
        seconds without new output, or ``timeout``."""
        t0 = last = time.monotonic()
        size, seen = -1, None
        needle = path.encode()
        while True:
            data = Path(self.out_path).read_bytes()
            now = time.monotonic()
            if len(data) != size:
                size, last = len(data), now
            if seen is None and needle in data:
                seen = now - t0
            if seen is not None and now - last > settle:
                return seen
            if now - last > quiet or now - t0 > timeout or self.proc.poll() is not None:
                return seen
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def events(self) -> list[tuple[int, str, str]]:
        """(offset in the output, kind, path) for every event printed; kind
        "overflow" for queue-overflow reports.  Directories are not scored."""
        out, offset = [], 0
        with open(self.out_path, "rb") as f:
            for raw in f:
                line = raw.decode(errors="replace").rstrip("\n")
                at, offset = offset, offset + len(raw)
                kinds, _, path = line.partition(" ")
                path = path.removesuffix(" (deleted)")
                names = kinds.lower().split(",")
                if "q_overflow" in names or "overflow" in names:
                    out.append((at, "overflow", ""))
                elif "isdir" not in names and path.startswith("/"):  # not fsnotifywait's fid lines
                    out += [(at, k, path) for k in names if k in watcher_kinds(self.name)]
        return out

    def size(self) -> int:
        return os.path.getsize(self.out_path)

    def undecided(self) -> int:
        """The events the watcher's handler delivered undecided, as it
        reported them when it stopped (0 if it does not count them)."""
        found = re.findall(r"^undecided (\d+)$", Path(self.err_path).read_text(), re.M)
        return int(found[-1]) if found else 0

    def close(self) -> None:
        os.unlink(self.out_path)
        os.unlink(self.err_path)


def score(name: str, plan: list[str], tree: Tree, tag: str, events, span) -> dict:
    """Missed, extra and overflow counts of one workload: its events are those
    whose path carries its tag, its overflow reports those printed while it ran.
    A silent watcher must print none; a FID-only one is scored by score_fid."""
    overflows = sum(1 for at, k, _ in events if k == "overflow" and span[0] <= at < span[1])
    if name in FID_ONLY:
        return {**score_fid(plan, tree, events, span), "overflows": overflows}
    want = set() if name in SILENT else expected(plan, tree.sub, watcher_kinds(name))
    mine = re.compile(f"/{re.escape(tag)}\\.")
    dirs = plan_dirs(plan)
    got = {(k, p) for _, k, p in events if k != "overflow" and mine.search(p) and p not in dirs}
    return {"expected": len(want), "missed": len(want - got), "extra": len(got - want),
            "overflows": overflows, **samples(want - got, got - want)}


def samples(missed: set, extra: set, n: int = 5) -> dict:
    """A few of the missed and extra events, for the message of a failed check."""
    return {"missed_sample": sorted(missed)[:n], "extra_sample": sorted(extra)[:n]}


DIRENT_KINDS = ("create", "moved_from", "moved_to", "delete")


def score_fid(plan: list[str], tree: Tree, events, span) -> dict:
    """A FID-only group reports a directory-entry event with its directory's
    handle and no name, so (kind, directory) pairs are what it must print;
    its events are those printed while the workload ran (the sentinel ends
    each).  Modify and close_write name the file itself, most of them gone
    before they are read: they are not required, and extra if outside."""
    prefix = tree.sub + os.sep
    want = set()
    for line in plan:
        op, *paths = line.split(" ")
        if not paths[0].startswith(prefix):
            continue
        if op == "C":
            want.add(("create", os.path.dirname(paths[0])))
        elif op == "R":
            want |= {("moved_from", os.path.dirname(paths[0])),
                     ("moved_to", os.path.dirname(paths[1]))}
        elif op == "U":
            want.add(("delete", os.path.dirname(paths[0])))
    mine = [(k, p) for at, k, p in events if span[0] <= at < span[1] and k != "overflow"]
    got = {(k, p) for k, p in mine if k in DIRENT_KINDS}
    outside = {(k, p) for k, p in mine if k not in DIRENT_KINDS and not p.startswith(prefix)}
    return {"expected": len(want), "missed": len(want - got),
            "extra": len(got - want) + len(outside), **samples(want - got, (got - want) | outside)}


def session(name: str, tree: Tree, workloads: list[tuple[str, float, int]], scratch: str,
            rnd: int, args, wrap=None) -> list[dict]:
    """One watcher started once, then the workloads one after the other (each
    ends with a sentinel file the watcher must report before the next starts).
    ``wrap(tag)``: a command the workload runs under (perf record)."""
    w, info = None, {}
    if name != "none":
        w = Watcher(name, tree, scratch, f"r{rnd}")
        info = w.start(args.setup_timeout)
    rows, runs = [], []
    try:
        for run, (kind, f, ops) in enumerate(workloads):
            # a workload repeated in one session: each run its own files
            tag = f"{kind}{f:g}r{rnd}".replace(".", "_") + (f"x{run}" if run else "")
            plan = read_plan(tree, ops, f, tag) if kind == "read" else churn_plan(tree, ops, f, tag)
            row = {"watcher": name, "workload": kind, "f": f, "rep": rnd, "run": run, "ops": ops,
                   "dirs": len(tree.inside)}
            span0 = w.size() if w else 0
            cpu0 = tree_cpu(w.proc.pid) if w else 0.0
            wl = run_plan(plan, scratch, tag, wrap(tag) if wrap else [])
            row.update(tag=tag, wall_s=wl["t1"] - wl["t0"], wl_sys_s=wl["sys"])
            # A silent watcher prints nothing to wait for: what it should not
            # have let through it prints when stopped (its last read).
            if w and name not in SILENT:
                row["drain_s"] = w.wait_for(sentinel(tree, tag), args.drain_timeout, args.quiet)
            if w:
                row["cpu_s"] = tree_cpu(w.proc.pid) - cpu0
                if w.proc.poll() is not None:  # it died: its CPU is gone with it
                    row.update(cpu_s=None, exited=w.proc.returncode,
                               stderr=Path(w.err_path).read_text()[-500:])
            rows.append(row)
            runs.append((plan, tag, span0, w.size() if w else 0))
    finally:
        if w:
            w.stop()
    if w:
        events = w.events()
        undecided = w.undecided()
        for row, (plan, tag, a, b) in zip(rows, runs):
            row.update(info, **score(name, plan, tree, tag, events, (a, b)))
            # Of its extra events, those the handler delivered undecided
            # (counted, not wrong: a filter delivers what it cannot place).
            row["extra_undecided"] = min(row["extra"], undecided)
            undecided -= row["extra_undecided"]
        w.close()
    for plan, tag, _, _ in runs:
        os.unlink(sentinel(tree, tag))
        for line in reversed(plan):
            if line[0] == "M":
                os.rmdir(line[2:])
    return rows


# --- experiments --------------------------------------------------------------

def rotated(items, n: int) -> list:
    items = list(items)
    n %= len(items)
    return items[n:] + items[:n]


def progress(msg: str, started: float) -> None:
    print(f"bench [{time.monotonic() - started:6.0f}s] {msg}", file=sys.stderr, flush=True)


def sweep(tree: Tree, scratch: str, args, started: float) -> list[dict]:
    """Every watcher on every workload, ``args.reps`` rounds; within a round
    each watcher runs once (its own process, started for the round) through
    all the workloads; the order of the watchers rotates every round."""
    workloads = [("churn", f, args.ops) for f in args.fractions]
    if "read" in args.parts:
        workloads.append(("read", 0.01, args.read_ops))
    if args.smoke:
        return smoke_sweep(workloads, scratch, args, started)
    rows = []
    for rnd in range(args.reps):
        # The burst goes last (an overflow may leave a watcher behind) and once.
        burst = [("burst", 0.01, args.burst_ops)] if rnd == 0 and "burst" in args.parts else []
        for name in rotated(args.watchers, rnd):
            rows += session(name, tree, workloads + burst, scratch, rnd, args)
            progress(f"round {rnd + 1}/{args.reps}: {name} done", started)
    return rows


def smoke_sweep(workloads, scratch: str, args, started: float) -> list[dict]:
    """The smoke run checks that every watcher runs and is scored, not how
    fast: the watchers run at the same time, each on a tmpfs of its own
    (Python programs start slowly under TCG; one after the other took minutes)."""
    def one(name: str) -> list[dict]:
        with Tmpfs("fanbpf-bench-") as mount:
            rows = session(name, Tree(mount, args.tree, args.tree, scratch), workloads,
                           scratch, 0, args)
        progress(f"smoke: {name} done", started)
        return rows

    with concurrent.futures.ThreadPoolExecutor(len(args.watchers)) as pool:
        return [row for rows in pool.map(one, args.watchers) for row in rows]


def setup_scaling(args, scratch: str, started: float) -> list[dict]:
    """Time and kernel memory to start watching, and a short churn for
    correctness, against the size of the tree (a fresh tmpfs per size)."""
    rows = []
    for dirs in args.dirs:
        with Tmpfs("fanbpf-bench-") as mount:
            tree = Tree(mount, dirs, 0, scratch)
            progress(f"setup: tree of {dirs} directories built", started)
            for rnd in range(args.setup_reps):
                for name in rotated([w for w in args.watchers if w != "none"], rnd):
                    try:
                        rows += session(name, tree, [("setup", 0.01, args.setup_ops)], scratch,
                                        rnd, args)
                    except BenchError as err:  # e.g. too slow to start: a result too
                        rows.append({"watcher": name, "workload": "setup", "dirs": dirs,
                                     "rep": rnd, "error": str(err)})
                        progress(f"setup: {name} at D={dirs}: {err}", started)
            progress(f"setup: D={dirs} done", started)
    return rows


# --- in-kernel handler cost ---------------------------------------------------

def bpf_struct_ops_stats() -> tuple[int, int]:
    """(run_cnt, run_time_ns) summed over the loaded struct_ops programs."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                         check=True).stdout
    cnt = ns = 0
    for prog in json.loads(out):
        if prog.get("type") == "struct_ops":
            cnt += prog.get("run_cnt", 0)
            ns += prog.get("run_time_ns", 0)
    return cnt, ns


KMOD_PARAMS = Path("/sys/module/fanbpf_subtree_kmod/parameters")
#: the handler-cost cases with a DIRS list: what subtree watchers of source trees exclude
EXCLUDE_DIRS = (".git", "node_modules", "__pycache__", "*.egg-info")


def kmod_stats() -> tuple[int, int]:
    """(run_cnt, run_time_ns) of the module's handler (its stats=1 timing)."""
    return tuple(int((KMOD_PARAMS / name).read_text()) for name in ("run_cnt", "run_time_ns"))


def deep_dirs(top: str, depth: int) -> str:
    """top/d/d/.../d, depth levels, made one at a time (os.makedirs recurses
    per level, up to Python's recursion limit); two bytes a level keep paths
    of up to ~2000 levels within PATH_MAX."""
    path = top
    os.makedirs(path, exist_ok=True)
    for _ in range(depth):
        path = os.path.join(path, "d")
        if not os.path.isdir(path):
            os.mkdir(path)
    return path


def handler_cost(args, scratch: str, started: float) -> list[dict]:
    """Per-event cost of the BPF handler and of the module, outside the subtree
    (the walk goes up to the filesystem root: the worst case).

    From inside, the same way for both: BPF from
    ``kernel.bpf_stats_enabled`` (run_time_ns / run_cnt), the module from
    its own ``stats`` timing (sched_clock() around each call, as the BPF
    trampoline does).  From outside, also the same way for both: batches
    of create+unlink with the handler's mark, each paired with a batch
    without any mark next to it in time, the difference in the workload's
    system time divided by the handler calls (run_cnt of the BPF batch:
    the same events reach both handlers).
    """
    import fanbpf
    from fanbpf import EventMask, MarkFlag
    from kabi import KMOD, subtree_args

    mask = (EventMask.CREATE | EventMask.MODIFY | EventMask.CLOSE_WRITE | EventMask.DELETE)
    rows = []
    Path("/proc/sys/kernel/bpf_stats_enabled").write_text("1")
    (KMOD_PARAMS / "stats").write_text("1")
    try:
        with Tmpfs("fanbpf-bench-h-") as mount, \
                fanbpf.Handler.load("rules", private=True) as handler:
            roots_all = [deep_dirs(os.path.join(mount, "roots"), 1) + f"/r{k}" for k in range(16)]
            for r in roots_all:
                os.makedirs(r)
            # (depth, roots, DIRS list): the module has no DIRS section, so
            # the cases with one time the BPF handler alone
            cases = [(d, 1, ()) for d in args.depths] + \
                [(8, n, ()) for n in args.roots if n != 1] + \
                [(d, 1, EXCLUDE_DIRS) for d in args.dirs_depths]
            for depth, nroots, dirs in cases:
                where = deep_dirs(os.path.join(mount, f"deep{depth}"), depth - 1)
                roots = roots_all[:nroots]
                rules = fanbpf.rules(subtree=roots, exclude_dirs=list(dirs))
                plan = []
                for i in range(args.cost_ops):
                    p = os.path.join(where, f"c{i}")
                    plan += [f"C {p}", f"U {p}"]
                samples = {"none": [], "bpf": []} if dirs else {"none": [], "bpf": [], "kmod": []}
                calls, stats_ns, kmod_ns = [], [], []
                for batch in range(-1, args.cost_batches):  # batch -1 warms up
                    for kind in rotated(samples, batch):
                        group = None
                        if kind != "none":
                            group = fanbpf.Group()
                            group.mark(mount, mask, MarkFlag.FILESYSTEM)
                            if kind == "bpf":
                                group.attach(handler, rules)
                            else:
                                group.attach(KMOD, subtree_args(*roots))
                        c0, ns0 = bpf_struct_ops_stats()
                        k0, kns0 = kmod_stats()
                        wl = run_plan(plan, scratch, f"cost{depth}")
                        c1, ns1 = bpf_struct_ops_stats()
                        k1, kns1 = kmod_stats()
                        if group:
                            leaked = group.read_events(timeout=0)
                            group.close()
                            if leaked:
                                raise BenchError(f"handler cost: {kind} let {len(leaked)} "
                                                 "events outside its subtree through")
                        if batch < 0:
                            continue
                        samples[kind].append(wl["sys"])
                        if kind == "bpf":
                            calls.append(c1 - c0)
                            stats_ns.append((ns1 - ns0) / max(c1 - c0, 1))
                        elif kind == "kmod":
                            kmod_ns.append((kns1 - kns0) / max(k1 - k0, 1))
                ncalls = statistics.median(calls)
                added = {k: [(s - b) / max(ncalls, 1) * 1e9
                             for s, b in zip(samples.get(k, []), samples["none"])]
                         for k in ("bpf", "kmod")}
                rows.append({"depth": depth, "roots": nroots, "exclude_dirs": list(dirs),
                             "ops": args.cost_ops,
                             "handler_calls": ncalls, "bpf_stats_ns": stats_ns,
                             "kmod_stats_ns": kmod_ns,
                             "bpf_added_ns": added["bpf"], "kmod_added_ns": added["kmod"]})
                progress(f"handler cost: depth {depth}, {nroots} roots"
                         + (f", exclude_dirs {list(dirs)}" if dirs else ""), started)
    finally:
        Path("/proc/sys/kernel/bpf_stats_enabled").write_text("0")
        (KMOD_PARAMS / "stats").write_text("0")
    return rows


# --- Python readers ---------------------------------------------------------

def reader_throughput(tree: Tree, scratch: str, args, started: float) -> list[dict]:
    """Events/s a Python reader gets through: fanbpf (no handler, everything
    delivered, paths resolved) vs pyfanotify, on the same queued stream.

    The reader process is stopped (SIGSTOP) while the workload queues its
    events, then resumed and timed until it has printed the sentinel.
    (pyfanotify's own reader process keeps running: it forwards events to
    the stopped one through a socket, which fills.)
    """
    rows = []
    for rnd in range(args.reps):
        for name in rotated(("fanbpf-py", "pyfanotify"), rnd):
            tag = f"reader{rnd}"
            plan = churn_plan(tree, args.reader_ops, 1.0, tag, newdir_every=0)
            w = Watcher(name, tree, scratch, tag)
            w.start(args.setup_timeout)
            os.kill(w.proc.pid, signal.SIGSTOP)
            run_plan(plan, scratch, tag)
            cpu0 = tree_cpu(w.proc.pid)
            os.kill(w.proc.pid, signal.SIGCONT)
            took = w.wait_for(sentinel(tree, tag), args.drain_timeout, args.quiet)
            cpu = tree_cpu(w.proc.pid) - cpu0
            w.stop()
            os.unlink(sentinel(tree, tag))
            counts = score(name, plan, tree, tag, w.events(), (0, w.size()))
            w.close()
            rows.append({"reader": name, "rep": rnd, "seconds": took, "cpu_s": cpu,
                         "events": counts["expected"] - counts["missed"], **counts})
        progress(f"python readers round {rnd + 1}/{args.reps}", started)
    return rows


# --- the cost of watching (issue 18) -------------------------------------------

SKIP_KMOD = BUILD / "kmod" / "fanbpf_bench_skip.ko"


def load_skip_kmod() -> None:
    """bench/kmod/'s skip-everything module (built by make bench-cost against
    the kernel's object tree), unless it is loaded."""
    if os.path.isdir("/sys/module/fanbpf_bench_skip"):
        return
    if not SKIP_KMOD.exists():
        raise BenchError(f"{SKIP_KMOD} is missing: make bench-cost builds it")
    proc = subprocess.run(["insmod", str(SKIP_KMOD)], capture_output=True, text=True)
    if proc.returncode:
        raise BenchError(f"insmod {SKIP_KMOD}: {proc.stderr.strip()} (built for another "
                         "kernel? make bench-cost VARIANT=... rebuilds it)")


def cost_split(tree: Tree, scratch: str, args, started: float) -> list[dict]:
    """The churn workload at f = ``split_f`` under each configuration, side by
    side: every round starts each configuration once (the order rotates
    every round) and runs the workload ``split_runs`` times in it; a ratio
    compares a run with the no-watcher run of the same round and index."""
    workloads = [("churn", args.split_f, args.split_ops)] * args.split_runs
    rows = []
    for rnd in range(args.reps):
        for name in rotated(args.split_watchers, rnd):
            rows += session(name, tree, workloads, scratch, rnd, args)
            took = ", ".join(f"{k} {rows[-1][k]:.1f}s" for k in ("setup_s", "drain_s")
                             if rows[-1].get(k) is not None)
            progress(f"split round {rnd + 1}/{args.reps}: {name} done ({took or 'no watcher'})",
                     started)
    return rows


def perf_binary() -> str:
    """perf on the host's root (which the guest sees): the versioned binary
    where Debian installs one (its /usr/bin/perf wrapper refuses kernels it
    has no perf for), else perf itself."""
    found = sorted(glob.glob("/usr/bin/perf_[0-9]*"))
    if found:
        return found[-1]
    if shutil.which("perf"):
        return "perf"
    raise BenchError("perf is missing: make bench-cost installs Debian's linux-perf")


#: Where a workload sample spends its time, by the innermost frame on its
#: stack (from the leaf up) that belongs to the watching path.  Helpers that
#: other code calls too (dput, ...) count only under __fsnotify_parent.
PROFILE_CATEGORIES = (
    "handler: BPF program",
    "handler: module",
    "struct_ops trampoline",
    "fastpath call (__fanotify_fastpath_run)",
    "fanotify: event alloc, merge, queue",
    "fanotify_group_event_mask",
    "fanotify_handle_event (rest)",
    "send_to_group",
    "SRCU lock/unlock",
    "fsnotify: mark iteration (rest)",
    "parent ref + name snapshot (__fsnotify_parent)",
)
PROFILE_FRAMES = {
    "subtree_handler": "handler: module", "skip_handler": "handler: module",
    "__fanotify_fastpath_run": "fastpath call (__fanotify_fastpath_run)",
    "fanotify_alloc_event": "fanotify: event alloc, merge, queue",
    "fanotify_alloc_name_event": "fanotify: event alloc, merge, queue",
    "fanotify_alloc_fid_event": "fanotify: event alloc, merge, queue",
    "fanotify_encode_fh": "fanotify: event alloc, merge, queue",
    "fanotify_merge": "fanotify: event alloc, merge, queue",
    "fanotify_insert_event": "fanotify: event alloc, merge, queue",
    "fsnotify_insert_event": "fanotify: event alloc, merge, queue",
    "fanotify_group_event_mask": "fanotify_group_event_mask",
    "fanotify_handle_event": "fanotify_handle_event (rest)",
    "send_to_group": "send_to_group", "fsnotify_handle_event": "send_to_group",
    "__srcu_read_lock": "SRCU lock/unlock", "__srcu_read_unlock": "SRCU lock/unlock",
    "fsnotify": "fsnotify: mark iteration (rest)",
    "fsnotify_first_mark": "fsnotify: mark iteration (rest)",
    "fsnotify_iter_next": "fsnotify: mark iteration (rest)",
    "fsnotify_iter_select_report_types": "fsnotify: mark iteration (rest)",
    "__fsnotify_parent": "parent ref + name snapshot (__fsnotify_parent)",
}
PARENT_HELPERS = ("dget_parent", "take_dentry_name_snapshot", "release_dentry_name_snapshot",
                  "dput")


def classify(stack: list[str]) -> tuple[str, int]:
    """The category of one sample (``stack``: symbols, leaf first), and the
    index of the frame that decided it (-1: none)."""
    if "fsnotify" not in stack and "__fsnotify_parent" not in stack:
        return "outside fsnotify", -1
    for i, sym in enumerate(stack):
        if sym.startswith("bpf_prog_"):
            return "handler: BPF program", i
        if sym.startswith(("bpf_trampoline_", "__bpf_prog_enter", "__bpf_prog_exit")) or (
                sym == "[unknown]" and "__fanotify_fastpath_run" in stack[i:]):
            return "struct_ops trampoline", i
        if sym in PARENT_HELPERS:
            above = next((s for s in stack[i + 1:] if s in PROFILE_FRAMES), None)
            if above == "__fsnotify_parent":
                return PROFILE_FRAMES[above], i
            continue
        if sym in PROFILE_FRAMES:
            return PROFILE_FRAMES[sym], i
    return "fsnotify: other", -1


#: Functions whose static callees the compiler inlined (send_to_group, the
#: mark iterator, fanotify_group_event_mask, the event allocation): for the
#: samples they decide, the address is kept, for addr2line -i on the host.
INLINE_HOSTS = ("fsnotify", "fanotify_handle_event", "__fsnotify_parent")


def perf_samples(perf: str, data: str) -> list[list[tuple[int, str]]]:
    """The kernel stacks ((address, symbol), leaf first) of the samples in ``data``."""
    out = subprocess.run([perf, "script", "-i", data, "-F", "comm,ip,sym"], capture_output=True,
                         text=True)
    if out.returncode:
        raise BenchError(f"perf script: {out.stderr.strip()[-500:]}")
    samples: list[list[tuple[int, str]]] = []
    for line in out.stdout.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():  # "comm": a new sample
            samples.append([])
        elif samples:
            parts = line.split(None, 1)
            samples[-1].append((int(parts[0], 16),
                                parts[1].strip() if len(parts) > 1 else "[unknown]"))
    return samples


def profile(tree: Tree, scratch: str, args, started: float) -> list[dict]:
    """perf record -g -e cpu-clock (software: works under TCG) on the workload
    alone, the watcher running as in the split part; samples sorted into
    PROFILE_CATEGORIES, and the leaf symbols of those under fsnotify."""
    perf = perf_binary()
    rows = []
    for name in args.profiled:
        def wrap(tag: str) -> list[str]:
            return [perf, "record", "-q", "-N", "-g", "-e", "cpu-clock", "-o",
                    os.path.join(scratch, f"{tag}.perf"), "--"]
        run, = session(name, tree, [("churn", args.split_f, args.profile_ops)], scratch, 0, args,
                       wrap=wrap)
        data = os.path.join(scratch, f"{run['tag']}.perf")
        samples = perf_samples(perf, data)
        os.unlink(data)
        cats: dict[str, int] = {}
        leaves: dict[str, int] = {}
        inlined: dict[tuple[str, int], int] = {}
        for frames in samples:
            stack = [sym for _, sym in frames]
            cat, at = classify(stack)
            cats[cat] = cats.get(cat, 0) + 1
            if cat != "outside fsnotify" and stack:
                leaves[stack[0]] = leaves.get(stack[0], 0) + 1
            if at >= 0 and stack[at] in INLINE_HOSTS:
                # a return address points after its call: the call is one byte before
                key = (stack[at], frames[at][0] - (1 if at else 0))
                inlined[key] = inlined.get(key, 0) + 1
        top = sorted(leaves.items(), key=lambda kv: -kv[1])[:args.profile_top]
        rows.append({**run, "samples": len(samples), "categories": cats, "fsnotify_leaves": top,
                     "inlined_ips": [[sym, ip, n] for (sym, ip), n in inlined.items()],
                     "perf": subprocess.run([perf, "--version"], capture_output=True,
                                            text=True).stdout.strip()})
        progress(f"profile: {name}: {len(samples)} samples", started)
        # slow under TCG: what is done survives an interrupted run
        Path(args.out).with_suffix(".partial.json").write_text(json.dumps(rows) + "\n")
    return rows


# --- main -------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, 1 round: checks that everything runs (make bench-smoke)")
    p.add_argument("--dirs", type=ints, default=[1000, 10_000, 100_000],
                   help="tree sizes D of the setup sweep (directories under the subtree)")
    p.add_argument("--setup-reps", type=int, default=1, help="rounds of the setup sweep")
    p.add_argument("--tree", type=int, default=1000, help="D for the workloads")
    p.add_argument("--fractions", type=lambda s: [float(x) for x in s.split(",")],
                   default=[0.001, 0.01, 0.1, 1.0], help="fractions f inside the subtree")
    p.add_argument("--ops", type=int, default=2000, help="operations per churn run")
    p.add_argument("--read-ops", type=int, default=5000, help="opens per read-heavy run")
    p.add_argument("--burst-ops", type=int, default=10000, help="operations in the burst (f=1%%)")
    p.add_argument("--setup-ops", type=int, default=500, help="churn after each setup")
    p.add_argument("--reader-ops", type=int, default=1000, help="files in the reader stream")
    p.add_argument("--reps", type=int, default=2, help="interleaved rounds")
    p.add_argument("--depths", type=ints, default=[1, 4, 16, 32, 60],
                   help="directory depths for the handler cost")
    p.add_argument("--roots", type=ints, default=[1, 16], help="subtree roots (at depth 8)")
    p.add_argument("--dirs-depths", type=ints, default=[8, 64],
                   help="depths of the handler-cost cases with exclude_dirs (BPF only)")
    p.add_argument("--cost-ops", type=int, default=2000, help="files per handler-cost batch")
    p.add_argument("--cost-batches", type=int, default=3)
    p.add_argument("--watchers", type=lambda s: s.split(","), default=list(WATCHERS))
    p.add_argument("--split-watchers", type=lambda s: s.split(","), default=list(SPLIT_WATCHERS),
                   help="configurations of the split part (none: the baseline)")
    p.add_argument("--split-f", type=float, default=0.01, help="f of the split and profile parts' churn")
    p.add_argument("--split-ops", type=int, default=10000,
                   help="operations per churn run of the split part")
    p.add_argument("--split-runs", type=int, default=3,
                   help="churn runs per configuration and round in the split part")
    p.add_argument("--profiled", type=lambda s: s.split(","), default=list(PROFILED),
                   help="configurations the profile part runs under perf")
    p.add_argument("--profile-ops", type=int, default=20000, help="operations per profiled run")
    p.add_argument("--profile-top", type=int, default=25,
                   help="leaf symbols kept per profile (samples under fsnotify)")
    p.add_argument("--parts", type=lambda s: s.split(","),
                   help=f"which experiments, of {','.join(PARTS)} "
                   f"(default {','.join(DEFAULT_PARTS)}; with --smoke: churn,read,handler)")
    p.add_argument("--setup-timeout", type=float, default=600,
                   help="seconds a watcher may take to start watching")
    p.add_argument("--drain-timeout", type=float, default=300)
    p.add_argument("--quiet", type=float, default=15,
                   help="seconds without output after which a watcher is taken to be done")
    p.add_argument("--out", help="results JSON (default build/bench/results.json, "
                   "build/bench/smoke.json with --smoke)")
    args = p.parse_args(argv)
    if args.smoke:
        args.tree, args.fractions, args.ops, args.read_ops = 100, [0.1], 200, 100
        args.parts = args.parts or ["churn", "read", "handler"]
        args.reader_ops, args.reps, args.depths, args.roots = 50, 1, [4], [1]
        args.dirs_depths = [4]
        args.cost_ops, args.cost_batches, args.quiet = 100, 1, 5
    args.parts = args.parts or list(DEFAULT_PARTS)
    args.out = args.out or str(TOP / "build" / "bench" / ("smoke.json" if args.smoke
                                                          else "results.json"))
    configs = WATCHERS + tuple(c for c in KINDS if c not in WATCHERS)
    for what, given, known in (("watchers", args.watchers, WATCHERS), ("parts", args.parts, PARTS),
                               ("split watchers", args.split_watchers, configs),
                               ("profiled", args.profiled, configs)):
        if set(given) - set(known):
            p.error(f"unknown {what} {sorted(set(given) - set(known))}; choose from {','.join(known)}")
    if "none" not in args.watchers or "none" not in args.split_watchers:
        p.error("--watchers and --split-watchers need none, the baseline of the ratios")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.environ.get("FANBPF_IN_VM") != "1":
        print("bench/run.py: run it on the test kernel: make bench (or make bench-smoke)",
              file=sys.stderr)
        return 2
    for tool in (WORKLOAD, FANWATCH):
        if not tool.exists():
            raise BenchError(f"{tool} is missing: make bench-tools builds it")
    started = time.monotonic()
    # Recursive inotify needs a watch per directory; the kernel's default
    # limit scales with RAM and is below 100k in the guest.  Raised as users do.
    Path("/proc/sys/fs/inotify/max_user_watches").write_text("4194304")
    # pyfanotify's reader process forwards each event as a datagram over an
    # AF_UNIX socket: with the default queue of 10 it delivered ~150 events/s
    # here, with 1024 some 20x more.  Raised as its users would.
    Path("/proc/sys/net/unix/max_dgram_qlen").write_text("1024")
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "kernel": os.uname().release, "cpus": os.cpu_count(),
            # /proc/lockdep exists with CONFIG_LOCKDEP: the debug test kernel,
            # not the nodebug variant (make bench VARIANT=nodebug).
            "lockdep": os.path.exists("/proc/lockdep"),
            "kernel_dir": os.environ.get("FANBPF_KERNEL_DIR"),  # its vmlinux, for addr2line
            "loadavg_start": os.getloadavg(), "args": vars(args), "versions": versions()}
    res: dict = {"meta": meta, "sweep": [], "readers": [], "setup": [], "handler": [],
                 "split": [], "profile": []}
    with Tmpfs("fanbpf-bench-scratch-") as scratch:  # plans and watcher output
        if {"churn", "read", "burst", "readers", "split", "profile"} & set(args.parts):
            with Tmpfs("fanbpf-bench-") as mount:
                tree = Tree(mount, args.tree, min(args.tree, 1000), scratch)
                progress(f"tree of {args.tree} directories built", started)
                if {"churn", "read", "burst"} & set(args.parts):
                    res["sweep"] = sweep(tree, scratch, args, started)
                if "readers" in args.parts:
                    res["readers"] = reader_throughput(tree, scratch, args, started)
                if {"split", "profile"} & set(args.parts) and \
                        "skip-kmod" in args.split_watchers + args.profiled:
                    load_skip_kmod()
                if "split" in args.parts:
                    res["split"] = cost_split(tree, scratch, args, started)
                if "profile" in args.parts:
                    res["profile"] = profile(tree, scratch, args, started)
        if "setup" in args.parts:
            res["setup"] = setup_scaling(args, scratch, started)
        if "handler" in args.parts:
            res["handler"] = handler_cost(args, scratch, started)
    meta["loadavg_end"] = os.getloadavg()
    meta["seconds"] = time.monotonic() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"bench: wrote {out} ({meta['seconds']:.0f}s; tables and plots: bench/report.py)",
          file=sys.stderr)
    check(res, args)  # after writing: a failed check still leaves the numbers to look at
    return 0


def versions() -> dict:
    import importlib.metadata as md
    out = {}
    for pkg in ("watchdog", "watchfiles", "pyfanotify"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    for tool in ("inotifywait", "fsnotifywait"):
        if shutil.which(tool):
            proc = subprocess.run([tool, "--help"], capture_output=True, text=True)
            out[tool] = (proc.stdout + proc.stderr).split()[1]
    return out


def check(res: dict, args) -> None:
    """What every run must show: every watcher ran through every workload and
    has its correctness counted; the in-kernel filters are exact."""
    kinds = [k for k in ("churn", "read", "burst") if k in args.parts]
    for kind in kinds:
        rows = [r for r in res["sweep"] if r["workload"] == kind]
        missing = set(args.watchers) - {r["watcher"] for r in rows}
        if missing:
            raise BenchError(f"{kind}: watchers {sorted(missing)} did not run")
        for r in rows:
            if r["watcher"] != "none" and not all(k in r for k in ("missed", "extra", "overflows")):
                raise BenchError(f"{kind}: no correctness counts for {r['watcher']}")
    if "split" in args.parts and {r["watcher"] for r in res["split"]} != set(args.split_watchers):
        raise BenchError("split: not every configuration ran")
    if "profile" in args.parts and not all(r["samples"] for r in res["profile"]):
        raise BenchError("profile: a configuration has no samples")
    for r in res["sweep"] + res["setup"] + res["split"] + res["profile"]:
        if r["watcher"] in EXACT and (r.get("missed") or "error" in r
                                      or r.get("extra", 0) > r.get("extra_undecided", 0)):
            raise BenchError(f"{r['watcher']}, {r['workload']}: {r.get('error') or ''} "
                             f"{r.get('missed')} missed, {r.get('extra')} extra events "
                             f"({r.get('extra_undecided', 0)} of them counted undecided): "
                             "an in-kernel filter must be exact (missed: "
                             f"{r.get('missed_sample')}, extra: {r.get('extra_sample')})")
    if "readers" in args.parts and {r["reader"] for r in res["readers"]} != {"fanbpf-py", "pyfanotify"}:
        raise BenchError("readers: fanbpf and pyfanotify must both have run")
    if "handler" in args.parts and not res["handler"]:
        raise BenchError("handler cost: nothing measured")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"bench/run.py: FAILED: {err}", file=sys.stderr)
        sys.exit(1)
