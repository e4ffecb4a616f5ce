"""Tables, target checks and plots from bench/run.py's results.

Runs on the host after ``make bench`` (``python bench/report.py
build/bench/results.json bench/results``): ``<date>.json``, ``<date>.md`` and
the PNG plots.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

TCG_NOTE = ("*Measured in a TCG-emulated VM (no KVM): absolute times are inflated and "
            "distorted; only ratios between rows measured side by side mean anything.*")
LABELS = {
    "none": "no watcher",
    "inotifywait": "inotifywait -r -m",
    "watchdog": "watchdog (inotify)",
    "watchdog-fanbpf": "watchdog + fanbpf observer",
    "watchfiles": "watchfiles",
    "fanbpf-watch": "fanbpf.watch",
    "fsnotifywait": "fsnotifywait -S --include",
    "fanwatch": "C fanotify, path filter (bench/fanwatch.c)",
    "pyfanotify": "pyfanotify",
    "fanbpf-bpf": "fanbpf, BPF subtree handler",
    "fanbpf-kmod": "fanbpf, kernel-module handler",
    "fanbpf-py": "fanbpf reader (no handler)",
    "mark-nomatch": "filesystem mark, mask matches nothing (FAN_ACCESS), no handler",
    "skip-kmod": "DFID_NAME group, module handler that skips everything",
    "skip-bpf": "DFID_NAME group, BPF handler that skips everything",
    "fid-bpf": "FID-only group, BPF subtree handler",
    "inode-marks": "inode marks on the subtree's directories (as inotify), no handler",
    "fanbpf-marks": "a subtree mark (FAN_MARK_SUBTREE), no handler",
}
#: What each configuration of the cost part adds to the one above it.
COST_NOTES = {
    "none": "the limit",
    "mark-nomatch": "an sb mark exists: fsnotify's mask tests, nothing more",
    "skip-kmod": "every churn event: SRCU, marks, parent ref + name, fanotify, an empty C handler",
    "skip-bpf": "the same with an empty BPF handler: + the struct_ops trampoline",
    "fid-bpf": "the subtree handler without names: no parent ref or name snapshot",
    "fanbpf-bpf": "as `fanbpf watch`: DFID_NAME group, the subtree handler",
    "fanbpf-kmod": "the same with the reference module",
    "inode-marks": "events outside the subtree never reach fanotify",
    "fanbpf-marks": "the same, with the kernel marking the subtree's directories (no race)",
    "inotifywait": "recursive inotify, for comparison",
}


def med(xs) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def spread(xs, fmt="{:.2f}") -> str:
    """median [min-max]"""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(statistics.median(xs))} [{fmt.format(min(xs))}–{fmt.format(max(xs))}]"


def part(res, workload: str) -> list[dict]:
    return [r for r in res["sweep"] if r["workload"] == workload]


def by(rows, *keys):
    out = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def ratios(rows) -> dict:
    """Per (f, watcher): throughput / no-watcher throughput of the same round."""
    base = {(r["f"], r["rep"]): r["wall_s"] for r in rows if r["watcher"] == "none"}
    out = defaultdict(list)
    for r in rows:
        out[(r["f"], r["watcher"])].append(base[(r["f"], r["rep"])] / r["wall_s"])
    return out


def exited(r) -> bool:
    """The watcher died during this workload (older results: its CPU went negative)."""
    return "exited" in r or (r.get("cpu_s") is not None and r["cpu_s"] < 0)


def cpu_per_kop(r) -> float | None:
    return None if r.get("cpu_s") is None or exited(r) else r["cpu_s"] / r["ops"] * 1000


def correctness(rs) -> str:
    """missed / extra / overflow reports, summed over the runs, of expected."""
    if "expected" not in rs[0]:
        return "–"
    exp = sum(r["expected"] for r in rs)
    died = sum(exited(r) for r in rs)
    return (f"{sum(r['missed'] for r in rs)} / {sum(r['extra'] for r in rs)} / "
            f"{sum(r['overflows'] for r in rs)} of {exp}" + (f", **watcher died** ({died}×)" if died else ""))


def workload_table(rows, title: str, watchers) -> list[str]:
    rat = ratios(rows)
    fs = sorted({r["f"] for r in rows})
    lines = [f"### {title}", "", TCG_NOTE, "",
             "| f | watcher | throughput vs none | watcher CPU s / 1000 ops | "
             "missed / extra / overflows (of expected) | drain s |",
             "| --- | --- | --- | --- | --- | --- |"]
    groups = by(rows, "f", "watcher")
    for f in fs:
        for w in watchers:
            rs = groups.get((f, w))
            if not rs:
                continue
            lines.append(f"| {f * 100:g} % | {LABELS[w]} | {spread(rat[(f, w)])} | "
                         f"{spread([cpu_per_kop(r) for r in rs], '{:.3f}')} | {correctness(rs)} | "
                         f"{spread([r.get('drain_s') for r in rs], '{:.2f}')} |")
    return lines + [""]


def setup_table(rows, watchers) -> list[str]:
    lines = ["### Setup: time and kernel memory to start watching", "", TCG_NOTE, "",
             "D = directories under the watched subtree (as many again outside it). "
             "Slab: growth of /proc/meminfo Slab from before the watcher starts to once it "
             "watches. Correctness: a 1 % churn right after setup.", "",
             "| D | watcher | setup s | Slab kB | inotify watches | fanotify marks | "
             "missed / extra / overflows |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    failed = [r for r in rows if "error" in r]
    rows = [r for r in rows if "error" not in r]
    groups = by(rows, "dirs", "watcher")
    for d in sorted({r["dirs"] for r in rows}):
        for w in watchers:
            rs = groups.get((d, w))
            if not rs:
                continue
            lines.append(f"| {d} | {LABELS[w]} | {spread([r['setup_s'] for r in rs])} | "
                         f"{spread([r['slab_kb'] for r in rs], '{:.0f}')} | "
                         f"{med([r['inotify_watches'] for r in rs]):.0f} | "
                         f"{med([r['fanotify_marks'] for r in rs]):.0f} | {correctness(rs)} |")
    lines += [f"- {LABELS[r['watcher']]} at D={r['dirs']}: {r['error']}" for r in failed]
    return lines + [""]


def handler_table(rows) -> list[str]:
    lines = ["### In-kernel handler cost per event", "", TCG_NOTE, "",
             "Files created and unlinked outside the subtree at a given depth below the "
             "filesystem root (the handler walks up to the root: its worst case). "
             "*inside*: run_time_ns / run_cnt, for BPF from kernel.bpf_stats_enabled=1, for "
             "the module from its own stats=1 timing, both sched_clock() around each call. "
             "*added*: system time the workload gains per handler call over a batch with no "
             "mark next to it in time (mark + hook + handler), a cross-check from outside.", "",
             "| depth | roots | calls/batch | BPF ns (inside) | module ns (inside) "
             "| BPF / module (inside) | BPF added ns | module added ns |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        b, k = med(r["bpf_stats_ns"]), med(r.get("kmod_stats_ns") or [0])
        rel = f"{b / k:.2f}x" if k > 0 else "-"
        inside = spread(r["kmod_stats_ns"], "{:.0f}") if r.get("kmod_stats_ns") else "-"
        roots = str(r["roots"])
        if r.get("exclude_dirs"):
            roots += ", exclude_dirs " + " ".join(f"`{d}`" for d in r["exclude_dirs"])
        kmod_added = spread(r["kmod_added_ns"], "{:.0f}") if r["kmod_added_ns"] else "-"
        lines.append(f"| {r['depth']} | {roots} | {r['handler_calls']:.0f} | "
                     f"{spread(r['bpf_stats_ns'], '{:.0f}')} | {inside} | {rel} | "
                     f"{spread(r['bpf_added_ns'], '{:.0f}')} | {kmod_added} |")
    return lines + [""]


def readers_table(rows) -> list[str]:
    lines = ["### Python event readers on the same stream", "", TCG_NOTE, "",
             "The reader is stopped while the workload queues its events (every one inside "
             "the subtree), then resumed and timed until it has printed the last one.", "",
             "| reader | events printed | events/s | CPU µs / event | missed (of expected) |",
             "| --- | --- | --- | --- | --- |"]
    for name, rs in by(rows, "reader").items():
        rate = [r["events"] / r["seconds"] for r in rs if r["seconds"]]
        cpu = [r["cpu_s"] / r["events"] * 1e6 for r in rs if r["events"]]
        lines.append(f"| {LABELS[name[0]]} | {med([r['events'] for r in rs]):.0f} | "
                     f"{spread(rate, '{:.0f}')} | {spread(cpu, '{:.0f}')} | "
                     f"{sum(r['missed'] for r in rs)} of {sum(r['expected'] for r in rs)} |")
    return lines + [""]


def targets(res) -> list[str]:
    """The issue's targets at f = 1 %, each met or missed by how much."""
    churn = part(res, "churn")
    rat = ratios(churn)
    groups = by(churn, "f", "watcher")
    out = ["### Targets (f = 1 %)", "", TCG_NOTE, ""]
    if (0.01, "fanbpf-bpf") not in groups:
        return out + ["(f = 1 % was not run)", ""]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    r_bpf = med(rat[(0.01, "fanbpf-bpf")])
    out.append(f"- BPF handler within 5 % of no-watcher throughput: {r_bpf:.3f}x "
               f"({(1 - r_bpf) * 100:+.1f} % slower) — {verdict(r_bpf >= 0.95)}")
    hrows = [r for r in res["handler"] if r["roots"] == 1 and not r.get("exclude_dirs")]
    if hrows and all(r.get("kmod_stats_ns") for r in hrows):
        by_depth = {r["depth"]: med(r["bpf_stats_ns"]) / med(r["kmod_stats_ns"])
                    for r in sorted(hrows, key=lambda r: r["depth"])}
        out.append("- BPF per-event cost at most 1.25x the module's at every depth (timed "
                   "inside): " + ", ".join(f"depth {d} {x:.2f}x" for d, x in by_depth.items()) +
                   f" — {verdict(max(by_depth.values()) <= 1.25)}")
    elif hrows:
        b = med([med(r["bpf_added_ns"]) for r in hrows])
        k = med([med(r["kmod_added_ns"]) for r in hrows])
        noisy = any(x <= 0 for r in hrows for x in r["bpf_added_ns"] + r["kmod_added_ns"])
        out.append(f"- BPF per-event cost within 10 % of the module's (added system time, "
                   f"median over depths): {b:.0f} ns vs {k:.0f} ns = {b / k:.2f}x — " +
                   ("**not measured**: some batches gained no system time at all, so the "
                    "noise of this run exceeds the cost" if noisy else verdict(b <= 1.10 * k)))
    cpu = {w: med([cpu_per_kop(r) for r in groups[(0.01, w)]]) for w in ("fanbpf-bpf", "fanwatch")
           if (0.01, w) in groups}
    if len(cpu) == 2:
        fac = cpu["fanwatch"] / cpu["fanbpf-bpf"] if cpu["fanbpf-bpf"] else float("inf")
        out.append(f"- ≥ 10× less watcher CPU than the C user-space filter: {fac:.1f}× "
                   f"({cpu['fanbpf-bpf']:.3f} vs {cpu['fanwatch']:.3f} s / 1000 ops) — "
                   f"{verdict(fac >= 10)}")
    bad = sum(r["missed"] + r["extra"] for r in groups[(0.01, "fanbpf-bpf")])
    ino = {w: sum(r["missed"] for r in groups[(0.01, w)]) for w in
           ("inotifywait", "watchdog", "watchfiles") if (0.01, w) in groups}
    out.append(f"- zero missed or extra events for the BPF handler ({bad}) where every "
               f"recursive-inotify watcher misses some ({', '.join(f'{w}: {n}' for w, n in ino.items())}) "
               f"— {verdict(bad == 0 and all(ino.values()))}")
    setup = [r for r in res["setup"] if "error" not in r]
    if setup:
        sizes = sorted({r["dirs"] for r in setup})
        s = by(setup, "dirs", "watcher")

        def growth(w):
            a, b = s.get((sizes[0], w)), s.get((sizes[-1], w))
            return med([r["setup_s"] for r in b]) / med([r["setup_s"] for r in a]) if a and b else None
        g = {w: growth(w) for w in ("fanbpf-bpf", "inotifywait", "watchdog", "watchfiles")}
        shown = ", ".join(f"{w} {x:.1f}x" for w, x in g.items() if x)
        out.append(f"- setup O(1) in D where recursive inotify is O(D): setup time growth from "
                   f"D={sizes[0]} to D={sizes[-1]}: {shown} — "
                   f"{verdict(bool(g['fanbpf-bpf']) and g['fanbpf-bpf'] < 1.5)}")
    rd = by(res["readers"], "reader")
    if len(rd) == 2:
        rate = {k[0]: med([r["events"] / r["seconds"] for r in v if r["seconds"]]) for k, v in rd.items()}
        out.append(f"- fanbpf's Python reader at least as fast as pyfanotify: "
                   f"{rate['fanbpf-py']:.0f} vs {rate['pyfanotify']:.0f} events/s "
                   f"({rate['fanbpf-py'] / rate['pyfanotify']:.2f}x) — "
                   f"{verdict(rate['fanbpf-py'] >= rate['pyfanotify'])}")
    return out + [""]


