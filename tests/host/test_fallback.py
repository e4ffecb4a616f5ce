"""The user-space fallback (fanbpf.fallback) on the host kernel, which has no
fastpath hook: RulesGroup filters in user space, and the events it delivers
are compared with what the model says the kernel handler would deliver.

The oracle (fanbpf.testing.FsTree) explains each event from its own record
of the tree, not from the file system, and decides with fanbpf.model; a
reference group without filtering sees every event.  The fallback must
deliver exactly the oracle's events, except that it may deliver more where
it said it could not know (fail open): those are checked to be the ones it
counted as uncertain.

Example counts: the property runs FANBPF_EXAMPLES examples (default 500),
derandomized; each mounts a tmpfs and runs up to 12 operations from this
process and two workers.
"""

import os

import pytest
from hypothesis import event, given

from fanbpf import EventMask, Group, MarkFlag
from fanbpf.events import DirFidNameInfo, Event, FidInfo
from fanbpf.fallback import RulesFilter, RulesGroup, kernel_pieces, walk_path
from fanbpf.flags import InfoType
from fanbpf.model import NO_DENTRY, SEND, SKIP
from fanbpf.errors import KernelSupportError
from fanbpf.rules import kernel_dev, rules
from fanbpf.testing.fs import OPS_DIRS, OPS_MASK, tmpfs_mount
from fanbpf.testing.oracle import OpsRun, event_keys, expected_keys
from fanbpf.testing.strategies import fs_ops, property_settings, rules_specs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="fanotify and mount need root")


@needs_root
@property_settings()
@given(ops=fs_ops(dirs=OPS_DIRS), spec=rules_specs())
def test_fallback_delivers_what_the_model_does(fanbpf_workers, ops, spec):
    with OpsRun(workers=fanbpf_workers) as run:
        args = spec.build(run.base, run.pids)
        with RulesGroup(Group(), args, mode="userspace") as sut:
            sut.group.mark(run.base, OPS_MASK, MarkFlag.FILESYSTEM)
            run.start(OPS_MASK)
            sut.filter.uncertain_log = uncertain = []
            for step, op in enumerate(ops):
                seen = run.step(op)
                want = expected_keys(run.tree, seen, args)
                got = event_keys(sut.drain())
                extra = got - want
                allowed = event_keys(e for e, _ in uncertain)
                assert want <= got, f"step {step} {op!r}: missing {want - got}"
                assert extra <= allowed, f"step {step} {op!r}: delivered {extra - allowed}"
                event(f"{len(want)} kept, {len(event_keys(seen)) - len(want)} dropped"
                      if len(want) < 3 else "3+ kept")
                uncertain.clear()
            assert run.ref.overflows == 0 and sut.group.overflows == 0


# --- the pieces and facts, on synthetic events ----------------------------------------

def dfid_name(name, info_type=InfoType.DFID_NAME):
    return DirFidNameInfo(info_type, 0, 1, b"h", name)


def test_kernel_pieces_table():
    fid = FidInfo(InfoType.FID, 0, 1, b"f")
    e = Event(EventMask.OPEN, info=(dfid_name("a"), fid), path="/t/d/a")
    p = kernel_pieces(e, EventMask.OPEN)
    assert (p.dentry, p.dir, p.name) == ("/t/d/a", "/t/d", b"a")
    assert kernel_pieces(e, EventMask.OPEN, dir_fid=False).dir is None
    e = Event(EventMask.OPEN | EventMask.ONDIR, info=(dfid_name("."),), path="/t/d")
    assert kernel_pieces(e, EventMask.OPEN) == kernel_pieces(e, EventMask.OPEN).__class__(dentry="/t/d")
    e = Event(EventMask.DELETE, info=(dfid_name("a"),), path="/t/d/a")
    p = kernel_pieces(e, EventMask.DELETE)
    assert (p.dentry, p.dir, p.name) == (None, "/t/d", b"a")
    e = Event(EventMask.RENAME, info=(dfid_name("a", InfoType.OLD_DFID_NAME),
                                      dfid_name("b", InfoType.NEW_DFID_NAME)),
              old_path="/t/x/a", new_path="/t/y/b")
    p = kernel_pieces(e, EventMask.RENAME)
    assert (p.dentry, p.dir, p.name) == ("/t/y/b", "/t/x", b"a")
    e = Event(EventMask.MOVE_SELF, info=(fid,), path="/t/y/b")
    assert kernel_pieces(e, EventMask.MOVE_SELF).inode == "/t/y/b"
    assert kernel_pieces(Event(EventMask.DELETE_SELF, info=(fid,)), EventMask.DELETE_SELF) == \
        kernel_pieces(Event(EventMask.DELETE_SELF), EventMask.DELETE_SELF)
    assert kernel_pieces(Event(EventMask.DELETE_SELF), EventMask.DELETE_SELF).inode is NO_DENTRY
    e = Event(EventMask.ATTRIB, info=(fid,), path="/t/d/a")  # link count: inode only
    assert kernel_pieces(e, EventMask.ATTRIB).inode == "/t/d/a"


