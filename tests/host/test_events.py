"""The pure event parser, on byte fixtures (no kernel needed)."""

import dataclasses
import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fanfix
from fanbpf.events import (
    DirFidNameInfo,
    ErrorInfo,
    Event,
    FidInfo,
    MntInfo,
    PidfdInfo,
    RangeInfo,
    UnknownInfo,
    parse_events,
)
from fanbpf.flags import EventMask, InfoType

M = EventMask
FSID = 0x55667788_11223344  # fanfix's default (val[0], val[1])


def parse_one(data: bytes) -> Event:
    events = parse_events(data)
    assert len(events) == 1
    return events[0]


def test_empty_buffer():
    assert parse_events(b"") == []


def test_overflow_event():
    ev = parse_one(fanfix.event(M.Q_OVERFLOW, pid=0))
    assert ev.is_overflow and not ev.is_permission
    assert ev.fd is None and ev.info == () and ev.closed


def test_fd_event_and_fields():
    ev = parse_one(fanfix.event(M.OPEN | M.CLOSE_NOWRITE, fd=42, pid=99))
    assert ev.mask == M.OPEN | M.CLOSE_NOWRITE
    assert isinstance(ev.mask, EventMask)
    assert (ev.fd, ev.pid, ev.fd_error) == (42, 99, None)
    assert ev.path is None and ev.name is None
    assert ev.fileno() == 42 and not ev.closed  # owned, not closed: the parser makes no syscalls


def test_fd_error():
    ev = parse_one(fanfix.event(M.OPEN, fd=-13))  # FAN_REPORT_FD_ERROR: -EACCES
    assert ev.fd is None and ev.fd_error == 13
    with pytest.raises(ValueError, match="no open fd"):
        ev.fileno()


def test_fid_record():
    ev = parse_one(fanfix.event(M.MODIFY, fanfix.fid(1, handle_type=0x81, handle=b"abcdefgh")))
    assert ev.info == (FidInfo(InfoType.FID, FSID, 0x81, b"abcdefgh"),)
    assert ev.fid is ev.info[0] and ev.dfid is None
    assert ev.fid.file_handle == struct.pack("=Ii", 8, 0x81) + b"abcdefgh"


def test_dfid_record():
    ev = parse_one(fanfix.event(M.CREATE | M.ONDIR, fanfix.fid(3, handle=b"dd" * 6)))
    assert ev.dfid == FidInfo(InfoType.DFID, FSID, 1, b"dd" * 6)
    assert ev.is_dir and ev.fid is None


def test_dfid_name_and_fid_in_one_event():
    data = fanfix.event(
        M.CLOSE_WRITE,
        fanfix.fid(2, handle=b"D" * 8, name=b"notes.txt"),
        fanfix.fid(1, handle=b"F" * 12),
    )
    ev = parse_one(data)
    dfid_name, fid = ev.info
    assert dfid_name == DirFidNameInfo(InfoType.DFID_NAME, FSID, 1, b"D" * 8, "notes.txt")
    assert fid == FidInfo(InfoType.FID, FSID, 1, b"F" * 12)
    assert ev.name == "notes.txt" and ev.dfid is dfid_name and ev.fid is fid


def test_rename_records():
    data = fanfix.event(
        M.RENAME,
        fanfix.fid(10, handle=b"o" * 8, name=b"old"),
        fanfix.fid(12, handle=b"n" * 8, name=b"new-name"),
        fanfix.fid(1, handle=b"f" * 8),
    )
    ev = parse_one(data)
    assert (ev.old_name, ev.new_name, ev.name) == ("old", "new-name", None)
    assert [r.info_type for r in ev.info] == [InfoType.OLD_DFID_NAME, InfoType.NEW_DFID_NAME, InfoType.FID]


def test_name_is_fsdecoded():
    raw = b"caf\xe9-\xff"  # not UTF-8
    ev = parse_one(fanfix.event(M.CREATE, fanfix.fid(2, name=raw)))
    assert os.fsencode(ev.name) == raw


def test_pidfd_error_range_mnt_records():
    ev = parse_one(
        fanfix.event(
            M.FS_ERROR,
            fanfix.pidfd(-2),
            fanfix.error(-5, 3),
            fanfix.range_(4096, 1 << 40),
            fanfix.mnt(0x1_0000_0001),
        )
    )
    assert ev.info == (PidfdInfo(-2), ErrorInfo(-5, 3), RangeInfo(4096, 1 << 40), MntInfo(0x1_0000_0001))
    assert ev.error == ErrorInfo(-5, 3) and ev.pidfd is None  # FAN_EPIDFD owns nothing


def test_unknown_records_are_kept_and_skipped():
    data = fanfix.event(
        M.CREATE,
        fanfix.record(99, b"future record"),
        fanfix.fid(2, name=b"x"),
        fanfix.record(200, b""),
    )
    ev = parse_one(data)
    assert ev.info[0] == UnknownInfo(99, fanfix.pad4(b"future record"))
    assert ev.info[2] == UnknownInfo(200, b"")
    assert ev.name == "x"


