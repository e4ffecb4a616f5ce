"""fanbpf.group.Group on the host kernel: real marks, real events (needs root)."""

import asyncio
import errno
import gc
import os
import subprocess
import sys
import threading
import time
import warnings

import pytest

from fanbpf.events import DirFidNameInfo, FidInfo, PidfdInfo
from fanbpf.flags import EventMask, InfoType, InitFlag, MarkFlag
from fanbpf.group import Group

M = EventMask
CHILD_EVENTS = M.CREATE | M.DELETE | M.MODIFY | M.CLOSE_WRITE | M.ONDIR | M.EVENT_ON_CHILD

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="fanotify groups need root")


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_fd_leaks():
    """Every test must leave the process's fd table as it found it."""
    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    leaked = {fd: _target(fd) for fd in open_fds() - before}
    assert not leaked, f"fds leaked: {leaked}"


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


@pytest.fixture
def group():
    with Group() as g:
        yield g


def collect(group: Group, done, timeout: float = 5.0) -> list:
    """Read until ``done(events)`` holds; the events of all batches."""
    events: list = []
    deadline = time.monotonic() + timeout
    while not done(events) and time.monotonic() < deadline:
        events += group.read_events(timeout=0.1)
    return events


def by_name(events) -> dict:
    merged: dict = {}
    for ev in events:
        merged[ev.name] = merged.get(ev.name, M(0)) | ev.mask
    return merged


# --- FID groups --------------------------------------------------------------


def test_fid_events_with_names(group, tmp_path):
    group.mark(tmp_path, CHILD_EVENTS)
    (tmp_path / "f").write_text("hello")
    (tmp_path / "d").mkdir()
    (tmp_path / "f").unlink()
    events = collect(group, lambda evs: M.DELETE in by_name(evs).get("f", M(0)))
    masks = by_name(events)
    assert masks["f"] & (M.CREATE | M.MODIFY | M.CLOSE_WRITE | M.DELETE) == M.CREATE | M.MODIFY | M.CLOSE_WRITE | M.DELETE
    assert masks["d"] == M.CREATE | M.ONDIR
    fsid = os.statvfs(tmp_path).f_fsid
    for ev in events:
        assert ev.pid == os.getpid() and ev.fd is None and ev.closed
        assert isinstance(ev.info[0], DirFidNameInfo) and ev.info[0].fsid == fsid
    modify = next(ev for ev in events if ev.mask & M.MODIFY)
    assert isinstance(modify.fid, FidInfo) and modify.fid.fsid == fsid  # REPORT_FID: the child too
    assert modify.dfid.handle == events[0].dfid.handle  # same directory, same handle


def test_rename_event_has_old_and_new_records(tmp_path):
    (tmp_path / "a").write_text("")
    with Group(InitFlag.REPORT_DFID_NAME_TARGET) as group:
        group.mark(tmp_path, M.RENAME | M.ONDIR)
        (tmp_path / "a").rename(tmp_path / "b")
        [ev] = collect(group, bool)
    assert ev.mask == M.RENAME
    assert [r.info_type for r in ev.info] == [InfoType.OLD_DFID_NAME, InfoType.NEW_DFID_NAME, InfoType.FID]
    assert (ev.old_name, ev.new_name, ev.name) == ("a", "b", None)
    assert ev.info[0].handle == ev.info[1].handle  # same directory


def test_dir_fid_without_names(tmp_path):
    with Group(InitFlag.REPORT_FID | InitFlag.REPORT_DIR_FID) as group:
        group.mark(tmp_path, M.CREATE)
        (tmp_path / "x").write_text("")
        [ev] = collect(group, bool)
    assert ev.name is None and ev.dfid.info_type == InfoType.DFID


