"""Subtree marks (MarkFlag.SUBTREE, the series' FAN_MARK_SUBTREE) from Python.

A directory marked with SUBTREE is a root: the kernel gives every
directory below it a mark of the group, including directories made,
looked up again or moved in later, and nothing outside is reported.
"""
import os
import re
import shutil

import pytest

from fanbpf import EventMask, Group, InitFlag, MarkFlag
from fanbpf.support import subtree_marks
from fsimages import reuse_inode_numbers

M = EventMask
WATCHED = M.CREATE | M.CLOSE_WRITE | M.MOVE | M.DELETE | M.ONDIR


def marks(group):
    """(roots, inherited) of the group, from fdinfo's mark flags."""
    roots = inherited = 0
    with open(f"/proc/self/fdinfo/{group.fileno()}") as f:
        for line in f:
            m = re.match(r"fanotify ino:\S+ sdev:\S+ mflags:([0-9a-f]+)", line)
            if m:
                flags = int(m.group(1), 16)
                roots += bool(flags & MarkFlag.SUBTREE)
                inherited += bool(not flags & MarkFlag.SUBTREE and flags & MarkFlag.EVICTABLE)
    return roots, inherited


def write(path):
    with open(path, "w") as f:
        f.write("x")


def drain(group, timeout=0.5):
    """Every event that comes within ``timeout`` of the last one."""
    events = []
    while batch := group.read_events(timeout=timeout):
        events.extend(batch)
    return events


def paths(events, kind=M.CLOSE_WRITE):
    return sorted(e.path for e in events if e.mask & kind)


def test_the_test_kernel_has_subtree_marks():
    assert subtree_marks()


@pytest.fixture
def group():
    with Group(InitFlag.CLASS_NOTIF | InitFlag.REPORT_DFID_NAME | InitFlag.REPORT_FID
               | InitFlag.UNLIMITED_MARKS) as g:
        yield g


def test_events_from_the_subtree_only(group, fs_root):
    root, out = f"{fs_root}/root", f"{fs_root}/out"
    os.makedirs(f"{root}/a/b/c")
    os.makedirs(f"{out}/x/y")
    group.mark(root, WATCHED, MarkFlag.SUBTREE)
    assert marks(group) == (1, 3)

    os.makedirs(f"{root}/a/new/deeper")  # made after the mark
    for d in ("a/b/c", "a/new/deeper", "."):
        write(f"{root}/{d}/f")
    write(f"{out}/x/y/f")
    write(f"{fs_root}/f")
    events = drain(group)
    assert paths(events) == sorted([f"{root}/a/b/c/f", f"{root}/a/new/deeper/f", f"{root}/f"])
    # the new directories' creation, by name, from their parents' marks
    created = {(e.path) for e in events if e.mask & M.CREATE and e.mask & M.ONDIR}
    assert created == {f"{root}/a/new", f"{root}/a/new/deeper"}, events


def test_moved_in_is_watched_at_once_and_moved_out_is_not(group, fs_root):
    root, out = f"{fs_root}/root", f"{fs_root}/out"
    os.makedirs(root)
    os.makedirs(f"{out}/m/k/j")
    group.mark(root, WATCHED, MarkFlag.SUBTREE)

    os.rename(f"{out}/m", f"{root}/m")
    write(f"{root}/m/k/j/f")
    assert paths(drain(group)) == [f"{root}/m/k/j/f"]
    assert marks(group) == (1, 3)

    os.rename(f"{root}/m", f"{out}/m2")
    write(f"{out}/m2/k/j/f")
    events = drain(group)
    assert paths(events) == []
    assert any(e.mask & M.MOVED_FROM for e in events)
    assert marks(group) == (1, 0)


