"""fanbpf.watch() and the watchdog observer on the test kernel: kernel mode."""
import os
import threading
from pathlib import Path

import pytest

from fanbpf.watch import Change, watch
from fanbpf.watching import WatchError, open_source

TOP = Path(__file__).resolve().parents[2]


def test_kernel_mode_drops_excluded_dirs_in_the_kernel(tmpfs):
    top = Path(tmpfs)
    os.makedirs(top / "src" / ".git")
    w = watch(top, debounce=1000, step=200, rust_timeout=20_000, exclude_dirs=[".git"])
    try:
        assert w.mode == "kernel"
        attachment = w.source.group.attachment

        def work():
            for i in range(20):
                (top / "src" / ".git" / f"o{i}").write_text("x")
            os.makedirs(top / "src" / "new" / "deeper")
            (top / "src" / "new" / "deeper" / "f.py").write_text("x")

        threading.Timer(0.5, work).start()
        changes = next(w)
        assert changes == {(Change.added, str(top / "src" / "new")),
                           (Change.added, str(top / "src" / "new" / "deeper")),
                           (Change.added, str(top / "src" / "new" / "deeper" / "f.py"))}
        # The .git writes never reached user space: the handler skipped their
        # CREATE and MODIFY (watch() asks for no CLOSE_WRITE), and delivered the
        # three CREATEs and the MODIFY of what is reported.
        stats = attachment.stats
        assert (stats.skipped, stats.delivered) == (20 * 2, 4)
    finally:
        w.close()


def test_a_9p_filesystem_is_named(tmp_path):
    """The checkout is shared with the guest over 9p, which has no file handles."""
    with pytest.raises(WatchError, match=r"on 9p, a filesystem without file handles.*Poll it"):
        open_source([str(TOP / "tests")])


def test_watchdog_observer_in_kernel_mode(tmpfs):
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
            assert emitter.mode == "kernel"
        os.mkdir(os.path.dirname(target))
        open(target, "w").close()
        assert seen.wait(30)
    finally:
        observer.stop()
        observer.join()
