# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Encode Python values into C structs, laid out by a BPF object's BTF.

A handler's init args (and its global variables) are C types that the BPF
object describes in its BTF.  :class:`Btf` reads a type once into a small
tree of :class:`CType` objects, which then turn Python values into bytes
(:meth:`CType.encode`) and back (:meth:`CType.decode`) without further C
calls.  Values map as:

- integers: ``int`` (``bool`` for C ``bool``), range-checked for the size
  and signedness;
- enums: ``int`` or a member name;
- ``char`` arrays: ``str`` (UTF-8) or ``bytes``, leaving room for the NUL;
  other byte arrays: ``bytes``; any array: a list, at most its length;
- structs: a ``dict`` of field names (anonymous members' fields included);
  missing fields are zero, unknown ones are an error naming the valid ones;
- unions: a ``dict`` with at most one member.

Padding is always zero.  Everything is validated before bytes are made;
problems raise :class:`~fanbpf.errors.ArgsError` naming the field path.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from collections.abc import Mapping
from typing import Any

from fanbpf import _log  # noqa: F401  (libbpf's messages go to logging)
from fanbpf._binding import ffi, lib
from fanbpf.errors import ARGS_MAX, ArgsError, os_error

__all__ = ["Btf", "CType", "IntType", "EnumType", "FloatType", "ArrayType",
           "StructType", "UnsupportedType", "encode_args"]

_BYTEORDER = sys.byteorder  # BTF of a BPF object is in the host's byte order
_BTF_FUNC_EXTERN = 2  # enum btf_func_linkage, include/uapi/linux/btf.h


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _subpath(outer: str, inner: str) -> str:
    """``outer`` then ``inner`` (a field path relative to it: "", "x.y", "[2]")."""
    return outer + (inner if not inner or inner.startswith("[") else "." + inner)


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


class CType:
    """A C type with a size that Python values can be encoded into."""

    kind = "type"

    def __init__(self, name: str, size: int):
        self.name = name
        self.size = size

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.c_name} ({self.size} bytes)>"

    @property
    def c_name(self) -> str:
        return self.name or f"<anonymous {self.kind}>"

    def encode(self, value: Any) -> bytes:
        """``value`` as ``self.size`` bytes; raises ArgsError if it does not fit."""
        buf = bytearray(self.size)
        self._encode(value, buf, 0, "")
        return bytes(buf)

    def decode(self, data: bytes) -> Any:
        """The Python value of ``data`` (exactly ``self.size`` bytes)."""
        if len(data) != self.size:
            raise ArgsError(f"{self.c_name} is {self.size} bytes, got {len(data)}")
        return self._decode(bytes(data), 0)

    def field_at(self, offset: int, size: int) -> tuple[str, CType] | None:
        """The innermost field that spans bytes ``offset`` to ``offset + size``
        exactly, as ``(path, type)``; the path as ArgsError spells it
        (``"names.patterns[2].text"``, ``""`` for this whole type), None if
        no field does (e.g. the bytes straddle two fields)."""
        if offset == 0 and size == self.size:
            return "", self
        return None

    def _encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        raise NotImplementedError

    def _decode(self, data: bytes, off: int) -> Any:
        raise NotImplementedError


class IntType(CType):
    kind = "int"

    def __init__(self, name: str, size: int, signed: bool, char: bool = False,
                 boolean: bool = False):
        super().__init__(name, size)
        self.signed = signed
        self.char = char
        self.boolean = boolean
        bits = 8 * size
        self.min = -(1 << (bits - 1)) if signed else 0
        self.max = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def _encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        if not isinstance(value, int):
            raise ArgsError(f"expected an int for {self.c_name}, got {_describe(value)}", path)
        if self.boolean and value not in (0, 1):
            raise ArgsError(f"expected a bool for {self.c_name}, got {value}", path)
        if not self.min <= value <= self.max:
            raise ArgsError(f"{value} is out of range for {self.c_name} "
                            f"({self.min}..{self.max})", path)
        buf[off:off + self.size] = value.to_bytes(self.size, _BYTEORDER, signed=self.signed)

    def _decode(self, data: bytes, off: int) -> Any:
        value = int.from_bytes(data[off:off + self.size], _BYTEORDER, signed=self.signed)
        return bool(value) if self.boolean else value