def test_pidfd_records_are_owned(tmp_path):
    with Group(InitFlag.REPORT_FID | InitFlag.REPORT_PIDFD) as group:
        group.mark(tmp_path / ".", M.ATTRIB | M.ONDIR)
        os.chmod(tmp_path, 0o700)
        [ev] = collect(group, bool)
        [record] = [r for r in ev.info if isinstance(r, PidfdInfo)]
        assert record.pidfd >= 0 and ev.pidfd == record.pidfd
        os.fstat(ev.pidfd)
        os.chmod(tmp_path, 0o755)
        collect(group, bool)  # the next batch closes the previous one's pidfd
        assert ev.pidfd is None and ev.closed


@pytest.fixture
def resolving_group():
    """A group whose FID events carry paths (file handles decoded)."""
    with Group(InitFlag.REPORT_DFID_NAME_TARGET) as g:
        yield g


def test_fid_paths_are_resolved(resolving_group, tmp_path):
    group = resolving_group
    (tmp_path / "sub").mkdir()
    group.mark(tmp_path, CHILD_EVENTS | M.RENAME)
    group.mark(tmp_path / "sub", M.CREATE | M.ATTRIB | M.ONDIR)
    (tmp_path / "f").write_text("x")
    (tmp_path / "f").rename(tmp_path / "g")
    (tmp_path / "sub" / "inner").write_text("")
    os.chmod(tmp_path / "sub", 0o700)
    events = collect(group, lambda evs: any(ev.mask & M.ATTRIB for ev in evs))
    paths = {(ev.mask & ~M.ONDIR, ev.path) for ev in events if not ev.mask & M.RENAME}
    assert (M.CREATE | M.MODIFY | M.CLOSE_WRITE, str(tmp_path / "f")) in paths
    assert (M.CREATE, str(tmp_path / "sub" / "inner")) in paths
    assert (M.ATTRIB, str(tmp_path / "sub")) in paths  # "." names the directory itself
    [rename] = [ev for ev in events if ev.mask & M.RENAME]
    assert (rename.old_path, rename.new_path, rename.path) == (
        str(tmp_path / "f"),
        str(tmp_path / "g"),
        str(tmp_path / "g"),
    )


def test_fid_paths_of_one_batch_share_directories(group, tmp_path):
    """Several events in one directory in one batch: each its own entry's path
    (the batch resolves each directory handle once)."""
    for d in ("d", "e"):
        (tmp_path / d).mkdir()
    group.mark(tmp_path, M.CREATE, MarkFlag.FILESYSTEM)
    for rel in ("d/a", "d/b", "e/c", "d/c"):
        (tmp_path / rel).write_text("")
    batch = group.read_events(timeout=5)
    assert [ev.path for ev in batch] == [str(tmp_path / rel) for rel in ("d/a", "d/b", "e/c", "d/c")]


def test_fid_paths_are_resolved_anew_each_batch(group, tmp_path):
    """A directory renamed between two reads: the second batch has its new name."""
    (tmp_path / "d").mkdir()
    group.mark(tmp_path, M.CREATE, MarkFlag.FILESYSTEM)
    (tmp_path / "d" / "x").write_text("")
    [first] = group.read_events(timeout=5)
    (tmp_path / "d").rename(tmp_path / "renamed")
    (tmp_path / "renamed" / "y").write_text("")
    [second] = group.read_events(timeout=5)
    assert (first.path, second.path) == (str(tmp_path / "d" / "x"), str(tmp_path / "renamed" / "y"))


def test_fid_paths_when_the_directory_is_gone(resolving_group, tmp_path):
    """A directory removed before the read (its handle: ESTALE): each event
    falls back to its object's handle (REPORT_TARGET_FID), so a file moved
    out still has a path and a file removed has none."""
    group = resolving_group
    (tmp_path / "gone").mkdir()
    group.mark(tmp_path, M.CREATE, MarkFlag.FILESYSTEM)
    (tmp_path / "gone" / "moved").write_text("")
    (tmp_path / "gone" / "removed").write_text("")
    (tmp_path / "gone" / "moved").rename(tmp_path / "moved")
    (tmp_path / "gone" / "removed").unlink()
    (tmp_path / "gone").rmdir()
    batch = group.read_events(timeout=5)
    assert [(ev.name, ev.path) for ev in batch] == [("moved", str(tmp_path / "moved")), ("removed", None)]


