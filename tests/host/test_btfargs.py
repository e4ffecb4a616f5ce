"""BTF-driven encoding of init args: layouts from a real object's BTF, every error case."""

import errno
import struct

import pytest
from hypothesis import given, settings, strategies as st

from bpfobjs import bpf_objs  # noqa: F401  (fixture)
from fanbpf.btfargs import ArrayType, Btf, EnumType, IntType, StructType, encode_args
from fanbpf.errors import ArgsError, FanbpfError


@pytest.fixture(scope="module")
def btf(bpf_objs):  # noqa: F811
    with Btf.from_file(bpf_objs["args"]) as b:
        yield b


@pytest.fixture(scope="module")
def args(btf):
    return btf.struct("test_args")


def encode_error(ctype, value) -> ArgsError:
    with pytest.raises(ArgsError) as info:
        ctype.encode(value)
    return info.value


# -- layout -------------------------------------------------------------

def test_layout_matches_c(args):
    assert isinstance(args, StructType)
    assert args.size == 144
    offsets = {name: off for name, (off, _) in args.fields.items()}
    assert offsets["u8v"] == 0 and offsets["s8v"] == 1 and offsets["u16v"] == 2
    assert offsets["u64v"] == 8 and offsets["flag"] == 24 and offsets["name"] == 25
    assert offsets["color"] == 52 and offsets["points"] == 56
    # the anonymous union's members are fields, at the union's offset
    assert offsets["word"] == offsets["bytes"] == 96
    color = args.fields["color"][1]
    assert isinstance(color, EnumType) and color.signed
    assert color.members == {"TEST_RED": 1, "TEST_GREEN": 2, "TEST_BLUE": -3}
    points = args.fields["points"][1]
    assert isinstance(points, ArrayType) and points.nelems == 3 and points.elem.size == 8
    name = args.fields["name"][1]
    assert name.is_string and not name.is_bytes
    assert args.fields["blob"][1].is_bytes


def test_unknown_struct_and_global(btf):
    with pytest.raises(ArgsError, match="no struct or union named 'nope'"):
        btf.struct("nope")
    assert btf.find_struct("nope") is None
    with pytest.raises(ArgsError, match="globals: .*bias"):
        btf.global_type("nope")
    assert btf.global_type("bias").size == 8


# -- values ---------------------------------------------------------------

def test_round_trip_and_zero_fill(args):
    value = {
        "u8v": 255, "s8v": -128, "u16v": 65535, "s32v": -(1 << 31),
        "u64v": (1 << 64) - 1, "s64v": (1 << 63) - 1, "flag": True,
        "name": "fifteen bytes!!", "blob": b"\x01\x02", "color": "TEST_BLUE",
        "points": [{"x": -2, "y": 255, "z": 7}, {"z": 1}],
        "counts": [1, 2], "word": 0x04030201, "u": {"b": 9},
        "nested": {"inner": 5}, "ratio": 2.5, "wide": "TEST_WIDE",
    }
    data = args.encode(value)
    assert len(data) == args.size
    out = args.decode(data)
    assert out["name"] == "fifteen bytes!!"
    assert out["blob"] == b"\x01\x02" + bytes(6)
    assert out["color"] == -3
    # an 8-byte enum; clang < 15 emits TEST_WIDE as 0 (no BTF_KIND_ENUM64)
    assert out["wide"] == args.fields["wide"][1].members["TEST_WIDE"]
    assert out["points"][0] == {"x": -2, "y": 255, "z": 7}
    assert out["points"][1] == {"x": 0, "y": 0, "z": 1}
    assert out["points"][2] == {"x": 0, "y": 0, "z": 0}
    assert out["counts"] == [1, 2, 0, 0]
    assert out["bytes"] == b"\x01\x02\x03\x04"
    assert out["u"] == {"a": 9, "b": 9}
    assert out["flag"] is True and out["ratio"] == 2.5
    assert out["ptr"] == 0 and out["bits"] == 0
    # the same bytes C would build
    assert data[0:4] == struct.pack("<BbH", 255, -128, 65535)
    assert data[56:64] == struct.pack("<hBxI", -2, 255, 7)


def test_padding_and_missing_fields_are_zero(args):
    data = args.encode({"points": [{"x": -1, "y": 255, "z": 0xFFFFFFFF}] * 3})
    for i in range(3):
        assert data[56 + 8 * i + 3] == 0  # the pad byte of struct test_point
    assert data[49:52] == bytes(3)  # padding before enum test_color
    assert args.encode({}) == bytes(args.size)


@pytest.mark.parametrize("field,value", [
    ("u8v", 256), ("u8v", -1), ("s8v", -129), ("s8v", 128), ("u16v", 1 << 16),
    ("s32v", 1 << 31), ("u64v", 1 << 64), ("u64v", -1), ("s64v", -(1 << 63) - 1),
])
def test_int_range(args, field, value):
    err = encode_error(args, {field: value})
    assert "out of range" in str(err) and err.path == field


@pytest.mark.parametrize("value", ["1", 1.0, None, b"\x01"])
def test_int_type(args, value):
    assert "expected an int" in str(encode_error(args, {"s32v": value}))


