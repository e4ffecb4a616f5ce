"""BPF fastpath handlers on the test kernel: permission events, lifetime,
privilege, churn.  Uses the built-in rules handler through the library."""
import errno
import multiprocessing
import os

import pytest

import fanbpf
from fanbpf import EventMask, Group, Handler, InitFlag, MarkFlag

from kabi import (FAN_FP_ADD_BPF_FD, SYSFS, WALK_LIMIT, WALK_ROOT, WALK_RUNNING, add_fp, churn,
                  create, deep_dirs, open_in_child, parents_args, raises_errno, touch, vm_object,
                  walk)



@pytest.fixture
def tree(tmpfs):
    for d in ("in", "out"):
        os.mkdir(os.path.join(tmpfs, d))
    return tmpfs


def names(events):
    return sorted({os.path.basename(e.path) if e.path else e.name for e in events})


def notif_group(tree):
    g = Group(InitFlag.CLASS_NOTIF, event_flags=os.O_RDONLY)
    g.mark(tree, EventMask.OPEN | EventMask.CLOSE_WRITE, MarkFlag.FILESYSTEM)
    return g


def perm_group(tree):
    g = Group(InitFlag.CLASS_CONTENT, event_flags=os.O_RDONLY)
    g.mark(tree, EventMask.OPEN_PERM, MarkFlag.FILESYSTEM)
    return g


def test_bpf_handler_appears_in_sysfs_while_registered():
    with Handler.load("rules", name="t_sysfs") as h:
        assert not h.private
        with open(f"{SYSFS}/t_sysfs/owner") as f:
            assert f.read() == "bpf\n"
    assert not os.path.exists(f"{SYSFS}/t_sysfs")


def test_private_bpf_handler_is_not_listed(tree):
    with Handler.load("rules", name="t_private", private=True) as h, notif_group(tree) as g:
        assert not os.path.exists(f"{SYSFS}/t_private")
        g.attach(h, fanbpf.rules(subtree=[f"{tree}/in"]))
        touch(f"{tree}/in/a")
        touch(f"{tree}/out/b")
        assert names(g.read_events(timeout=0)) == ["a"]


def test_permission_denied_in_kernel_without_user_space(tree):
    for p in ("in/secret", "out/public"):
        touch(f"{tree}/{p}")
    with Handler.load("rules", name="t_deny", private=True) as h, perm_group(tree) as g:
        g.attach(h, fanbpf.rules(subtree=[f"{tree}/in"], deny_errno=errno.EACCES))
        with pytest.raises(PermissionError) as exc:
            open(f"{tree}/in/secret").close()
        assert exc.value.errno == errno.EACCES
        open(f"{tree}/out/public").close()  # skipped: allowed in the kernel
        assert g.read_events(timeout=0) == []  # nothing asked user space


def test_permission_sent_to_user_space_for_matches_only(tree):
    for p in ("in/ask", "out/free"):
        touch(f"{tree}/{p}")
    with Handler.load("rules", name="t_ask", private=True) as h, perm_group(tree) as g:
        g.attach(h, fanbpf.rules(subtree=[f"{tree}/in"]))
        # Outside the subtree: allowed without a response (we never read).
        open(f"{tree}/out/free").close()
        parent, child = multiprocessing.Pipe()
        p = multiprocessing.Process(target=open_in_child, args=(f"{tree}/in/ask", child))
        p.start()
        (event,) = g.read_events(timeout=30)
        assert event.is_permission and event.path == f"{tree}/in/ask"
        g.deny(event)
        assert parent.recv() == errno.EPERM
        p.join()


def test_closing_the_group_with_a_bpf_handler_attached(tree):
    with Handler.load("rules", name="t_close", private=True) as h:
        for _ in range(20):
            g = notif_group(tree)
            g.attach(h, fanbpf.rules(subtree=[f"{tree}/in"]))
            touch(f"{tree}/in/a")
            g.close()