def test_fid_paths_not_resolved_when_not_asked(tmp_path):
    with Group(resolve_paths=False) as group:
        group.mark(tmp_path, M.CREATE)
        (tmp_path / "x").write_text("")
        [ev] = collect(group, bool)
    assert ev.path is None and ev.name == "x"


def test_a_marked_directory_is_not_held_open(group, tmp_path):
    """The group decodes handles through a directory it opens on the
    filesystem: the marked directory's parent, not the directory, whose
    deletion (DELETE_SELF, after its last close) would wait for the group."""
    d = tmp_path / "d"
    d.mkdir()
    group.mark(d, M.CREATE | M.DELETE_SELF | M.ONDIR)
    (d / "x").write_text("")
    [created] = collect(group, bool)
    assert created.path == str(d / "x")
    (d / "x").unlink()
    os.rmdir(d)
    [deleted] = collect(group, bool)
    assert deleted.mask == M.DELETE_SELF | M.ONDIR and deleted.path is None


def test_a_marked_mount_root_decodes_through_itself(group):
    """A directory whose parent is on another mount is opened itself (the
    parent could not decode its handles)."""
    from fanbpf.testing.fs import tmpfs_mount

    with tmpfs_mount() as base:
        group.mark(base, M.CREATE | M.ONDIR)
        os.mkdir(os.path.join(base, "x"))
        [created] = collect(group, bool)
        assert created.path == os.path.join(base, "x")
        group.close()  # its fd on the tmpfs, before the unmount


# --- fd groups -------------------------------------------------------------


@pytest.fixture
def fd_group():
    with Group(InitFlag.CLASS_NOTIF) as g:
        yield g


def test_fd_events_have_paths_and_own_their_fds(fd_group, tmp_path):
    target = tmp_path / "file"
    target.write_text("data")
    fd_group.mark(target, M.OPEN | M.CLOSE_NOWRITE)
    target.read_text()
    events = collect(fd_group, lambda evs: any(ev.mask & M.CLOSE_NOWRITE for ev in evs))
    assert M.OPEN in M(sum(ev.mask for ev in events))
    for ev in events:
        assert ev.path == str(target) and ev.pid == os.getpid() and ev.info == ()
        assert os.path.samestat(os.fstat(ev.fileno()), os.stat(target))
    kept = events[0].take_fd()
    target.read_text()
    collect(fd_group, bool)  # the next batch closes the previous batch's fds
    assert all(ev.closed for ev in events)
    with pytest.raises(ValueError):
        events[-1].fileno()
    os.fstat(kept)  # except the one taken
    os.close(kept)


def test_event_context_manager_closes_early(fd_group, tmp_path):
    target = tmp_path / "file"
    target.write_text("")
    fd_group.mark(target, M.OPEN)
    target.read_text()
    [ev] = collect(fd_group, bool)
    with ev:
        fd = ev.fileno()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_modify_with_an_fd_group(fd_group, tmp_path):
    target = tmp_path / "file"
    target.write_text("")
    fd_group.mark(tmp_path, M.MODIFY | M.EVENT_ON_CHILD)
    with open(target, "a") as f:
        f.write("x")
    [ev] = collect(fd_group, bool)
    assert ev.mask == M.MODIFY and ev.path == str(target)


# --- reading, iteration ----------------------------------------------------


def test_read_timeout(group, tmp_path):
    group.mark(tmp_path, M.CREATE)
    start = time.monotonic()
    assert group.read_events(timeout=0.1) == []
    assert 0.09 <= time.monotonic() - start < 2
    assert group.read_events(timeout=0) == []


