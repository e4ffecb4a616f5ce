#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""How fast fanbpf's Python reader drains a queued stream, on the host kernel.

What bench/run.py's "readers" part measures inside the VM (fanbpf's reader
against pyfanotify), reduced to the reader: a FID group (REPORT_FID |
REPORT_DFID_NAME, the bench's flags) with a filesystem mark on a fresh
tmpfs, a stream of create/modify/close_write/delete events in a few
directories queued first (nothing reads while it is made), then timed:
read_events() until the queue is empty, and ``event.path`` of every event.
Needs root (tmpfs mount, fanotify filesystem mark).

    .venv/bin/python bench/reader_host.py [--events N] [--rounds R] [--profile]

Prints events/s by wall clock and by the process's CPU time (the host is
shared, so CPU time is the steadier of the two), best of the rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fanbpf import EventMask, Group, InitFlag, MarkFlag  # noqa: E402

MASK = (EventMask.CREATE | EventMask.MODIFY | EventMask.CLOSE_WRITE | EventMask.DELETE
        | EventMask.MOVED_FROM | EventMask.MOVED_TO)
FLAGS = InitFlag.REPORT_FID | InitFlag.REPORT_DFID_NAME | InitFlag.UNLIMITED_QUEUE
DIRS = 8


def churn(root: str, events: int) -> None:
    """About ``events`` events: per file a create, a modify, a close_write
    and a delete, the files spread over DIRS directories.  The kernel merges
    the first three (same object, same records), so two events a file."""
    dirs = [os.path.join(root, f"d{i}", "sub") for i in range(DIRS)]
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    for i in range(events // 2):
        path = os.path.join(dirs[(i * 7919) % DIRS], f"f{i}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x")
        os.close(fd)
        os.unlink(path)


def drain(group: Group) -> tuple[int, int]:
    """Read every queued event and its path: (events, events with a path)."""
    count = with_path = 0
    while batch := group.read_events(timeout=0):
        for event in batch:
            count += 1
            if event.path is not None:
                with_path += 1
    return count, with_path


def one_round(root: str, events: int, profile: cProfile.Profile | None) -> tuple[int, int, float, float]:
    with Group(FLAGS) as group:
        group.mark(root, MASK, MarkFlag.FILESYSTEM)
        churn(root, events)
        wall, cpu = time.perf_counter(), time.process_time()
        if profile is not None:
            profile.enable()
        count, with_path = drain(group)
        if profile is not None:
            profile.disable()
        return count, with_path, time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the reads, print the top 25")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="fanbpf-reader-") as root:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "fanbpf-reader", root], check=True)
        try:
            results = [one_round(root, args.events, profile) for _ in range(args.rounds)]
        finally:
            subprocess.run(["umount", root], check=True)
    for count, with_path, wall, cpu in results:
        print(f"{count} events ({with_path} with a path): {wall:.3f} s wall {count / wall:9.0f} ev/s, "
              f"{cpu:.3f} s cpu {count / cpu:9.0f} ev/s")
    count = results[0][0]
    print(f"best: {count / min(r[2] for r in results):.0f} events/s wall, "
          f"{count / min(r[3] for r in results):.0f} events/s cpu")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
