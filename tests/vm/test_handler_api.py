"""fanbpf.handler against the real fastpath hook (test kernel only).

Uses the small handler in tests/host/bpf/handler.bpf.c: it skips the events
in its ``extra_mask`` global and its fp_init refuses args starting with 0xEE;
and the built-in rules handler for :class:`fanbpf.Attachment` (live roots,
exclusions, counters, cleanup).
"""

import errno
import gc
import os
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "host"))
from bpfobjs import bpf_objs, open_fds  # noqa: E402,F401  (fixture, shared with the host tests)

import fanbpf  # noqa: E402
from fanbpf import Group, MarkFlag, handler, support  # noqa: E402
from fanbpf.rules import root_of  # noqa: E402
from fanbpf._binding import ffi, lib  # noqa: E402
from fanbpf.flags import EventMask, InitFlag  # noqa: E402

FAN_MARK_ADD = 0x1
AT_FDCWD = -100


@pytest.fixture
def group_fd():
    fd = lib.fanbpf_fanotify_init(InitFlag.CLOEXEC | InitFlag.NONBLOCK | InitFlag.REPORT_DFID_NAME,
                                  os.O_RDONLY)
    assert fd >= 0, os.strerror(-fd)
    yield fd
    os.close(fd)


@pytest.fixture
def test_obj(bpf_objs):  # noqa: F811
    return bpf_objs["handler"]


def pending(fd) -> bool:
    try:
        return len(os.read(fd, 65536)) > 0
    except BlockingIOError:
        return False


def test_probe_finds_everything():
    ks = support.kernel_support()
    assert ks.fastpath and ks.missing == ()
    ks.require()


def test_register_lists_and_unregisters(test_obj):
    with handler.Handler.load(test_obj) as h:
        assert h.name == "test_handler" and not h.private
        info = {i.name: i for i in support.available_handlers()}["test_handler"]
        assert info.owner == "bpf" and info.description == "host test handler"
        assert not info.unpriv
    assert "test_handler" not in [i.name for i in support.available_handlers()]


def test_attach_by_name_filters_events(test_obj, group_fd, tmpfs):
    assert lib.fanbpf_fanotify_mark(group_fd, FAN_MARK_ADD, EventMask.CREATE,
                                    AT_FDCWD, tmpfs.encode()) == 0
    with handler.Handler.load(test_obj, globals={"extra_mask": EventMask.CREATE}) as h:
        handler.attach(group_fd, h, {"mask": 1, "word": "abc"})
        open(os.path.join(tmpfs, "skipped"), "w").close()
        assert not pending(group_fd)
        handler.detach(group_fd, "test_handler")
    open(os.path.join(tmpfs, "delivered"), "w").close()
    assert pending(group_fd)


def test_attach_errors(test_obj, group_fd):
    with handler.Handler.load(test_obj) as h:
        with pytest.raises(FileNotFoundError, match="registered now: .*test_handler"):
            handler.attach(group_fd, "nope")
        with pytest.raises(OSError, match="fp_init") as info:
            handler.attach(group_fd, h, b"\xee" + bytes(h.args_type.size - 1))
        assert info.value.errno == errno.EINVAL
        # not the args struct's size: refused before the kernel sees it
        with pytest.raises(fanbpf.ArgsError, match="init args of 1 bytes for 'test_handler': "
                           "its struct test_handler_args is 12 bytes"):
            handler.attach(group_fd, h, b"\xee")
        # the kernel's own limit, past the Python-side check
        assert lib.fanbpf_fp_attach_name(group_fd, b"test_handler", bytes(1025), 1025) \
            == -errno.E2BIG

        handler.attach(group_fd, "test_handler", b"")
        with pytest.raises(OSError, match="detach the current handler first") as info:
            handler.attach(group_fd, h)
        assert info.value.errno == errno.EBUSY
        with pytest.raises(FileNotFoundError, match="no handler named 'other'"):
            handler.detach(group_fd, "other")
        handler.detach(group_fd, h)
        with pytest.raises(FileNotFoundError, match="no fastpath handler is attached"):
            handler.detach(group_fd)


def test_private_handler_attaches_by_fd(test_obj, group_fd):
    with handler.Handler.load(test_obj, name="test_private", private=True) as h:
        assert h.private and h.name == "test_private"
        assert "test_private" not in [i.name for i in support.available_handlers()]
        with pytest.raises(FileNotFoundError):
            handler.attach(group_fd, "test_private")
        handler.attach(group_fd, h)
        handler.detach(group_fd, "test_private")
        assert lib.fanbpf_fp_attach_fd(group_fd, h.map_fd, ffi.NULL, 0) == 0
        handler.detach(group_fd)


