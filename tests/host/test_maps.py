"""fanbpf.maps: a loaded object's maps and globals from Python, keys and
values by the object's BTF.  BPF maps work on any kernel: bpf/maps.bpf.c's
syscall program writes them as a handler would; the VM test
(tests/vm/test_example_handler.py) reads a handler's."""
import errno
import os
import struct

import pytest

from bpfobjs import bpf_objs, needs_root  # noqa: F401  (fixture)
from fanbpf.errors import ArgsError
from fanbpf.handler import BpfObject
from fanbpf.maps import BPF_EXIST, BPF_NOEXIST

pytestmark = needs_root


@pytest.fixture
def obj(bpf_objs):  # noqa: F811
    with BpfObject(bpf_objs["maps"]) as o:
        o.load()
        yield o


def run(obj, uid, nbytes):
    assert obj.test_run("count", struct.pack("=II", uid, nbytes)).retval == 0


def test_the_kernel_side_writes_are_read_back_decoded(obj):
    run(obj, 1000, 10)
    run(obj, 1000, 5)
    run(obj, 0, 1)
    flows = obj.maps["flows"]
    assert flows[{"uid": 1000, "comm": "run"}] == {"events": 2, "bytes": 15}
    assert sorted((k["uid"], v["events"]) for k, v in flows.items()) == [(0, 1), (1000, 2)]
    assert len(flows) == 2
    assert obj.maps["slots"][0] == 3 and list(obj.maps["slots"]) == [0, 1, 2, 3]
    per_cpu = obj.maps["per_cpu"][0]
    assert len(per_cpu) == obj.maps["per_cpu"].cpus >= os.cpu_count()  # possible CPUs
    assert sum(per_cpu) == 3
    assert obj.globals["runs"] == 3 and obj.globals["limit"] == 7 and obj.globals["step"] == 1
    assert {"runs", "limit", "step"} <= set(obj.globals)


def test_update_delete_and_batches(obj):
    flows = obj.maps["flows"]
    flows[{"uid": 1}] = {"events": 5}
    assert flows[{"uid": 1, "comm": ""}] == {"events": 5, "bytes": 0}
    with pytest.raises(KeyError):
        flows[{"uid": 2}]
    flows.update([])  # an empty batch is fine
    flows.update([({"uid": n, "comm": f"c{n}"}, {"bytes": n}) for n in range(10, 40)])
    assert len(flows) == 31 and flows[{"uid": 33, "comm": "c33"}]["bytes"] == 33
    with pytest.raises(FileExistsError):
        flows.set({"uid": 1}, {}, BPF_NOEXIST)
    with pytest.raises(FileNotFoundError):
        flows.set({"uid": 99}, {}, BPF_EXIST)
    del flows[{"uid": 1}]
    with pytest.raises(KeyError):
        del flows[{"uid": 1}]
    gone = flows.delete_many([{"uid": n, "comm": f"c{n}"} for n in (10, 11, 12, 500, 13)])
    assert gone == 4 and len(flows) == 26
    flows.clear()
    assert len(flows) == 0


def test_arrays_per_cpu_and_size_only_maps(obj):
    slots = obj.maps["slots"]
    slots[2] = 42
    assert slots[2] == 42
    with pytest.raises(OSError) as err:
        del slots[2]  # array elements cannot be deleted
    assert err.value.errno == errno.EINVAL
    per_cpu = obj.maps["per_cpu"]
    per_cpu[0] = 9  # one value for every CPU
    assert per_cpu[0] == [9] * per_cpu.cpus
    per_cpu[0] = list(range(per_cpu.cpus))
    assert per_cpu[0] == list(range(per_cpu.cpus))
    by_size = obj.maps["by_size"]
    assert by_size.key_type is None and by_size.value_type is None
    by_size[b"abcd"] = b"xy"
    assert by_size[b"abcd"] == b"xy" and list(by_size) == [b"abcd"]
    with pytest.raises(ArgsError, match="declares its key by size only: give 4 bytes"):
        by_size[7] = b"xy"


def test_errors_name_what_is_wrong(obj):
    with pytest.raises(KeyError, match="has no map 'nope'; maps: flows, slots, per_cpu, by_size"):
        obj.maps["nope"]
    assert list(obj.maps) == ["flows", "slots", "per_cpu", "by_size"]
    with pytest.raises(ArgsError, match="unknown field 'pid' for struct flow_key"):
        obj.maps["flows"][{"pid": 1}]
    with pytest.raises(KeyError, match="no global 'flows'"):
        obj.globals["flows"]
    with pytest.raises(KeyError, match="no global 'flows'"):
        obj.globals["flows"] = 1


def test_globals_are_written_live(obj):
    run(obj, 1, 1)
    obj.globals["runs"] = 40  # .bss, after load: the program sees it
    run(obj, 1, 1)
    assert obj.globals["runs"] == 41
    with pytest.raises(PermissionError, match="read-only"):
        obj.globals["step"] = 2  # .rodata, after load
    assert obj.globals["step"] == 1


def test_maps_of_a_closed_object_raise(bpf_objs):  # noqa: F811
    o = BpfObject(bpf_objs["maps"])
    o.load()
    slots = o.maps["slots"]
    o.close()
    with pytest.raises(ValueError, match="closed"):
        slots[0]