def test_init_args_for_a_handler_without_fp_init(tree):
    with Handler.load(vm_object("no_init"), private=True) as h, notif_group(tree) as g:
        with pytest.raises(OSError) as err:
            g.attach(h, b"\0" * 8)
        assert err.value.errno == errno.EINVAL
        g.attach(h)
        assert g.handler == "t_no_init"


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_names_are_refused(name):
    with pytest.raises(OSError, match="not '.' or '..'") as err:
        Handler.load(vm_object("no_init"), name=name)
    assert err.value.errno == errno.EINVAL
    assert os.listdir(SYSFS).count(name) == 0


def test_a_description_must_be_one_line():
    with pytest.raises(OSError, match="one NUL-terminated line") as err:
        Handler.load(vm_object("two_line_desc"))
    assert err.value.errno == errno.EINVAL


def test_attach_by_fd_needs_a_registered_handler(tree):
    """A map whose link is gone is unregistered: attaching it says ENOENT."""
    with Handler.load(vm_object("no_init"), private=True) as h, notif_group(tree) as g:
        add_fp(g.fileno(), flags=FAN_FP_ADD_BPF_FD, bpf_fd=h.map_fd)
        assert g.handler == "t_no_init"
        g.detach()
        h.obj.unregister()  # the link goes, the map stays
        raises_errno(errno.ENOENT, add_fp, g.fileno(), flags=FAN_FP_ADD_BPF_FD,
                     bpf_fd=h.map_fd)


def test_bpf_attach_detach_loop_under_load(tree):
    stop = multiprocessing.Event()
    workers = [multiprocessing.Process(target=churn, args=(tree, n, stop)) for n in range(2)]
    for w in workers:
        w.start()
    try:
        with Handler.load("rules", name="t_churn", private=True) as h, notif_group(tree) as g:
            args = fanbpf.rules(subtree=[f"{tree}/in"])
            for _ in range(100):
                g.attach(h, args)
                g.read_events(timeout=0)
                g.detach()
            g.attach(h, args)  # left attached: torn down by close()
    finally:
        stop.set()
        for w in workers:
            w.join()


# --- the parents iterator (bpf_iter_fanotify_parents_*) ----------------------

DEPTH = 1000


@pytest.fixture
def deep(tmpfs):
    """tmpfs/top/d/.../d with DEPTH directories in all: (fd of the deepest, its path)."""
    fd, path = deep_dirs(tmpfs, ["top"] + ["d"] * (DEPTH - 1))
    yield fd, path
    os.close(fd)


def test_parents_iterator_finds_a_name_1000_levels_up(tmpfs, deep):
    fd, path = deep
    os.mkdir(f"{tmpfs}/other")
    with Handler.load(vm_object("parents_named"), private=True) as h, notif_group(tmpfs) as g:
        g.attach(h, parents_args("top", 4096))
        create(fd, "f")
        # f, 999 "d" and then "top": the 1001st dentry, where the handler stops
        assert walk(h) == {"new_ret": 0, "count": DEPTH + 1, "match": DEPTH + 1,
                           "started_from_inode": 0, "end": WALK_RUNNING}
        assert h.obj.get_global("last_depth") == DEPTH
        assert {e.path for e in g.read_events(timeout=0)} == {f"{path}/f"}
        touch(f"{tmpfs}/other/g")
        # g, other, the root of the tmpfs (included), and nothing above it
        assert walk(h) == {"new_ret": 0, "count": 3, "match": 0, "started_from_inode": 0,
                           "end": WALK_ROOT}
        assert g.read_events(timeout=0) == []


@pytest.mark.parametrize("max_dentries,delivered,count,end", [
    (DEPTH, False, DEPTH, WALK_LIMIT),          # stops one short of "top"
    (DEPTH + 1, True, DEPTH + 1, WALK_RUNNING),   # reaches it (and stops there)
    (1, False, 1, WALK_LIMIT),                  # the object only
    (0, False, 0, WALK_LIMIT),                  # nothing at all
])
def test_parents_iterator_returns_at_most_max(deep, tmpfs, max_dentries, delivered, count, end):
    fd, path = deep
    with Handler.load(vm_object("parents_named"), private=True) as h, notif_group(tmpfs) as g:
        g.attach(h, parents_args("top", max_dentries))
        create(fd, "f")
        assert walk(h, ("count", "end")) == {"count": count, "end": end}
        assert bool(g.read_events(timeout=0)) == delivered