def test_bool(args):
    assert args.decode(args.encode({"flag": 1}))["flag"] is True
    assert "expected a bool" in str(encode_error(args, {"flag": 2}))


def test_enum(args):
    wide = args.fields["wide"][1]
    assert wide.size == 8 and wide.max == (1 << 64) - 1
    assert args.decode(args.encode({"wide": (1 << 64) - 1}))["wide"] == (1 << 64) - 1
    assert args.decode(args.encode({"color": 2}))["color"] == 2
    err = encode_error(args, {"color": "PURPLE"})
    assert "members: TEST_RED, TEST_GREEN, TEST_BLUE" in str(err)
    assert "out of range" in str(encode_error(args, {"color": 1 << 31}))


def test_char_array(args):
    assert args.decode(args.encode({"name": "x" * 15}))["name"] == "x" * 15
    err = encode_error(args, {"name": "x" * 16})
    assert err.path == "name" and "at most 15 bytes plus the NUL" in str(err)
    assert "at most 15" in str(encode_error(args, {"name": b"y" * 16}))
    # the limit is in UTF-8 bytes, not characters
    assert "16 bytes" in str(encode_error(args, {"name": "é" * 8}))
    assert "contains a NUL" in str(encode_error(args, {"name": "a\0b"}))
    assert "a str, bytes or a list" in str(encode_error(args, {"name": 5}))


def test_byte_array(args):
    assert args.decode(args.encode({"blob": b"12345678"}))["blob"] == b"12345678"
    assert args.decode(args.encode({"blob": [1, 2]}))["blob"] == b"\x01\x02" + bytes(6)
    assert "at most 8 bytes" in str(encode_error(args, {"blob": b"123456789"}))
    assert "bytes or a list" in str(encode_error(args, {"blob": "text"}))


def test_arrays_of_structs_and_ints(args):
    err = encode_error(args, {"points": [{}] * 4})
    assert err.path == "points" and "4 items do not fit struct test_point[3]" in str(err)
    err = encode_error(args, {"points": [{}, {"x": 1 << 15}]})
    assert err.path == "points[1].x"
    assert encode_error(args, {"counts": [1, -1]}).path == "counts[1]"
    assert "expected a list" in str(encode_error(args, {"counts": 3}))


def test_unknown_keys_list_valid_fields(args):
    err = encode_error(args, {"u8v": 1, "colour": 1})
    assert "unknown field 'colour' for struct test_args" in str(err)
    assert "valid fields: u8v, s8v, u16v" in str(err)
    err = encode_error(args, {"points": [{"w": 1}]})
    assert err.path == "points[0]" and "valid fields: x, y, z" in str(err)
    assert "expected a dict" in str(encode_error(args, {"nested": [1]}))
    assert "expected a dict" in str(encode_error(args, 5))


def test_union_takes_one_member(args):
    assert "takes one member" in str(encode_error(args, {"u": {"a": 1, "b": 2}}))


def test_unsupported_fields(args):
    assert "cannot set a pointer" in str(encode_error(args, {"ptr": 1}))
    assert "cannot set bitfield 'bits'" in str(encode_error(args, {"bits": 1}))


def test_errors_are_value_errors_with_einval(args):
    err = encode_error(args, {"nope": 1})
    assert isinstance(err, ValueError) and isinstance(err, FanbpfError)
    assert err.errno == errno.EINVAL


def test_decode_checks_size(args):
    with pytest.raises(ArgsError, match="144 bytes, got 3"):
        args.decode(b"abc")


def test_args_limit(btf):
    big = btf.struct("test_big_args")
    with pytest.raises(ArgsError) as info:
        encode_args(big, {})
    assert info.value.errno == errno.E2BIG
    assert "2000 bytes" in str(info.value) and "FAN_FP_ARGS_MAX = 1024" in str(info.value)
    assert len(big.encode({})) == 2000  # fine as a global
    assert len(encode_args(btf.struct("test_args"), {})) == 144


def test_btf_from_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        Btf.from_file(tmp_path / "missing.o")


def test_owned_btf_is_freed_by_close(bpf_objs):  # noqa: F811
    btf = Btf.from_file(bpf_objs["args"])
    assert btf.global_type("bias").size == 8
    btf.close()
    btf.close()
    assert btf.closed
    with pytest.raises(ValueError, match="closed"):
        btf.struct("args")


# -- property: whatever fits is decoded back as given -----------------------

def _ints(ctype: IntType):
    return st.integers(ctype.min, ctype.max)


@settings(deadline=None, max_examples=200)
@given(data=st.data())
def test_round_trip_property(args, data):
    point = args.fields["points"][1].elem
    points = st.lists(st.fixed_dictionaries({k: _ints(t) for k, (_, t) in point.fields.items()}),
                      max_size=3)
    simple = {k: _ints(t) for k, (_, t) in args.fields.items()
              if type(t) is IntType and not t.boolean}
    value = data.draw(st.fixed_dictionaries(simple, optional={
        "name": st.text(st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=15),
        "points": points,
    }))
    out = args.decode(args.encode(value))
    for key, item in value.items():
        if key == "points":
            assert out[key][: len(item)] == item
            assert all(not any(p.values()) for p in out[key][len(item):])
        else:
            assert out[key] == item
