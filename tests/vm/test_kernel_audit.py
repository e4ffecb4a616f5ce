"""A handler's denial on a FAN_ENABLE_AUDIT group is audited as user
space's FAN_DENY | FAN_AUDIT answer is (kernel series v4, issue 17 M5).

The test registers itself as the audit daemon over NETLINK_AUDIT, so the
kernel unicasts every record to its socket (none is lost to printk's rate
limit), and compares the AUDIT_FANOTIFY records of the two kinds of
denial.  Absence is shown by order, not by waiting: a denial that must
not be audited is followed by one that must, and the first record read
has to be the second's.
"""
import errno
import multiprocessing
import os
import re
import socket
import struct

import pytest

from fanbpf import EventMask, Group, Handler, InitFlag, MarkFlag

from kabi import open_errno, open_in_child, touch, vm_object

NETLINK_AUDIT = 9
AUDIT_SET = 1001
AUDIT_FANOTIFY = 1331
AUDIT_STATUS_ENABLED = 0x1
AUDIT_STATUS_PID = 0x4
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
FAN_DENY = 0x2
_NLMSGHDR = struct.Struct("=IHHII")


class AuditDaemon:
    """This process as the audit daemon, for the length of a with block."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
        self.sock.bind((0, 0))
        self.seq = 0

    def _set(self, mask, enabled, pid):
        self.seq += 1
        # struct audit_status: mask, enabled, failure, pid (the rest zero)
        body = struct.pack("=IIII", mask, enabled, 0, pid) + bytes(28)
        self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), AUDIT_SET,
                                      NLM_F_REQUEST | NLM_F_ACK, self.seq, 0) + body)
        while True:  # records may arrive before the ack
            msg_type, payload = self._recv()
            if msg_type == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", payload)
                if err:
                    raise OSError(-err, f"AUDIT_SET: {os.strerror(-err)}")
                return

    def _recv(self, timeout=30.0):
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)  # one message: the kernel unicasts each record alone
        _, msg_type, _, _, _ = _NLMSGHDR.unpack_from(data)
        # Not data[:nlmsg_len]: audit records set nlmsg_len to the payload's
        # length alone, not counting the header (auditd copes the same way).
        return msg_type, data[_NLMSGHDR.size:]

    def __enter__(self):
        self._set(AUDIT_STATUS_ENABLED | AUDIT_STATUS_PID, 1, os.getpid())
        return self

    def __exit__(self, *exc):
        try:
            self._set(AUDIT_STATUS_ENABLED | AUDIT_STATUS_PID, 0, 0)
        finally:
            self.sock.close()

    def next_fanotify_record(self):
        """The text of the next AUDIT_FANOTIFY record after its audit(...) stamp."""
        while True:
            msg_type, payload = self._recv()
            if msg_type == AUDIT_FANOTIFY:
                text = payload.rstrip(b"\0").decode()
                return re.sub(r"^audit\([0-9.:]+\): ", "", text)


def denied_by_user_space(group, path):
    """Open path in a child and deny it from here with FAN_AUDIT."""
    parent, child = multiprocessing.Pipe()
    p = multiprocessing.Process(target=open_in_child, args=(path, child))
    p.start()
    (event,) = group.read_events(timeout=60)
    group.deny(event, audit=True)
    assert parent.recv() == errno.EPERM
    p.join()


def perm_group(tree, audit=True):
    flags = InitFlag.CLASS_CONTENT | (InitFlag.ENABLE_AUDIT if audit else 0)
    g = Group(flags, event_flags=os.O_RDONLY)
    g.mark(tree, EventMask.OPEN_PERM, MarkFlag.FILESYSTEM)
    return g


def deny_handler(deny):
    return Handler.load(vm_object("deny"), globals={"deny": deny})


@pytest.fixture
def tree(tmpfs):
    for name in ("f", "g"):
        touch(f"{tmpfs}/{name}")
    return tmpfs


def test_user_space_deny_with_audit_gives_the_reference_record(tree):
    with AuditDaemon() as audit, perm_group(tree) as g:
        denied_by_user_space(g, f"{tree}/f")
        record = audit.next_fanotify_record()
    assert record == "resp=2 fan_type=0 fan_info=0 subj_trust=2 obj_trust=2"


@pytest.mark.parametrize("err", [errno.EPERM, errno.EACCES, errno.EIO])
def test_handler_deny_is_audited_like_user_space(tree, err):
    with AuditDaemon() as audit, deny_handler(-err) as h:
        with perm_group(tree) as g:
            g.attach(h)
            assert open_errno(f"{tree}/f") == err
            in_kernel = audit.next_fanotify_record()
        with perm_group(tree) as g:
            denied_by_user_space(g, f"{tree}/g")
            reference = audit.next_fanotify_record()
    # The errno rides in the top byte, as upstream's FAN_DENY_ERRNO() puts it.
    resp = FAN_DENY if err == errno.EPERM else FAN_DENY | err << 24
    assert in_kernel == reference.replace("resp=2 ", f"resp={resp} ")


def test_handler_deny_without_enable_audit_is_not_audited(tree):
    with AuditDaemon() as audit, deny_handler(-errno.EACCES) as h:
        with perm_group(tree, audit=False) as g:
            g.attach(h)
            assert open_errno(f"{tree}/f") == errno.EACCES
        with perm_group(tree) as g:
            denied_by_user_space(g, f"{tree}/g")
        # The first record is the user-space one: the handler's made none.
        assert audit.next_fanotify_record().startswith("resp=2 ")
