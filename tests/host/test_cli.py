"""The command line, run as a subprocess on the host kernel (needs root)."""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fanbpf import support
from fanbpf.cli import _nest, event_to_dict, format_event, parse_event_names
from fanbpf.events import parse_events
from fanbpf.flags import EventMask

import fanfix

ROOT = Path(__file__).resolve().parents[2]
M = EventMask
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="fanotify groups need root")


def fanbpf(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fanbpf", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


class Watcher:
    """``fanbpf watch`` in the background, started once its marks are in place."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "fanbpf", "watch", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        #: stderr lines before the banner (where the filtering runs)
        self.notes = []
        while (line := self.proc.stderr.readline()) not in ("Watches established.\n", ""):
            self.notes.append(line.rstrip("\n"))
        assert line, "\n".join(self.notes) + self.proc.stderr.read()

    def finish(self, timeout: float = 10) -> tuple[int, list[str]]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.splitlines()


# --- the pure parts ------------------------------------------------------------


def test_parse_event_names():
    assert parse_event_names("create, DELETE,moved_to") == M.CREATE | M.DELETE | M.MOVED_TO
    assert parse_event_names("close,move") == M.CLOSE | M.MOVE
    assert M.CREATE in parse_event_names("all")
    for bad in ["bogus", "", "onDir", "open_perm"]:
        with pytest.raises(argparse.ArgumentTypeError):
            parse_event_names(bad)


def test_nest_dotted_args():
    assert _nest([("a", 1), ("b.c", "x"), ("b.d", [1, 2])]) == {"a": 1, "b": {"c": "x", "d": [1, 2]}}
    with pytest.raises(ValueError):
        _nest([("a", 1), ("a.b", 2)])


def test_output_formats():
    [create, rename, overflow] = parse_events(
        fanfix.event(M.CREATE | M.ONDIR, fanfix.fid(2, name=b"d"), pid=7)
        + fanfix.event(M.RENAME, fanfix.fid(10, name=b"a"), fanfix.fid(12, name=b"b"))
        + fanfix.event(M.Q_OVERFLOW)
    )
    assert format_event(create) == "CREATE,ONDIR d"
    assert event_to_dict(create) == {"events": ["CREATE", "ONDIR"], "path": None, "pid": 7, "dir": True,
                                     "name": "d"}
    assert format_event(rename) == "RENAME a -> b"
    assert event_to_dict(rename)["old_name"] == "a" and event_to_dict(rename)["new_name"] == "b"
    assert format_event(overflow) == "Q_OVERFLOW (events were lost)"


# --- watch ------------------------------------------------------------------------


@root_only
def test_watch_json_lines(tmp_path):
    (tmp_path / "old").write_text("")
    watcher = Watcher(str(tmp_path), "--json", "-e", "create,delete", "--count", "3", "--timeout", "10")
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "old").unlink()
    status, lines = watcher.finish()
    assert status == 0
    events = [json.loads(line) for line in lines]
    assert events[0] == {"events": ["CREATE"], "path": events[0]["path"], "pid": os.getpid(), "dir": False,
                         "name": "f"}
    assert events[0]["path"] in (None, str(tmp_path / "f"))  # None until the shim decodes handles
    assert [(e["name"], e["events"]) for e in events[1:]] == [("d", ["CREATE", "ONDIR"]), ("old", ["DELETE"])]


@root_only
def test_watch_text_and_event_selection(tmp_path):
    watcher = Watcher(str(tmp_path), "--events", "create", "-c", "2", "-t", "10")
    (tmp_path / "a").write_text("changed")  # CREATE, and MODIFY/CLOSE_WRITE not asked for
    (tmp_path / "b").mkdir()
    status, lines = watcher.finish()
    assert status == 0
    assert [line.split()[0] for line in lines] == ["CREATE", "CREATE,ONDIR"]
    assert [line.split()[1].rsplit("/", 1)[-1] for line in lines] == ["a", "b"]


@root_only
def test_watch_rename_pairs(tmp_path):
    (tmp_path / "old").write_text("")
    watcher = Watcher(str(tmp_path), "-e", "rename", "--count", "1", "--timeout", "10")
    (tmp_path / "old").rename(tmp_path / "new")
    status, lines = watcher.finish()
    assert status == 0 and lines[0].startswith("RENAME ") and " -> " in lines[0]
    assert lines[0].endswith("new") and "old ->" in lines[0]


@root_only
def test_watch_filesystem_and_mount_marks(tmp_path):
    watcher = Watcher(str(tmp_path), "--filesystem", "--json", "-e", "create", "-c", "1", "-t", "10")
    (tmp_path / "fs").write_text("")
    status, lines = watcher.finish()
    assert status == 0 and json.loads(lines[0])["events"] == ["CREATE"]
    target = tmp_path / "m"
    target.write_text("")
    watcher = Watcher(str(tmp_path), "--mount", "--json", "-e", "open", "-t", "1.5")
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        target.read_text()
        time.sleep(0.05)
    status, lines = watcher.finish()
    assert status == 0
    assert any(json.loads(line)["events"] == ["OPEN"] and json.loads(line)["pid"] == os.getpid()
               for line in lines)


@root_only
def test_watch_timeout(tmp_path):
    start = time.monotonic()
    assert fanbpf("watch", str(tmp_path), "--timeout", "0.3").returncode == 0
    result = fanbpf("watch", str(tmp_path), "--timeout", "0.3", "--count", "1")
    assert result.returncode == 2 and result.stdout == ""
    assert time.monotonic() - start < 15


@root_only
def test_watch_timeout_counts_from_the_banner(tmp_path):
    """A setup longer than --timeout (in the test VM, loading the handler under
    TCG took that long) still leaves the watcher its --timeout to watch: the
    roots come through a FIFO, which holds the setup for longer than it."""
    fifo = tmp_path / "roots"
    os.mkfifo(fifo)
    (tmp_path / "in").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "fanbpf", "watch", "--roots-from", str(fifo),
                             "--fallback", "always", "-e", "create", "-c", "1", "-t", "3"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(fifo, "w") as roots:  # returns once the watcher opened it: it is in its setup
        time.sleep(4)
        roots.write(f"{tmp_path}/in\n")
    while (line := proc.stderr.readline()) not in ("Watches established.\n", ""):
        pass
    (tmp_path / "in" / "f").write_text("")
    out, err = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (0, f"CREATE {tmp_path}/in/f\n"), line + err


@root_only
def test_watch_errors(tmp_path):
    result = fanbpf("watch", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "No such file or directory" in result.stderr and "missing" in result.stderr
    assert "Traceback" not in result.stderr
    result = fanbpf("watch", str(tmp_path), "--events", "bogus")
    assert result.returncode == 2 and "unknown event 'bogus'" in result.stderr
    result = fanbpf("watch", str(tmp_path), "--arg", "x=1")
    assert result.returncode == 2 and "--arg is for --handler" in result.stderr
    result = fanbpf("watch", str(tmp_path), "--subtree", str(tmp_path), "--handler", "x")
    assert result.returncode == 2 and "cannot be combined" in result.stderr
    result = fanbpf("watch", str(tmp_path), "--count", "0")
    assert result.returncode == 2


@root_only
def test_filter_options_are_checked_before_loading(tmp_path):
    result = fanbpf("watch", str(tmp_path), "--name", "*.c", "--exclude-name", "*.o")
    assert result.returncode == 1 and "cannot be combined" in result.stderr
    result = fanbpf("watch", str(tmp_path), "--name", "a/b")
    assert result.returncode == 1 and "'/'" in result.stderr
    result = fanbpf("watch", str(tmp_path), "--subtree", str(tmp_path / "missing"))
    assert result.returncode == 1 and "missing" in result.stderr and "Traceback" not in result.stderr


@root_only
def test_filters_need_a_fastpath_kernel(tmp_path):
    if os.path.isdir("/sys/fs/fanotify/fastpath"):
        pytest.skip("a fastpath kernel: the VM tests cover filtering")
    for option in (["--subtree", str(tmp_path)], ["--exclude-self"], ["--handler", "rules"],
                   ["--exclude-self", "--fallback", "never"]):
        result = fanbpf("watch", str(tmp_path), *option, "--timeout", "0.2")
        assert result.returncode == 1, option
        # one line: what is missing, how to get it or do without
        [line] = result.stderr.splitlines()
        assert "lacks the fanotify fastpath hook" in line and "fanotify_fastpath_ops" in line
        assert "kernel/patches" in line and "--fallback auto" in line and "make" not in line


@root_only
@pytest.mark.parametrize("fallback", ["auto", "always"])
def test_watch_fallback_filters_in_user_space(tmp_path, fallback):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    watcher = Watcher(str(tmp_path), "--filesystem", "--subtree", str(tmp_path / "in"),
                      "--fallback", fallback, "-e", "create", "-c", "1", "-t", "10")
    kernel = support.SYSFS_DIR.is_dir() and fallback == "auto"  # the v2 series' sysfs
    [note] = watcher.notes
    assert note.startswith("fanbpf watch: filtering in " + ("the kernel" if kernel else "user space"))
    if not kernel and fallback == "auto":
        assert "lacks the fastpath hook; missing: " in note
    (tmp_path / "out" / "skipped").write_text("")
    (tmp_path / "in" / "kept").write_text("")
    status, lines = watcher.finish()
    assert status == 0 and lines == [f"CREATE {tmp_path}/in/kept"]


@root_only
def test_fallback_is_for_the_rules_options(tmp_path):
    result = fanbpf("watch", str(tmp_path), "--fallback", "auto", "--timeout", "0.2")
    assert result.returncode == 2 and "--fallback is for the rules options" in result.stderr
    result = fanbpf("watch", str(tmp_path), "--fallback", "sometimes")
    assert result.returncode == 2 and "invalid choice" in result.stderr


# --- handlers, probe ------------------------------------------------------------------


def test_probe_json():
    result = fanbpf("probe", "--json")
    report = json.loads(result.stdout)
    assert report["kernel"] == os.uname().release
    assert result.returncode == (0 if report["fastpath"] else 1)
    assert report["fastpath"] == (report["missing"] == [])
    assert report["fastpath"] == (report["series"] == 4)


def test_probe_text():
    result = fanbpf("probe")
    assert result.stdout.startswith(f"kernel {os.uname().release}: fastpath handlers")


def test_handlers_lists_sysfs():
    result = fanbpf("handlers", "--json")
    assert result.returncode == 0
    listed = {json.loads(line)["name"] for line in result.stdout.splitlines()}
    sysfs = Path("/sys/fs/fanotify/fastpath")
    assert listed == ({p.name for p in sysfs.iterdir()} if sysfs.is_dir() else set())


def test_no_command_is_a_usage_error():
    result = fanbpf()
    assert result.returncode == 2 and "usage:" in result.stderr


def test_undecided_events_are_reported(capsys, tmp_path):
    from fanbpf.cli import _report_undecided
    from fanbpf.fallback import RulesFilter
    from fanbpf.rules import rules

    f = RulesFilter(rules(subtree=[tmp_path]).model_args)
    _report_undecided(f)
    assert capsys.readouterr().err == ""
    f.uncertain = 3
    _report_undecided(f)
    assert "3 event(s) delivered undecided" in capsys.readouterr().err


# --- subtree options ---------------------------------------------------------------


def test_subtree_options_parse(tmp_path):
    from fanbpf.cli import build_parser

    args = build_parser().parse_args(
        ["watch", "--subtree", "A", "--subtree", "B", "--exclude-dir", ".git", "--exclude-dir",
         "node_modules", "--exclude-subtree", "P", "--roots-from", "F", "--roots-from", "G"])
    assert args.paths == [] and args.subtree == ["A", "B"]
    assert args.exclude_dir == [".git", "node_modules"] and args.exclude_subtree == ["P"]
    assert args.roots_from == ["F", "G"]


def test_read_roots(tmp_path):
    from fanbpf.cli import read_roots

    listing = tmp_path / "roots"
    listing.write_text("# home directories\n/home/a\n\n  # indented comment\n/srv/with space \n"
                       "/srv/x#y\n")
    assert read_roots(str(listing)) == ["/home/a", "/srv/with space ", "/srv/x#y"]


def test_watch_needs_paths_or_roots():
    result = fanbpf("watch")
    assert result.returncode == 2 and "give PATHs to watch, or roots" in result.stderr


@root_only
def test_roots_from_errors(tmp_path):
    result = fanbpf("watch", "--roots-from", str(tmp_path / "nolist"))
    assert result.returncode == 1 and "nolist" in result.stderr and "Traceback" not in result.stderr
    listing = tmp_path / "roots"
    listing.write_text(f"{tmp_path}\n{tmp_path}/gone\n")
    result = fanbpf("watch", "--roots-from", str(listing))
    assert result.returncode == 1 and f"{tmp_path}/gone" in result.stderr
    assert "Traceback" not in result.stderr
    result = fanbpf("watch", "--subtree", str(tmp_path), "--exclude-dir", "a/b")
    assert result.returncode == 1 and "exclude_dirs" in result.stderr and "'/'" in result.stderr


@root_only
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_watch_prints_what_was_queued_before_a_signal(tmp_path, signum):
    """Stopped while the kernel still holds events for it (the watcher is
    frozen, as a watcher behind under load is), ``fanbpf watch`` prints them
    all before it exits: events queued are not lost at exit."""
    w = Watcher("-e", "create", str(tmp_path))
    os.kill(w.proc.pid, signal.SIGSTOP)
    names = [f"f{i}.html" for i in range(40)]
    for name in names:
        (tmp_path / name).touch()
    os.kill(w.proc.pid, signum)
    os.kill(w.proc.pid, signal.SIGCONT)
    out, err = w.proc.communicate(timeout=20)
    assert w.proc.returncode == 128 + signum, err
    assert sorted(out.splitlines()) == sorted(f"CREATE {tmp_path}/{n}" for n in names)
    assert f"stopped by {signal.Signals(signum).name}, after printing the 40 event(s)" in err
