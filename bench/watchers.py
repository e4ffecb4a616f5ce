"""The Python watchers of the bench, each run as its own process.

    python bench/watchers.py NAME MOUNT SUBTREE

Each watches SUBTREE (the fanotify ones through a FILESYSTEM mark on
MOUNT), prints "READY" on stderr once it is watching, then one line per
event under SUBTREE, "<kind> <path>", flushed after every batch, until
SIGTERM.  Kinds are those of inotify (create, modify, close_write,
moved_from, moved_to, delete) where the library reports them, else the
library's own (watchfiles: added, deleted); "overflow -" when the
library reports a lost queue.  bench/run.py derives the events each watcher
should print from the workload's plan and the kinds listed in KINDS.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

INOTIFY_KINDS = ("create", "modify", "close_write", "moved_from", "moved_to", "delete")
# What each watcher can report (bench/run.py's oracle maps file operations onto these).
KINDS = {
    "watchdog": INOTIFY_KINDS,
    # A file written right after its creation is reported as "added" only, so
    # "modified" is neither required nor counted as extra.
    "watchfiles": ("added", "deleted"),
    "fanbpf-watch": ("added", "deleted"),  # fanbpf.watch: watchfiles' API and kinds
    "watchdog-fanbpf": INOTIFY_KINDS,  # watchdog with fanbpf.watchdog's observer
    "pyfanotify": INOTIFY_KINDS,
    "fanbpf-bpf": INOTIFY_KINDS,
    "fanbpf-kmod": INOTIFY_KINDS,
    "fanbpf-py": INOTIFY_KINDS,
    "mark-nomatch": INOTIFY_KINDS,
    "skip-bpf": INOTIFY_KINDS,
    "skip-kmod": INOTIFY_KINDS,
    "fid-bpf": INOTIFY_KINDS,
    "inode-marks": INOTIFY_KINDS,
    "fanbpf-marks": INOTIFY_KINDS,
}


def ready() -> None:
    print("READY", file=sys.stderr, flush=True)


def emit(lines: list[str]) -> None:
    if lines:
        sys.stdout.write("".join(lines))
        sys.stdout.flush()


def stop_on_sigterm() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def watchdog_(mount: str, subtree: str, observer_class=None) -> None:
    """watchdog's InotifyObserver, or the observer_class given (fanbpf's)."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers.inotify import InotifyObserver

    kinds = {"created": "create", "modified": "modify", "closed": "close_write",
             "deleted": "delete"}

    class Printer(FileSystemEventHandler):
        def on_any_event(self, event):
            if event.is_directory:
                return
            if event.event_type == "moved":
                emit([f"moved_from {event.src_path}\n", f"moved_to {event.dest_path}\n"])
            elif event.event_type in kinds:
                emit([f"{kinds[event.event_type]} {event.src_path}\n"])

    stop = stop_on_sigterm()
    observer = (observer_class or InotifyObserver)()
    observer.schedule(Printer(), subtree, recursive=True)
    observer.start()  # returns once every directory has its watch
    for emitter in observer.emitters:  # fanbpf's: once its marks are in place
        while getattr(emitter, "mode", "") is None:
            time.sleep(0.01)
    ready()
    stop.wait()
    observer.stop()
    observer.join()


def watchfiles_(mount: str, subtree: str) -> None:
    import watchfiles

    stop = stop_on_sigterm()
    names = {watchfiles.Change.added: "added", watchfiles.Change.modified: "modified",
             watchfiles.Change.deleted: "deleted"}
    # watch() only starts the Rust watcher on the first next(); READY after it.
    changes = watchfiles.watch(subtree, watch_filter=None, stop_event=stop, debounce=100,
                               step=20, yield_on_timeout=True, rust_timeout=200)
    next(changes)
    ready()
    for batch in changes:
        emit([f"{names[change]} {path}\n" for change, path in batch])


def fanbpf_watch(mount: str, subtree: str) -> None:
    """fanbpf.watch() as watchfiles_ runs watchfiles.watch() (it marks at the call)."""
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, top)
    import fanbpf

    stop = stop_on_sigterm()
    changes = fanbpf.watch(subtree, watch_filter=None, stop_event=stop, debounce=100, step=20,
                           yield_on_timeout=True, rust_timeout=200)
    print(f"fanbpf.watch: {changes.mode} mode: {changes.description}", file=sys.stderr, flush=True)
    ready()
    for batch in changes:
        emit([f"{change.name} {path}\n" for change, path in batch])


