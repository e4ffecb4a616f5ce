"""fanbpf.handler against the real fastpath hook (test kernel only).

Uses the small handler in tests/host/bpf/handler.bpf.c: it skips the events
in its ``extra_mask`` global and its fp_init refuses args starting with 0xEE.
"""

import errno
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "host"))
from bpfobjs import bpf_objs, open_fds  # noqa: E402,F401  (fixture, shared with the host tests)

from fanbpf import handler, support  # noqa: E402
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
            handler.attach(group_fd, h, b"\xee")
        assert info.value.errno == errno.EINVAL
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
