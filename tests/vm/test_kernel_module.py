"""The fastpath core, driven through the reference kernel-module handler.

Raw ioctls (tests/vm/kabi.py): these check the kernel, not the library.
"""
import errno
import fcntl
import multiprocessing
import os
import subprocess

import pytest

from kabi import (FAN_CLASS_NOTIF, FAN_CLOSE_WRITE, FAN_FP_ADD_BPF_FD, FAN_FP_ARGS_MAX,
                  FAN_OPEN, FAN_REPORT_FID, KMOD, SYSFS, add_fp, attached, churn, create,
                  deep_dirs, del_fp, fan_init, fan_mark, ioc_add_fp, raises_errno, read_inos,
                  read_paths, subtree_args)

MASK = FAN_OPEN | FAN_CLOSE_WRITE


def touch(path):
    with open(path, "w") as f:
        f.write("x")


@pytest.fixture
def tree(tmpfs):
    for d in ("in", "in/sub", "out"):
        os.mkdir(os.path.join(tmpfs, d))
    return tmpfs


@pytest.fixture
def group(tree):
    fd = fan_init()
    fan_mark(fd, MASK, tree)
    yield fd
    os.close(fd)


def delivered(fd):
    return sorted({path for _, path in read_paths(fd)})


def test_module_handler_is_listed_in_sysfs():
    entry = os.path.join(SYSFS, KMOD)
    with open(os.path.join(entry, "owner")) as f:
        assert f.read() == "module\n"
    with open(os.path.join(entry, "flags")) as f:
        assert f.read() == "\n"
    with open(os.path.join(entry, "desc")) as f:
        assert "roots" in f.read()


def test_no_handler_delivers_everything(tree, group):
    touch(f"{tree}/in/a")
    touch(f"{tree}/out/b")
    assert delivered(group) == [f"{tree}/in/a", f"{tree}/out/b"]


def test_subtree_filtering_and_detach(tree, group):
    add_fp(group, KMOD.encode(), subtree_args(f"{tree}/in"))
    touch(f"{tree}/in/a")
    touch(f"{tree}/in/sub/c")
    touch(f"{tree}/out/b")
    assert delivered(group) == [f"{tree}/in/a", f"{tree}/in/sub/c"]

    del_fp(group)
    touch(f"{tree}/out/b")
    assert delivered(group) == [f"{tree}/out/b"]


def test_several_roots_in_one_check(tree, group):
    os.mkdir(f"{tree}/other")
    add_fp(group, KMOD.encode(), subtree_args(f"{tree}/in/sub", f"{tree}/other"))
    for p in ("in/a", "in/sub/b", "other/c", "out/d"):
        touch(f"{tree}/{p}")
    assert delivered(group) == [f"{tree}/in/sub/b", f"{tree}/other/c"]


def test_rename_into_and_out_of_subtree_is_seen_at_once(tree, group):
    add_fp(group, KMOD.encode(), subtree_args(f"{tree}/in"))
    os.mkdir(f"{tree}/out/moved")
    os.rename(f"{tree}/out/moved", f"{tree}/in/moved")
    touch(f"{tree}/in/moved/x")
    assert delivered(group) == [f"{tree}/in/moved/x"]  # paths resolve at read time
    os.rename(f"{tree}/in/moved", f"{tree}/out/moved")
    touch(f"{tree}/out/moved/y")
    assert delivered(group) == []


FAN_MOVE_SELF = 0x800


def test_events_without_a_dentry_walk_from_a_hashed_alias(tree):
    """MOVE_SELF carries only the inode: the handler walks from one of its
    dentries.  An unlinked name that an open fd still pins stays on the
    inode's alias list, unhashed, with its old parent; d_find_alias_rcu()
    skips it, the first alias on the list (v1) is exactly that one."""
    touch(f"{tree}/in/x")
    os.link(f"{tree}/in/x", f"{tree}/out/y")  # the newest alias comes first
    pin = os.open(f"{tree}/out/y", os.O_RDONLY)
    os.unlink(f"{tree}/out/y")  # unhashed, still an alias, parent out/
    fd = fan_init(FAN_CLASS_NOTIF | FAN_REPORT_FID)
    try:
        fan_mark(fd, FAN_MOVE_SELF, tree)
        add_fp(fd, KMOD.encode(), subtree_args(f"{tree}/in"))
        os.rename(f"{tree}/in/x", f"{tree}/in/w")
        # an FID group reports no fd, so read_paths() gives (mask, None)
        assert read_paths(fd) == [(FAN_MOVE_SELF, None)]
    finally:
        os.close(fd)
        os.close(pin)


