"""BPF fastpath handlers on the test kernel: permission events, lifetime,
privilege, churn.  Uses the built-in rules handler through the library."""
import errno
import multiprocessing
import os

import pytest

import fanbpf
from fanbpf import EventMask, Group, Handler, InitFlag, MarkFlag

from kabi import SYSFS, churn


def touch(path):
    with open(path, "w") as f:
        f.write("x")


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


def test_destroying_the_link_keeps_attached_groups_working(tree):
    h = Handler.load("rules", name="t_lifetime")
    with notif_group(tree) as g:
        g.attach("t_lifetime", h.encode_args(fanbpf.rules(subtree=[f"{tree}/in"])))
        h.close()  # link and object gone: the name is unregistered...
        assert not os.path.exists(f"{SYSFS}/t_lifetime")
        touch(f"{tree}/in/a")
        touch(f"{tree}/out/b")
        assert names(g.read_events(timeout=0)) == ["a"]  # ...the handler still runs
        g.detach()
        touch(f"{tree}/out/b")
        assert names(g.read_events(timeout=0)) == ["b"]
    with pytest.raises(FileNotFoundError):
        with notif_group(tree) as g:
            g.attach("t_lifetime")


def test_closing_the_group_with_a_bpf_handler_attached(tree):
    with Handler.load("rules", name="t_close", private=True) as h:
        for _ in range(20):
            g = notif_group(tree)
            g.attach(h, fanbpf.rules(subtree=[f"{tree}/in"]))
            touch(f"{tree}/in/a")
            g.close()


def _attach_unprivileged(tree, name, conn):
    try:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        with Group(InitFlag.REPORT_FID) as g:  # the only kind unprivileged users get
            g.mark(tree, EventMask.OPEN)
            g.attach(name)
        conn.send(0)
    except OSError as e:
        conn.send(e.errno)


def run_unprivileged(tree, name):
    parent, child = multiprocessing.Pipe()
    p = multiprocessing.Process(target=_attach_unprivileged, args=(tree, name, child))
    p.start()
    result = parent.recv()
    p.join()
    return result


def test_sys_admin_only_handler_refuses_unprivileged_attach(tree):
    os.chmod(tree, 0o777)
    with Handler.load("rules", name="t_admin", sys_admin_only=True):
        with open(f"{SYSFS}/t_admin/flags") as f:
            assert f.read() == "SYS_ADMIN_ONLY\n"
        assert run_unprivileged(tree, "t_admin") == errno.EPERM
    with Handler.load("rules", name="t_anyone"):
        # An empty args blob: the rules handler rejects it, after the
        # privilege check passed.
        assert run_unprivileged(tree, "t_anyone") == errno.EINVAL


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
