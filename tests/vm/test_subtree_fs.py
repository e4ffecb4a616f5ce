"""Subtree rules on real file systems (issue 9): tmpfs, ext4, xfs, btrfs (a
root in a subvolume), overlayfs, bind and nested mounts; directory
exclusions at any depth; deep trees.

Every exactness test works the same way: the operations run on a fresh
file system watched by two FID groups with the same marks, one with the
rules handler attached and one without (the reference).  The expected set
is the reference's ``(event, path)`` pairs whose path the rules keep --
computed from the paths the operations used (``fsimages.inside`` and the
exclusions below), not listed by hand -- and the handler's group must
deliver exactly that set.  The reference must also have seen each
operation's own events (so an empty expectation cannot pass by accident),
and something outside the roots (so "deliver everything" cannot pass).
"""

import fnmatch
import os
import subprocess

import pytest

import fanbpf
from fanbpf import EventMask, Group, MarkFlag, model
from fanbpf.rules import root_of
from fanbpf.testing.fs import FsOp
from fsimages import MASK, Paths, Run, inside

def ops_in(d, tag=""):
    """A directory's life: mkdir, a file created, written, read, chmodded,
    renamed and removed, one file left behind (``tag``: to do it again)."""
    sub = os.path.join(d, f"sub{tag}")
    return [FsOp("mkdir", sub), FsOp("create", f"{sub}/f"), FsOp("write", f"{sub}/f"),
            FsOp("open", f"{sub}/f"), FsOp("chmod", f"{sub}/f"),
            FsOp("rename", f"{sub}/f", f"{sub}/g"), FsOp("unlink", f"{sub}/g"),
            FsOp("rmdir", sub), FsOp("create", os.path.join(d, f"kept{tag}"))]


@pytest.fixture
def run(fanbpf_rules_handler):
    runs = []

    def make(base, rules, **kw):
        r = Run(fanbpf_rules_handler, base, rules, **kw)
        runs.append(r)
        return r

    yield make
    for r in runs:
        r.close()


def mkdirs(base, *rels):
    for rel in rels:
        os.makedirs(os.path.join(base, rel))


def under(roots):
    return lambda ev, rel: inside(rel, set(roots))


# --- roots on each file system --------------------------------------------------------

def test_roots_delivered_exactly(fs_root, run):
    mkdirs(fs_root, "in/a", "in2", "out/in")
    r = run(fs_root, fanbpf.rules(subtree=[f"{fs_root}/in", f"{fs_root}/in2"]))
    r.apply(ops_in("in") + ops_in("in/a") + ops_in("in2") + ops_in("out") + ops_in("out/in")
            + ops_in(""))
    r.check(under({"in", "in2"}))


@pytest.mark.parametrize("root", ["a", "a/in"])
def test_root_in_a_btrfs_subvolume(mounts, run, root):
    """A root in subvolume a, named through a ``-o subvol=a`` mount, and a decoy
    in subvolume b with the same inode number (subvolume roots are all 256,
    the first directory made in each is 257): only a's events are delivered.
    Inode numbers repeat across subvolumes; the device of each subvolume
    (stat's st_dev, the handler's dev for btrfs) tells them apart."""
    top, dev = mounts.disk("btrfs")
    for sub in ("a", "b"):
        mounts.subvolume(top, sub)
        os.mkdir(f"{top}/{sub}/in")
    decoy = root.replace("a", "b", 1)
    st_root, st_decoy = os.stat(f"{top}/{root}"), os.stat(f"{top}/{decoy}")
    assert st_root.st_ino == st_decoy.st_ino and st_root.st_dev != st_decoy.st_dev
    view = mounts.subvol_mount(dev, "a")
    named = os.path.join(view, os.path.relpath(root, "a"))
    assert root_of(named) == root_of(f"{top}/{root}")
    # fanotify refuses a filesystem mark through a subvolume (EXDEV: its fsid
    # is not the filesystem's); the top-level mount carries it
    r = run(top, fanbpf.rules(subtree=[named]))
    v = os.path.join(os.path.relpath(root, "a"), "v")
    r.apply([FsOp("mkdir", v)] + ops_in(v), via=(view, "a"))
    r.apply(ops_in(decoy) + ops_in(root) + ops_in(""))
    r.check(under({root}))