def test_several_events_in_one_buffer():
    data = (
        fanfix.event(M.CREATE, fanfix.fid(2, name=b"a"))
        + fanfix.event(M.Q_OVERFLOW)
        + fanfix.event(M.DELETE | M.ONDIR, fanfix.fid(2, name=b"b"), pid=7)
    )
    events = parse_events(data)
    assert [(e.mask, e.name, e.pid) for e in events] == [
        (M.CREATE, "a", 1234),
        (M.Q_OVERFLOW, None, 1234),
        (M.DELETE | M.ONDIR, "b", 7),
    ]
    assert parse_events(bytearray(data)) == events == parse_events(memoryview(data))


def test_metadata_len_beyond_24_is_honoured():
    """A future, longer metadata struct: info records start at metadata_len."""
    rec = fanfix.fid(2, name=b"n")
    data = struct.pack("=IBBHQii", 32 + len(rec), 3, 0, 32, M.CREATE, -1, 1) + b"\0" * 8 + rec
    assert parse_one(data).name == "n"


def test_permission_and_dir_properties():
    ev = parse_one(fanfix.event(M.OPEN_PERM | M.ONDIR, fd=3))
    assert ev.is_permission and ev.is_dir and not ev.is_overflow


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\0" * 10, "truncated event at offset 0"),
        (fanfix.event(M.OPEN)[:-1], "truncated event at offset 0"),
        (fanfix.event(M.OPEN) + b"\0" * 5, "truncated event at offset 24"),
        (fanfix.event(M.OPEN, vers=2), "metadata version 2"),
        (struct.pack("=IBBHQii", 16, 3, 0, 24, 1, -1, 1), "bad lengths"),
        (struct.pack("=IBBHQii", 24, 3, 0, 20, 1, -1, 1), "bad lengths"),
        (struct.pack("=IBBHQii", 0, 3, 0, 24, 1, -1, 1), "bad lengths"),
        (fanfix.event(M.OPEN, b"\x02\x00\x00\x00"), "length 0"),  # would loop forever
        (fanfix.event(M.OPEN, b"\x02\x00"), "truncated info record at offset 24"),
        (fanfix.event(M.OPEN, struct.pack("=BBH", 1, 0, 200) + b"\0" * 8), "length 200"),
        (fanfix.event(M.OPEN, fanfix.record(1, b"\0" * 8)), "type 1"),  # fid body too short
        (
            fanfix.event(M.OPEN, fanfix.record(1, struct.pack("=iiIi", 0, 0, 64, 1) + b"h" * 8)),
            "overruns",
        ),
        (fanfix.event(M.OPEN, fanfix.record(2, struct.pack("=iiIi", 0, 0, 4, 1) + b"hhhhname", pad=False)), "NUL"),
        (fanfix.event(M.OPEN, fanfix.record(4, b"\0\0", pad=False)), "type 4"),
        (fanfix.event(M.OPEN, fanfix.record(5, b"\0" * 4)), "type 5"),
        (fanfix.event(M.OPEN, fanfix.record(6, b"\0" * 12)), "type 6"),
        (fanfix.event(M.OPEN, fanfix.record(7, b"\0" * 4)), "type 7"),
    ],
)
def test_corrupt_buffers_raise_clear_errors(data, message):
    with pytest.raises(ValueError, match=message):
        parse_events(data)


def test_corruption_in_a_later_event_names_its_offset():
    data = fanfix.event(M.OPEN) + fanfix.event(M.OPEN, b"\x02\x00\x00\x00")
    with pytest.raises(ValueError, match="offset 48"):
        parse_events(data)


# --- fd ownership (real fds from os.pipe) -----------------------------------


def test_close_is_idempotent_and_fileno_refuses_afterwards():
    r, w = os.pipe()
    os.close(w)
    ev = parse_one(fanfix.event(M.OPEN, fd=r))
    with ev:
        assert ev.fileno() == r
    assert ev.closed
    with pytest.raises(OSError):
        os.fstat(r)
    ev.close()
    with pytest.raises(ValueError):
        ev.fileno()
    assert ev.fd == r  # the reported number stays, for logging and responses


def test_take_fd_transfers_ownership():
    r, w = os.pipe()
    os.close(w)
    ev = parse_one(fanfix.event(M.OPEN, fd=r))
    assert ev.take_fd() == r
    ev.close()
    os.fstat(r)  # still open: it is ours now
    os.close(r)
    with pytest.raises(ValueError):
        ev.take_fd()


