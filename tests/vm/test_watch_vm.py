"""fanbpf.watch() and the watchdog observer on the test kernel: kernel mode
(subtree-marks mode, the default here: tests/vm/test_watch_subtree_marks.py)."""
import os
import threading
from pathlib import Path

import pytest

from fanbpf.watch import Change, watch
from fanbpf.watching import WatchError, open_source

TOP = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mode", ["kernel", "subtree-marks"])
def test_excluded_dirs_are_dropped_in_the_kernel(tmpfs, mode):
    """The .git writes never reach user space: the handler skips their CREATE
    and MODIFY (watch() asks for no CLOSE_WRITE), and delivers the three
    CREATEs and the MODIFY of what is reported.  The writes outside the
    root: with a filesystem mark the handler skips them too; with subtree
    marks they never reach it."""
    top = Path(tmpfs, "root")
    os.makedirs(top / "src" / ".git")
    os.mkdir(Path(tmpfs, "out"))
    w = watch(top, debounce=1000, step=200, rust_timeout=20_000, exclude_dirs=[".git"], mode=mode)
    try:
        assert w.mode == mode
        assert "fastpath handler fanbpf_rules" in w.source.description
        attachment = w.source.group.attachment

        def work():
            for i in range(20):
                (top / "src" / ".git" / f"o{i}").write_text("x")
                Path(tmpfs, "out", f"o{i}").write_text("x")
            os.makedirs(top / "src" / "new" / "deeper")
            (top / "src" / "new" / "deeper" / "f.py").write_text("x")

        threading.Timer(0.5, work).start()
        changes = next(w)
        assert changes == {(Change.added, str(top / "src" / "new")),
                           (Change.added, str(top / "src" / "new" / "deeper")),
                           (Change.added, str(top / "src" / "new" / "deeper" / "f.py"))}
        stats = attachment.stats
        outside = 20 * 2 if mode == "kernel" else 0
        assert (stats.skipped, stats.delivered) == (20 * 2 + outside, 4)
    finally:
        w.close()


@pytest.mark.parametrize("mode", ["kernel", "subtree-marks"])
def test_a_watched_directory_deleted(tmpfs, mode):
    """Its own deletion is reported (``root``), known by its handle: its
    DELETE_SELF names no path, and in kernel mode the handler cannot place
    it (delivered, undecided).  A directory deleted below it is its DELETE
    alone (in subtree-marks mode its DELETE_SELF, which the root's mask
    passes on, is dropped)."""
    root = Path(tmpfs, "root")
    os.makedirs(root / "sub")
    with open_source([str(root)], mode=mode, kinds=("created", "deleted", "moved")) as source:
        assert source.mode == mode
        os.rmdir(root / "sub")
        events = source.read(timeout=20)  # read while root is there to name sub
        os.rmdir(root)
        while not any(e.root for e in events) and (batch := source.read(timeout=20)):
            events += batch
        events += source.read(timeout=0.5)
    assert [(e.kind, e.path, e.root) for e in events] == [("deleted", str(root / "sub"), False),
                                                          ("deleted", str(root), True)]


def test_a_9p_filesystem_is_named(tmp_path):
    """The checkout is shared with the guest over 9p, which has no file handles."""
    with pytest.raises(WatchError, match=r"on 9p, a filesystem without file handles.*Poll it"):
        open_source([str(TOP / "tests")])


def test_watchdog_observer_in_subtree_marks_mode(tmpfs):
    from watchdog.events import FileCreatedEvent, FileSystemEventHandler
    from fanbpf.watchdog import FanotifyObserver

    seen = threading.Event()
    target = os.path.join(tmpfs, "d", "f")

    class Handler(FileSystemEventHandler):
        def on_created(self, event):
            if isinstance(event, FileCreatedEvent) and event.src_path == target:
                seen.set()

    observer = FanotifyObserver()
    observer.schedule(Handler(), tmpfs, recursive=True)
    observer.start()
    try:
        for emitter in observer.emitters:
            while emitter.mode is None:
                seen.wait(0.05)
            assert emitter.mode == "subtree-marks"  # the best mode, picked unasked
        os.mkdir(os.path.dirname(target))
        open(target, "w").close()
        assert seen.wait(30)
    finally:
        observer.stop()
        observer.join()
