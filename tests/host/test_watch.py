"""fanbpf.watch(), awatch() and the watchdog observer on the host's stock kernel.

The host runs as root without the fastpath hook: "userspace" mode (a
filesystem mark, the rules in user space) is what the default picks, and
"inode-marks" is forced, and checked without privilege in a child
process that drops to nobody.
"""
import asyncio
import os
import signal
import subprocess
import sys
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

import fanbpf
from fanbpf.watch import Change, DefaultFilter, watch, awatch
from fanbpf.watching import FsEvent, WatchError, open_source

MODES = ["userspace", "inode-marks"]
FAST = dict(debounce=400, step=50, rust_timeout=3000)


def later(fn, delay=0.2):
    t = threading.Timer(delay, fn)
    t.start()
    return t


def first_batch(w):
    try:
        return next(w)
    finally:
        w.close()


def test_default_mode_on_this_host(tmp_path):
    w = watch(tmp_path, **FAST)
    try:
        assert w.mode == ("userspace" if os.geteuid() == 0 else "inode-marks")
    finally:
        w.close()


@pytest.mark.parametrize("mode", MODES)
def test_changes_in_a_new_directory_and_renames(tmp_path, mode):
    """A file made in a directory right after the directory is reported (what
    recursive inotify misses); a rename is a deletion and an addition."""
    (tmp_path / "old").write_text("x")

    def work():
        os.makedirs(tmp_path / "new" / "deeper")
        (tmp_path / "new" / "deeper" / "f").write_text("x")
        os.rename(tmp_path / "old", tmp_path / "renamed")

    w = watch(tmp_path, mode=mode, **FAST)
    t = later(work)
    changes = first_batch(w)
    t.join()
    assert changes == {
        (Change.added, str(tmp_path / "new")),
        (Change.added, str(tmp_path / "new" / "deeper")),
        (Change.added, str(tmp_path / "new" / "deeper" / "f")),
        (Change.deleted, str(tmp_path / "old")),
        (Change.added, str(tmp_path / "renamed")),
    }


@pytest.mark.parametrize("mode", MODES)
def test_a_watched_directory_deleted(tmp_path, mode):
    """Its own deletion is reported as watchfiles reports it (DELETE_SELF:
    its parent is not watched). (What was in it is reported when read before
    it went: userspace mode names entries by their directory's handle.)"""
    root = tmp_path / "root"
    root.mkdir()
    w = watch(root, mode=mode, yield_on_timeout=True, **FAST)
    t = later(lambda: os.rmdir(root))
    changes = first_batch(w)
    t.join()
    assert changes == {(Change.deleted, str(root))}


@pytest.mark.parametrize("mode", MODES)
def test_a_root_deletion_is_one_event_whatever_the_kinds(tmp_path, mode):
    """The Source marks a root's deletion (``root``) even when deletions are
    not asked for: nothing more comes for it. A root below another is that
    one's entry, reported once (by its parent's DELETE)."""
    outer, inner = tmp_path / "outer", tmp_path / "outer" / "inner"
    inner.mkdir(parents=True)
    with open_source([outer, inner], mode=mode, kinds=("deleted",)) as source:
        os.rmdir(inner)
        events = source.read(5)  # read while outer is there to name it
        os.rmdir(outer)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(e.root for e in events):
            events += source.read(0.1)
    assert events == [FsEvent("deleted", str(inner), True), FsEvent("deleted", str(outer), True, root=True)]
    (tmp_path / "gone").mkdir()
    with open_source([tmp_path / "gone"], mode=mode, kinds=("modified",)) as source:
        os.rmdir(tmp_path / "gone")
        assert source.read(5) == [FsEvent("deleted", str(tmp_path / "gone"), True, root=True)]


@pytest.mark.parametrize("mode", MODES)
def test_exclude_dirs_and_default_filter(tmp_path, mode):
    os.makedirs(tmp_path / "src" / ".git")
    os.makedirs(tmp_path / "src" / "node_modules" / "x")

    def work():
        (tmp_path / "src" / ".git" / "HEAD").write_text("x")
        (tmp_path / "src" / "node_modules" / "x" / "i.js").write_text("x")
        (tmp_path / "src" / "a.pyc").write_text("x")
        (tmp_path / "src" / "b" ).mkdir()
        (tmp_path / "src" / "b" / "build").mkdir()
        (tmp_path / "src" / "b" / "build" / "o").write_text("x")
        (tmp_path / "src" / "a.py").write_text("x")

    w = watch(tmp_path, mode=mode, exclude_dirs=["build", ".git", "node_modules"], **FAST)
    t = later(work)
    changes = first_batch(w)
    t.join()
    # an excluded directory's own creation is not reported either (as in the kernel rules)
    assert changes == {(Change.added, str(tmp_path / "src" / "b")),
                       (Change.added, str(tmp_path / "src" / "a.py"))}


