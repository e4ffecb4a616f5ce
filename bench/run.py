"""fanbpf benchmarks: subtree watching with and without the in-kernel filter.

Runs on the test kernel (``make bench``: ``kernel/vm.sh python bench/run.py``).
Under TCG absolute times mean little; compare the ratios.

Scenario: a fresh tmpfs with ``watched/`` and a busier ``busy/`` next to it.
A forked child runs N operations (create + write + close, then unlink, each
on a new file), 1 in ``--every`` of them under ``watched/``, and ends with
one more file under ``watched/`` (the sentinel).  A watcher in this process
reads a FILESYSTEM mark (CREATE|MODIFY|CLOSE_WRITE|DELETE) through
:class:`fanbpf.Group` in FID + DFID_NAME mode with paths resolved (the only
fanotify mode that reports creates and deletes, and what ``fsnotifywait
--filesystem`` does) until it has seen every event of the sentinel.

Variants: (a) no watcher; (b) no handler, the watcher filters by path;
(c) the BPF rules handler with a subtree; (d) the kernel-module reference
handler fanbpf_subtree_kmod; (e) the user-space fallback (fanbpf.fallback's
RulesFilter, the rules judged per event in Python).  (c) and (d) must deliver
exactly the events under ``watched/``, else the bench fails.

Micro-benchmark: the same file operations, all outside ``watched/``, run
here in small batches that alternate between no mark at all and a FILESYSTEM
mark of a group whose handler (BPF or module) skips every event: the cost
the hook and the handler add per operation in the kernel, where it is
charged to the process doing the operation.

Groups use an unlimited queue, so a slow watcher loses nothing; the bench
fails on an overflow, a stalled watcher or a wrong delivery.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TOP), str(TOP / "tests" / "vm")]

from fanbpf import EventMask, Group, Handler, InitFlag, MarkFlag, rules  # noqa: E402
from fanbpf.fallback import RulesFilter  # noqa: E402
from kabi import KMOD, subtree_args  # noqa: E402

BITS = (EventMask.CREATE, EventMask.MODIFY, EventMask.CLOSE_WRITE, EventMask.DELETE)
MASK = EventMask.CREATE | EventMask.MODIFY | EventMask.CLOSE_WRITE | EventMask.DELETE
# An unlimited queue: a watcher that falls behind must not lose events.
FLAGS = InitFlag.REPORT_FID | InitFlag.REPORT_DFID_NAME | InitFlag.UNLIMITED_QUEUE
IN_DIRS = ("watched/a", "watched/b/c")
OUT_DIRS = tuple(f"busy/d{k}" for k in range(8)) + tuple(f"busy/d{k}/sub" for k in range(8))
VARIANTS = {
    "a": "(a) no watcher",
    "b": "(b) no handler, filter in user space",
    "c": "(c) BPF rules handler (subtree)",
    "d": "(d) kernel module fanbpf_subtree_kmod",
    "e": "(e) user-space fallback (RulesFilter)",
}
MICRO = {"none": "no mark", "bpf": "mark + BPF rules, all SKIP", "kmod": "mark + kmod, all SKIP"}
STALL = 120.0  # seconds without an event before the watcher gives up
LIBC = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


class BenchError(Exception):
    pass


# --- the scenario --------------------------------------------------------

class Scratch:
    """A fresh tmpfs with the directory tree, unmounted on exit."""

    def __enter__(self) -> Scratch:
        self.root = os.path.realpath(tempfile.mkdtemp(prefix="fanbpf-bench-"))
        if LIBC.mount(b"fanbpf-bench", self.root.encode(), b"tmpfs", 0, None):
            raise OSError(ctypes.get_errno(), f"mount tmpfs on {self.root}")
        for d in IN_DIRS + OUT_DIRS:
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        self.watched = os.path.join(self.root, "watched")
        return self

    def __exit__(self, *exc) -> None:
        LIBC.umount2(self.root.encode(), MNT_DETACH)
        os.rmdir(self.root)


def plan(root: str, ops: int, every: int, sentinel: bool) -> list[str]:
    """The files the workload creates, in order (every one is also unlinked)."""
    paths = []
    for i in range(ops):
        inside = every and i % every == every - 1
        dirs = IN_DIRS if inside else OUT_DIRS
        paths.append(os.path.join(root, dirs[i % len(dirs)], f"f{i}"))
    if sentinel:
        paths.append(os.path.join(root, IN_DIRS[0], "sentinel"))
    return paths


def cpu(who: int = resource.RUSAGE_SELF) -> tuple[float, float]:
    r = resource.getrusage(who)
    return r.ru_utime, r.ru_stime


def start_workload(paths: list[str]) -> tuple[int, int]:
    """Fork the workload; returns (pid, fd of the pipe its timings come on)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(wfd)
        return pid, rfd
    try:  # the child: nothing but the workload's syscalls on the tmpfs
        os.write(wfd, json.dumps(file_ops(paths)).encode())
        os._exit(0)
    except BaseException:
        os._exit(1)