class EnumType(IntType):
    kind = "enum"

    def __init__(self, name: str, size: int, signed: bool, members: dict[str, int]):
        super().__init__(name, size, signed)
        self.members = members

    @property
    def c_name(self) -> str:
        return f"enum {self.name}" if self.name else "<anonymous enum>"

    def _encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        if isinstance(value, str):
            if value not in self.members:
                raise ArgsError(f"{value!r} is not a member of {self.c_name}; members: "
                                f"{', '.join(self.members)}", path)
            value = self.members[value]
        super()._encode(value, buf, off, path)


class FloatType(CType):
    kind = "float"

    _FORMATS = {4: "f", 8: "d"}

    def _format(self, path: str = "") -> str:
        fmt = self._FORMATS.get(self.size)
        if fmt is None:
            raise ArgsError(f"{self.size}-byte floats are not supported", path)
        return ("<" if _BYTEORDER == "little" else ">") + fmt

    def _encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        if not isinstance(value, (int, float)):
            raise ArgsError(f"expected a number for {self.c_name}, got {_describe(value)}", path)
        struct.pack_into(self._format(path), buf, off, value)

    def _decode(self, data: bytes, off: int) -> Any:
        return struct.unpack_from(self._format(), data, off)[0]


class ArrayType(CType):
    kind = "array"

    def __init__(self, elem: CType, nelems: int):
        super().__init__("", elem.size * nelems)
        self.elem = elem
        self.nelems = nelems

    @property
    def c_name(self) -> str:
        return f"{self.elem.c_name}[{self.nelems}]"

    @property
    def is_string(self) -> bool:
        """A ``char[N]``: str or bytes, NUL-terminated."""
        return isinstance(self.elem, IntType) and self.elem.char

    @property
    def is_bytes(self) -> bool:
        """Any other array of 1-byte integers: bytes."""
        elem = self.elem
        return type(elem) is IntType and elem.size == 1 and not (elem.boolean or elem.char)

    def _encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        if self.is_string and isinstance(value, str):
            data = value.encode()
            if b"\0" in data:
                raise ArgsError(f"string for {self.c_name} contains a NUL", path)
            value = data
        if (self.is_string or self.is_bytes) and isinstance(value, (bytes, bytearray)):
            room = self.nelems - 1 if self.is_string else self.nelems
            if len(value) > room:
                what = f"at most {room} bytes plus the NUL" if self.is_string else f"at most {room} bytes"
                raise ArgsError(f"{len(value)} bytes do not fit {self.c_name} ({what})", path)
            buf[off:off + len(value)] = value
            return
        if not isinstance(value, (list, tuple)):
            want = "a str, bytes or a list" if self.is_string else (
                "bytes or a list" if self.is_bytes else "a list")
            raise ArgsError(f"expected {want} for {self.c_name}, got {_describe(value)}", path)
        if len(value) > self.nelems:
            raise ArgsError(f"{len(value)} items do not fit {self.c_name} "
                            f"(at most {self.nelems})", path)
        for i, item in enumerate(value):
            self.elem._encode(item, buf, off + i * self.elem.size, f"{path}[{i}]")

    def field_at(self, offset: int, size: int) -> tuple[str, CType] | None:
        if self.elem.size and 0 <= offset < self.size and offset + size <= self.size:
            index, inner = divmod(offset, self.elem.size)
            found = self.elem.field_at(inner, size)
            if found is not None:
                return _subpath(f"[{index}]", found[0]), found[1]
        return super().field_at(offset, size)

    def _decode(self, data: bytes, off: int) -> Any:
        raw = data[off:off + self.size]
        if self.is_string:
            return raw.split(b"\0", 1)[0].decode(errors="surrogateescape")
        if self.is_bytes:
            return raw
        return [self.elem._decode(data, off + i * self.elem.size) for i in range(self.nelems)]