def _kernel_kind(meta: dict) -> str:
    if "lockdep" not in meta:  # runs from before the variant existed
        return "the fanbpf test kernel: lockdep and debug options on"
    if meta["lockdep"]:
        return "the fanbpf test kernel: lockdep and debug options on"
    return "the fanbpf nodebug kernel: no lockdep, atomic-sleep, SLUB or list debugging"


def markdown(res, plots: list[str]) -> str:
    meta = res["meta"]
    watchers = [w for w in LABELS if w in set(meta["args"]["watchers"])]
    a = meta["args"]
    lines = [f"# fanbpf benchmarks, {meta['date']}", "",
             f"Kernel {meta['kernel']} ({_kernel_kind(meta)}), "
             f"{meta['cpus']} vCPU, TCG. Guest load average at start "
             f"{meta['loadavg_start'][0]:.2f}, at end {meta['loadavg_end'][0]:.2f}; "
             f"the run took {meta['seconds'] / 60:.1f} min in the guest. "
             f"{meta.get('conditions', '')}", "",
             f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}.", "",
             f"Workload (bench/workload.c, a plan written by bench/run.py): a tmpfs with "
             f"`w/` (watched) and `o/`, D = {a['tree']} directories each; churn = "
             f"{a['ops']} operations (create+write 100 B+close, rename, unlink; every 10th a new "
             f"directory with a file in it, removed again), a fraction f of them under `w/`; "
             f"{a['reps']} interleaved rounds, median [min–max]. Expected events are derived "
             f"from the plan; *missed/extra* compare them with what each watcher printed, "
             f"*overflows* count the queue-overflow reports it printed.", ""]
    lines += targets(res)
    lines += workload_table(part(res, "churn"), "Churn: throughput, watcher CPU, correctness",
                            watchers)
    if part(res, "read"):
        lines += workload_table(part(res, "read"), "Read-heavy: open/read/close of existing "
                                "files (no watcher subscribes to opens)", watchers)
    if part(res, "burst"):
        lines += workload_table(part(res, "burst"), f"Burst: {a['burst_ops']} operations at "
                                "f = 1 %, default queue sizes", watchers)
    lines += readers_table(res["readers"])
    if res["setup"]:
        lines += setup_table(res["setup"], watchers)
    lines += handler_table(res["handler"])
    if res.get("split"):
        lines += cost_table(res)
    if res.get("profile"):
        lines += profile_table(res)
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def saver(outdir: Path, stem: str, names: list[str]):
    """save(fig, name): <stem>-<name>.png in outdir, its name appended to names."""
    def save(fig, name):
        fig.text(0.99, 0.01, "TCG VM: only ratios mean anything", ha="right", fontsize=7)
        fig.tight_layout()
        fig.savefig(outdir / f"{stem}-{name}.png", dpi=110)
        pyplot().close(fig)
        names.append(f"{stem}-{name}.png")
    return save


