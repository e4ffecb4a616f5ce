"""``fanbpf demo``: subtree monitoring with the filter in the kernel.

Two fanotify groups watch the same filesystem.  One has the built-in rules
handler attached with a subtree root (on a kernel without the hook, the
same rules applied in user space) and prints what reaches it; the other
has no handler and only counts, so the summary can say how many events the
kernel kept away from user space.  A child process runs a generated
workload of creates, writes, renames and deletes inside and outside the
subtree.
"""
from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .events import Event
from .flags import EventMask, InitFlag, MarkFlag
from .group import Group
from .fallback import RulesGroup
from .rules import rules

EVENTS = (EventMask.CREATE | EventMask.DELETE | EventMask.MODIFY | EventMask.CLOSE_WRITE
          | EventMask.MOVED_FROM | EventMask.MOVED_TO | EventMask.ONDIR)
DIRS = ("src", "src/lib", "src/app", "build", "build/obj", "node_modules/pkg", "logs")
SUBTREE = "src"


@contextlib.contextmanager
def scratch_filesystem() -> Iterator[Path]:
    """A fresh tmpfs when we may mount one (only the workload's events on it)."""
    path = tempfile.mkdtemp(prefix="fanbpf-demo-")
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "fanbpf-demo", path], capture_output=True).returncode == 0
    try:
        yield Path(path)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", path], check=False)
        else:
            subprocess.run(["rm", "-rf", path], check=False)
        with contextlib.suppress(OSError):
            os.rmdir(path)


def workload(root: Path, ops: int, seed: int) -> None:
    """Churn files everywhere: most of it outside the subtree, like a build."""
    rnd = random.Random(seed)
    files: list[Path] = []
    for i in range(ops):
        op = rnd.random()
        if op < 0.5 or not files:
            d = root / rnd.choice(DIRS)
            f = d / f"f{i}.{rnd.choice(['c', 'o', 'py', 'log', 'json'])}"
            f.write_text("x" * rnd.randrange(64))
            files.append(f)
        elif op < 0.75:
            f = rnd.choice(files)
            with open(f, "a") as fh:
                fh.write("more")
        elif op < 0.9:
            f = files.pop(rnd.randrange(len(files)))
            dest = root / rnd.choice(DIRS) / f.name
            f.rename(dest)
            files.append(dest)
        else:
            files.pop(rnd.randrange(len(files))).unlink()


def describe(event: Event, root: Path) -> str:
    """One line per event; the path is where the object is now (read time)."""
    names = "|".join(m.name for m in EventMask if m & event.mask and m.name
                     and m not in (EventMask.CLOSE, EventMask.MOVE))
    where = event.path or event.name or "?"
    with contextlib.suppress(ValueError):
        where = str(Path(where).relative_to(root))
    return f"{names:<22} {where}"


def run(ops: int, seed: int, quiet: bool) -> int:
    with scratch_filesystem() as root:
        for d in DIRS:
            (root / d).mkdir(parents=True, exist_ok=True)
        flags = InitFlag.REPORT_DFID_NAME | InitFlag.REPORT_FID
        with RulesGroup(Group(flags), rules(subtree=[root / SUBTREE])) as watcher, \
                Group(flags, resolve_paths=False) as everything:
            for g in (watcher.group, everything):
                g.mark(root, EVENTS, MarkFlag.FILESYSTEM)
            where = "the kernel" if watcher.mode == "kernel" else \
                "user space (this kernel has no fastpath hook; `fanbpf probe` says what it lacks)"
            print(f"watching {root}: only {SUBTREE}/ reaches the watcher, filtered in {where}")
            print(f"workload: {ops} operations across {', '.join(DIRS)}\n")
            subprocess.run([sys.executable, "-c",
                            "import sys; from fanbpf.demo import workload; from pathlib import Path; "
                            "workload(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))",
                            str(root), str(ops), str(seed)], check=True)
            delivered = watcher.drain()
            total = len(everything.drain())
            if not quiet:
                for event in delivered:
                    print(describe(event, root))
            filtered = total - len(delivered)
            print(f"\n{total} events happened on the filesystem; {where.split(' (')[0]} "
                  f"filtered out {filtered} ({100 * filtered / max(total, 1):.0f}%) and "
                  f"{len(delivered)} reached the watcher.")
    return 0