def test_parents_iterator_caps_max_at_4096(tmpfs):
    """A program may ask for any max; the kernel takes at most 4096 steps
    (a PATH_MAX lookup reaches at most 2048 levels)."""
    fd, path = deep_dirs(tmpfs, ["d"] * 4100)
    try:
        with Handler.load(vm_object("parents_named"), private=True) as h, \
                notif_group(tmpfs) as g:
            g.attach(h, parents_args("nowhere", 0xFFFFFFFF))
            create(fd, "f")
            assert walk(h, ("count", "end")) == {"count": 4096, "end": WALK_LIMIT}
    finally:
        os.close(fd)


def test_parents_iterator_starts_from_an_inode_or_refuses(tmpfs, deep):
    """Events without a dentry start from a hashed alias of the inode: a
    moved file is found at its new place; an unlinked one has none
    (-ENOENT).  With neither a dentry nor an inode: -EINVAL, empty walk."""
    fd, path = deep
    os.mkdir(f"{tmpfs}/other")
    touch(f"{tmpfs}/other/m")
    with Handler.load(vm_object("parents_named"), private=True) as h, \
            Group(InitFlag.CLASS_NOTIF | InitFlag.REPORT_DFID_NAME) as g:
        g.mark(tmpfs, EventMask.MOVED_TO | EventMask.DELETE, MarkFlag.FILESYSTEM)
        g.attach(h, parents_args("top", 4096))
        assert h.obj.get_global("init_new_ret") == -errno.EINVAL
        assert h.obj.get_global("init_count") == 0
        os.rename(f"{tmpfs}/other/m", f"{path}/m")
        assert h.obj.get_global("last_inode_ino") == os.stat(f"{path}/m").st_ino
        assert walk(h) == {"new_ret": 0, "count": DEPTH + 1, "match": DEPTH + 1,
                           "started_from_inode": 1, "end": WALK_RUNNING}
        assert [(e.mask, e.name) for e in g.read_events(timeout=0)] == [(EventMask.MOVED_TO, "m")]
        os.unlink(f"{path}/m")
        assert walk(h) == {"new_ret": -errno.ENOENT, "count": 0, "match": 0,
                           "started_from_inode": 1, "end": WALK_RUNNING}
        assert g.read_events(timeout=0) == []


def _move_back_and_forth(src, dst, rounds):
    for _ in range(rounds):
        os.rename(src, dst)
        os.rename(dst, src)


def test_parents_walk_races_renames_of_an_ancestor(tmpfs):
    """The walk reads each d_parent once, without locks: while another
    process keeps moving an ancestor between two parents, every walk sees
    one whole chain or the other, never a mix and never a splat (and says
    when a rename may have torn it: test_kernel_walk.py)."""
    os.mkdir(f"{tmpfs}/away")
    fd, _ = deep_dirs(tmpfs, ["top", "mid"] + ["d"] * 20)
    under_top = {"new_ret": 0, "count": 23, "match": 23, "started_from_inode": 0}
    under_away = {"new_ret": 0, "count": 24, "match": 0, "started_from_inode": 0}
    seen = []
    try:
        with Handler.load(vm_object("parents_named"), private=True) as h, \
                notif_group(tmpfs) as g:
            g.attach(h, parents_args("top", 4096))
            mover = multiprocessing.Process(target=_move_back_and_forth,
                                            args=(f"{tmpfs}/top/mid", f"{tmpfs}/away/mid", 2000))
            mover.start()
            alive = True
            while alive:
                alive = mover.is_alive()
                create(fd, "f")
                seen.append(walk(h, ("new_ret", "count", "match", "started_from_inode")))
                g.read_events(timeout=0)
            mover.join()
            assert mover.exitcode == 0
    finally:
        os.close(fd)
    assert all(w in (under_top, under_away) for w in seen)
