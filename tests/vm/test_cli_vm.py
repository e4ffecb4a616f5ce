"""`fanbpf watch` with in-kernel filters, on the test kernel."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def watch(*args):
    """``fanbpf watch`` started, and the stderr lines it printed before its banner."""
    proc = subprocess.Popen([sys.executable, "-m", "fanbpf", "watch", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    notes = []
    while (line := proc.stderr.readline()) not in ("Watches established.\n", ""):
        notes.append(line.rstrip("\n"))
    assert line, "\n".join(notes) + proc.stderr.read()
    return proc, notes


@pytest.mark.parametrize("fallback", ["never", "auto", "always"])
def test_watch_subtree_and_names_filtered(tmpfs, fallback):
    for d in ("in", "out"):
        os.mkdir(f"{tmpfs}/{d}")
    proc, notes = watch("--filesystem", tmpfs, "--json", "-e", "create", "--subtree", f"{tmpfs}/in",
                        "--exclude-name", "*.tmp", "--count", "2", "--timeout", "60",
                        "--fallback", fallback)
    where = "user space (--fallback always)" if fallback == "always" else \
        "the kernel (fastpath handler fanbpf_rules)"
    assert notes == [f"fanbpf watch: filtering in {where}"]
    for name in ("out/a.txt", "in/b.tmp", "in/c.txt", "out/d.tmp", "in/e.txt"):
        Path(tmpfs, name).write_text("x")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert [json.loads(line)["name"] for line in out.splitlines()] == ["c.txt", "e.txt"]


def test_handlers_lists_the_module():
    out = subprocess.run([sys.executable, "-m", "fanbpf", "handlers"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "fanbpf_subtree_kmod" in out


def test_probe_reports_full_support():
    subprocess.run([sys.executable, "-m", "fanbpf", "probe"], cwd=ROOT, check=True,
                   capture_output=True)