def test_sync_iteration(group, tmp_path):
    group.mark(tmp_path, M.CREATE)
    for name in "abc":
        (tmp_path / name).write_text("")
    seen = []
    for ev in group:
        seen.append(ev.name)
        if len(seen) == 3:
            break
    assert seen == ["a", "b", "c"]


def test_sync_iteration_ends_when_closed_by_the_loop(group, tmp_path):
    group.mark(tmp_path, M.CREATE)
    (tmp_path / "a").write_text("")
    (tmp_path / "b").write_text("")
    seen = [ev.name for ev in group if not group.close()]
    assert seen == ["a"]


def test_drain_reads_every_batch_without_waiting(group, tmp_path):
    group.mark(tmp_path, M.CREATE)
    assert group.drain() == []
    names = [f"f{i:04}" for i in range(1500)]  # more than one 64 KiB read holds
    for name in names:
        (tmp_path / name).write_text("")
    events = group.drain()
    assert sorted(ev.name for ev in events) == names
    assert group.drain() == []


def test_drain_past_its_deadline_reads_no_further_batch(group, tmp_path):
    """A deadline already past: one batch (the rest stays queued, not lost)."""
    group.mark(tmp_path, M.CREATE)
    names = [f"f{i:04}" for i in range(1500)]  # more than one 64 KiB read holds
    for name in names:
        (tmp_path / name).write_text("")
    first = group.drain(deadline=time.monotonic() - 1)
    assert 0 < len(first) < len(names)
    rest = group.drain()
    assert sorted(ev.name for ev in first + rest) == names


def test_blocking_read_wakes_for_an_event_from_another_thread(group, tmp_path):
    group.mark(tmp_path, M.CREATE)
    timer = threading.Timer(0.2, (tmp_path / "late").write_text, [""])
    timer.start()
    try:
        [ev] = group.read_events()
    finally:
        timer.join()
    assert ev.name == "late"


def test_async_iteration(group, tmp_path):
    group.mark(tmp_path, M.CREATE)

    async def main():
        loop = asyncio.get_running_loop()
        for i, name in enumerate("xyz"):
            loop.call_later(0.05 * (i + 1), (tmp_path / name).write_text, "")
        names = []
        async for ev in group:
            names.append(ev.name)
            if len(names) == 3:
                break
        return names

    assert asyncio.run(main()) == ["x", "y", "z"]


def test_async_iteration_ends_on_close(tmp_path):
    group = Group()
    group.mark(tmp_path, M.CREATE)

    async def main():
        asyncio.get_running_loop().call_later(0.1, group.close)
        return [ev async for ev in group]

    assert asyncio.run(main()) == []
    assert group.closed


# --- close() from elsewhere wakes a blocked reader ----------------------------

def _reader_thread(target):
    """Run ``target`` in a thread; the thread's result (or exception) in a list."""
    out: list = []

    def run():
        try:
            out.append(target())
        except BaseException as err:  # reported by the test
            out.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _wait_blocked(group):
    """Until a thread is inside the group's read (the state close() must handle)."""
    while not group._users and group._waiter is None:
        time.sleep(0.01)


def test_close_from_another_thread_ends_sync_iteration(tmp_path):
    group = Group()
    group.mark(tmp_path, M.CREATE)
    thread, out = _reader_thread(lambda: [ev.name for ev in group])
    _wait_blocked(group)
    group.close()  # returns once the reader let go of the fd
    assert group.closed and group._fd == -1
    thread.join(30)
    assert not thread.is_alive() and out == [[]]


def test_close_from_another_thread_ends_read_events(tmp_path):
    group = Group()
    group.mark(tmp_path, M.CREATE)
    thread, out = _reader_thread(lambda: group.read_events(timeout=None))
    _wait_blocked(group)
    group.close()
    thread.join(30)
    assert out == [[]]
    with pytest.raises(ValueError, match="closed"):
        group.read_events(timeout=0)