def test_closing_the_handler_revokes_it(test_obj, group_fd, tmpfs):
    assert lib.fanbpf_fanotify_mark(group_fd, FAN_MARK_ADD, EventMask.CREATE,
                                    AT_FDCWD, tmpfs.encode()) == 0
    h = handler.Handler.load(test_obj, globals={"extra_mask": EventMask.CREATE})
    handler.attach(group_fd, h)
    assert handler.attached(group_fd) == "test_handler"
    h.close()  # unregisters the name, which detaches it from the group
    assert "test_handler" not in [i.name for i in support.available_handlers()]
    assert handler.attached(group_fd) is None
    open(os.path.join(tmpfs, "now-delivered"), "w").close()
    assert pending(group_fd)
    with pytest.raises(FileNotFoundError):
        handler.detach(group_fd)


def test_no_fd_leaks(test_obj, group_fd):
    before = open_fds()
    for _ in range(3):
        with handler.Handler.load(test_obj) as h:
            handler.attach(group_fd, h)
            with pytest.raises(OSError) as info:
                handler.attach(group_fd, h)
            assert info.value.errno == errno.EBUSY
            handler.detach(group_fd)
            with pytest.raises(FileExistsError):
                handler.Handler.load(test_obj)
    assert open_fds() == before


# --- Attachment: what Group.attach returns ------------------------------------------

_KEY_SIZES = {"fanbpf_rules_nodes": 24, "fanbpf_rules_names": 272, "fanbpf_rules_globs": 16,
              "fanbpf_rules_sets": 8}


def set_entries(h, set_id) -> dict:
    """How many entries of each rules map belong to rule set ``set_id`` (keys start with it)."""
    counts = {}
    for name, size in _KEY_SIZES.items():
        key, nxt, n = ffi.NULL, ffi.new("char[]", size), 0
        while lib.fanbpf_obj_map_next_key(h.obj._obj(), name.encode(), key, nxt, size) == 0:
            n += int.from_bytes(ffi.unpack(nxt, 8), "little") == set_id
            key = ffi.new("char[]", ffi.unpack(nxt, size))
        counts[name] = n
    return counts


def created(group) -> list:
    return sorted(os.path.relpath(e.path, e.path.rsplit("/", 2)[0]) if e.path else e.name
                  for e in group.read_events(timeout=0))


@pytest.fixture
def rules_group(tmpfs):
    for d in ("a", "b", "c", "a/.git", "a/node_modules/x"):
        os.makedirs(f"{tmpfs}/{d}")
    with Group() as g:
        g.mark(tmpfs, EventMask.CREATE | EventMask.ONDIR, MarkFlag.FILESYSTEM)
        yield g, tmpfs


@pytest.fixture
def rules_handler():
    with handler.Handler.load("rules", private=True) as h:
        yield h