class StructType(CType):
    kind = "struct"

    def __init__(self, name: str, size: int, union: bool = False):
        super().__init__(name, size)
        self.union = union
        if union:
            self.kind = "union"
        #: field name -> (byte offset, CType), anonymous members flattened
        self.fields: dict[str, tuple[int, CType]] = {}

    @property
    def c_name(self) -> str:
        return f"{self.kind} {self.name}" if self.name else f"<anonymous {self.kind}>"

    def _encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        if not isinstance(value, Mapping):
            raise ArgsError(f"expected a dict for {self.c_name}, got {_describe(value)}", path)
        unknown = [k for k in value if k not in self.fields]
        if unknown:
            raise ArgsError(f"unknown field {unknown[0]!r} for {self.c_name}; valid fields: "
                            f"{', '.join(self.fields)}", path)
        if self.union and len(value) > 1:
            raise ArgsError(f"a {self.c_name} takes one member, got {', '.join(value)}", path)
        for key, item in value.items():
            field_off, ctype = self.fields[key]
            ctype._encode(item, buf, off + field_off, _join(path, key))

    def field_at(self, offset: int, size: int) -> tuple[str, CType] | None:
        for key, (field_off, ctype) in self.fields.items():
            if field_off <= offset and offset + size <= field_off + ctype.size:
                found = ctype.field_at(offset - field_off, size)
                if found is not None:
                    return _subpath(key, found[0]), found[1]
        return super().field_at(offset, size)

    def _decode(self, data: bytes, off: int) -> Any:
        return {key: ctype._decode(data, off + field_off)
                for key, (field_off, ctype) in self.fields.items()}


class UnsupportedType(CType):
    """A type no Python value maps to (pointer, bitfield...): only zero is possible."""

    def __init__(self, name: str, size: int, reason: str):
        super().__init__(name, size)
        self.reason = reason

    def _encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        raise ArgsError(f"cannot set {self.reason}; leave the field out (it stays zero)", path)

    def _decode(self, data: bytes, off: int) -> Any:
        return int.from_bytes(data[off:off + self.size], _BYTEORDER)


def encode_args(ctype: CType, value: Any) -> bytes:
    """Encode fastpath init args, which may not exceed FAN_FP_ARGS_MAX bytes."""
    if ctype.size > ARGS_MAX:
        raise ArgsError(f"{ctype.c_name} is {ctype.size} bytes, but fastpath init args are "
                        f"limited to FAN_FP_ARGS_MAX = {ARGS_MAX} bytes; make the struct "
                        "smaller", errno=errno.E2BIG)
    return ctype.encode(value)