def test_close_from_another_thread_ends_async_iteration(tmp_path):
    group = Group()
    group.mark(tmp_path, M.CREATE)

    async def consume():
        return [ev.name async for ev in group]

    thread, out = _reader_thread(lambda: asyncio.run(consume()))
    _wait_blocked(group)
    group.close()
    assert group._fd == -1
    thread.join(30)
    assert out == [[]]


def test_close_from_a_signal_handler_ends_iteration(tmp_path):
    import signal

    group = Group()
    group.mark(tmp_path, M.CREATE)
    old = signal.signal(signal.SIGUSR1, lambda *_: group.close())
    main = threading.get_ident()

    def interrupt():
        _wait_blocked(group)
        signal.pthread_kill(main, signal.SIGUSR1)

    sender = threading.Thread(target=interrupt)
    sender.start()
    try:
        assert list(group) == []  # the handler ran inside our own blocked read
    finally:
        sender.join()
        signal.signal(signal.SIGUSR1, old)
    assert group._fd == -1


def test_overflow_is_surfaced(group, tmp_path):
    limit = int(open("/proc/sys/fs/fanotify/max_queued_events").read())
    group.mark(tmp_path, M.CREATE)
    for i in range(limit + 100):
        os.close(os.open(tmp_path / f"f{i}", os.O_CREAT | os.O_WRONLY, 0o600))
    events = collect(group, lambda evs: evs and evs[-1].is_overflow)
    assert len(events) == limit + 1
    assert events[-1].is_overflow and events[-1].mask == M.Q_OVERFLOW and events[-1].info == ()
    assert group.overflows == 1


# --- permission events -------------------------------------------------------

OPENER = "import sys\ntry:\n    open(sys.argv[1]).close()\nexcept OSError as e:\n    sys.exit(e.errno)\n"


@pytest.fixture
def guarded(tmp_path):
    """A file, and a function that opens it in a child process (returns the Popen)."""
    path = tmp_path / "guarded"
    path.write_text("secret")
    return path, lambda: subprocess.Popen([sys.executable, "-c", OPENER, str(path)])


@pytest.fixture
def perm_group():
    with Group(InitFlag.CLASS_CONTENT) as g:
        yield g


@pytest.mark.parametrize("allow", [True, False])
def test_permission_allow_and_deny(perm_group, guarded, allow):
    path, opener = guarded
    perm_group.mark(path, M.OPEN_PERM)
    child = opener()
    [ev] = collect(perm_group, bool, timeout=10)
    assert ev.is_permission and ev.mask == M.OPEN_PERM and ev.pid == child.pid and ev.path == str(path)
    perm_group.respond(ev, allow)
    assert child.wait(10) == (0 if allow else errno.EPERM)
    assert ev.closed
    with pytest.raises(ValueError, match="already answered"):
        perm_group.allow(ev)


def test_unanswered_permission_fds_outlive_their_batch(perm_group, guarded, tmp_path):
    path, opener = guarded
    perm_group.mark(path, M.OPEN_PERM)
    perm_group.mark(tmp_path, M.OPEN | M.EVENT_ON_CHILD)
    child = opener()
    [ev] = collect(perm_group, bool, timeout=10)
    ev.close()  # deferred: the response names the event by its fd number
    (tmp_path / "other").write_text("")
    collect(perm_group, bool)  # a new batch
    assert not ev.closed
    perm_group.deny(ev)
    assert ev.closed and child.wait(10) == errno.EPERM


def test_custom_deny_errno(guarded):
    """Other errnos: Linux 6.13+ and pre-content groups only; else a clear ValueError."""
    path, opener = guarded
    with Group(InitFlag.CLASS_CONTENT) as group:
        group.mark(path, M.OPEN_PERM)
        child = opener()
        [ev] = collect(group, bool, timeout=10)
        with pytest.raises(ValueError, match="errno 5 .EIO."):
            group.deny(ev, errno.EIO)
        group.deny(ev)  # still unanswered, so EPERM still works
        assert child.wait(10) == errno.EPERM
    with Group(InitFlag.CLASS_PRE_CONTENT) as group:
        group.mark(path, M.OPEN_PERM)
        child = opener()
        [ev] = collect(group, bool, timeout=10)
        try:
            group.deny(ev, errno.EIO)
        except ValueError:
            group.deny(ev)
            child.wait(10)
            pytest.skip("kernel without FAN_DENY_ERRNO (Linux < 6.13)")
        assert child.wait(10) == errno.EIO