def test_unknown_name(group):
    raises_errno(errno.ENOENT, add_fp, group, b"no_such_handler")


def test_second_attach_is_busy(tree, group):
    add_fp(group, KMOD.encode(), subtree_args(tree))
    raises_errno(errno.EBUSY, add_fp, group, KMOD.encode(), subtree_args(tree))


@pytest.mark.parametrize("kw", [
    {"flags": 0x80},            # unknown flag
    {"reserved": 1},            # reserved must be 0
    {"bpf_fd": 3},              # bpf_fd is only for FAN_FP_ADD_BPF_FD
])
def test_unknown_flags_and_unused_fields_are_refused(tree, group, kw):
    raises_errno(errno.EINVAL, add_fp, group, KMOD.encode(), subtree_args(tree), **kw)


def test_args_pointer_without_length_is_refused(group):
    raises_errno(errno.EINVAL, add_fp, group, KMOD.encode(), args_ptr=4096)


def test_name_is_unused_with_bpf_fd(group):
    raises_errno(errno.EINVAL, add_fp, group, KMOD.encode(), flags=FAN_FP_ADD_BPF_FD,
                 bpf_fd=group)


def test_args_struct_can_grow(tree, group):
    # A later, bigger struct: fields this kernel does not know must be 0.
    raises_errno(errno.E2BIG, add_fp, group, KMOD.encode(), subtree_args(tree),
                 tail=b"\0\0\0\1")
    raises_errno(errno.EINVAL, fcntl.ioctl, group, ioc_add_fp(80), b"\0" * 80)
    add_fp(group, KMOD.encode(), subtree_args(tree), tail=b"\0" * 8)
    assert attached(group)[0] == KMOD


def test_bpf_fd_that_is_not_bpf(group):
    # -EINVAL as bpf_map_get() says for a non-BPF fd; -EBADF for a closed one
    raises_errno(errno.EINVAL, add_fp, group, flags=FAN_FP_ADD_BPF_FD, bpf_fd=group)
    closed = os.dup(group)
    os.close(closed)
    raises_errno(errno.EBADF, add_fp, group, flags=FAN_FP_ADD_BPF_FD, bpf_fd=closed)


def test_init_args_over_the_limit(tree, group):
    raises_errno(errno.E2BIG, add_fp, group, KMOD.encode(), b"\0" * (FAN_FP_ARGS_MAX + 1))


def test_init_args_the_handler_rejects(group):
    raises_errno(errno.EINVAL, add_fp, group, KMOD.encode(), b"\0" * 8)


def test_unterminated_name(group):
    raises_errno(errno.EINVAL, add_fp, group, b"x" * 64)


def test_detach_with_nothing_attached(group):
    raises_errno(errno.ENOENT, del_fp, group)


def test_detach_argument_must_be_zero(tree, group):
    add_fp(group, KMOD.encode(), subtree_args(tree))
    raises_errno(errno.EINVAL, del_fp, group, 1)
    assert attached(group)[0] == KMOD


def test_fdinfo_shows_the_attached_handler(tree, group):
    assert attached(group) is None
    add_fp(group, KMOD.encode(), subtree_args(tree))
    name, first = attached(group)
    assert name == KMOD
    del_fp(group)
    assert attached(group) is None
    add_fp(group, KMOD.encode(), subtree_args(tree))
    assert attached(group)[1] > first  # a new attachment, a new id


def module_refcount():
    with open(f"/sys/module/{KMOD}/refcnt") as f:
        return int(f.read())