def test_pidfd_is_owned_too():
    r, w = os.pipe()
    ev = parse_one(fanfix.event(M.OPEN, fanfix.pidfd(w), fd=r))
    assert ev.pidfd == w
    assert ev.take_pidfd() == w
    ev.close()
    assert ev.pidfd is None and ev.closed
    os.fstat(w)
    os.close(w)
    with pytest.raises(OSError):
        os.fstat(r)


def test_copies_share_ownership():
    """dataclasses.replace (how the group adds paths) must not double-close."""
    r, w = os.pipe()
    os.close(w)
    ev = parse_one(fanfix.event(M.OPEN, fd=r))
    copy = dataclasses.replace(ev, path="/x")
    assert copy == dataclasses.replace(ev, path="/x") and copy != ev
    copy.close()
    assert ev.closed
    ev.close()


def test_events_are_frozen_and_hashable():
    ev = parse_one(fanfix.event(M.CREATE, fanfix.fid(2, name=b"a")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.mask = M.DELETE
    assert hash(ev) == hash(parse_one(fanfix.event(M.CREATE, fanfix.fid(2, name=b"a"))))


def test_parsed_objects_are_the_ones_init_makes():
    """The parser builds events and handle records without their __init__:
    the objects must not differ from the __init__-made ones in any field."""
    r, w = os.pipe()
    os.close(w)
    ev = parse_one(fanfix.event(M.MODIFY, fanfix.fid(1, handle=b"h" * 8), fanfix.fid(2, name=b"n"), pid=7))
    made = Event(
        mask=M.MODIFY,
        pid=7,
        info=(
            FidInfo(InfoType.FID, FSID, 1, b"h" * 8),
            DirFidNameInfo(InfoType.DFID_NAME, FSID, 1, b"\x01" * 8, "n"),
        ),
    )
    assert ev == made and hash(ev) == hash(made) and repr(ev) == repr(made)
    assert [hash(record) for record in ev.info] == [hash(record) for record in made.info]
    assert (ev.path, ev.old_path, ev.new_path, ev.fd_error, ev.closed) == (None, None, None, None, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.info[0].fsid = 1
    owner = parse_one(fanfix.event(M.OPEN, fanfix.pidfd(r), fd=-1))
    assert owner.pidfd == r and not owner.closed  # the pidfd record's fd is owned, as __post_init__ does
    owner.close()


def test_parser_constructors_check_the_fields():
    from fanbpf.events import _slot_setters

    with pytest.raises(TypeError, match="FidInfo's fields changed"):
        _slot_setters(FidInfo, "info_type", "fsid", "handle")


# --- properties --------------------------------------------------------------

names = st.binary(min_size=1, max_size=255).filter(lambda b: b"\0" not in b)
handles = st.binary(max_size=128)
fsids = st.tuples(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1))
handle_records = st.builds(
    lambda t, fsid, ht, h, n: (fanfix.fid(t, fsid, ht, h, n if t in (2, 10, 12) else None), (t, fsid, ht, h, n)),
    st.sampled_from([1, 2, 3, 10, 12]),
    fsids,
    st.integers(-(2**31), 2**31 - 1),
    handles,
    names,
)


@given(st.lists(st.lists(handle_records, max_size=4), max_size=5), st.integers(0, 2**64 - 1))
def test_roundtrip_handle_records(events, mask):
    data = b"".join(fanfix.event(mask, *(raw for raw, _ in recs)) for recs in events)
    parsed = parse_events(data)
    assert len(parsed) == len(events)
    for ev, recs in zip(parsed, events):
        assert ev.mask.value == mask
        for got, (_, (t, fsid, ht, h, n)) in zip(ev.info, recs, strict=True):
            assert got.info_type == t
            assert got.fsid == (fsid[0] & 0xFFFFFFFF) | (fsid[1] & 0xFFFFFFFF) << 32
            assert (got.handle_type, got.handle) == (ht, h)
            if t in (2, 10, 12):
                assert os.fsencode(got.name) == n


@given(st.binary(max_size=400))
def test_garbage_raises_only_valueerror(data):
    try:
        parse_events(data)
    except ValueError:
        pass


@given(st.binary(min_size=1, max_size=200), st.integers(0, 10))
def test_mutated_events_raise_only_valueerror(noise, where):
    data = bytearray(fanfix.event(M.RENAME, fanfix.fid(10, name=b"a"), fanfix.fid(12, name=b"b"), fanfix.pidfd(-1)))
    data[where * 8 : where * 8 + len(noise)] = noise
    try:
        for ev in parse_events(bytes(data)):
            ev.take_fd() if ev.fd is not None else None  # never close random numbers
    except ValueError:
        pass


def test_events_and_records_are_slotted():
    [event] = parse_events(fanfix.event(EventMask.CREATE, fanfix.fid(2, name=b"d")))
    for obj in (event, *event.info):
        assert not hasattr(obj, "__dict__"), type(obj).__name__
    with pytest.raises((AttributeError, TypeError)):
        event.extra = 1
