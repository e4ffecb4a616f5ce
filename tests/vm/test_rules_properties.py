"""fanbpf_rules in the test kernel: property tests over sequences of file-system
operations, and the documented semantics case by case.

The property: hypothesis draws a sequence of operations (create, write, open,
chmod, mkdir, rmdir, unlink, renames within and across the subtree, from this
process and two workers) and a rule set (subtree roots, excluded subtrees,
excluded directory names, names, process conditions).  They are applied in
a fresh directory watched by two FID groups with a FILESYSTEM mark: one with
the rules handler attached (the rule set in its maps), one without.  After
every operation, the events of the handler's group must be exactly those of
the other group that fanbpf.model says the handler delivers, with the facts
explained by fanbpf.testing.FsTree (the test's own record of the tree).
Nothing the model delivers may be missing, nothing it skips may arrive.  A
failure prints the shrunk operation list, like
``[mkdir('in/a'), rename('in/a', 'out/b', proc=1)]``, and the events that
differ.  The sequences run on a fresh tmpfs each, and on ext4, xfs and
btrfs (one file system per kind, a fresh directory per sequence; the
``disk_fs`` fixture, made with tests/vm/fsimages.py).

Example counts: FANBPF_EXAMPLES examples (default 500) on tmpfs, a fifth of
that on each disk file system, derandomized.
"""

import errno
import os
import subprocess
import tempfile

import pytest
from hypothesis import given, note

import fanbpf
from fanbpf import EventMask, Group, MarkFlag, model
from fanbpf.testing.fs import OPS_DIRS, OPS_MASK, FsOp, Workers, tmpfs_mount
from fanbpf.testing.oracle import OpsRun, describe_keys, event_keys, expected_keys
from fanbpf.testing.strategies import fs_ops, property_settings, rules_specs


def check_sequence(handler, run, ops, spec):
    with Group(resolve_paths=False) as sut:
        rules = spec.build(run.base, run.pids)
        note(f"rules: {rules!r}")
        sut.mark(run.base, OPS_MASK, MarkFlag.FILESYSTEM)
        sut.attach(handler, rules)
        run.start(OPS_MASK)
        for step, op in enumerate(ops):
            seen = run.step(op)
            want = expected_keys(run.tree, seen, rules)
            got = event_keys(sut.drain())
            assert got == want, (
                f"after {ops[:step + 1]!r}:\n  missing: {describe_keys(run.tree, want - got)}"
                f"\n  unexpected: {describe_keys(run.tree, got - want)}")
        assert run.ref.overflows == 0 and sut.overflows == 0


@property_settings()
@given(ops=fs_ops(dirs=OPS_DIRS), spec=rules_specs())
def test_handler_delivers_what_the_model_does(fanbpf_rules_handler, fanbpf_workers, ops,
                                              spec):
    with OpsRun(workers=fanbpf_workers) as run:
        check_sequence(fanbpf_rules_handler, run, ops, spec)


@pytest.fixture(scope="module", params=["ext4", "xfs", "btrfs"])
def disk_fs(request):
    """One fresh file system of each disk kind for the module (a directory per sequence)."""
    from fsimages import Mounts

    with Mounts() as mounts:
        yield mounts.fs(request.param)


