"""fanbpf.testing.strategies.btf_values: values for any BTF type, drawn by
hypothesis, that the BTF encoder takes and that come back from the bytes."""
import pytest
from hypothesis import given, settings

from bpfobjs import bpf_objs  # noqa: F401  (fixture)
from fanbpf.btfargs import Btf, CType, EnumType, IntType, StructType
from fanbpf.testing.strategies import btf_values

STRUCTS = ["test_args", "test_point", "test_u"]


@pytest.fixture(scope="module")
def btf(bpf_objs):  # noqa: F811
    with Btf.from_file(bpf_objs["args"]) as b:
        yield b


def same(ctype: CType, given_value, decoded) -> bool:
    """``decoded`` (all fields) says what ``given_value`` (some fields) said."""
    if isinstance(ctype, EnumType) and isinstance(given_value, str):
        return decoded == ctype.members[given_value]
    if isinstance(ctype, StructType):
        return all(same(ctype.fields[k][1], v, decoded[k]) for k, v in given_value.items())
    if isinstance(given_value, list):
        return all(same(ctype.elem, v, d) for v, d in zip(given_value, decoded))
    if isinstance(given_value, bytes) and isinstance(decoded, bytes):
        return decoded.rstrip(b"\0") == given_value.rstrip(b"\0")
    if isinstance(ctype, IntType) and ctype.boolean:
        return decoded == bool(given_value)
    return decoded == given_value


@pytest.mark.parametrize("name", STRUCTS)
def test_every_drawn_value_encodes_and_comes_back(btf, name):
    ctype = btf.struct(name)

    @settings(max_examples=300, derandomize=True, deadline=None)
    @given(value=btf_values(ctype))
    def check(value):
        data = ctype.encode(value)
        assert len(data) == ctype.size
        assert same(ctype, value, ctype.decode(data)), (value, ctype.decode(data))

    check()


def test_it_draws_every_field_and_one_of_fields_sharing_bytes(btf):
    ctype = btf.struct("test_args")
    seen: set = set()

    @settings(max_examples=300, derandomize=True, deadline=None)
    @given(value=btf_values(ctype))
    def collect(value):
        assert not {"word", "bytes"} <= value.keys()  # one member of the anonymous union
        assert "ptr" not in value and "bits" not in value  # no Python value maps to them
        seen.update(value)

    collect()
    assert seen == set(ctype.fields) - {"ptr", "bits"}
