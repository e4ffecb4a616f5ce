"""fanbpf.watch() and open_source() with subtree marks (mode "subtree-marks",
picked first on the test kernel): the kernel marks the watched trees, so
events outside never reach the group; a handler is attached only for
exclude_dirs, with that rule alone."""
import os
import resource
import threading
from pathlib import Path

import pytest

import fanbpf.watching as watching
from fanbpf.group import DEFAULT_FLAGS
from fanbpf.flags import InitFlag
from fanbpf.watch import Change, watch
from fanbpf.watching import WatchError, open_source
from fsimages import reuse_inode_numbers

CHANGES = ("created", "deleted", "moved")


def write(path, text="x"):
    Path(path).write_text(text)


def read_all(source, quiet=0.5):
    """What the source reports until it has been quiet for ``quiet`` seconds."""
    out = []
    while batch := source.read(timeout=quiet):
        out += batch
    return out


def seen(events, scanned=None):
    return {(e.kind, e.path) + ((e.dest,) if e.dest else ())
            for e in events if scanned is None or e.scanned == scanned}


def test_picked_first_new_directories_and_renames(tmpfs):
    """The host test's semantics (tests/host/test_watch.py), in this mode,
    with nothing outside the root reported and no handler attached."""
    top = Path(tmpfs, "root")
    os.makedirs(top / "a")
    os.mkdir(Path(tmpfs, "out"))
    write(top / "old")

    def work():
        write(Path(tmpfs, "out", "x"))
        os.makedirs(top / "new" / "deeper")
        write(top / "new" / "deeper" / "f")
        os.rename(top / "old", top / "renamed")
        os.rename(Path(tmpfs, "out", "x"), top / "a" / "in")

    w = watch(top, debounce=1000, step=100, rust_timeout=20_000)
    try:
        assert w.mode == "subtree-marks"
        assert w.source.group.attachment is not None  # the default filter's exclude_dirs
        threading.Timer(0.3, work).start()
        changes = next(w)
    finally:
        w.close()
    assert changes == {
        (Change.added, str(top / "new")),
        (Change.added, str(top / "new" / "deeper")),
        (Change.added, str(top / "new" / "deeper" / "f")),
        (Change.deleted, str(top / "old")),
        (Change.added, str(top / "renamed")),
        (Change.added, str(top / "a" / "in")),
    }


def test_no_handler_without_exclusions(tmpfs):
    os.makedirs(f"{tmpfs}/root/a/b")
    with open_source([f"{tmpfs}/root"], kinds=CHANGES) as source:
        assert source.mode == "subtree-marks"
        assert source.group.attachment is None
        assert source.description == "fanotify subtree marks on 1 directories"
        write(f"{tmpfs}/root/a/b/f")
        write(f"{tmpfs}/elsewhere")
        assert seen(read_all(source)) == {("created", f"{tmpfs}/root/a/b/f")}


def test_a_root_below_an_excluded_name(tmpfs):
    """Without a subtree rule the handler's walk would go on above the root
    and meet node_modules: the rule set then stops the walk at the roots."""
    root = f"{tmpfs}/node_modules/pkg"
    os.makedirs(f"{root}/.git")
    with open_source([root], kinds=CHANGES, exclude_dirs=["node_modules", ".git"]) as source:
        assert source.mode == "subtree-marks"
        assert source.description.endswith("fanbpf_rules, stopping at the roots)")
        write(f"{root}/.git/HEAD")
        write(f"{root}/f")
        assert seen(read_all(source)) == {("created", f"{root}/f")}
        assert source.group.attachment.stats.skipped == 1


def test_a_tree_moved_in_is_watched_at_once(tmpfs):
    """Its directories have their marks when the rename returns: a file made
    deep inside right after it comes from the kernel, not only from the scan
    of what the tree brought.  Moved out, it reports nothing more."""
    root, out = f"{tmpfs}/root", f"{tmpfs}/out"
    os.mkdir(root)
    os.makedirs(f"{out}/m/k/j")
    write(f"{out}/m/k/old")
    with open_source([root], kinds=CHANGES) as source:
        os.rename(f"{out}/m", f"{root}/m")
        write(f"{root}/m/k/j/new")
        events = read_all(source)
        os.rename(f"{root}/m", f"{out}/m2")  # and out again: its marks go
        write(f"{out}/m2/k/j/later")
        assert seen(read_all(source)) == {("deleted", f"{root}/m")}
    assert ("created", f"{root}/m/k/j/new") in seen(events, scanned=False), events
    assert seen(events, scanned=True) >= {("created", f"{root}/m/k"), ("created", f"{root}/m/k/j"),
                                          ("created", f"{root}/m/k/old")}
    assert ("created", f"{root}/m") in seen(events, scanned=False)