@property_settings(max_examples=max(10, property_settings().max_examples // 5))
@given(ops=fs_ops(dirs=OPS_DIRS), spec=rules_specs())
def test_handler_delivers_what_the_model_does_on_disk(fanbpf_rules_handler, fanbpf_workers,
                                                      disk_fs, ops, spec):
    with OpsRun(workers=fanbpf_workers, fs=disk_fs) as run:
        check_sequence(fanbpf_rules_handler, run, ops, spec)


# --- the semantics, case by case ---------------------------------------------------

def touch(path):
    with open(path, "w"):
        pass


def open_close(path):
    os.close(os.open(path, os.O_RDONLY))


@pytest.fixture
def tree(fanbpf_rules_handler):
    """A tmpfs with in/ and out/, and a helper to watch it through the handler."""
    with tmpfs_mount() as base:
        for d in ("in", "out"):
            os.mkdir(os.path.join(base, d))
        yield base


class Watch:
    """A FID group on ``base``'s file system with the rules handler attached."""

    def __init__(self, handler, base, mask, args, extra_marks=()):
        self.base = base
        self.group = Group()
        for path in (base, *extra_marks):
            self.group.mark(path, mask, MarkFlag.FILESYSTEM)
        self.attachment = self.group.attach(handler, args)

    def seen(self):
        """{(event, path relative to base)} for each event bit delivered so far."""
        out = set()
        for e in self.group.drain():
            flags = e.mask & EventMask.ONDIR
            for bit in EventMask:
                if bit.value & (bit.value - 1) or not bit & e.mask or bit & EventMask.ONDIR:
                    continue
                path = e.new_path if bit == EventMask.RENAME else e.path
                rel = os.path.relpath(path, self.base) if path else None
                out.add(((bit | flags).name, rel))
        return out

    def close(self):
        self.group.close()


@pytest.fixture
def watch(fanbpf_rules_handler, tree):
    watches = []

    def make(mask, extra_marks=(), args=None, **rules):
        w = Watch(fanbpf_rules_handler, tree, mask, args or fanbpf.rules(**rules), extra_marks)
        watches.append(w)
        return w

    yield make
    for w in watches:
        w.close()


def test_root_itself_is_in_its_subtree(tree, watch):
    w = watch(EventMask.OPEN | EventMask.CREATE | EventMask.ONDIR, subtree=[f"{tree}/in"])
    open_close(f"{tree}/in")
    open_close(tree)
    touch(f"{tree}/in/f")
    touch(f"{tree}/out/g")
    assert w.seen() == {("OPEN|ONDIR", "in"), ("CREATE", "in/f"), ("OPEN", "in/f")}


def test_rename_across_the_subtree_boundary(tree, watch):
    touch(f"{tree}/in/a")
    touch(f"{tree}/out/b")
    w = watch(EventMask.MOVED_FROM | EventMask.MOVED_TO | EventMask.RENAME | EventMask.MOVE_SELF,
              subtree=[f"{tree}/in"])
    os.rename(f"{tree}/in/a", f"{tree}/out/a")  # out of the subtree
    # MOVED_FROM: the old dir; RENAME: the old dir or the new place; MOVE_SELF: the new place
    assert w.seen() == {("MOVED_FROM", "in/a"), ("RENAME", "out/a")}
    os.rename(f"{tree}/out/b", f"{tree}/in/b")  # into it
    assert w.seen() == {("MOVED_TO", "in/b"), ("RENAME", "in/b"), ("MOVE_SELF", "in/b")}


def test_events_without_a_dentry(tree, watch):
    touch(f"{tree}/in/f")
    os.mkdir(f"{tree}/in/d")
    touch(f"{tree}/out/g")
    w = watch(EventMask.DELETE | EventMask.DELETE_SELF | EventMask.ONDIR, subtree=[f"{tree}/in"])
    os.unlink(f"{tree}/in/f")
    os.rmdir(f"{tree}/in/d")
    os.unlink(f"{tree}/out/g")
    # DELETE carries the dir; DELETE_SELF comes after the last dentry went:
    # its inode has no dentry to walk up from, so in or out cannot be told:
    # delivered (no path left to report) and counted undecided
    events = w.group.drain()
    deleted = {(e.mask, os.path.relpath(e.path, tree)) for e in events if e.path}
    assert deleted == {(EventMask.DELETE, "in/f"), (EventMask.DELETE | EventMask.ONDIR, "in/d")}
    assert sorted(e.mask for e in events if e.mask & EventMask.DELETE_SELF) == \
        sorted([EventMask.DELETE_SELF, EventMask.DELETE_SELF,
                EventMask.DELETE_SELF | EventMask.ONDIR])
    s = w.attachment.stats
    assert (s.delivered, s.skipped, s.undecided) == (5, 1, 3)


def test_overwritten_inode_is_undecided(tree, watch):
    """A rename over a file: the link-count ATTRIB of the file it replaces
    comes once the rename has unhashed that file's last dentry, so the walk
    from its inode finds none.  It is delivered and counted, wherever the
    file was; ATTRIBs that come with a dentry are still decided."""
    for rel in ("in/a", "in/b", "in/c", "out/a", "out/b", "out/c"):
        touch(f"{tree}/{rel}")
    w = watch(EventMask.ATTRIB, subtree=[f"{tree}/in"])
    os.rename(f"{tree}/out/a", f"{tree}/out/b")
    os.rename(f"{tree}/in/a", f"{tree}/in/b")
    os.chmod(f"{tree}/in/c", 0o600)  # setattr: the dentry, inside
    os.chmod(f"{tree}/out/c", 0o600)  # outside: skipped
    events = w.group.drain()
    assert len(events) == 3 and all(e.mask == EventMask.ATTRIB for e in events)
    assert {os.path.relpath(e.path, tree) for e in events if e.path} <= {"in/c"}
    assert f"{tree}/in/c" in [e.path for e in events]
    s = w.attachment.stats
    assert (s.delivered, s.skipped, s.undecided) == (3, 1, 2)


def test_hard_links_are_judged_by_the_name_used(tree, watch):
    touch(f"{tree}/out/f")
    w = watch(EventMask.OPEN | EventMask.CREATE, subtree=[f"{tree}/in"])
    os.link(f"{tree}/out/f", f"{tree}/in/l")  # CREATE: the new entry's dir is inside
    open_close(f"{tree}/in/l")  # the dentry used is inside
    open_close(f"{tree}/out/f")  # the same inode through a dentry outside
    assert w.seen() == {("CREATE", "in/l"), ("OPEN", "in/l")}


def _key(path):
    from fanbpf.rules import root_of

    return root_of(path)


def test_walks_stop_at_mount_points(tree, watch):
    """A walk ends at its file system's root (rules() adds the roots of file
    systems mounted below a root for that reason; a bare rule set has only
    the roots it is given)."""
    inner = f"{tree}/in/mnt"
    os.mkdir(inner)
    subprocess.run(["mount", "-t", "tmpfs", "inner", inner], check=True)
    try:
        touch(f"{inner}/x")
        bare = model.RulesArgs(sections=model.Section.SUBTREE, roots=[_key(f"{tree}/in")])
        outer = watch(EventMask.OPEN, extra_marks=[inner], args=bare)
        mounted = watch(EventMask.OPEN, extra_marks=[inner], subtree=[inner])
        open_close(f"{inner}/x")
        assert outer.seen() == set()  # the walk ends at the inner file system's root
        assert mounted.seen() == {("OPEN", "in/mnt/x")}  # a root on the inner one
    finally:
        subprocess.run(["umount", "-l", inner], check=True)


def _deep(top, depth, name="d"):
    """``depth`` nested directories below ``top`` (past PATH_MAX: by chdir),
    a file ``f`` in the deepest; returns an fd of the deepest."""
    cwd = os.open(".", os.O_RDONLY)
    try:
        os.chdir(top)
        for _ in range(depth):
            os.mkdir(name)
            os.chdir(name)
        touch("f")
        return os.open(".", os.O_RDONLY)
    finally:
        os.fchdir(cwd)
        os.close(cwd)


def _open_deep(fd):
    """Open the deepest directory and its file f (paths too long for open(2))."""
    os.close(os.open(".", os.O_RDONLY, dir_fd=fd))
    os.close(os.open("f", os.O_RDONLY, dir_fd=fd))


@pytest.mark.parametrize("depth,want", [
    (1000, (2, 3, 0)),  # (delivered, skipped, undecided)
    (model.MAX_DEPTH - 2, (2, 1, 0)),  # the file is the 4096th dentry below the root
    (model.MAX_DEPTH + 1, (4, 1, 4)),
])
def test_deep_objects_are_never_dropped(fanbpf_rules_handler, tree, depth, want):
    """No depth cliff: a root up to FANBPF_MAX_DEPTH (4096) dentries up is
    found; deeper, the walk sees neither the root nor the top, and the
    event is delivered and counted undecided.  Outside the subtree, an
    object that deep is undecided too (delivered), a shallow one dropped.
    Each case opens a directory and its file inside (and outside but at
    the boundary, where the top is just out of reach for some walks)."""
    inside = _deep(f"{tree}/in", depth)
    outside = _deep(f"{tree}/out", depth) if depth != model.MAX_DEPTH - 2 else None
    try:
        with Group(resolve_paths=False) as g:
            g.mark(tree, EventMask.OPEN | EventMask.ONDIR, MarkFlag.FILESYSTEM)
            att = g.attach(fanbpf_rules_handler, fanbpf.rules(subtree=[f"{tree}/in"]))
            _open_deep(inside)
            if outside is not None:
                _open_deep(outside)
            open_close(f"{tree}/out")
            got = g.drain()
            stats = att.stats
            assert (stats.delivered, stats.skipped, stats.undecided) == want
            assert len(got) == want[0]
    finally:
        os.close(inside)
        if outside is not None:
            os.close(outside)


def test_excluded_directory_names_at_any_depth(tree, watch):
    """exclude_dirs: below a directory of such a name, at any depth; the
    directory itself too (its events and those of its entries); a file of
    such a name is not a directory."""
    for d in ("in/.git/objects", "in/a/b/c/node_modules/x", "in/pkg.egg-info", "in/src"):
        os.makedirs(f"{tree}/{d}")
    w = watch(EventMask.CREATE | EventMask.ONDIR, subtree=[f"{tree}/in"],
              exclude_dirs=[".git", "node_modules", "*.egg-info"])
    for f in ("in/.git/objects/o", "in/a/b/c/node_modules/x/y", "in/pkg.egg-info/PKG",
              "in/src/main.c", "in/a/b/f", "in/.gitignore"):
        touch(f"{tree}/{f}")
    os.mkdir(f"{tree}/in/src/.git")
    touch(f"{tree}/in/src/node_modules")
    assert w.seen() == {("CREATE", "in/src/main.c"), ("CREATE", "in/a/b/f"),
                        ("CREATE", "in/.gitignore"), ("CREATE", "in/src/node_modules")}
    assert w.attachment.stats.skipped == 4


def test_excluded_subtrees_and_roots_below_them(tree, watch):
    """The nearest decides: an excluded subtree inside a root, and a root
    inside that excluded subtree."""
    os.makedirs(f"{tree}/in/skip/keep")
    w = watch(EventMask.CREATE, subtree=[f"{tree}/in", f"{tree}/in/skip/keep"],
              exclude_subtrees=[f"{tree}/in/skip"])
    for f in ("in/a", "in/skip/b", "in/skip/keep/c"):
        touch(f"{tree}/{f}")
    assert w.seen() == {("CREATE", "in/a"), ("CREATE", "in/skip/keep/c")}


def test_exclusions_without_roots(tree, watch):
    """exclude_dirs alone: everything but what is below such a directory."""
    os.makedirs(f"{tree}/out/.git")
    w = watch(EventMask.CREATE, exclude_dirs=[".git"])
    touch(f"{tree}/out/.git/x")
    touch(f"{tree}/out/y")
    touch(f"{tree}/z")
    assert w.seen() == {("CREATE", "out/y"), ("CREATE", "z")}


def test_events_without_a_name_match_no_pattern(tree, watch):
    touch(f"{tree}/in/a")
    touch(f"{tree}/in/b")
    include = watch(EventMask.MOVED_TO | EventMask.MOVE_SELF, names=["*"])
    exclude = watch(EventMask.MOVED_TO | EventMask.MOVE_SELF, exclude_names=["zzz"])
    os.rename(f"{tree}/in/a", f"{tree}/in/c")
    assert include.seen() == {("MOVED_TO", "in/c")}
    assert exclude.seen() == {("MOVED_TO", "in/c"), ("MOVE_SELF", "in/c")}


def test_rename_is_named_by_its_old_name(tree, watch):
    touch(f"{tree}/in/old1")
    w = watch(EventMask.RENAME | EventMask.MOVED_FROM | EventMask.MOVED_TO, names=["old*"])
    os.rename(f"{tree}/in/old1", f"{tree}/in/new1")
    assert w.seen() == {("RENAME", "in/new1"), ("MOVED_FROM", "in/old1")}


def test_names_rule_limited_to_some_events(tree, watch):
    w = watch(EventMask.CREATE | EventMask.CLOSE_WRITE, names=["*.log"], events=["create"])
    touch(f"{tree}/in/a.log")
    touch(f"{tree}/in/b.txt")
    assert w.seen() == {("CREATE", "in/a.log"), ("CLOSE_WRITE", "in/a.log"),
                        ("CLOSE_WRITE", "in/b.txt")}


def test_exclude_the_watcher_itself(tree, watch):
    w = watch(EventMask.CREATE, exclude_pid=True)
    with Workers(1) as workers:
        touch(f"{tree}/in/mine")
        workers.apply(tree, FsOp("create", "in/theirs", proc=1))
    assert w.seen() == {("CREATE", "in/theirs")}


def test_one_handler_many_attachments(tree, watch):
    """Per-attachment state: each group filters by its own args."""
    a = watch(EventMask.CREATE, subtree=[f"{tree}/in"])
    b = watch(EventMask.CREATE, subtree=[f"{tree}/out"])
    touch(f"{tree}/in/x")
    touch(f"{tree}/out/y")
    assert a.seen() == {("CREATE", "in/x")}
    assert b.seen() == {("CREATE", "out/y")}
    a.close()  # fp_free of one attachment leaves the other alone
    touch(f"{tree}/out/z")
    assert b.seen() == {("CREATE", "out/z")}


@pytest.mark.parametrize("args", [
    b"\0" * 10,  # not sizeof(struct fanbpf_rules_args)
    {"subtree": {"nr_roots": 17}},
    {"deny_errno": 5000},
    {"set_id": 1, "names": {"nr_globs": 65}},
    {"set_id": 1, "dirs": {"nr_globs": 65}},
    {"sections": 2},  # NAMES without a set id
    {"sections": 8},  # EXCLUDE without a set id
    {"sections": 16},
])
def test_fp_init_refuses_bad_args(fanbpf_rules_handler, tree, args):
    with Group() as g:
        g.mark(tree, EventMask.CREATE, MarkFlag.FILESYSTEM)
        with pytest.raises(OSError) as err:
            g.attach(fanbpf_rules_handler, args)
        assert err.value.errno == errno.EINVAL


def test_fp_init_refuses_a_set_id_in_use(fanbpf_rules_handler, tree):
    """Two attachments cannot share a set id: their stats would mix."""
    with Group() as a, Group() as b:
        for g in (a, b):
            g.mark(tree, EventMask.CREATE, MarkFlag.FILESYSTEM)
        a.attach(fanbpf_rules_handler, {"set_id": 999})
        with pytest.raises(FileExistsError):
            b.attach(fanbpf_rules_handler, {"set_id": 999})
        a.detach()  # fp_free removes the set's stats entry: the id is free again
        b.attach(fanbpf_rules_handler, {"set_id": 999})


def test_permission_events_allowed_in_kernel_when_skipped(fanbpf_rules_handler, tree):
    """A permission event the rules skip is allowed without asking user
    space; one they match is denied with deny_errno."""
    touch(f"{tree}/in/f")
    touch(f"{tree}/out/g")
    with Group(fanbpf.InitFlag.CLASS_CONTENT) as g:
        g.mark(tree, EventMask.OPEN_PERM, MarkFlag.FILESYSTEM)
        g.attach(fanbpf_rules_handler, fanbpf.rules(subtree=[f"{tree}/in"], deny_errno="EACCES"))
        open_close(f"{tree}/out/g")  # would block if user space were asked
        with pytest.raises(PermissionError) as err:
            open_close(f"{tree}/in/f")
        assert err.value.errno == errno.EACCES
        assert g.read_events(timeout=0) == []


# --- the process-tree rule ----------------------------------------------------------

def _go(cmd, cwd):
    """A shell running ``cmd`` in ``cwd`` once told to (a line on stdin)."""
    return subprocess.Popen(["sh", "-c", f"read go; {cmd}"], cwd=cwd, stdin=subprocess.PIPE)


def test_descendants_of(tree, watch):
    """The process and its descendants, however deep; not its parent or siblings."""
    parent = _go("touch in/child; sh -c 'touch in/grandchild; sh -c \"touch in/deeper\"'", tree)
    sibling = _go("touch in/sibling", tree)
    w = watch(EventMask.CREATE, descendants_of=parent.pid)
    touch(f"{tree}/in/mine")
    for p in (parent, sibling):
        p.communicate(b"go\n")
    assert w.seen() == {("CREATE", "in/child"), ("CREATE", "in/grandchild"),
                        ("CREATE", "in/deeper")}


def test_descendants_of_an_ancestor(tree, watch):
    """This process descends from pid 1."""
    w = watch(EventMask.CREATE, descendants_of=1)
    touch(f"{tree}/in/mine")
    assert w.seen() == {("CREATE", "in/mine")}


def test_cgroup_tree(tree, watch):
    """A cgroup and the cgroups below it; not the cgroup next to it."""
    from fanbpf.rules import cgroup2_mount

    top = tempfile.mkdtemp(prefix="fanbpf-test-", dir=cgroup2_mount())
    inside, below, beside = f"{top}/in", f"{top}/in/below", f"{top}/beside"
    for d in (inside, below, beside):
        os.mkdir(d)
    procs = {}
    try:
        for name, cg in (("a", inside), ("b", below), ("c", beside)):
            procs[name] = _go(f"touch in/{name}", tree)
            with open(f"{cg}/cgroup.procs", "w") as f:
                f.write(str(procs[name].pid))
        w = watch(EventMask.CREATE, cgroup_tree=inside)
        touch(f"{tree}/in/mine")
        for p in procs.values():
            p.communicate(b"go\n")
        assert w.seen() == {("CREATE", "in/a"), ("CREATE", "in/b")}
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
        for d in (below, inside, beside, top):
            os.rmdir(d)


NEST = """
import os, sys
def nest(n):
    if n == 0:
        open(sys.argv[2], "w").close()
        return
    pid = os.fork()
    if pid == 0:
        nest(n - 1)
        os._exit(0)
    os.waitpid(pid, 0)
nest(int(sys.argv[1]))
"""


def test_deep_ancestry_is_delivered_and_counted(fanbpf_rules_handler, tree, watch):
    """A task too deep for the walk to reach the ancestor or the top: the
    handler cannot decide, delivers the event and counts it (per attachment)."""
    import sys

    other = subprocess.Popen(["sleep", "60"])  # alive, and nobody's ancestor
    try:
        w = watch(EventMask.CREATE, descendants_of=other.pid)
        subprocess.run([sys.executable, "-c", NEST, "2", f"{tree}/in/shallow"], check=True)
        assert w.seen() == set()  # walked to the top: decided, not a descendant
        assert w.attachment.stats.undecided == 0
        subprocess.run([sys.executable, "-c", NEST, str(model.MAX_ANCESTRY),
                        f"{tree}/in/deep"], check=True)
        assert w.seen() == {("CREATE", "in/deep")}
        assert w.attachment.stats.undecided == 1
    finally:
        other.kill()
        other.wait()