def test_walk_path_stops_at_the_filesystem_root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mount needs root")
    with tmpfs_mount() as base:
        os.makedirs(os.path.join(base, "a", "b"))
        chain = walk_path(os.path.join(base, "a", "b"), first_dir=False)
        st = os.stat(base)
        assert [(n.name, n.is_dir) for n in chain] == [(b"b", False), (b"a", True), (b"/", True)]
        assert chain[-1].key == (kernel_dev(st.st_dev), st.st_ino)


def test_walk_path_goes_past_the_handler_depth(tmp_path):
    """The whole way up: the model, not the walk, applies the handler's bound."""
    from fanbpf import model

    deep = tmp_path
    for i in range(70):
        deep = deep / "d"
    os.makedirs(deep)
    chain = walk_path(deep)
    assert len(chain) >= 71 and chain[-1].name == b"/"
    deeper = tuple(model.ChainNode(1, i, b"d") for i in range(model.MAX_DEPTH)) + chain
    args = model.RulesArgs(sections=model.Section.SUBTREE, roots=(chain[-1].key,))
    assert model.match(model.Facts(mask=0x2, chains=(chain, ())), args) == model.Match.YES
    assert model.match(model.Facts(mask=0x2, chains=(deeper, ())), args) == model.Match.UNDECIDED


def test_filter_splits_merged_events(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").touch()
    f = RulesFilter(rules(names=["*.log"], events=["create"]))
    e = Event(EventMask.CREATE | EventMask.OPEN, pid=os.getpid(), info=(dfid_name("a.log"),),
              path=str(tmp_path / "in" / "a.log"))
    assert f.filter(e) is e
    e = Event(EventMask.CREATE | EventMask.OPEN, pid=os.getpid(), info=(dfid_name("b"),),
              path=str(tmp_path / "in" / "b"))
    assert f.filter(e).mask == EventMask.OPEN  # the name rule applies to CREATE only
    assert f.decide(e) == SEND


def test_unresolvable_event_fails_open(tmp_path):
    f = RulesFilter(rules(subtree=[tmp_path]))
    e = Event(EventMask.CREATE, info=(dfid_name("x"),), path=None)
    assert f.filter(e) is e and f.uncertain == 1
    e = Event(EventMask.DELETE_SELF, info=(FidInfo(InfoType.FID, 0, 1, b"f"),))
    # known: no dentry left, so it cannot be placed: delivered as the handler does
    assert f.filter(e) is e and f.decide(e) == SEND and f.uncertain == 1


def test_rules_group_reports_userspace_mode_without_the_hook():
    if os.geteuid() != 0:
        pytest.skip("fanotify needs root")
    from fanbpf.support import kernel_support

    if kernel_support().fastpath:
        pytest.skip("this kernel has the fastpath hook")
    with tmpfs_mount() as base, RulesGroup(Group(), rules(subtree=[base])) as watcher:
        assert watcher.mode == "userspace"
        watcher.group.mark(base, EventMask.CREATE | EventMask.ONDIR, MarkFlag.FILESYSTEM)
        os.mkdir(os.path.join(base, "x"))
        assert [e.name for e in watcher.read_events(timeout=1)] == ["x"]
        assert isinstance(watcher.fallback_reason, KernelSupportError)
        assert watcher.fileno() == watcher.group.fileno() and not watcher.closed
    assert watcher.closed


def test_rules_group_async_iteration_filters_and_ends_on_close():
    if os.geteuid() != 0:
        pytest.skip("fanotify needs root")
    import asyncio

    with tmpfs_mount() as base:
        os.mkdir(os.path.join(base, "in"))
        os.mkdir(os.path.join(base, "out"))
        watcher = RulesGroup(Group(), rules(subtree=[os.path.join(base, "in")]), mode="userspace")
        watcher.group.mark(base, EventMask.CREATE, MarkFlag.FILESYSTEM)

        async def consume():
            loop = asyncio.get_running_loop()
            for name in ("out/skipped", "in/kept", "out/skipped2", "in/kept2"):
                open(os.path.join(base, name), "w").close()
            names = []
            async for event in watcher:
                names.append(event.name)
                if len(names) == 2:
                    loop.call_soon(watcher.close)
            return names

        assert asyncio.run(consume()) == ["kept", "kept2"]
        assert watcher.closed