def fd_targets() -> list:
    """What this process's fds are open on."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            pass  # the listing's own fd
    return out


def touch_all(base, *names):
    for name in names:
        open(f"{base}/{name}", "w").close()


def test_every_attach_returns_an_attachment(test_obj, tmpfs):
    with handler.Handler.load(test_obj, private=True) as h, Group() as g:
        att = g.attach(h)
        assert isinstance(att, fanbpf.Attachment) and att is g.attachment
        assert att.name == "test_handler" and att.set_id == 0 and not att.closed
        with pytest.raises(ValueError, match="no rule set in maps"):
            att.add_root(tmpfs)
        with pytest.raises(ValueError, match="only a fanbpf_rules rule set"):
            att.stats
        with att:
            assert g.handler == "test_handler"
        assert att.closed and att.reason == "detached" and g.handler is None
        att.detach()  # idempotent
        assert g.attachment is None


def test_roots_change_live(rules_group, rules_handler):
    g, base = rules_group
    att = g.attach(rules_handler, fanbpf.rules(subtree=[]))
    touch_all(base, "a/1", "b/1")
    assert created(g) == []  # no root yet: nothing is under one
    att.add_root(f"{base}/a")
    assert att.roots == {root_of(f"{base}/a")}
    touch_all(base, "a/2", "b/2", "c/2")
    assert created(g) == ["a/2"]
    att.add_roots([f"{base}/b", (root_of(base)[0], 12345678)])
    touch_all(base, "a/3", "b/3", "c/3")
    assert created(g) == ["a/3", "b/3"]
    att.remove_root(f"{base}/a")
    touch_all(base, "a/4", "b/4")
    assert created(g) == ["b/4"]
    with pytest.raises(KeyError, match="not a root"):
        att.remove_root(f"{base}/c")
    s = att.stats
    assert (s.delivered, s.skipped, s.denied, s.undecided) == (4, 6, 0, 0)


def test_many_roots_at_once(rules_group, rules_handler):
    """100 000 roots (most of them (dev, ino) pairs of nothing), and 200 directories by path."""
    g, base = rules_group
    att = g.attach(rules_handler, fanbpf.rules(subtree=[]))
    dev = root_of(base)[0]
    dirs = []
    for i in range(200):
        os.mkdir(f"{base}/c/{i}")
        dirs.append(f"{base}/c/{i}")
    att.add_roots([(dev, 1 << 40 | i) for i in range(100_000 - 100)] + dirs[::2])
    assert len(att.roots) == 100_000
    assert set_entries(rules_handler, att.set_id)["fanbpf_rules_nodes"] == 100_000
    touch_all(base, "c/0/x", "c/1/x", "c/198/x", "c/199/x", "a/x")
    assert created(g) == ["0/x", "198/x"]
    att.remove_roots(dirs[::4])
    touch_all(base, "c/0/y", "c/2/y")
    assert created(g) == ["2/y"]


def test_exclusions(rules_group, rules_handler):
    g, base = rules_group
    att = g.attach(rules_handler, fanbpf.rules(subtree=[base], exclude_dirs=[".git", "node_*"],
                                               exclude_subtrees=[]))
    touch_all(base, "a/x", "a/.git/x", "a/node_modules/x/y", "b/x")
    assert created(g) == ["a/x", "b/x"]
    att.exclude_subtree(f"{base}/b")
    assert att.excluded == {root_of(f"{base}/b")}
    touch_all(base, "a/y", "b/y")
    assert created(g) == ["a/y"]
    att.include_subtree(f"{base}/b")
    touch_all(base, "b/z")
    assert created(g) == ["b/z"]
    with pytest.raises(KeyError):
        att.include_subtree(f"{base}/b")


def test_detach_and_close_drop_the_map_entries(rules_group, rules_handler):
    g, base = rules_group
    rule_set = fanbpf.rules(subtree=[f"{base}/a", f"{base}/b"], names=["*.c", "Makefile"],
                            exclude_dirs=[".git"], exclude_subtrees=[f"{base}/a/node_modules"])
    att = g.attach(rules_handler, rule_set)
    assert set_entries(rules_handler, att.set_id) == {
        "fanbpf_rules_nodes": 3, "fanbpf_rules_names": 2, "fanbpf_rules_globs": 1,
        "fanbpf_rules_sets": 1}
    touch_all(base, "a/x.c", "a/x.o")
    assert created(g) == ["a/x.c"]
    att.detach()
    assert set(set_entries(rules_handler, att.set_id).values()) == {0}
    assert att.stats.delivered == 1 and att.stats.skipped == 1  # the counts at detach
    with pytest.raises(ValueError, match="closed \\(detached\\)"):
        att.roots
    touch_all(base, "c/unfiltered")
    assert created(g) == ["c/unfiltered"]
    # a second attachment of the same handler has its own set; closing the group drops it
    att2 = g.attach(rules_handler, rule_set)
    assert att2.set_id != att.set_id
    g.close()
    assert att2.closed and att2.reason == "its group was closed"
    assert set(set_entries(rules_handler, att2.set_id).values()) == {0}


@pytest.mark.parametrize("args, path, value", [
    ({"sections": 1 << 31}, "sections", 1 << 31),
    ({"subtree": {"reserved": 5}}, "subtree.reserved", 5),
    ({"process": {"flags": 1 << 5}}, "process.ancestor_tgid", 0),  # ANCESTOR needs a tgid
    ({"deny_errno": -1}, "deny_errno", -1),
])
def test_the_rules_fp_init_names_the_field_it_refuses(rules_group, rules_handler, args, path,
                                                       value):
    group, _ = rules_group
    with pytest.raises(fanbpf.ArgsError) as info:
        group.attach(rules_handler, args)
    assert info.value.errno == errno.EINVAL and info.value.path == path
    assert str(info.value) == f"{path}: refused by handler 'fanbpf_rules' (fp_init): " \
        f"{value!r} [EINVAL]"
    assert group.handler is None
    group.attach(rules_handler, {})  # the refusal left nothing behind


def test_closing_the_handler_revokes_the_attachment(rules_group):
    g, base = rules_group
    h = handler.Handler.load("rules", private=True)
    att = g.attach(h, fanbpf.rules(subtree=[f"{base}/a"]))
    touch_all(base, "a/1", "b/1")
    assert created(g) == ["a/1"]
    h.close()
    assert att.closed and att.revoked and g.handler is None
    assert att.stats.delivered == 1  # the last counts
    for call in (lambda: att.roots, lambda: att.add_root(f"{base}/b")):
        with pytest.raises(ValueError, match="revoked: its handler was closed"):
            call()
    touch_all(base, "b/2")
    assert created(g) == ["b/2"]  # the group gets every event again
    att.detach()  # nothing left to do
    with handler.Handler.load("rules", private=True) as h2:
        assert g.attach(h2, fanbpf.rules(subtree=[f"{base}/b"])).set_id == 1


def test_a_detach_behind_the_attachments_back_is_seen(rules_group, rules_handler):
    g, base = rules_group
    att = g.attach(rules_handler, fanbpf.rules(subtree=[f"{base}/a"]))
    handler.detach(g.fileno())  # not through the attachment
    assert att.revoked and not att.closed
    with pytest.raises(ValueError, match="the kernel revoked 'fanbpf_rules'"):
        att.add_root(f"{base}/b")
    with pytest.raises(FileNotFoundError, match="dropped its counters"):
        att.stats
    att2 = g.attach(rules_handler, fanbpf.rules(subtree=[f"{base}/b"]))  # attaching anew is fine
    assert att.closed and att.reason.startswith("revoked") and not att2.revoked
    assert set(set_entries(rules_handler, att.set_id).values()) == {0}


def test_overlay_roots_are_held_open(tmpfs, rules_handler):
    for d in ("lower/d", "upper", "work", "merged"):
        os.makedirs(f"{tmpfs}/{d}")
    # index and nfs_export: overlayfs decodes file handles, so a FID group can mark it
    opts = (f"lowerdir={tmpfs}/lower,upperdir={tmpfs}/upper,workdir={tmpfs}/work,"
            "index=on,nfs_export=on")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, f"{tmpfs}/merged"], check=True)
    try:
        merged = f"{tmpfs}/merged"
        with Group() as g:
            g.mark(merged, EventMask.CREATE, MarkFlag.FILESYSTEM)
            att = g.attach(rules_handler, fanbpf.rules(subtree=[f"{merged}/d"]))
            assert f"{merged}/d" in fd_targets()
            touch_all(merged, "d/in", "out")
            assert created(g) == ["d/in"]
            att.detach()
            assert f"{merged}/d" not in fd_targets()
    finally:
        subprocess.run(["umount", f"{tmpfs}/merged"], check=True)


@pytest.mark.parametrize("which", ["rules", "test_handler"])
def test_a_dropped_attached_group_and_handler_go_at_once(tmpfs, test_obj, which):
    """No reference cycle between Group, Attachment and Handler: with the
    cyclic gc off, dropping them unclosed closes the fanotify fd, the
    handler's link, maps and programs right at the ``del``."""
    gc.collect()
    gc.disable()
    try:
        before = open_fds()
        h = handler.Handler.load("rules" if which == "rules" else test_obj, private=True)
        g = Group()
        g.mark(tmpfs, EventMask.CREATE | EventMask.ONDIR, MarkFlag.FILESYSTEM)
        att = g.attach(h, fanbpf.rules(subtree=[tmpfs]) if which == "rules" else {})
        assert len(open_fds() - before) >= 4  # the group, the link, maps, programs
        with pytest.warns(ResourceWarning, match="unclosed"):
            del g, h, att
        assert open_fds() == before
    finally:
        gc.enable()