@pytest.mark.parametrize("mode", MODES)
def test_not_recursive_and_modified(tmp_path, mode):
    os.makedirs(tmp_path / "sub")
    (tmp_path / "f").write_text("x")

    def work():
        (tmp_path / "sub" / "g").write_text("x")
        with open(tmp_path / "f", "a") as f:
            f.write("more")

    w = watch(tmp_path, mode=None if mode == "inode-marks" else mode, recursive=False, **FAST)
    assert w.mode == "inode-marks" if mode == "inode-marks" else True
    t = later(work)
    changes = first_batch(w)
    t.join()
    assert changes == {(Change.modified, str(tmp_path / "f"))}


def test_stop_event_and_timeout(tmp_path):
    stop = threading.Event()
    w = watch(tmp_path, stop_event=stop, yield_on_timeout=True, debounce=100, step=20, rust_timeout=200)
    assert next(w) == set()  # the timeout
    stop.set()
    assert list(w) == []


def test_a_batch_is_not_held_back_by_what_is_still_queued(tmp_path):
    """A batch is read for at most ``debounce`` ms: a backlog (or a flood
    that never lets the queue empty) is yielded in several batches, none
    lost, instead of held until the queue is empty."""
    w = watch(tmp_path, debounce=1, step=1, rust_timeout=3000, yield_on_timeout=True,
              watch_filter=None)
    names = {str(tmp_path / f"f{i:04}") for i in range(3000)}
    for name in names:
        open(name, "w").close()
    try:
        batches = [next(w)]
        while batches[-1]:
            batches.append(next(w))
    finally:
        w.close()
    assert len(batches[0]) < len(names)
    assert set().union(*batches) == {(Change.added, name) for name in names}


def test_awatch(tmp_path):
    async def main():
        stop = asyncio.Event()
        w = awatch(tmp_path, stop_event=stop, **FAST)
        assert w.mode in ("userspace", "kernel", "inode-marks")
        later(lambda: (tmp_path / "a").write_text("x"))
        async for changes in w:
            assert changes == {(Change.added, str(tmp_path / "a"))}
            stop.set()
    asyncio.run(main())


def test_sigint_yields_what_was_queued_first(tmp_path):
    """On SIGINT the changes the kernel had already queued come first, then
    the KeyboardInterrupt (watchfiles drops them)."""
    w = watch(tmp_path, debounce=10_000, step=2_000, rust_timeout=0)

    def work():
        (tmp_path / "a").write_text("x")
        os.kill(os.getpid(), signal.SIGINT)

    later(work)
    assert next(w) == {(Change.added, str(tmp_path / "a"))}
    with pytest.raises(KeyboardInterrupt):
        next(w)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.*No such file or directory"):
        watch(tmp_path / "missing")
    for mode in MODES:
        with pytest.raises(WatchError, match="on proc, a pseudo filesystem.*Poll it instead"):
            open_source(["/proc/self"], mode=mode)
    with pytest.raises(ValueError, match="fanbpf does not poll"):
        watch(tmp_path, force_polling=True)
    with pytest.raises(ValueError, match="mode must be one of"):
        watch(tmp_path, mode="polling")


def test_default_filter_goes_to_the_kernel_rules(tmp_path):
    w = watch(tmp_path, **FAST)
    try:
        assert w.source.exclude_dirs == tuple(DefaultFilter.ignore_dirs)
    finally:
        w.close()


