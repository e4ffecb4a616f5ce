"""fanbpf_refuse(): what fp_init records about a refused init-args field, and
the ArgsError fanbpf makes of it.  A SEC("syscall") program (bpf/refuse.bpf.c)
refuses fields the way fp_init does, so this runs on any kernel;
tests/vm/test_example_handler.py and test_handler_api.py check it through
real attaches."""
import struct
import threading

import pytest

from bpfobjs import bpf_objs, needs_root  # noqa: F401  (fixture)
from fanbpf.errors import ArgsError
from fanbpf.handler import REFUSED_LEN, BpfObject, refusal_error

EINVAL = 22


@pytest.fixture
def refuse(bpf_objs):  # noqa: F811
    with BpfObject(bpf_objs["refuse"]) as obj:
        obj.load()
        yield obj


def run(obj, which: int, index: int = 0) -> tuple[int, int] | None:
    ret = obj.test_run("refuse", struct.pack("=II", which, index)).retval
    assert ret == -EINVAL
    return obj.init_refusal()


@needs_root
@pytest.mark.parametrize("which, index, path", [
    (0, 0, "flags"),
    (1, 2, "items[2].text"),  # a run-time index
    (1, 3, "items[3].text"),
    (2, 1, "items[1]"),
    (3, 0, "owner.id"),
])
def test_a_refused_field_is_named(refuse, which, index, path):
    args_type = refuse.btf.struct("refuse_args")
    offset, size = run(refuse, which, index)
    assert args_type.field_at(offset, size)[0] == path
    blob = args_type.encode({"items": [{"text": "ab"}] * 4, "owner": {"id": 7}})
    err = refusal_error("refuser", args_type, blob, offset, size)
    assert isinstance(err, ArgsError) and err.errno == EINVAL and err.path == path
    assert str(err).startswith(f"{path}: refused by handler 'refuser' (fp_init): ")


@needs_root
def test_values_and_lengths_in_the_message(refuse):
    args_type = refuse.btf.struct("refuse_args")
    blob = args_type.encode({"items": [{}, {"text": "x.log"}], "owner": {"id": 7}})
    assert str(refusal_error("r", args_type, blob, *run(refuse, 1, 1))) == \
        "items[1].text: refused by handler 'r' (fp_init): 'x.log' [EINVAL]"
    assert str(refusal_error("r", args_type, blob, *run(refuse, 3))) == \
        "owner.id: refused by handler 'r' (fp_init): 7 [EINVAL]"
    assert run(refuse, 9) == (REFUSED_LEN, args_type.size)
    assert str(refusal_error("r", args_type, b"", *run(refuse, 9))) == \
        f"handler 'r' (fp_init) refused init args of 0 bytes: it takes {args_type.size} bytes " \
        "(none were given) [EINVAL]"


@needs_root
def test_the_record_is_per_thread_and_cleared(refuse):
    run(refuse, 0)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(refuse.init_refusal()))
    thread.start()
    thread.join()
    assert seen == [None]  # another thread's refusal is not this one's
    refuse.clear_init_refusal()
    assert refuse.init_refusal() is None


def test_field_at_finds_the_innermost_field(bpf_objs):  # noqa: F811
    with BpfObject(bpf_objs["args"]) as obj:
        args = obj.btf.struct("test_args")
    off = {name: off for name, (off, _) in args.fields.items()}
    assert args.field_at(off["name"], 16)[0] == "name"
    assert args.field_at(off["name"] + 1, 1)[0] == "name[1]"
    assert args.field_at(off["points"] + 8 + 4, 4)[0] == "points[1].z"
    assert args.field_at(off["points"] + 8, 8)[0] == "points[1]"
    assert args.field_at(off["nested"], 4)[0] == "nested.inner"
    assert args.field_at(0, args.size)[0] == ""
    assert args.field_at(off["u8v"], 2) is None  # straddles u8v and s8v
    assert args.field_at(args.size, 4) is None