def test_a_removed_root_and_a_new_directory_with_its_inode_number(mounts):
    """Issue 17, defect 3: a root is a mark that dies with its directory, so
    a new directory that reuses its inode number reports nothing.  ext4
    reuses freed numbers; the test needs one reused.  Each root's own
    deletion is reported (``root``), whatever the kinds asked for."""
    top = mounts.fs("ext4")
    roots = [f"{top}/root{i}" for i in range(20)]
    for root in [*roots, f"{top}/live"]:
        os.mkdir(root)
    numbers = {os.stat(root).st_ino for root in roots}
    with open_source([*roots, f"{top}/live"], kinds=("created", "modified")) as source:
        for root in roots:
            os.rmdir(root)
        reuse_inode_numbers(top, numbers)
        write(f"{top}/live/f")
        events = read_all(source)
    assert seen(events) == {("created", f"{top}/live/f"), ("modified", f"{top}/live/f"),
                            *(("deleted", root) for root in roots)}
    assert all(e.root for e in events if e.kind == "deleted")


def test_a_filesystem_mounted_below_a_root(tmpfs, mounts):
    os.makedirs(f"{tmpfs}/root/mnt")
    os.makedirs(f"{tmpfs}/root/.git/mnt")
    inner = mounts.tmpfs(at=f"{tmpfs}/root/mnt")
    mounts.tmpfs(at=f"{tmpfs}/root/.git/mnt")  # excluded: not marked
    with open_source([f"{tmpfs}/root"], kinds=CHANGES, exclude_dirs=[".git"]) as source:
        assert source.description.startswith(
            "fanotify subtree marks on 1 directories and 1 mounts below them;")
        os.makedirs(f"{inner}/sub")
        write(f"{inner}/sub/f")
        write(f"{tmpfs}/root/.git/mnt/f")
        assert seen(read_all(source)) == {("created", f"{inner}/sub"), ("created", f"{inner}/sub/f")}


def test_an_overflow_marks_the_trees_again(tmpfs, monkeypatch):
    """The kernel queues an overflow when it cannot mark a directory.  The
    watcher's group has unlimited marks, so ENOMEM is the only way there;
    here the group counts its marks, and fs.fanotify.max_user_marks runs
    out.  The overflow is counted, and marking the roots again marks what
    was missed: files made in those directories afterwards are reported."""
    monkeypatch.setattr(watching, "_SUBTREE_FLAGS", DEFAULT_FLAGS | InitFlag.UNLIMITED_QUEUE)
    limit_file = "/proc/sys/fs/fanotify/max_user_marks"
    limit = Path(limit_file).read_text()
    os.mkdir(f"{tmpfs}/root")
    dirs = [f"{tmpfs}/root/d{i}" for i in range(10)]
    with open_source([f"{tmpfs}/root"], kinds=("created",)) as source:
        try:
            write(limit_file, "5")
            for d in dirs:
                os.mkdir(d)
        finally:
            write(limit_file, limit)
        events = read_all(source)
        assert source.overflows == 1
        for d in dirs:
            write(f"{d}/f")
        events += read_all(source)
    assert {f"{d}/f" for d in dirs} <= {e.path for e in events}


def test_20000_overlay_roots_need_no_fd_each(mounts):
    """Issue 17, defect 3: rules roots on overlayfs each held an O_PATH fd,
    and 20 000 of them failed at the default RLIMIT_NOFILE of 1024.  Marks
    hold the roots in the kernel."""
    merged, _, _ = mounts.overlay()
    roots = [f"{merged}/d{i}" for i in range(20_000)]
    for root in roots:
        os.mkdir(root)
    os.mkdir(f"{roots[-1]}/.git")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        with open_source(roots, kinds=("created",), exclude_dirs=[".git"]) as source:
            assert source.mode == "subtree-marks"
            assert "dropped in the kernel" in source.description
            assert len(os.listdir("/proc/self/fd")) < 100
            write(f"{roots[-1]}/.git/HEAD")
            write(f"{roots[-1]}/f")
            write(f"{roots[0]}/g")
            assert seen(read_all(source)) == {("created", f"{roots[-1]}/f"),
                                              ("created", f"{roots[0]}/g")}
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_an_overlay_whose_handles_cannot_be_opened_is_refused(mounts):
    """Without nfs_export overlayfs takes marks but its handles cannot be
    opened, so no event could be placed: refused, as a filesystem mark is."""
    lower, rw = mounts.tmpfs(), mounts.tmpfs()
    for d in ("upper", "work"):
        os.mkdir(f"{rw}/{d}")
    merged = mounts.mount("-t", "overlay", "fanbpf-ovl", "-o",
                          f"lowerdir={lower},upperdir={rw}/upper,workdir={rw}/work", prefix="ovl")
    with pytest.raises(WatchError, match="on overlay.*Poll it instead"):
        open_source([merged])