def test_overlayfs_root(mounts, run):
    """A root on an overlay, with files of the lower layer (read, copied up
    by a write, removed: a whiteout) and of the upper one; the group marks
    the overlay (see docs/rules.md, Filesystems, for what the upper layer's
    file system reports instead)."""
    merged, lower, _ = mounts.overlay()
    for d in ("in", "out"):
        os.makedirs(f"{lower}/{d}/old")
        for f in ("read", "written", "removed"):
            with open(f"{lower}/{d}/old/{f}", "w") as fh:
                fh.write("lower")
    r = run(merged, fanbpf.rules(subtree=[f"{merged}/in"]))
    for d in ("in", "out"):
        r.apply([FsOp("open", f"{d}/old/read"), FsOp("write", f"{d}/old/written"),
                 FsOp("unlink", f"{d}/old/removed")] + ops_in(d))
    # The ATTRIB (link count) of an unlink comes after overlayfs unhashed the
    # dentry: the walk finds no dentry of the inode, so the handler cannot
    # tell where it was: delivered, in or out, and counted undecided.
    unlinked = {op.path for op in r.done if op.kind == "unlink"}
    r.check(lambda ev, rel: inside(rel, {"in"}) or (ev == "ATTRIB" and rel in unlinked))
    assert r.att.stats.undecided == len(unlinked) == 4


def test_bind_mount(mounts, run):
    """A root is a directory, not a path: named through a bind mount, it
    matches events made through the original path and through the bind."""
    base = mounts.tmpfs()
    mkdirs(base, "src/in", "src/out")
    view = mounts.bind(f"{base}/src/in")
    r = run(base, fanbpf.rules(subtree=[view]))
    r.apply([FsOp("mkdir", "a")] + ops_in("a"), via=(view, "src/in"))
    r.apply(ops_in("src/in") + ops_in("src/out") + ops_in("src"))
    r.check(under({"src/in"}))


def test_nested_mount_below_a_root(mounts, run):
    """An ext4 mounted below a root (on a tmpfs) is covered: its mounted
    directory becomes a root too; both file systems are marked."""
    base = mounts.tmpfs()
    mkdirs(base, "in/mnt", "out/mnt")
    inner = mounts.disk("ext4", at=f"{base}/in/mnt")[0]
    outer_inner = mounts.disk("ext4", at=f"{base}/out/mnt")[0]
    r = run(base, fanbpf.rules(subtree=[f"{base}/in"]), marks=[base, inner, outer_inner])
    assert root_of(inner) in r.att.roots
    r.paths.add_tree("in/mnt")
    r.paths.add_tree("out/mnt")
    r.apply(ops_in("in/mnt") + ops_in("in") + ops_in("out/mnt") + ops_in("out"))
    r.check(under({"in"}))


def test_mount_dash_o_loop():
    """`mount -o loop` works in the guest (CONFIG_BLK_DEV_WRITE_MOUNTED: mount(8)
    keeps the loop device it set up open for writing while it mounts)."""
    from fsimages import Mounts

    with Mounts() as m:
        img = m.image("ext4")
        point = m.mount("-o", "loop", img)
        assert os.stat(point).st_dev != os.stat(os.path.dirname(point)).st_dev


# --- exclusions -----------------------------------------------------------------

EXCLUDE_DIRS = [".git", "node_modules", "*.egg-info"]


def excluded_by_name(ev, rel, root):
    """Whether a directory on the way from ``root`` down to ``rel`` -- ``rel``
    itself when the event is on a directory -- has an excluded name."""
    parts = os.path.relpath(rel, root).split("/")
    dirs = parts if ev.endswith("|ONDIR") else parts[:-1]
    return any(fnmatch.fnmatchcase(p, pat) for p in dirs for pat in EXCLUDE_DIRS)


@pytest.mark.parametrize("kind", ["tmpfs", "btrfs"])
def test_exclude_dirs_at_any_depth(mounts, run, kind):
    base = mounts.fs(kind)
    mkdirs(base, "in/.git/objects/ab", "in/a/b/c/node_modules/pkg/lib", "in/pkg.egg-info",
           "in/a/.github", "out/.git")
    for name in ("node_modules", ".gitignore"):  # files with such names are not dirs
        open(f"{base}/in/a/{name}", "w").close()
    r = run(base, fanbpf.rules(subtree=[f"{base}/in"], exclude_dirs=EXCLUDE_DIRS))
    r.apply([FsOp("mkdir", "in/a/b/late"), FsOp("mkdir", "in/a/b/late/.git")]  # after attach
            + ops_in("in/a/b/late/.git") + ops_in("in/.git/objects/ab")
            + ops_in("in/a/b/c/node_modules/pkg/lib") + ops_in("in/pkg.egg-info")
            + ops_in("in/a/.github") + ops_in("in/a/b/c") + ops_in("out/.git")
            + [FsOp("write", "in/a/node_modules"), FsOp("write", "in/a/.gitignore")])
    want = r.check(lambda ev, rel: inside(rel, {"in"}) and not excluded_by_name(ev, rel, "in"))
    assert ("MODIFY", "in/a/node_modules") in want  # a file: not an excluded directory