def test_respond_refuses_wrong_events(perm_group, guarded, tmp_path):
    path, opener = guarded
    perm_group.mark(path, M.OPEN_PERM)
    with Group(InitFlag.CLASS_CONTENT) as other:
        other.mark(path, M.OPEN_PERM)
        child = opener()
        # Groups of one class are asked in no fixed order: answer whichever asks first.
        asked = []
        deadline = time.monotonic() + 10
        while not asked and time.monotonic() < deadline:
            for group, peer in [(perm_group, other), (other, perm_group)]:
                asked = asked or [(group, peer, ev) for ev in group.read_events(timeout=0.05)]
        [(first, second, first_event)] = asked
        with pytest.raises(ValueError, match="not read from this group"):
            second.allow(first_event)
        with pytest.raises(TypeError):
            first.allow("event")
        first.allow(first_event)
        [ev] = collect(second, bool, timeout=10)
        second.allow(ev)
        assert child.wait(10) == 0
    perm_group.mark(tmp_path, M.OPEN | M.EVENT_ON_CHILD)
    (tmp_path / "x").write_text("")
    [plain] = collect(perm_group, bool)
    with pytest.raises(ValueError, match="not a permission event"):
        perm_group.deny(plain)


def test_closing_the_group_allows_pending_permission_events(guarded):
    path, opener = guarded
    group = Group(InitFlag.CLASS_CONTENT)
    group.mark(path, M.OPEN_PERM)
    child = opener()
    collect(group, bool, timeout=10)
    group.close()
    assert child.wait(10) == 0


# --- marks -------------------------------------------------------------------


def test_unmark_and_flush(group, tmp_path):
    group.mark(tmp_path, M.CREATE | M.DELETE)
    group.unmark(tmp_path, M.CREATE)
    (tmp_path / "a").write_text("")
    (tmp_path / "a").unlink()
    assert {ev.mask for ev in collect(group, bool)} == {M.DELETE}
    group.flush()
    (tmp_path / "b").write_text("")
    (tmp_path / "b").unlink()
    assert group.read_events(timeout=0.1) == []


def test_filesystem_and_mount_marks(tmp_path):
    with Group() as group:
        group.mark(tmp_path, M.CREATE | M.EVENT_ON_CHILD, MarkFlag.FILESYSTEM)
        (tmp_path / "fs-wide").write_text("")
        events = collect(group, lambda evs: "fs-wide" in by_name(evs))
        assert "fs-wide" in by_name(events)
        group.flush(MarkFlag.FILESYSTEM)
    with Group(InitFlag.CLASS_NOTIF) as group:
        group.mark(tmp_path, M.OPEN, MarkFlag.MOUNT)
        (tmp_path / "fs-wide").read_text()
        events = collect(group, lambda evs: any(ev.path == str(tmp_path / "fs-wide") for ev in evs))
        assert any(ev.path == str(tmp_path / "fs-wide") for ev in events)


