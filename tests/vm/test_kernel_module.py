"""The fastpath core, driven through the reference kernel-module handler.

Raw ioctls (tests/vm/kabi.py): these check the kernel, not the library.
"""
import errno
import multiprocessing
import os
import subprocess

import pytest

from kabi import (FAN_CLOSE_WRITE, FAN_FP_ARGS_MAX, FAN_OPEN, KMOD, SYSFS,
                  add_fp, churn, del_fp, fan_init, fan_mark, raises_errno,
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

    del_fp(group, KMOD.encode())
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


def test_unknown_name(group):
    raises_errno(errno.ENOENT, add_fp, group, b"no_such_handler")


def test_second_attach_is_busy(tree, group):
    add_fp(group, KMOD.encode(), subtree_args(tree))
    raises_errno(errno.EBUSY, add_fp, group, KMOD.encode(), subtree_args(tree))


@pytest.mark.parametrize("kw", [{"version": 0}, {"version": 2}, {"flags": 0x80}])
def test_bad_version_or_flags(tree, group, kw):
    raises_errno(errno.EINVAL, add_fp, group, KMOD.encode(), subtree_args(tree), **kw)


def test_init_args_over_the_limit(tree, group):
    raises_errno(errno.E2BIG, add_fp, group, KMOD.encode(), b"\0" * (FAN_FP_ARGS_MAX + 1))


def test_init_args_the_handler_rejects(group):
    raises_errno(errno.EINVAL, add_fp, group, KMOD.encode(), b"\0" * 8)


def test_unterminated_name(group):
    raises_errno(errno.EINVAL, add_fp, group, b"x" * 64)


def test_detach_with_nothing_attached(group):
    raises_errno(errno.ENOENT, del_fp, group)
    raises_errno(errno.ENOENT, del_fp, group, KMOD.encode())


def test_detach_by_another_name_keeps_the_handler(tree, group):
    add_fp(group, KMOD.encode(), subtree_args(f"{tree}/in"))
    raises_errno(errno.ENOENT, del_fp, group, b"someone_else")
    touch(f"{tree}/out/b")
    assert delivered(group) == []
    del_fp(group)


def module_refcount():
    with open(f"/sys/module/{KMOD}/refcnt") as f:
        return int(f.read())


def test_attachment_pins_the_module_and_close_releases_it(tree, kmod_path):
    before = module_refcount()
    fd = fan_init()
    fan_mark(fd, MASK, tree)
    add_fp(fd, KMOD.encode(), subtree_args(tree))
    assert module_refcount() == before + 1
    assert subprocess.run(["rmmod", KMOD], capture_output=True).returncode != 0
    os.close(fd)  # group teardown detaches
    assert module_refcount() == before
    # Unload and reload: the registry and sysfs entry go and come back.
    subprocess.run(["rmmod", KMOD], check=True)
    assert not os.path.exists(os.path.join(SYSFS, KMOD))
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