UNPRIVILEGED = r"""
import os, sys, threading, time
from fanbpf.watch import watch
top = sys.argv[1]
w = watch(top, debounce=400, step=50, rust_timeout=3000)
print(w.mode, flush=True)
def work():
    os.makedirs(f"{top}/d/e")
    open(f"{top}/d/e/f", "w").close()
threading.Timer(0.2, work).start()
print(sorted((int(c), p[len(top):]) for c, p in next(w)))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="drops privilege with setpriv: needs root")
def test_without_privilege_inode_marks():
    top = tempfile.mkdtemp(prefix="fanbpf-unpriv-")  # pytest's tmp_path is root's only
    os.chown(top, 65534, 65534)
    top = Path(top)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fanbpf.__file__)))
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-c", UNPRIVILEGED, str(top)],
                         capture_output=True, text=True, env=env, timeout=60)
    shutil.rmtree(top)
    assert out.returncode == 0, out.stderr
    mode, changes = out.stdout.splitlines()
    assert mode == "inode-marks"
    assert changes == "[(1, '/d'), (1, '/d/e'), (1, '/d/e/f')]"


def test_watchdog_observer_moves_and_unschedule(tmp_path):
    pytest.importorskip("watchdog")
    from watchdog.events import (DirCreatedEvent, DirModifiedEvent, DirMovedEvent, FileCreatedEvent,
                                 FileMovedEvent, FileSystemEventHandler)
    from fanbpf.watchdog import FanotifyObserver

    seen = []

    class Collect(FileSystemEventHandler):
        def on_any_event(self, event):
            seen.append(event)

    (tmp_path / "f").write_text("x")
    observer = FanotifyObserver()
    watch_ = observer.schedule(Collect(), str(tmp_path), recursive=True)
    observer.start()
    try:
        os.mkdir(tmp_path / "d")
        os.rename(tmp_path / "f", tmp_path / "d" / "g")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(isinstance(e, FileMovedEvent) for e in seen):
            time.sleep(0.05)
        observer.unschedule(watch_)
        assert not observer.emitters
    finally:
        observer.stop()
        observer.join()
    got = {(type(e), e.src_path, e.dest_path) for e in seen}
    assert (DirCreatedEvent, str(tmp_path / "d"), "") in got
    assert (FileMovedEvent, str(tmp_path / "f"), str(tmp_path / "d" / "g")) in got
    assert (DirModifiedEvent, str(tmp_path), "") in got
    assert not any(isinstance(e, (FileCreatedEvent, DirMovedEvent)) for e in seen)


@pytest.mark.parametrize("mode", MODES)
def test_watchdog_emitter_stops_when_its_directory_is_deleted(tmp_path, mode):
    """As InotifyEmitter: a DirDeletedEvent for the watched directory, then its
    emitter stops (watchdog's test_delete_self, with a file in it)."""
    pytest.importorskip("watchdog")
    from watchdog.events import (DirDeletedEvent, DirModifiedEvent, FileDeletedEvent,
                                 FileSystemEventHandler)
    from fanbpf.watchdog import FanotifyObserver

    seen = []

    class Collect(FileSystemEventHandler):
        def on_any_event(self, event):
            seen.append(event)

    root = tmp_path / "w"
    root.mkdir()
    (root / "f").write_text("x")
    observer = FanotifyObserver(mode=mode)
    observer.schedule(Collect(), str(root), recursive=True)
    observer.start()
    try:
        [emitter] = observer.emitters
        os.unlink(root / "f")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not seen:  # read while w is there to name it
            time.sleep(0.05)
        os.rmdir(root)
        emitter.join(5)
        assert not emitter.is_alive()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and DirDeletedEvent(str(root)) not in seen:
            time.sleep(0.05)
    finally:
        observer.stop()
        observer.join()
    assert seen == [FileDeletedEvent(str(root / "f")), DirModifiedEvent(str(root)),
                    DirDeletedEvent(str(root))]


def test_subtree_marks_mode_needs_the_kernel_series(tmp_path):
    """The stock kernel has no subtree marks: forcing the mode says what is missing."""
    from fanbpf.support import subtree_marks

    assert not subtree_marks()
    with pytest.raises(WatchError, match="subtree-marks mode needs a kernel with subtree marks"):
        open_source([tmp_path], mode="subtree-marks")


def test_what_a_walk_without_roots_meets():
    """Subtree-marks mode attaches exclude_dirs without a subtree rule; the
    handler's walk then goes up to the filesystem's root, through a bind
    mount's source directories too, which is what names_to_top lists."""
    from fanbpf.rules import Mount, mount_points_below, names_to_top, rules

    table = [Mount(1, b"/", "ext4"), Mount(2, b"/srv", "xfs"),
             Mount(2, b"/home/u/proj", "xfs", b"/exports/node_modules/x"),
             Mount(3, b"/srv/data", "tmpfs"), Mount(4, b"/srv/auto", "autofs")]
    assert names_to_top("/home/u/a", table) == ["home", "u", "a"]
    assert names_to_top("/srv", table) == []
    assert names_to_top("/srv/data/x", table) == ["x"]
    assert names_to_top("/home/u/proj/src", table) == ["exports", "node_modules", "x", "src"]
    assert mount_points_below(["/srv"], table) == ["/srv/data"]
    assert mount_points_below(["/home"], table) == ["/home/u/proj"]
    rule_set = rules(exclude_dirs=["node_modules", "*.egg-info"])
    assert rule_set.walk_excludes(["/home/u/proj/src", "/home/u/a.egg-info", "/home/u/a"],
                                  table) == ["/home/u/proj/src", "/home/u/a.egg-info"]