def plot(res, outdir: Path, stem: str) -> list[str]:
    plt = pyplot()
    names: list[str] = []
    save = saver(outdir, stem, names)
    churn = part(res, "churn")
    rat = ratios(churn)
    fs = sorted({r["f"] for r in churn})
    watchers = [w for w in LABELS if any(r["watcher"] == w for r in churn)]
    groups = by(churn, "f", "watcher")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for w in watchers:
        ax.plot([f * 100 for f in fs], [med(rat[(f, w)]) for f in fs], marker="o", label=LABELS[w])
    ax.set(xscale="log", xlabel="operations inside the watched subtree, f (%)",
           ylabel="workload throughput / no watcher", title="Throughput ratio vs f")
    ax.legend(fontsize=7)
    save(fig, "throughput")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for w in watchers:
        if w == "none":
            continue
        ax.plot([f * 100 for f in fs], [med([cpu_per_kop(r) for r in groups[(f, w)]]) for f in fs],
                marker="o", label=LABELS[w])
    ax.set(xscale="log", yscale="symlog", xlabel="f (%)", ylabel="watcher CPU s per 1000 ops",
           title="Watcher CPU vs f")
    ax.legend(fontsize=7)
    save(fig, "cpu")

    setup = [r for r in res["setup"] if "error" not in r]
    if setup:
        s = by(setup, "dirs", "watcher")
        sizes = sorted({r["dirs"] for r in setup})
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for w in watchers:
            pts = [(d, med([r["setup_s"] for r in s[(d, w)]])) for d in sizes if (d, w) in s]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=LABELS[w])
        ax.set(xscale="log", yscale="log", xlabel="directories under the subtree, D",
               ylabel="setup time (s)", title="Setup time vs D")
        ax.legend(fontsize=7)
        save(fig, "setup")

    h = [r for r in res["handler"] if r["roots"] == 1 and not r.get("exclude_dirs")]
    if h:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        d = [r["depth"] for r in h]
        ax.plot(d, [med(r["bpf_stats_ns"]) for r in h], marker="o", label="BPF (bpf_stats)")
        if all(r.get("kmod_stats_ns") for r in h):
            ax.plot(d, [med(r["kmod_stats_ns"]) for r in h], marker="v",
                    label="module (its stats timing)")
        ax.plot(d, [med(r["bpf_added_ns"]) for r in h], marker="s", label="BPF (added system time)")
        ax.plot(d, [med(r["kmod_added_ns"]) for r in h], marker="^", label="module (added system time)")
        ax.set(xlabel="depth of the file below the filesystem root",
               ylabel="ns per handler call", title="Handler cost vs depth")
        ax.legend(fontsize=7)
        save(fig, "handler")
    return names