def test_exclude_subtrees(mounts, run):
    """Excluded subtrees, one with a root inside it (the nearer rule wins),
    changed live with exclude_subtree / include_subtree."""
    base = mounts.tmpfs()
    mkdirs(base, "in/skip/again/x", "in/skip/y", "in/later/z", "out")
    r = run(base, fanbpf.rules(subtree=[f"{base}/in", f"{base}/in/skip/again"],
                               exclude_subtrees=[f"{base}/in/skip"]))
    def everywhere(tag):
        return [op for d in ("in/skip/again/x", "in/skip/y", "in/later/z", "in", "out")
                for op in ops_in(d, tag)]

    r.apply(everywhere(1))
    r.check(lambda ev, rel: inside(rel, {"in"}) and (
        not inside(rel, {"in/skip"}) or inside(rel, {"in/skip/again"})))
    r.att.exclude_subtree(f"{base}/in/later")
    r.att.include_subtree(f"{base}/in/skip")
    r.apply(everywhere(2))
    r.check(lambda ev, rel: inside(rel, {"in"}) and not inside(rel, {"in/later"}))


# --- deep trees --------------------------------------------------------------------

def make_chain(top, depth, name="d"):
    """``depth`` nested directories below ``top`` (relative mkdirs: the path
    soon passes PATH_MAX); returns an fd of the deepest, the caller closes it."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    return fd


def test_file_1000_deep_under_a_root(mounts, run):
    base = mounts.tmpfs()
    mkdirs(base, "in", "out")
    for top in ("in", "out"):
        os.close(make_chain(f"{base}/{top}", 1000))
    r = run(base, fanbpf.rules(subtree=[f"{base}/in"]), walk=False)
    deep = "/".join(["d"] * 1000)
    for rel in ("in", "out", f"in/{deep}", f"out/{deep}"):  # the events name these dirs
        r.paths.add(rel)
    r.apply([FsOp("create", f"in/{deep}/f"), FsOp("write", f"in/{deep}/f"),
             FsOp("create", f"out/{deep}/f")])
    want = r.check(under({"in"}))
    assert ("CREATE", f"in/{deep}/f") in want


def test_deeper_than_the_walk_is_delivered_and_counted(mounts, run):
    """Below the fs root by more than the walk looks at (FANBPF_MAX_DEPTH
    dentries): the handler cannot tell whether a root is above, so it
    delivers the event and counts it as undecided."""
    base = mounts.tmpfs()
    mkdirs(base, "in", "out")
    depth = model.MAX_DEPTH + 8
    fd = make_chain(f"{base}/in", depth)
    try:
        r = run(base, fanbpf.rules(subtree=[f"{base}/out"]), mask=EventMask.CREATE, walk=False)
        before = r.att.stats
        os.close(os.open("deep-file", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
        open(f"{base}/in/shallow", "w").close()  # decided: outside the root
        names = [rec.name for e in r.sut.drain() for rec in e.info if hasattr(rec, "name")]
        assert names == ["deep-file"]
        after = r.att.stats
        assert after.undecided == before.undecided + 1
        assert after.skipped == before.skipped + 1
    finally:
        os.close(fd)


def test_overlay_events_of_each_layer(mounts):
    """What docs/rules.md (Filesystems) says about overlayfs: a mark on the
    overlay reports the user's operations on overlay objects; a mark on the
    upper layer's file system reports what overlayfs does there: the copy-up
    of a lower file written (a temporary file in the work dir, linked into
    the index and the upper dir) and the user's write through the index
    name; the lower layer's file system sees the reads."""
    merged, lower, upper = mounts.overlay()
    os.mkdir(f"{lower}/d")
    with open(f"{lower}/d/f", "w") as fh:
        fh.write("lower")
    layers = os.path.dirname(upper)  # upper/ and work/
    views = {"overlay": Paths(merged), "upper": Paths(layers), "lower": Paths(lower)}
    groups = {k: Group(resolve_paths=False) for k in views}
    try:
        for k, g in groups.items():
            g.mark(views[k].base, MASK, MarkFlag.FILESYSTEM)
        for op in (FsOp("open", "d/f"), FsOp("write", "d/f")):
            views["overlay"].apply(op)
        events = {k: g.drain() for k, g in groups.items()}
        views["upper"].add_tree("")  # what the copy-up made
        seen = {k: views[k].keys(events[k]) for k in views}
        assert seen["overlay"] == {("OPEN", "d/f"), ("ACCESS", "d/f"), ("CLOSE_NOWRITE", "d/f"),
                                   ("MODIFY", "d/f"), ("CLOSE_WRITE", "d/f")}
        upper_events = {ev for ev, rel in seen["upper"] if rel.startswith("upper/")}
        work_events = {ev for ev, rel in seen["upper"] if rel.startswith("work/")}
        assert "CREATE" in upper_events and "MODIFY" not in upper_events
        assert {"CREATE", "MODIFY", "CLOSE_WRITE"} <= work_events
        assert {ev for ev, _ in seen["lower"]} <= {"OPEN", "ACCESS", "CLOSE_NOWRITE"}
    finally:
        for g in groups.values():
            g.close()
