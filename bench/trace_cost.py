#!/usr/bin/env python3
"""What tracing a build costs: wall time of a small C build (tests/vm/data/cproj,
``make`` with two compilations and a link) bare, under ``fanbpf trace`` and
under ``strace -f -e trace=%file``.  Run it in the test kernel:

    kernel/vm.sh env PYTHONPATH=$PWD .venv/bin/python bench/trace_cost.py [--runs N]

The variants run interleaved (bare, fanbpf, strace, bare, ...) so that a
slow phase of the machine hits all of them; the report gives medians and
the ratios to bare.  Under TCG only the ratios mean anything.  Each traced
build is checked: the trace must name the build's output.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(HERE, "..", "tests", "vm", "data", "cproj")


def build_bare(work):
    subprocess.run(["make", "-s", "-C", work], check=True)


def build_fanbpf(work):
    import fanbpf

    result = fanbpf.trace(["make", "-s", "-C", work])
    assert result.returncode == 0 and result.overflows == 0
    assert os.path.join(work, "hello") in result.paths("write"), "the trace missed the output"


def build_strace(work):
    subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=%file",
                    "make", "-s", "-C", work], check=True)


VARIANTS = {"bare": build_bare, "fanbpf trace": build_fanbpf, "strace -f": build_strace}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="builds per variant (default 5)")
    args = parser.parse_args()
    times = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="fanbpf-trace-bench-") as work:
        for name in os.listdir(PROJECT):
            shutil.copy(os.path.join(PROJECT, name), work)
        build_bare(work)  # warm the page cache and the compiler
        for _ in range(args.runs):
            for name, build in VARIANTS.items():
                subprocess.run(["make", "-s", "-C", work, "clean"], check=True)
                start = time.perf_counter()
                build(work)
                times[name].append(time.perf_counter() - start)
    bare = statistics.median(times["bare"])
    print(f"C build (tests/vm/data/cproj), {args.runs} runs each, kernel {os.uname().release}")
    print(f"{'variant':<14} {'median s':>9} {'ratio':>6}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<14} {median:9.3f} {median / bare:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