# --- the cost part (make bench-cost) -------------------------------------------

def cost_ratios(rows) -> dict:
    """Per watcher: throughput / no-watcher throughput of the same round and run."""
    base = {(r["rep"], r["run"]): r["wall_s"] for r in rows if r["watcher"] == "none"}
    out = defaultdict(list)
    for r in rows:
        out[r["watcher"]].append(base[(r["rep"], r["run"])] / r["wall_s"])
    return out


def cost_order(res) -> list[str]:
    return list(dict.fromkeys(r["watcher"] for r in sorted(
        res["split"], key=lambda r: res["meta"]["args"]["split_watchers"].index(r["watcher"]))))


def cost_table(res) -> list[str]:
    rows = res["split"]
    a = res["meta"]["args"]
    rat = cost_ratios(rows)
    sys_base = {(r["rep"], r["run"]): r["wl_sys_s"] for r in rows if r["watcher"] == "none"}
    groups = by(rows, "watcher")
    lines = [f"### The cost of watching at f = {a['split_f'] * 100:g} %, by configuration", "",
             TCG_NOTE, "",
             f"{a['reps']} interleaved rounds × {a['split_runs']} runs of {a['split_ops']} churn "
             f"operations in each configuration's session; ratios against the no-watcher run of "
             f"the same round and run index; median [min–max] over the "
             f"{a['reps'] * a['split_runs']} pairs.", "",
             "| configuration | what it adds | throughput vs none | workload system time vs none "
             "| watcher CPU s / 1000 ops | missed / extra / overflows (of expected) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for w in cost_order(res):
        rs = groups[(w,)]
        sys_rat = [r["wl_sys_s"] / sys_base[(r["rep"], r["run"])] for r in rs
                   if sys_base[(r["rep"], r["run"])]]
        lines.append(f"| {LABELS[w]} | {COST_NOTES.get(w, '')} | {spread(rat[w])} | "
                     f"{spread(sys_rat)} | {spread([cpu_per_kop(r) for r in rs], '{:.3f}')} | "
                     f"{correctness(rs) if w != 'none' else '–'} |")
    return lines + [""]


def profile_table(res) -> list[str]:
    prof = res["profile"]
    if not prof:
        return []
    a = res["meta"]["args"]
    cats = ["outside fsnotify"] + list(dict.fromkeys(
        c for r in prof for c in sorted(r["categories"], key=lambda c: -r["categories"][c])
        if c != "outside fsnotify"))
    head = " | ".join(LABELS[r["watcher"]] for r in prof)
    lines = ["### Where the time goes: perf profile of the workload", "", TCG_NOTE, "",
             f"`perf record -g -e cpu-clock` ({prof[0]['perf']}; a software event: works under "
             f"TCG) on the workload process alone, {a['profile_ops']} churn operations at "
             f"f = {a['split_f'] * 100:g} %, one run per configuration, the watcher running. "
             "Each sample goes to the innermost frame of the watching path on its stack "
             "(bench/run.py `classify`): *outside fsnotify* is the file operations "
             "themselves; dput/dget_parent/name snapshots count as the parent reference only "
             "under `__fsnotify_parent`; static functions the compiler inlined count as their "
             "caller. cpu-clock samples from a timer interrupt, not an NMI: time with "
             "interrupts off is counted where they are turned back on (`__wake_up`'s unlock "
             "holds the waking of the reader). % of the workload's samples:", "",
             f"| where | {head} |", "| --- |" + " --- |" * len(prof)]
    for c in cats:
        cells = " | ".join(f"{100 * r['categories'].get(c, 0) / r['samples']:.1f}" for r in prof)
        lines.append(f"| {c} | {cells} |")
    inside = " | ".join(f"**{100 - 100 * r['categories'].get('outside fsnotify', 0) / r['samples']:.1f}**"
                        for r in prof)
    lines.append(f"| **all of fsnotify** | {inside} |")
    lines.append(f"| samples | {' | '.join(str(r['samples']) for r in prof)} |")
    lines += ["", "Leaf functions of the samples under fsnotify (% of the workload's samples):", ""]
    for r in prof:
        top = ", ".join(f"`{sym}` {100 * n / r['samples']:.1f}" for sym, n in r["fsnotify_leaves"][:12])
        lines.append(f"- {LABELS[r['watcher']]}: {top or '–'}")
    return lines + [""]


def inlined_callees(res) -> dict[int, str]:
    """address -> the function the compiler inlined into fsnotify,
    fanotify_handle_event or __fsnotify_parent that holds it (its direct
    inlined callee: "(own code)" if none), from addr2line -i on the guest
    kernel's vmlinux; empty without it."""
    kdir = res["meta"].get("kernel_dir")
    vmlinux = Path(kdir) / "vmlinux" if kdir else None
    ips = sorted({ip for r in res["profile"] for _, ip, _ in r.get("inlined_ips", [])})
    if not ips or not vmlinux or not vmlinux.exists():
        return {}
    out = subprocess.run(["addr2line", "-a", "-f", "-i", "-e", str(vmlinux)],
                         input="".join(f"{ip:#x}\n" for ip in ips), capture_output=True,
                         text=True, check=True).stdout
    callee: dict[int, str] = {}
    for block in out.split("0x")[1:]:
        lines = block.strip().splitlines()
        funcs = lines[1::2]  # function, file:line, innermost first, the host last
        callee[int(lines[0], 16)] = funcs[-2] if len(funcs) > 1 else "(own code)"
    return callee


def inlined_table(res) -> list[str]:
    callee = inlined_callees(res)
    prof = res["profile"]
    if not callee:
        return []
    cells: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for r in prof:
        for host, ip, n in r.get("inlined_ips", []):
            key = (host, callee.get(ip, "?"))
            cells[key][r["watcher"]] = cells[key].get(r["watcher"], 0) + 100 * n / r["samples"]
    lines = ["The samples filed under `fsnotify`, `fanotify_handle_event` and "
             "`__fsnotify_parent` above, by the function the compiler inlined into them that "
             "holds the sampled address (or the call a sample was in): `addr2line -i` on the "
             "guest kernel's vmlinux. % of the workload's samples:", "",
             f"| function | inlined callee | {' | '.join(LABELS[r['watcher']] for r in prof)} |",
             "| --- | --- |" + " --- |" * len(prof)]
    for (host, fn), by_w in sorted(cells.items(), key=lambda kv: -sum(kv[1].values())):
        if sum(by_w.values()) < 0.3:
            continue
        row = " | ".join(f"{by_w.get(r['watcher'], 0):.1f}" for r in prof)
        lines.append(f"| `{host}` | `{fn}` | {row} |")
    return lines + ["", "(Rows under 0.3 % in all configurations left out.)", ""]


def cost_markdown(res, plots: list[str]) -> str:
    meta = res["meta"]
    a = meta["args"]
    lines = [f"# The cost of watching, split (issue 18), {meta['date']}", "",
             f"Kernel {meta['kernel']} ({_kernel_kind(meta)}), {meta['cpus']} vCPU, TCG. Guest "
             f"load average at start {meta['loadavg_start'][0]:.2f}, at end "
             f"{meta['loadavg_end'][0]:.2f}; the run took {meta['seconds'] / 60:.1f} min in the "
             f"guest. {meta.get('conditions', '')}", "",
             f"Workload: bench/run.py's churn (create+write 100 B+close, rename, unlink; every "
             f"10th a new directory with a file in it) on a tmpfs with `w/` (watched) and `o/`, "
             f"D = {a['tree']} directories each, a fraction f of the operations under `w/`. It "
             "never reads, so a FAN_ACCESS mask matches none of its events. Expected events "
             "are derived from the plan: configurations that must print nothing count any "
             "printed event as extra; the FID-only group, whose directory-entry events name the "
             "directory, is scored on (event, directory) pairs; inode marks, like inotify, miss "
             "what is made in a new directory before its mark exists.", ""]
    if res["split"]:
        lines += cost_table(res)
    lines += profile_table(res)
    lines += inlined_table(res)
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def cost_plot(res, outdir: Path, stem: str) -> list[str]:
    plt = pyplot()
    names: list[str] = []
    save = saver(outdir, stem, names)
    if res["split"]:
        rat = cost_ratios(res["split"])
        order = cost_order(res)
        meds = [med(rat[w]) for w in order]
        lo = [m - min(rat[w]) for m, w in zip(meds, order)]
        hi = [max(rat[w]) - m for m, w in zip(meds, order)]
        fig, ax = plt.subplots(figsize=(8, 4.8))
        y = range(len(order))[::-1]
        ax.barh(list(y), meds, xerr=[lo, hi], color="tab:blue", alpha=0.8, capsize=3)
        ax.set_yticks(list(y), [LABELS[w] for w in order], fontsize=7)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.axvline(0.95, color="tab:green", lw=0.8, ls="--", label="target 0.95")
        ax.set(xlim=(min(0.5, min(meds) - 0.05), 1.1), xlabel="workload throughput / no watcher "
               f"(median, min–max), f = {res['meta']['args']['split_f'] * 100:g} %",
               title="The cost of watching, by configuration")
        ax.legend(fontsize=7, loc="lower right")
        save(fig, "cost")
    if res["profile"]:
        prof = res["profile"]
        cats = list(dict.fromkeys(c for r in prof for c in r["categories"]
                                  if c != "outside fsnotify"))
        fig, ax = plt.subplots(figsize=(8, 4.8))
        left = [0.0] * len(prof)
        y = list(range(len(prof)))[::-1]
        cmap = plt.get_cmap("tab20")
        for i, c in enumerate(cats):
            vals = [100 * r["categories"].get(c, 0) / r["samples"] for r in prof]
            ax.barh(y, vals, left=left, label=c, color=cmap(i % 20))
            left = [a + b for a, b in zip(left, vals)]
        ax.set_yticks(y, [LABELS[r["watcher"]] for r in prof], fontsize=7)
        ax.set(xlabel="% of the workload's perf samples (cpu-clock) under fsnotify",
               title="Where the watching time goes")
        ax.legend(fontsize=6, loc="upper right")
        save(fig, "profile")
    return names


def write_results(res: dict, outdir: Path, stem: str) -> Path:
    """<stem>.json, <stem>.md and <stem>-*.png in outdir (a cost-part result:
    its own report)."""
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / f"{stem}.json").write_text(json.dumps(res, indent=1) + "\n")
    cost_only = (res.get("split") or res.get("profile")) and not any(
        res[k] for k in ("sweep", "readers", "setup", "handler"))
    if cost_only:
        plots = cost_plot(res, outdir, stem)
        text = cost_markdown(res, plots)
    else:
        res.setdefault("split", [])
        res.setdefault("profile", [])
        plots = plot(res, outdir, stem) + cost_plot(res, outdir, stem)
        text = markdown(res, plots)
    md = outdir / f"{stem}.md"
    md.write_text(text)
    return md


def merge(parts: list[dict]) -> dict:
    """One result from runs of different --parts: the lists joined, the first
    run's metadata, the time and load of all."""
    res = parts[0]
    for more in parts[1:]:
        for key, rows in more.items():
            if key != "meta":
                res[key] = res.get(key, []) + rows
        res["meta"]["seconds"] += more["meta"]["seconds"]
        res["meta"]["loadavg_end"] = more["meta"]["loadavg_end"]
        res["meta"].setdefault("parts", [parts[0]["meta"]["args"]]).append(more["meta"]["args"])
    return res


def main() -> int:
    p = argparse.ArgumentParser(description="tables and plots from bench/run.py's JSON")
    p.add_argument("results", type=Path, nargs="+",
                   help="the JSON bench/run.py wrote (several: parts of one run, merged)")
    p.add_argument("outdir", type=Path, help="where <date>.md, .json and .png go")
    p.add_argument("--stem", help="file names (default: the run's date)")
    p.add_argument("--conditions", default="", help="load on the machine during the run")
    args = p.parse_args()
    res = merge([json.loads(path.read_text()) for path in args.results])
    if args.conditions:
        res["meta"]["conditions"] = args.conditions
    print(write_results(res, args.outdir, args.stem or res["meta"]["date"][:10]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