class Btf:
    """Types from a BTF object (libbpf's ``struct btf``).

    Either owned (:meth:`from_file`; freed by :meth:`close` or when
    garbage) or borrowed from a BPF object, which calls :meth:`close` when
    it closes (``handler.py``), so that no borrowed pointer outlives it:
    using a closed Btf raises ValueError.  :class:`CType` s already read
    stay valid.
    """

    def __init__(self, ptr: Any, *, owned: bool = False) -> None:
        self._lib = lib
        self._ptr = ptr
        self._owned = owned
        self._types: dict[int, CType] = {}
        self._globals: dict[str, int] | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Btf:
        """Parse the BTF of an ELF object (or a raw BTF file)."""
        ptr = lib.btf__parse(os.fsencode(path), ffi.NULL)
        if ptr == ffi.NULL:
            err = ffi.errno or errno.EINVAL
            raise os_error(err, f"cannot read BTF: {os.strerror(err)}", path)
        # freed when garbage too; ffi.release() in close() frees it at once
        return cls(ffi.gc(ptr, lib.btf__free), owned=True)

    @classmethod
    def from_split_file(cls, path: str | os.PathLike[str], base: Btf) -> Btf:
        """Parse split BTF (a kernel module's, /sys/kernel/btf/<module>) on
        top of ``base`` (vmlinux's), which must outlive it."""
        ptr = lib.btf__parse_split(os.fsencode(path), base._btf())
        if ptr == ffi.NULL:
            err = ffi.errno or errno.EINVAL
            raise os_error(err, f"cannot read BTF: {os.strerror(err)}", path)
        return cls(ffi.gc(ptr, lib.btf__free), owned=True)

    def close(self) -> None:
        """Let go of the BTF (freeing it if owned); idempotent."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None and self._owned:
            ffi.release(ptr)

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def __enter__(self) -> Btf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _btf(self) -> Any:
        if self._ptr is None:
            raise ValueError("BTF is closed")
        if self._ptr == ffi.NULL:
            raise ArgsError("the BPF object has no BTF; compile it with clang -g")
        return self._ptr

    def _name(self, t: Any) -> str:
        return str(ffi.string(self._lib.btf__name_by_offset(self._btf(), t.name_off)).decode())

    def struct(self, name: str) -> CType:
        """``struct name`` (or ``union name``); ArgsError if there is none."""
        ctype = self.find_struct(name)
        if ctype is None:
            raise ArgsError(f"the BTF has no struct or union named {name!r}")
        return ctype

    def find_struct(self, name: str) -> StructType | None:
        """``struct name`` (or ``union name``), None if there is none."""
        lib = self._lib
        for kind in (lib.BTF_KIND_STRUCT, lib.BTF_KIND_UNION):
            type_id = lib.btf__find_by_name_kind(self._btf(), name.encode(), kind)
            if type_id > 0:
                ctype = self.type(type_id)
                assert isinstance(ctype, StructType)  # _build makes one of a STRUCT or UNION id
                return ctype
        return None

    def has(self, name: str, kind: str = "func") -> bool:
        """Whether the BTF has a ``"func"`` or a ``"struct"`` of this name."""
        lib = self._lib
        code = {"func": lib.BTF_KIND_FUNC, "struct": lib.BTF_KIND_STRUCT}[kind]
        return bool(lib.btf__find_by_name_kind(self._btf(), name.encode(), code) > 0)

    def extern_funcs(self) -> list[str]:
        """Functions the object declares but does not define: for a BPF
        object, the kfuncs it calls (``__ksym``), which the kernel must have."""
        lib, btf = self._lib, self._btf()
        names = []
        for type_id in range(1, lib.btf__type_cnt(btf)):
            t = lib.btf__type_by_id(btf, type_id)
            # a FUNC's vlen is its linkage (enum btf_func_linkage)
            if lib.btf_kind(t) == lib.BTF_KIND_FUNC and lib.btf_vlen(t) == _BTF_FUNC_EXTERN:
                names.append(self._name(t))
        return names

    def globals(self) -> dict[str, int]:
        """Variables (globals, and the struct_ops maps' values): name -> BTF type id."""
        btf = self._btf()  # raises once closed, cached or not
        if self._globals is None:  # read once: a BTF does not change
            lib = self._lib
            found: dict[str, int] = {}
            for type_id in range(1, lib.btf__type_cnt(btf)):
                t = lib.btf__type_by_id(btf, type_id)
                if lib.btf_kind(t) == lib.BTF_KIND_VAR:
                    found.setdefault(self._name(t), t.type)
            self._globals = found
        return dict(self._globals)

    def section_vars(self, *sections: str) -> list[str]:
        """Names of the variables in data sections ``sections`` (``".maps"``,
        ``".bss"``, ...; ``".rodata"`` also takes ``".rodata.*"``), in BTF order."""
        lib, btf = self._lib, self._btf()
        names = []
        for type_id in range(1, lib.btf__type_cnt(btf)):
            t = lib.btf__type_by_id(btf, type_id)
            if lib.btf_kind(t) != lib.BTF_KIND_DATASEC:
                continue
            section = self._name(t)
            if not any(section == s or section.startswith(s + ".") for s in sections):
                continue
            infos = lib.btf_var_secinfos(t)
            for i in range(lib.btf_vlen(t)):
                var = lib.btf__type_by_id(btf, infos[i].type)
                if lib.btf_kind(var) == lib.BTF_KIND_VAR:
                    names.append(self._name(var))
        return names

    def map_types(self, name: str) -> tuple[CType | None, CType | None]:
        """The key and value types that BTF-defined map ``name`` declares
        (``__type(key, T)``); None for one given by size only (``__uint(key_size, N)``)."""
        type_id = self.globals().get(name)
        if type_id is None:
            raise ArgsError(f"no map {name!r} in the BTF")
        lib, btf = self._lib, self._btf()
        t = lib.btf__type_by_id(btf, lib.btf__resolve_type(btf, type_id))
        found: dict[str, CType] = {}
        if lib.btf_kind(t) == lib.BTF_KIND_STRUCT:
            members = lib.btf_members(t)
            for i in range(lib.btf_vlen(t)):
                member = lib.btf__type_by_id(btf, members[i].type)
                mname = self._name(members[i])
                if mname in ("key", "value") and lib.btf_kind(member) == lib.BTF_KIND_PTR:
                    found[mname] = self.type(member.type)
        return found.get("key"), found.get("value")

    def global_type(self, name: str) -> CType:
        """The type of global variable ``name``."""
        variables = self.globals()
        if name not in variables:
            raise ArgsError(f"no global variable {name!r}; globals: "
                            f"{', '.join(sorted(variables)) or 'none'}")
        return self.type(variables[name])

    def type(self, type_id: int) -> CType:
        """The :class:`CType` for BTF type ``type_id`` (typedefs and qualifiers skipped)."""
        ctype = self._types.get(type_id)
        if ctype is None:
            ctype = self._types[type_id] = self._build(type_id)
        return ctype

    def _build(self, type_id: int) -> CType:
        lib, btf = self._lib, self._btf()
        t = lib.btf__type_by_id(btf, type_id)
        if not t:
            raise ArgsError(f"BTF type id {type_id} does not exist")
        kind, name = lib.btf_kind(t), self._name(t)

        if kind in (lib.BTF_KIND_TYPEDEF, lib.BTF_KIND_CONST, lib.BTF_KIND_VOLATILE,
                    lib.BTF_KIND_RESTRICT, lib.BTF_KIND_TYPE_TAG, lib.BTF_KIND_VAR):
            return self.type(t.type)
        if kind == lib.BTF_KIND_INT:
            encoding = lib.btf_int_encoding(t)
            if lib.btf_int_offset(t) or lib.btf_int_bits(t) != 8 * t.size:
                return UnsupportedType(name, t.size, f"a {lib.btf_int_bits(t)}-bit {name}")
            return IntType(name, t.size, signed=bool(encoding & lib.BTF_INT_SIGNED),
                           char=bool(encoding & lib.BTF_INT_CHAR) or name == "char",
                           boolean=bool(encoding & lib.BTF_INT_BOOL))
        if kind in (lib.BTF_KIND_ENUM, lib.BTF_KIND_ENUM64):
            return self._build_enum(t, name, kind == lib.BTF_KIND_ENUM64)
        if kind == lib.BTF_KIND_FLOAT:
            return FloatType(name, t.size)
        if kind == lib.BTF_KIND_ARRAY:
            arr = lib.btf_array(t)
            return ArrayType(self.type(arr.type), arr.nelems)
        if kind in (lib.BTF_KIND_STRUCT, lib.BTF_KIND_UNION):
            return self._build_struct(t, name, kind == lib.BTF_KIND_UNION)
        size = lib.btf__resolve_size(btf, type_id)
        what = "a pointer" if kind == lib.BTF_KIND_PTR else f"BTF kind {kind}"
        return UnsupportedType(name, max(size, 0), what)

    def _build_enum(self, t: Any, name: str, wide: bool) -> EnumType:
        lib = self._lib
        members = {}
        if wide:
            e = lib.btf_enum64(t)
            for i in range(lib.btf_vlen(t)):
                value = lib.btf_enum64_value(e + i)
                if lib.btf_kflag(t) and value >= 1 << 63:
                    value -= 1 << 64
                members[self._name(e[i])] = value
            signed = bool(lib.btf_kflag(t))
        else:
            e = lib.btf_enum(t)
            values = [e[i].val for i in range(lib.btf_vlen(t))]
            # kflag marks signed enums, but clang < 15 never sets it: then an
            # enum is signed if a member is negative, as C would make it
            signed = bool(lib.btf_kflag(t)) or any(v < 0 for v in values)
            for i, value in enumerate(values):
                members[self._name(e[i])] = value if signed or value >= 0 else value + (1 << 32)
        return EnumType(name, t.size, signed=signed, members=members)

    def _build_struct(self, t: Any, name: str, union: bool) -> StructType:
        lib = self._lib
        st = StructType(name, t.size, union=union)
        m = lib.btf_members(t)
        for i in range(lib.btf_vlen(t)):
            mname = self._name(m[i])
            off_bits = lib.btf_member_bit_offset(t, i)
            ctype = self.type(m[i].type)
            if lib.btf_member_bitfield_size(t, i) or off_bits % 8:
                ctype = UnsupportedType(mname, 0, f"bitfield {mname!r}")
            if not mname and isinstance(ctype, StructType):
                # C lets you name an anonymous member's fields directly
                for key, (off, sub) in ctype.fields.items():
                    st.fields[key] = (off_bits // 8 + off, sub)
            elif mname:
                st.fields[mname] = (off_bits // 8, ctype)
        return st