def test_close_from_another_thread_races_live_rule_changes(tmpfs, rules_handler):
    """Group.close() (any thread may call it) while the owner changes roots:
    the change either ends first or fails saying the attachment is closed,
    and no map entry of the set outlives the close."""
    dirs = [f"{tmpfs}/d{i}" for i in range(40)]
    for d in dirs:
        os.makedirs(d)
    for delay in (0, 0.001, 0.01, 0.05, 0.1):
        g = Group()
        g.mark(tmpfs, EventMask.CREATE | EventMask.ONDIR, MarkFlag.FILESYSTEM)
        att = g.attach(rules_handler, fanbpf.rules(subtree=[]))
        errors = []
        changing = threading.Event()

        def churn():
            try:
                while True:
                    att.add_roots(dirs)
                    changing.set()
                    att.remove_roots(dirs[1:])
            except Exception as err:  # noqa: BLE001  (the test looks at which)
                errors.append(err)

        thread = threading.Thread(target=churn)
        thread.start()
        assert changing.wait(30)
        time.sleep(delay)
        g.close()
        thread.join(30)
        assert not thread.is_alive()
        assert [type(e) for e in errors] == [ValueError], errors
        assert "is closed (its group was closed)" in str(errors[0])
        assert set(set_entries(rules_handler, att.set_id).values()) == {0}
