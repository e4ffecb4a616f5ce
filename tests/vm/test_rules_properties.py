"""fanbpf_rules in the test kernel: property tests over sequences of file-system
operations, and the documented semantics case by case.

The property: hypothesis draws a sequence of operations (create, write, open,
chmod, mkdir, rmdir, unlink, renames within and across the subtree, from this
process and two workers) and rules (subtree roots, names, process
conditions).  They are applied on a fresh tmpfs watched by two FID groups
with a FILESYSTEM mark: one with the rules handler attached, one without.
After every operation, the events of the handler's group must be exactly
those of the other group that fanbpf.model says the handler delivers, with
the facts explained by fanbpf.testing.FsTree (the test's own record of the
tree).  Nothing the model delivers may be missing, nothing it skips may
arrive.  A failure prints the shrunk operation list, like
``[mkdir('in/a'), rename('in/a', 'out/b', proc=1)]``, and the events that
differ.

Example counts: FANBPF_EXAMPLES examples (default 500), derandomized.
"""

import errno
import os
import subprocess
import tempfile

import pytest
from hypothesis import given, note

import fanbpf
from fanbpf import EventMask, Group, MarkFlag, model
from fanbpf.model import RulesArgs
from fanbpf.testing.fs import OPS_DIRS, OPS_MASK, FsOp, Workers, tmpfs_mount
from fanbpf.testing.oracle import OpsRun, describe_keys, event_keys, expected_keys
from fanbpf.testing.strategies import fs_ops, property_settings, rules_specs



@property_settings()
@given(ops=fs_ops(dirs=OPS_DIRS), spec=rules_specs())
def test_handler_delivers_what_the_model_does(fanbpf_rules_handler, fanbpf_workers, ops,
                                              spec):
    with OpsRun(workers=fanbpf_workers) as run, Group(resolve_paths=False) as sut:
        args = spec.build(run.base, run.pids)
        note(f"args: {RulesArgs.from_dict(args)!r}")
        sut.mark(run.base, OPS_MASK, MarkFlag.FILESYSTEM)
        sut.attach(fanbpf_rules_handler, args)
        run.start(OPS_MASK)
        for step, op in enumerate(ops):
            seen = run.step(op)
            want = expected_keys(run.tree, seen, args)
            got = event_keys(sut.drain())
            assert got == want, (
                f"after {ops[:step + 1]!r}:\n  missing: {describe_keys(run.tree, want - got)}"
                f"\n  unexpected: {describe_keys(run.tree, got - want)}")
        assert run.ref.overflows == 0 and sut.overflows == 0


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
        self.group.attach(handler, args)

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

    def make(mask, extra_marks=(), **rules):
        w = Watch(fanbpf_rules_handler, tree, mask, fanbpf.rules(**rules), extra_marks)
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
    w = watch(EventMask.DELETE | EventMask.DELETE_SELF | EventMask.ONDIR, subtree=[f"{tree}/in"])
    os.unlink(f"{tree}/in/f")
    os.rmdir(f"{tree}/in/d")
    # DELETE carries the dir; DELETE_SELF comes after the last dentry went:
    # nothing to walk up from, never in a subtree
    assert w.seen() == {("DELETE", "in/f"), ("DELETE|ONDIR", "in/d")}


def test_hard_links_are_judged_by_the_name_used(tree, watch):
    touch(f"{tree}/out/f")
    w = watch(EventMask.OPEN | EventMask.CREATE, subtree=[f"{tree}/in"])
    os.link(f"{tree}/out/f", f"{tree}/in/l")  # CREATE: the new entry's dir is inside
    open_close(f"{tree}/in/l")  # the dentry used is inside
    open_close(f"{tree}/out/f")  # the same inode through a dentry outside
    assert w.seen() == {("CREATE", "in/l"), ("OPEN", "in/l")}


def test_walks_stop_at_mount_points(tree, watch):
    inner = f"{tree}/in/mnt"
    os.mkdir(inner)
    subprocess.run(["mount", "-t", "tmpfs", "inner", inner], check=True)
    try:
        touch(f"{inner}/x")
        outer = watch(EventMask.OPEN, extra_marks=[inner], subtree=[f"{tree}/in"])
        mounted = watch(EventMask.OPEN, extra_marks=[inner], subtree=[inner])
        open_close(f"{inner}/x")
        assert outer.seen() == set()  # the walk ends at the inner file system's root
        assert mounted.seen() == {("OPEN", "in/mnt/x")}  # a root on the inner one
    finally:
        subprocess.run(["umount", "-l", inner], check=True)


@pytest.mark.parametrize("depth", [63, 64, 65, 66])
def test_depth_limit(tree, watch, depth):
    """A root counts when it is the object or within 64 dentries above the
    object or, for events that carry the parent (non-directories here), the
    parent: 65 levels for files, 64 for directories."""
    deep = os.path.join(f"{tree}/in", *["d"] * depth)
    os.makedirs(deep)
    touch(f"{deep}/f")
    w = watch(EventMask.OPEN | EventMask.ONDIR, subtree=[f"{tree}/in"])
    open_close(deep)
    open_close(f"{deep}/f")
    rel = os.path.relpath(deep, tree)
    want = set()
    if depth <= 64:
        want |= {("OPEN|ONDIR", rel), ("OPEN", f"{rel}/f")}
    assert w.seen() == want


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
    {"names": {"nr_patterns": 1}},  # a pattern of kind 0
    {"sections": 8},
])
def test_fp_init_refuses_bad_args(fanbpf_rules_handler, tree, args):
    with Group() as g:
        g.mark(tree, EventMask.CREATE, MarkFlag.FILESYSTEM)
        with pytest.raises(OSError) as err:
            g.attach(fanbpf_rules_handler, args)
        assert err.value.errno == errno.EINVAL


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
    handler cannot decide, delivers the event and counts it."""
    import sys

    other = subprocess.Popen(["sleep", "60"])  # alive, and nobody's ancestor
    try:
        w = watch(EventMask.CREATE, descendants_of=other.pid)
        before = fanbpf_rules_handler.obj.get_global("fanbpf_rules_undecided")
        subprocess.run([sys.executable, "-c", NEST, "2", f"{tree}/in/shallow"], check=True)
        assert w.seen() == set()  # walked to the top: decided, not a descendant
        assert fanbpf_rules_handler.obj.get_global("fanbpf_rules_undecided") == before
        subprocess.run([sys.executable, "-c", NEST, str(model.MAX_ANCESTRY),
                        f"{tree}/in/deep"], check=True)
        assert w.seen() == {("CREATE", "in/deep")}
        assert fanbpf_rules_handler.obj.get_global("fanbpf_rules_undecided") == before + 1
    finally:
        other.kill()
        other.wait()
