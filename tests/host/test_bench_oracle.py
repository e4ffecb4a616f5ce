"""The bench's oracle against real watchers on the host kernel.

bench/run.py scores every watcher by comparing what it printed with the
events ``expected()`` derives from the workload's plan.  If that derivation
were wrong, every "missed" and "extra" column would be wrong with it, so it
is checked here against two watchers whose output does not depend on
fanbpf: the C fanotify filter (bench/fanwatch.c, one filesystem mark) and
inotifywait -r, both on a fresh tmpfs of the host kernel, running the same
plans the bench runs (a fraction of the operations inside the subtree).
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
_saved_path = list(sys.path)
sys.path[:0] = [str(TOP / "bench")]
import run as bench  # noqa: E402  (bench/run.py, which puts the checkout on sys.path)
sys.path[:] = _saved_path  # the tests run against the installed fanbpf, not the checkout


@pytest.fixture(scope="module")
def tools():
    missing = [str(p) for p in (bench.WORKLOAD, bench.FANWATCH) if not p.exists()]
    if missing:
        pytest.fail(f"bench tools not built ({', '.join(missing)}): run `make bench-tools`")
    if not shutil.which("inotifywait"):
        pytest.fail("inotifywait not found: apt install inotify-tools (make deps)")


@pytest.fixture
def scene(tools):
    """A fresh tmpfs with the bench's tree (D = 30 on each side)."""
    with tempfile.TemporaryDirectory(prefix="fanbpf-oracle-") as scratch:
        with bench.Tmpfs(os.path.join(scratch, "fs")) as mount:
            yield bench.Tree(mount, dirs=30, files=5, scratch=scratch), scratch


def watch(name: str, tree, scratch: str, plan: list[str], tag: str):
    w = bench.Watcher(name, tree, scratch, tag)
    w.start(timeout=60)
    try:
        bench.run_plan(plan, scratch, tag)
        seen = w.wait_for(bench.sentinel(tree, tag), timeout=60, quiet=10)
    finally:
        w.stop()
    events = w.events()
    w.close()
    assert seen is not None, f"{name} never reported the sentinel"
    return events


def outside_paths(plan: list[str], tree) -> set[str]:
    return {p for line in plan for p in line.split(" ")[1:] if not p.startswith(tree.sub + os.sep)}


@pytest.mark.parametrize("f", [0.1, 0.5])
def test_fanwatch_reports_exactly_what_the_plan_predicts(scene, f):
    tree, scratch = scene
    tag = f"o{int(f * 10)}"
    plan = bench.churn_plan(tree, 120, f, tag)
    events = watch("fanwatch", tree, scratch, plan, tag)
    want = bench.expected(plan, tree.sub, bench.watcher_kinds("fanwatch"))

    # The plan has operations on both sides, and nothing outside is expected.
    assert outside_paths(plan, tree) and want
    assert not {p for _, p in want} & outside_paths(plan, tree)
    assert bench.score("fanwatch", plan, tree, tag, events, (0, 1 << 62)) == {
        "expected": len(want), "missed": 0, "extra": 0, "overflows": 0,
        "missed_sample": [], "extra_sample": []}


def test_inotifywait_agrees_when_no_directory_is_created_under_it(scene):
    """Without new directories recursive inotify has nothing to race with, so it
    must report exactly the expected events too (the bench's newdir runs are
    where it legitimately misses)."""
    tree, scratch = scene
    plan = bench.churn_plan(tree, 80, 0.5, "ino", newdir_every=0)
    events = watch("inotifywait", tree, scratch, plan, "ino")
    want = bench.expected(plan, tree.sub, bench.watcher_kinds("inotifywait"))
    got = bench.score("inotifywait", plan, tree, "ino", events, (0, 1 << 62))
    assert got == {"expected": len(want), "missed": 0, "extra": 0, "overflows": 0,
                   "missed_sample": [], "extra_sample": []}
    # one create/modify/close_write + moved_from/moved_to + delete per inside op
    inside = sum(1 for line in plan if line.startswith("C ") and line[2:].startswith(tree.sub + os.sep))
    assert len(want) == 6 * (inside - 1) + 3  # the sentinel is only created


def test_the_oracle_counts_a_missing_and_an_extra_event(scene):
    """score() is not blind: drop one real event and add one invented one."""
    tree, scratch = scene
    plan = bench.churn_plan(tree, 40, 0.5, "blind")
    events = watch("fanwatch", tree, scratch, plan, "blind")
    want = bench.expected(plan, tree.sub, bench.watcher_kinds("fanwatch"))
    kind, path = sorted(want)[0]
    kept = [e for e in events if (e[1], e[2]) != (kind, path)]
    assert len(kept) < len(events)
    kept.append((0, "create", os.path.join(tree.sub, "blind.f999999")))
    got = bench.score("fanwatch", plan, tree, "blind", kept, (0, 1 << 62))
    assert (got["missed"], got["extra"]) == (1, 1)
    # and names them, for the message of a failed check
    assert got["missed_sample"] == [(kind, path)]
    assert got["extra_sample"] == [("create", os.path.join(tree.sub, "blind.f999999"))]


def test_workload_binary_runs_the_plan_it_is_given(scene):
    """The plan's operations really happen: the files the plan leaves exist."""
    tree, scratch = scene
    target = os.path.join(tree.inside[3], "kept")
    out = bench.run_plan([f"C {target}", f"R {target} {target}.2"], scratch, "plain")
    assert {"t0", "t1", "sys"} <= set(out)
    assert os.path.getsize(target + ".2") == 100 and not os.path.exists(target)
    subprocess.run(["rm", target + ".2"], check=True)