def test_unloading_the_module_revokes_its_attachments(tree, group, kmod_path):
    """rmmod detaches the handler from every group; they deliver unfiltered."""
    before = module_refcount()
    add_fp(group, KMOD.encode(), subtree_args(f"{tree}/in"))
    other = fan_init()
    fan_mark(other, MASK, tree)
    add_fp(other, KMOD.encode(), subtree_args(f"{tree}/in"))
    assert module_refcount() == before  # attachments do not pin the module
    try:
        subprocess.run(["rmmod", KMOD], check=True)
        assert not os.path.exists(os.path.join(SYSFS, KMOD))
        assert attached(group) is None and attached(other) is None
        touch(f"{tree}/out/b")
        assert delivered(group) == [f"{tree}/out/b"]
        assert delivered(other) == [f"{tree}/out/b"]
        raises_errno(errno.ENOENT, del_fp, group)
    finally:
        os.close(other)
        if not os.path.exists(os.path.join(SYSFS, KMOD)):
            subprocess.run(["insmod", kmod_path], check=True)
    assert os.path.exists(os.path.join(SYSFS, KMOD))


def test_attach_detach_loop_under_load(tree, group):
    stop = multiprocessing.Event()
    workers = [multiprocessing.Process(target=churn, args=(tree, n, stop)) for n in range(2)]
    for w in workers:
        w.start()
    try:
        for _ in range(200):
            add_fp(group, KMOD.encode(), subtree_args(f"{tree}/in"))
            read_paths(group)
            del_fp(group)
    finally:
        stop.set()
        for w in workers:
            w.join()
    read_paths(group)
    touch(f"{tree}/out/last")
    assert f"{tree}/out/last" in delivered(group)


def test_a_walk_that_cannot_reach_the_top_delivers(tree, group):
    """The module looks at FANBPF_MAX_DEPTH (4096) dentries: a file whose
    root is the 4096th is placed (outside: skipped); one a level deeper
    cannot be placed and is delivered (fail open) and counted, never dropped."""
    undecided = f"/sys/module/{KMOD}/parameters/undecided"
    # tree/out/d x N/f: f, N "d", out and the tmpfs root are N + 3 dentries
    fd, _ = deep_dirs(f"{tree}/out", ["d"] * 4093)
    try:
        create(fd, "placed")
        os.mkdir("d", dir_fd=fd)
        create(fd, "d/unplaced")
        unplaced = os.stat("d/unplaced", dir_fd=fd).st_ino
        read_inos(group)  # the creations, before the handler
        add_fp(group, KMOD.encode(), subtree_args(f"{tree}/in"))
        before = int(open(undecided).read())
        for name in ("placed", "d/unplaced"):
            os.close(os.open(name, os.O_WRONLY, dir_fd=fd))
        # "unplaced": open and close_write, both delivered undecided
        assert int(open(undecided).read()) - before == 2
        touch(f"{tree}/in/a")
        # "placed" is outside the root: skipped
        assert read_inos(group) == {unplaced, os.stat(f"{tree}/in/a").st_ino}
    finally:
        os.close(fd)


def test_stats_time_the_calls_only_when_on(tree, group):
    """stats=1 counts and times every call (as bpf_stats does for BPF
    handlers, for the benchmarks); stats=0 leaves the sums alone."""
    params = f"/sys/module/{KMOD}/parameters"

    def sums():
        return [int(open(f"{params}/{name}").read()) for name in ("run_cnt", "run_time_ns")]

    add_fp(group, KMOD.encode(), subtree_args(f"{tree}/in"))
    with open(f"{params}/stats", "w") as f:
        f.write("1")
    try:
        cnt0, ns0 = sums()
        for i in range(10):
            touch(f"{tree}/out/f{i}")  # open + close_write each
        cnt1, ns1 = sums()
        assert cnt1 - cnt0 == 20 and ns1 > ns0
    finally:
        with open(f"{params}/stats", "w") as f:
            f.write("0")
    touch(f"{tree}/in/a")
    assert sums() == [cnt1, ns1]
    assert delivered(group) == [f"{tree}/in/a"]