def test_missing_path_raises_file_not_found(group, tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope") as info:
        group.mark(missing, M.CREATE)
    assert info.value.filename == str(missing) and info.value.errno == errno.ENOENT


def test_kernel_refusals_are_oserrors(group, tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError):
        group.mark(tmp_path / "f", M.CREATE, MarkFlag.ONLYDIR)
    with pytest.raises(OSError, match="mark CREATE with MOUNT") as info:
        group.mark(tmp_path, M.CREATE, MarkFlag.MOUNT)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(FileNotFoundError):
        group.unmark(tmp_path, M.CREATE)  # no such mark
    with pytest.raises(OSError, match="FID reporting with a permission class"):
        Group(InitFlag.CLASS_CONTENT | InitFlag.REPORT_FID)


@pytest.mark.parametrize(
    "args, exc",
    [
        ((123, M.CREATE), TypeError),
        ((None, M.CREATE), TypeError),
        (("/tmp\0x", M.CREATE), ValueError),
        (("/tmp", "CREATE"), TypeError),
        (("/tmp", 1.0), TypeError),
        (("/tmp", True), TypeError),
        (("/tmp", -1), ValueError),
        (("/tmp", 1 << 64), ValueError),
        (("/tmp", 0), ValueError),
        (("/tmp", M.CREATE, "INODE"), TypeError),
        (("/tmp", M.CREATE, -1), ValueError),
        (("/tmp", M.CREATE, 0x1), ValueError),  # FAN_MARK_ADD belongs to mark()
        (("/tmp", M.CREATE, 0x80), ValueError),  # FAN_MARK_FLUSH belongs to flush()
    ],
)
def test_bad_mark_arguments(group, args, exc):
    with pytest.raises(exc):
        group.mark(*args)


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        ({"flags": "REPORT_FID"}, TypeError),
        ({"flags": -1}, ValueError),
        ({"flags": 1 << 32}, ValueError),
        ({"event_flags": None}, TypeError),
        ({"flags": 0x80000000}, OSError),  # unknown bit: the kernel says EINVAL
    ],
)
def test_bad_group_arguments(kwargs, exc):
    with pytest.raises(exc):
        Group(**kwargs)


def test_bad_flush_and_respond_arguments(group):
    with pytest.raises(ValueError, match="only a mark type"):
        group.flush(MarkFlag.ONLYDIR)
    with pytest.raises(TypeError):
        group.flush("MOUNT")


# --- lifetime ------------------------------------------------------------------


def test_closed_group_refuses_everything(tmp_path):
    group = Group()
    fd = group.fileno()
    group.close()
    group.close()  # idempotent
    assert group.closed and "closed" in repr(group)
    with pytest.raises(OSError):
        os.fstat(fd)
    for call in [
        group.fileno,
        lambda: group.mark(tmp_path, M.CREATE),
        lambda: group.unmark(tmp_path, M.CREATE),
        group.flush,
        group.read_events,
        lambda: iter(group),
        lambda: group.__aiter__(),
        lambda: group.__enter__(),
        lambda: group.allow(None),
        lambda: group.attach("x"),
        group.detach,
    ]:
        with pytest.raises(ValueError, match="closed"):
            call()


def test_close_releases_outstanding_event_fds(tmp_path):
    target = tmp_path / "file"
    target.write_text("")
    group = Group(InitFlag.CLASS_NOTIF)
    group.mark(target, M.OPEN)
    target.read_text()
    [ev] = collect(group, bool)
    group.close()
    assert ev.closed


def test_unclosed_group_warns_and_closes():
    group = Group()
    fd = group.fileno()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del group
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    with pytest.raises(OSError):
        os.fstat(fd)


def test_repr_and_flags():
    with Group() as group:
        assert group.flags & InitFlag.NONBLOCK and group.flags & InitFlag.REPORT_NAME
        assert f"fd={group.fileno()}" in repr(group)


def test_handlers_delegate_to_fanbpf_handler(group):
    from fanbpf.errors import KernelSupportError
    from fanbpf.support import kernel_support

    if kernel_support().fastpath_ioctl:
        pytest.skip("a fastpath kernel: covered by the VM tests")
    # the host kernel has no fastpath ioctls: both reach the kernel and say so
    for call in (group.detach, lambda: group.attach("rules")):
        with pytest.raises(KernelSupportError) as info:
            call()
        assert info.value.errno == errno.ENOTTY