def test_evicted_directories_get_their_marks_back(group, mounts):
    """Inherited marks go with the inode when the dcache lets a directory go,
    and come back when a lookup brings it back: memory follows the cached
    directories, and nothing below is missed."""
    fs_root = mounts.fs("ext4")
    root = f"{fs_root}/root"
    dirs = [f"{root}/d{i}/e{j}" for i in range(10) for j in range(10)]
    for d in dirs:
        os.makedirs(d)
    group.mark(root, WATCHED, MarkFlag.SUBTREE)
    assert marks(group) == (1, 110)

    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")
    roots, inherited = marks(group)
    assert roots == 1 and inherited < 110, "drop_caches evicted no directory"

    for d in dirs:
        write(f"{d}/f")
    assert paths(drain(group)) == sorted(f"{d}/f" for d in dirs)
    assert marks(group) == (1, 110)


def test_a_removed_root_does_not_come_back_as_a_recycled_inode(mounts):
    """Issue 17, defect 3: roots kept as inode numbers matched any directory
    that reused a removed root's number.  A root mark dies with its
    directory.  ext4 reuses freed inode numbers: new directories are made
    until one has a removed root's number (the test needs one).

    The group resolves no paths: one that does keeps the first marked
    directory of each filesystem open to decode handles with, and an open
    directory's inode (and its mark) lives on after rmdir."""
    fs_root = mounts.fs("ext4")
    group = Group(InitFlag.CLASS_NOTIF | InitFlag.REPORT_DFID_NAME | InitFlag.REPORT_FID
                  | InitFlag.UNLIMITED_MARKS, resolve_paths=False)
    removed = {}
    for i in range(20):
        root = f"{fs_root}/root{i}"
        os.mkdir(root)
        group.mark(root, WATCHED, MarkFlag.SUBTREE)
        removed[os.stat(root).st_ino] = root
    for root in removed.values():
        os.rmdir(root)
    assert marks(group) == (0, 0)
    drain(group, timeout=0.2)  # the roots' own deletions

    reuse_inode_numbers(fs_root, removed)
    assert drain(group, timeout=0.3) == []
    group.close()


def test_out_of_marks_is_an_overflow_not_silence(mounts):
    """A group that counts its marks against fs.fanotify.max_user_marks and
    runs out while marks are inherited gets FAN_Q_OVERFLOW: user space
    knows to rescan."""
    fs_root = mounts.fs("tmpfs")
    limit_file = "/proc/sys/fs/fanotify/max_user_marks"
    with open(limit_file) as f:
        limit = f.read()
    with Group(InitFlag.CLASS_NOTIF | InitFlag.REPORT_DFID_NAME | InitFlag.REPORT_FID) as group:
        os.mkdir(f"{fs_root}/root")
        group.mark(f"{fs_root}/root", WATCHED, MarkFlag.SUBTREE)
        try:
            with open(limit_file, "w") as f:
                f.write("5")
            for i in range(10):
                os.mkdir(f"{fs_root}/root/d{i}")
        finally:
            with open(limit_file, "w") as f:
                f.write(limit)
        events = drain(group, timeout=0.3)
    assert any(e.is_overflow for e in events), events


def test_bad_requests_say_what_is_wrong(group, fs_root):
    os.mkdir(f"{fs_root}/root")
    write(f"{fs_root}/file")
    with pytest.raises(NotADirectoryError):
        group.mark(f"{fs_root}/file", WATCHED, MarkFlag.SUBTREE)
    with pytest.raises(OSError, match="subtree") as err:
        group.mark(f"{fs_root}/root", WATCHED, MarkFlag.SUBTREE | MarkFlag.FILESYSTEM)
    assert err.value.errno == 22
    group.mark(f"{fs_root}/root", WATCHED, MarkFlag.SUBTREE)
    with pytest.raises(FileExistsError, match="subtree root"):
        group.mark(f"{fs_root}/root", M.OPEN)
    group.unmark(f"{fs_root}/root", WATCHED, MarkFlag.SUBTREE)
    assert marks(group) == (0, 0)
    shutil.rmtree(f"{fs_root}/root")
