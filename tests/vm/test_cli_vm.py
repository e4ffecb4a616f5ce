"""`fanbpf watch` with in-kernel filters, on the test kernel."""
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def watch(*args, **popen):
    """``fanbpf watch`` started, and the stderr lines it printed before its banner."""
    proc = subprocess.Popen([sys.executable, "-m", "fanbpf", "watch", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
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


@pytest.mark.parametrize("fallback", ["never", "always"])
def test_watch_roots_and_exclusions(tmpfs, tmp_path, fallback):
    """No PATH: the roots get subtree marks (their filesystem is marked with
    --fallback always); counters on stderr at exit.  With subtree marks the
    write in c/, outside the roots, never reaches the handler: 3 skipped
    (.git, node_modules, the excluded subtree), where a filesystem mark
    made the handler skip 4."""
    for d in ("a/.git", "b/node_modules/m", "b/skip", "c", "d"):
        os.makedirs(f"{tmpfs}/{d}")
    listing = tmp_path / "roots"
    listing.write_text(f"# more roots\n{tmpfs}/d\n\n")
    proc, notes = watch("--json", "-e", "create", "--subtree", f"{tmpfs}/a", "--subtree",
                        f"{tmpfs}/b", "--roots-from", str(listing), "--exclude-dir", ".git",
                        "--exclude-dir", "node_modules", "--exclude-subtree", f"{tmpfs}/b/skip",
                        "--count", "3", "--timeout", "60", "--fallback", fallback)
    if fallback == "never":
        assert notes == ["fanbpf watch: watching 3 subtree(s) with subtree marks; filtering "
                         "exclusions in the kernel (fastpath handler fanbpf_rules)"]
    for name in ("a/.git/HEAD", "a/x", "b/node_modules/m/y", "c/no", "b/skip/no", "b/z", "d/w"):
        Path(tmpfs, name).write_text("x")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert [json.loads(line)["path"] for line in out.splitlines()] == \
        [f"{tmpfs}/a/x", f"{tmpfs}/b/z", f"{tmpfs}/d/w"]
    if fallback == "never":
        assert err.splitlines()[-1] == "fanbpf watch: delivered 3, skipped 3, undecided 0", err


def test_watch_roots_alone_attach_no_handler(tmpfs):
    for d in ("a", "out"):
        os.mkdir(f"{tmpfs}/{d}")
    proc, notes = watch("--json", "-e", "create", "--subtree", f"{tmpfs}/a", "--count", "1",
                        "--timeout", "60")
    assert notes == ["fanbpf watch: watching 1 subtree(s) with subtree marks; nothing else to "
                     "filter: no handler attached"]
    Path(tmpfs, "out", "no").write_text("x")
    Path(tmpfs, "a", "yes").write_text("x")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert [json.loads(line)["path"] for line in out.splitlines()] == [f"{tmpfs}/a/yes"]
    assert "delivered" not in err


def test_watch_a_root_below_an_excluded_name(tmpfs):
    """The handler's walk would meet node_modules above the root: it stops at the root."""
    root = f"{tmpfs}/node_modules/pkg"
    os.makedirs(f"{root}/.git")
    proc, _ = watch("--json", "-e", "create", "--subtree", root, "--exclude-dir", "node_modules",
                    "--exclude-dir", ".git", "--count", "1", "--timeout", "60")
    Path(root, ".git", "no").write_text("x")
    Path(root, "yes").write_text("x")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert [json.loads(line)["path"] for line in out.splitlines()] == [f"{root}/yes"]
    assert err.splitlines()[-1] == "fanbpf watch: delivered 1, skipped 1, undecided 0", err


def test_watch_20000_overlay_roots_at_1024_fds(mounts, tmp_path):
    """Issue 17, defect 3: overlayfs roots held an O_PATH fd each; subtree
    marks hold them in the kernel.  No exclusion: with nothing else to
    filter no handler is loaded (its load is most of a VM test's time)."""
    merged, _, _ = mounts.overlay()
    roots = [f"{merged}/d{i}" for i in range(20_000)]
    for root in roots:
        os.mkdir(root)
    listing = tmp_path / "roots"
    listing.write_text("\n".join(roots) + "\n")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    proc, notes = watch("--json", "-e", "create", "--roots-from", str(listing),
                        "--count", "1", "--timeout", "300",
                        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)))
    assert notes[0].startswith("fanbpf watch: watching 20000 subtree(s) with subtree marks")
    Path(merged, "outside").write_text("x")
    Path(roots[-1], "yes").write_text("x")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert [json.loads(line)["path"] for line in out.splitlines()] == [f"{roots[-1]}/yes"]


def test_watch_subtree_default_events_leave_out_delete_self(tmpfs):
    """DELETE_SELF comes after an object's last name is gone: no handler can
    place it, so it would be delivered (undecided) for every deletion on the
    filesystem.  --subtree's default events leave it out; DELETE reports
    the deletions in the subtree."""
    for d in ("in", "out"):
        os.mkdir(f"{tmpfs}/{d}")
    proc, notes = watch("--json", "--subtree", f"{tmpfs}/in", "--timeout", "20")
    marks = any("with subtree marks" in note for note in notes)
    for name in ("in/x", "out/y"):
        Path(tmpfs, name).write_text("x")
        os.unlink(Path(tmpfs, name))
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert {e["path"] for e in events if e["events"] != ["ATTRIB"]} == {f"{tmpfs}/in/x"}, events
    # The unlink's link-count ATTRIB is an event on the file's inode alone:
    # a filesystem mark sees it (with no path: the inode is gone when read),
    # a subtree mark, on the directories, does not (nor does inotify).
    assert sum(e["events"] == ["ATTRIB"] for e in events) == (0 if marks else 1), (notes, events)
    assert any("DELETE" in e["events"] for e in events), events
    assert not any("DELETE_SELF" in e["events"] for e in events), events
    if not marks:  # with subtree marks and no other rule no handler counts anything
        assert err.splitlines()[-1].endswith("undecided 0"), err


def test_handlers_lists_the_module():
    out = subprocess.run([sys.executable, "-m", "fanbpf", "handlers"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "fanbpf_subtree_kmod" in out


def test_probe_reports_full_support():
    out = subprocess.run([sys.executable, "-m", "fanbpf", "probe"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert "  series           v4\n" in out, out
