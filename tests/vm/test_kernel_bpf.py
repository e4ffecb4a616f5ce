"""BPF fastpath handlers on the test kernel: permission events, lifetime,
privilege, churn.  Uses the built-in rules handler through the library."""
import errno
import multiprocessing
import os

import pytest

import fanbpf
from fanbpf import EventMask, Group, Handler, InitFlag, MarkFlag

from kabi import FAN_FP_ADD_BPF_FD, SYSFS, add_fp, churn, raises_errno, touch, vm_object



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


def _open_in_child(path, conn):
    try:
        open(path).close()
        conn.send(0)
    except OSError as e:
        conn.send(e.errno)


def test_permission_sent_to_user_space_for_matches_only(tree):
    for p in ("in/ask", "out/free"):
        touch(f"{tree}/{p}")
    with Handler.load("rules", name="t_ask", private=True) as h, perm_group(tree) as g:
        g.attach(h, fanbpf.rules(subtree=[f"{tree}/in"]))
        # Outside the subtree: allowed without a response (we never read).
        open(f"{tree}/out/free").close()
        parent, child = multiprocessing.Pipe()
        p = multiprocessing.Process(target=_open_in_child, args=(f"{tree}/in/ask", child))
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