def pyfanotify_(mount: str, subtree: str) -> None:
    import pyfanotify as fan

    bits = {fan.FAN_CREATE: "create", fan.FAN_MODIFY: "modify", fan.FAN_CLOSE_WRITE: "close_write",
            fan.FAN_MOVED_FROM: "moved_from", fan.FAN_MOVED_TO: "moved_to", fan.FAN_DELETE: "delete"}
    mask = 0
    for bit in bits:
        mask |= bit
    stop = stop_on_sigterm()
    notifier = fan.Fanotify(init_fid=True)
    notifier.mark(mount, mask, is_type="fs")
    notifier.start()
    # pyfanotify 0.3.0 matches the pattern against two path slots, and for an
    # event with one name (create, delete, moved_*) the second slot is the
    # directory's own path: with "SUBTREE/*" every such event directly in
    # SUBTREE was dropped (the bench's sentinel creates were its "missed").
    # The extglob (the rule uses FNM_EXTMATCH) also accepts SUBTREE itself.
    client = fan.FanotifyClient(notifier, path_pattern=f"@({subtree}|{subtree}/*)")
    import select
    poller = select.poll()
    poller.register(client.sock.fileno(), select.POLLIN)
    # The rule reaches pyfanotify's reader process through a pipe, a little
    # later: events before that are not forwarded.  (A probe file made until
    # an event for it arrived did not work: pyfanotify's reader stalled.)
    time.sleep(1)
    ready()
    while not stop.is_set():
        poller.poll(200)
        lines = []
        for event in client.get_events():
            if event.ev_types & fan.FAN_Q_OVERFLOW:
                lines.append("overflow -\n")
            for path in event.path:
                path = os.fsdecode(path)
                lines.extend(f"{name} {path}\n" for bit, name in bits.items() if event.ev_types & bit)
        emit(lines)
    client.close()
    notifier.stop()


#: The fanbpf configurations (bench/run.py's churn and cost parts): group
#: flags, what is marked with which mask, which handler, all in one place so
#: that a configuration is one more row.  Group: "dfid_name" (FID +
#: DFID_NAME, as fanbpf watch), "fid" (FID only: no name, hence no parent
#: reference per event), "py" (DFID_NAME, unlimited queue, no handler, the
#: path filtered here).  Marks: "fs" (one filesystem mark) or "dirs" (an
#: inode mark on every directory of the subtree, new ones added as they are
#: reported, as recursive inotify does) or "subtree" (one FAN_MARK_SUBTREE
#: mark on the subtree: the kernel marks its directories).  Mask: "churn" (the events the
#: workload makes that are reported) or "nomatch" (FAN_ACCESS: the churn
#: workload never reads).  Handler: "rules" (the BPF rules handler, subtree),
#: "kmod" (the reference module), "skip-bpf" / "skip-kmod" (handlers that
#: skip every event at once: tests/vm/bpf/no_init.bpf.c, bench/kmod/), or None.
FANBPF_CONFIGS: dict[str, tuple[str, str, str, str | None]] = {
    "fanbpf-bpf": ("dfid_name", "fs", "churn", "rules"),
    "fanbpf-kmod": ("dfid_name", "fs", "churn", "kmod"),
    "fanbpf-py": ("py", "fs", "churn", None),
    "mark-nomatch": ("dfid_name", "fs", "nomatch", None),
    "skip-bpf": ("dfid_name", "fs", "churn", "skip-bpf"),
    "skip-kmod": ("dfid_name", "fs", "churn", "skip-kmod"),
    "fid-bpf": ("fid", "fs", "churn", "rules"),
    "inode-marks": ("dfid_name", "dirs", "churn", None),
    "fanbpf-marks": ("dfid_name", "subtree", "churn", None),
}
#: Configurations that must report nothing (their mask or handler drops all).
SILENT = ("mark-nomatch", "skip-bpf", "skip-kmod")
#: FID-only groups: a directory-entry event names its directory, not the entry.
FID_ONLY = ("fid-bpf",)
SKIP_KMOD = "fanbpf_bench_skip"  # bench/kmod/fanbpf_bench_skip.c
SKIP_BPF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "build", "test-bpf-vm", "no_init.bpf.o")  # make build