def file_ops(paths: list[str]) -> dict:
    """The workload: create, write, close and unlink each file; its times."""
    data = b"x" * 100
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    u0, s0 = cpu(resource.RUSAGE_THREAD)
    t0 = time.monotonic()
    for p in paths:
        fd = os.open(p, flags, 0o644)
        os.write(fd, data)
        os.close(fd)
        os.unlink(p)
    t1 = time.monotonic()
    u1, s1 = cpu(resource.RUSAGE_THREAD)
    return {"t0": t0, "t1": t1, "user": u1 - u0, "sys": s1 - s0}


def finish_workload(pid: int, rfd: int) -> dict:
    with os.fdopen(rfd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if status or not data:
        raise BenchError(f"workload child failed (wait status {status:#x})")
    return json.loads(data)


# --- the watcher -----------------------------------------------------------

def watch(group: Group, keep, watched: str, sentinel: str) -> dict:
    """Read events until the sentinel's DELETE, then drain; ``keep`` is the user-space filter."""
    prefix = watched + os.sep
    seen_in, seen_out = set(), set()
    delivered = kept = 0
    last = time.monotonic()
    done = False
    u0, s0 = cpu(resource.RUSAGE_THREAD)
    while True:
        events = group.read_events(timeout=0 if done else 1.0)
        if not events:
            if done:
                break
            if time.monotonic() - last > STALL:
                raise BenchError(f"watcher stalled: no event for {STALL:.0f}s "
                                 f"({len(seen_in)} (path, event) pairs seen under watched/)")
            continue
        last = time.monotonic()
        for event in events:
            delivered += 1
            event = keep(event)
            if event is None:
                continue
            kept += 1
            path = event.path or ""
            seen = seen_in if path.startswith(prefix) else seen_out
            seen.update((path, bit) for bit in BITS if event.mask & bit)
        done = (sentinel, EventMask.DELETE) in seen_in
    t_done = time.monotonic()
    u1, s1 = cpu(resource.RUSAGE_THREAD)
    if group.overflows:
        raise BenchError(f"the fanotify queue overflowed {group.overflows} times")
    return {"delivered": delivered, "kept": kept, "seen_in": seen_in, "seen_out": seen_out,
            "t_done": t_done, "watcher_cpu": (u1 - u0) + (s1 - s0)}


def keep_all(event):
    return event


def under(directory: str):
    """What people do today: a filter on the resolved path."""
    prefix = directory + os.sep
    return lambda event: event if (event.path or "").startswith(prefix) else None


def run_variant(variant: str, args, handler: Handler) -> dict:
    with Scratch() as fs:
        paths = plan(fs.root, args.ops, args.every, sentinel=True)
        expected = {(p, bit) for p in paths if p.startswith(fs.watched + os.sep) for bit in BITS}
        if variant == "a":
            wl = finish_workload(*start_workload(paths))
            return {"workload": wl["t1"] - wl["t0"], "workload_sys": wl["sys"], "delivered": 0,
                    "kept": 0, "exact_inside": len(expected), "extra_outside": 0,
                    "drain": wl["t1"] - wl["t0"], "watcher_cpu": 0.0}
        with Group(FLAGS) as group:
            group.mark(fs.root, MASK, MarkFlag.FILESYSTEM)
            keep = keep_all
            if variant == "b":
                keep = under(fs.watched)
            elif variant == "c":
                group.attach(handler, rules(subtree=[fs.watched]))
            elif variant == "d":
                group.attach(KMOD, subtree_args(fs.watched))
            elif variant == "e":
                keep = RulesFilter(rules(subtree=[fs.watched])).filter
            pid, rfd = start_workload(paths)
            try:
                w = watch(group, keep, fs.watched, paths[-1])
            finally:
                wl = finish_workload(pid, rfd)
    missing = expected - w["seen_in"]
    if missing:
        raise BenchError(f"{VARIANTS[variant]}: {len(missing)} events under watched/ "
                         f"never arrived, e.g. {sorted(missing)[:3]}")
    if variant in "cd" and (w["seen_out"] or w["seen_in"] != expected):
        raise BenchError(f"{VARIANTS[variant]}: delivered {len(w['seen_out'])} (path, event) "
                         f"pairs outside watched/; expected exactly the {len(expected)} inside")
    return {"workload": wl["t1"] - wl["t0"], "workload_sys": wl["sys"],
            "delivered": w["delivered"], "kept": w["kept"], "exact_inside": len(expected),
            "extra_outside": len(w["seen_out"]), "drain": w["t_done"] - wl["t0"],
            "watcher_cpu": w["watcher_cpu"]}


def run_micro(args, handler: Handler) -> dict:
    """Batches of the workload, all outside watched/, in this process, alternating
    between no mark and a FILESYSTEM mark of a group whose handler skips everything.

    Small interleaved batches, so that a noisy host weighs on every variant alike.
    """
    samples: dict[str, list] = {m: [] for m in MICRO}
    with Scratch() as fs, Group(FLAGS) as bpf, Group(FLAGS) as kmod:
        bpf.attach(handler, rules(subtree=[fs.watched]))
        kmod.attach(KMOD, subtree_args(fs.watched))
        groups = {"none": None, "bpf": bpf, "kmod": kmod}
        paths = plan(fs.root, args.micro_ops, 0, sentinel=False)
        for batch in range(-1, args.micro_batches):  # batch -1 warms up
            for m in rotated(list(MICRO), batch):
                group = groups[m]
                if group:
                    group.mark(fs.root, MASK, MarkFlag.FILESYSTEM)
                times = file_ops(paths)
                if group:
                    group.unmark(fs.root, MASK, MarkFlag.FILESYSTEM)
                if batch >= 0:
                    samples[m].append({"workload": times["t1"] - times["t0"],
                                       "workload_sys": times["sys"]})
        for name, group in (("bpf", bpf), ("kmod", kmod)):
            leaked = group.read_events(timeout=0)
            if leaked:
                raise BenchError(f"micro {name}: {len(leaked)} events reached user space")
    return samples


# --- reporting -------------------------------------------------------------

def rotated(items: list, n: int) -> list:
    n %= len(items)
    return items[n:] + items[:n]


def medians(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def paired(runs: list[dict], base: list[dict]) -> dict:
    """Medians, plus each batch compared with the baseline batch of its round
    (which slow drifts of a busy host do not skew)."""
    pairs = list(zip(runs, base))

    def median(f) -> float:
        return statistics.median(f(r, b) for r, b in pairs)

    return {**medians(runs),
            "ratio": median(lambda r, b: r["workload"] / b["workload"]),
            "sys_ratio": median(lambda r, b: r["workload_sys"] / max(b["workload_sys"], 1e-6)),
            "added": median(lambda r, b: r["workload"] - b["workload"])}


def ratio(x: float, base: float) -> str:
    return f"{x / base:.2f}x" if base else "-"


def report(res: dict, micro: dict, args) -> str:
    b = res["b"]
    lines = [f"subtree watch: {args.ops} files (+1 sentinel) created, written, closed, unlinked; "
             f"1 in {args.every} under watched/ ({b['exact_inside']} (file, event) pairs there); "
             f"median of {args.reps} interleaved runs",
             "  workload/wl sys: the workload's wall and system CPU time; events: read from "
             "fanotify; kept: left after user-space filtering;",
             "  drained: workload start until the watcher has everything; watch cpu: "
             "the watcher thread's CPU time",
             "",
             f"{'variant':<40} {'workload':>8} {'wl sys':>6} {'events':>6} {'kept':>5} "
             f"{'drained':>7} {'watch cpu':>9} | vs (b): {'workload':>8} {'events':>6} "
             f"{'drained':>7} {'cpu':>6}"]
    for key, row in res.items():
        lines.append(
            f"{VARIANTS[key]:<40} {row['workload']:7.2f}s {row['workload_sys']:5.2f}s "
            f"{row['delivered']:6.0f} {row['kept']:5.0f} {row['drain']:6.2f}s {row['watcher_cpu']:8.2f}s"
            f" | {'':8}{ratio(row['workload'], b['workload']):>8} "
            f"{ratio(row['delivered'], b['delivered']):>6} {ratio(row['drain'], b['drain']):>7} "
            f"{ratio(row['watcher_cpu'], b['watcher_cpu']):>6}")
    checked = " and ".join(f"({k})" for k in "cd" if k in res)
    lines += ["", f"checked: {checked} delivered exactly the {b['exact_inside']} (file, event) pairs "
              "under watched/ and nothing else, in every run"]
    if "e" in res:
        lines.append(f"(e) also kept {res['e']['extra_outside']:.0f} pairs outside watched/: "
                     "files already deleted when it judged them (it fails open)")
    lines += ["", f"handler cost: batches of {args.micro_ops} files created, written, closed, "
              "unlinked, none under watched/ (4 events each, all skipped in the kernel); "
              f"median of {args.micro_batches} interleaved batches",
              f"{'variant':<40} {'workload':>8} {'wl sys':>6} | vs no mark: {'workload':>8} "
              f"{'sys':>6} | added per file"]
    for key, row in micro.items():
        lines.append(f"{MICRO[key]:<40} {row['workload']:7.2f}s {row['workload_sys']:5.2f}s | "
                     f"{'':12}{row['ratio']:7.2f}x {row['sys_ratio']:5.2f}x | "
                     f"{row['added'] * 1e6 / args.micro_ops:8.0f} us")
    lines.append("  (ratios and added cost: medians over batches of each batch vs the no-mark "
                 "batch next to it in time)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=2000, help="files per run (default 2000)")
    parser.add_argument("--every", type=int, default=20,
                        help="1 file in EVERY is under watched/ (default 20: 5%%)")
    parser.add_argument("--micro-ops", type=int, default=250, help="files per micro batch")
    parser.add_argument("--reps", type=int, default=3, help="runs per variant (median)")
    parser.add_argument("--micro-batches", type=int, default=30, help="batches per micro variant")
    parser.add_argument("--variants", default="abcde", help="which of abcde (default all)")
    parser.add_argument("--json", default=str(TOP / "build" / "bench" / "results.json"))
    args = parser.parse_args()
    if os.environ.get("FANBPF_IN_VM") != "1":
        print("bench/run.py: run it on the test kernel: make bench", file=sys.stderr)
        return 2
    variants = [v for v in "abcde" if v in args.variants]
    if "b" not in variants:
        parser.error("--variants needs b, the baseline of the ratios")
    started = time.monotonic()
    load0 = os.getloadavg()
    with Handler.load("rules", private=True) as handler:
        runs: dict[str, list] = {v: [] for v in variants}
        warm = argparse.Namespace(ops=100, every=args.every)
        for v in variants:  # first forks, first attaches, caches: not measured
            run_variant(v, warm, handler)
        for rep in range(args.reps):
            for v in rotated(variants, rep):
                runs[v].append(run_variant(v, args, handler))
            print(f"bench: round {rep + 1}/{args.reps} done ({time.monotonic() - started:.0f}s)",
                  file=sys.stderr)
        micro_runs = run_micro(args, handler)
        print(f"bench: micro-benchmark done ({time.monotonic() - started:.0f}s)", file=sys.stderr)
    res = {v: medians(runs[v]) for v in variants}
    micro = {m: paired(micro_runs[m], micro_runs["none"]) for m in MICRO}
    table = report(res, micro, args)
    print(table)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "config": {"ops": args.ops, "every": args.every, "reps": args.reps,
                   "micro_ops": args.micro_ops, "micro_batches": args.micro_batches,
                   "mask": "CREATE|MODIFY|CLOSE_WRITE|DELETE",
                   "group": "FID+DFID_NAME, unlimited queue, paths resolved",
                   "kernel": os.uname().release,
                   "cpus": os.cpu_count(), "loadavg_start": load0, "loadavg_end": os.getloadavg(),
                   "seconds": time.monotonic() - started},
        "variants": {VARIANTS[v]: {"median": res[v], "runs": runs[v]} for v in variants},
        "micro": {MICRO[m]: {"median": micro[m], "runs": micro_runs[m]} for m in MICRO},
        "table": table,
    }, indent=2) + "\n")
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"bench/run.py: FAILED: {err}", file=sys.stderr)
        sys.exit(1)