def fanbpf_(mount: str, subtree: str, config: str) -> None:
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:0] = [top, os.path.join(top, "tests", "vm")]
    import fanbpf
    from kabi import KMOD, subtree_args  # the reference module's init args
    from fanbpf import EventMask, InitFlag, MarkFlag

    kind, marks, mask_kind, how = FANBPF_CONFIGS[config]
    bits = {EventMask.CREATE: "create", EventMask.MODIFY: "modify",
            EventMask.CLOSE_WRITE: "close_write", EventMask.MOVED_FROM: "moved_from",
            EventMask.MOVED_TO: "moved_to", EventMask.DELETE: "delete"}
    mask = 0
    for bit in bits:
        mask |= bit
    if mask_kind == "nomatch":
        mask = EventMask.ACCESS
    stop = stop_on_sigterm()
    flags = InitFlag.REPORT_FID
    if kind != "fid":
        flags |= InitFlag.REPORT_DFID_NAME
    if kind == "py":
        flags |= InitFlag.UNLIMITED_QUEUE
    if marks == "subtree":
        flags |= InitFlag.UNLIMITED_MARKS  # one mark per cached directory
    prefix = subtree + os.sep
    dir_mask = mask | EventMask.ONDIR | EventMask.EVENT_ON_CHILD
    handler = attachment = None
    undecided = f"/sys/module/{KMOD}/parameters/undecided"
    with fanbpf.Group(flags) as group:
        if marks == "dirs":
            for d, _, _ in os.walk(subtree):
                group.mark(d, dir_mask, MarkFlag.INODE)
        elif marks == "subtree":
            group.mark(subtree, mask, MarkFlag.SUBTREE)
        else:
            group.mark(mount, mask, MarkFlag.FILESYSTEM)
        if how == "kmod":
            group.attach(KMOD, subtree_args(subtree))
        elif how == "skip-kmod":
            group.attach(SKIP_KMOD)
        elif how in ("rules", "skip-bpf"):
            source = "rules" if how == "rules" else SKIP_BPF
            handler = fanbpf.Handler.load(source, private=True)
            attachment = group.attach(handler, fanbpf.rules(subtree=[subtree])
                                      if how == "rules" else None)
        # The events delivered because the handler could not place them (a
        # walk a rename tore, ...): what an exact filter may add (run.py).
        undecided0 = int(open(undecided).read()) if how == "kmod" else 0
        ready()
        last = False
        while not last:
            last = stop.is_set()  # one more read after SIGTERM: what was queued is printed
            lines = []
            for event in group.read_events(timeout=0 if last else 0.2):
                if event.is_overflow:
                    lines.append("overflow -\n")
                    continue
                path = event.path or ""
                if event.mask & EventMask.ONDIR:
                    # a new directory: marked (with what it holds already) as inotify -r does
                    if marks == "dirs" and event.mask & (EventMask.CREATE | EventMask.MOVED_TO) \
                            and path.startswith(prefix):
                        for d, _, _ in os.walk(path):
                            try:
                                group.mark(d, dir_mask, MarkFlag.INODE)
                            except FileNotFoundError:
                                pass
                    continue
                if kind == "py" and not path.startswith(prefix):
                    continue
                lines.extend(f"{name} {path}\n" for bit, name in bits.items()
                             if event.mask & bit)
            emit(lines)
        if how == "kmod":
            print(f"undecided {int(open(undecided).read()) - undecided0}", file=sys.stderr)
        elif how == "rules":
            print(f"undecided {attachment.stats.undecided}", file=sys.stderr)
        if handler is not None:
            group.detach()
            handler.close()


def main() -> int:
    name, mount, subtree = sys.argv[1:4]
    if name == "watchdog":
        watchdog_(mount, subtree)
    elif name == "watchdog-fanbpf":
        top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.path.insert(0, top)
        from fanbpf.watchdog import FanotifyObserver
        watchdog_(mount, subtree, FanotifyObserver)
    elif name == "watchfiles":
        watchfiles_(mount, subtree)
    elif name == "fanbpf-watch":
        fanbpf_watch(mount, subtree)
    elif name == "pyfanotify":
        pyfanotify_(mount, subtree)
    elif name in FANBPF_CONFIGS:
        fanbpf_(mount, subtree, name)
    else:
        print(f"watchers.py: unknown watcher {name!r}; one of {', '.join(KINDS)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
