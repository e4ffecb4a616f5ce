# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A loaded BPF object's maps and globals, with keys and values in Python.

``handler.maps["name"]`` (or ``BpfObject.maps``) is a :class:`Map`: a
mutable mapping whose keys and values are encoded and decoded by the
types the map declares in the object's BTF (``__type(key, T)``,
``__type(value, T)``), with the same encoder as init args
(:mod:`fanbpf.btfargs`): ints, dicts for structs, str/bytes for char
arrays.  A map declared by size only (``__uint(key_size, 8)``) takes and
gives bytes.  Per-CPU maps give a list with one value per possible CPU
and take such a list, or one value for every CPU::

    counts = handler.maps["counts"]         # BPF_MAP_TYPE_HASH, __u32 -> struct stat
    counts[1000] = {"events": 0}
    counts.update({uid: {"events": 0} for uid in uids})   # one batch update
    for uid, stat in counts.items():
        print(uid, stat["events"])
    del counts[1000]
    handler.globals["nr_events"]            # a .bss/.data/.rodata global, decoded

Lookups of missing keys raise KeyError, as a dict's; other failures the
OSError of the errno (EINVAL deleting from an array map, E2BIG when a map
is full).  Iteration takes a snapshot of the keys: the kernel side may
add and remove entries meanwhile.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from fanbpf._binding import ffi, lib
from fanbpf.btfargs import CType
from fanbpf.errors import ArgsError, check

if TYPE_CHECKING:
    from fanbpf.handler import BpfObject

__all__ = ["Map", "Maps", "Globals", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST"]

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
# BPF_MAP_TYPE_PERCPU_HASH, _PERCPU_ARRAY, _LRU_PERCPU_HASH, _PERCPU_CGROUP_STORAGE
_PERCPU_TYPES = {5, 6, 10, 21}
_BATCH = 4096


class Map(MutableMapping[Any, Any]):
    """Map ``name`` of a loaded :class:`~fanbpf.handler.BpfObject` (see the module docstring).

    ``key_type`` and ``value_type`` are the BTF types (None: bytes of
    ``key_size``/``value_size``); ``cpus`` is the number of values a per-CPU
    map holds per key (None for other maps).
    """

    def __init__(self, obj: BpfObject, name: str) -> None:
        self._obj = obj
        self.name = name
        info = ffi.new("struct fanbpf_map_info *")
        check(lib.fanbpf_obj_map_info(obj._obj(), name.encode(), info), "map", name=name,
              filename=obj.path)
        self.type = info.type
        self.key_size = info.key_size
        self.value_size = info.value_size
        self.max_entries = info.max_entries
        self._stride = info.value_stride
        self.cpus: int | None = None
        if self.type in _PERCPU_TYPES:
            self.cpus = info.value_stride // ((info.value_size + 7) & ~7)
        self.key_type, self.value_type = obj.btf.map_types(name)

    def __repr__(self) -> str:
        return f"<Map {self.name!r} of {self._obj.path}>"

    # -- encoding ------------------------------------------------------------

    def _encode(self, ctype: CType | None, size: int, value: Any, what: str) -> bytes:
        if ctype is None or isinstance(value, (bytes, bytearray)) and len(value) == size:
            if not isinstance(value, (bytes, bytearray)) or len(value) != size:
                raise ArgsError(f"map {self.name!r} declares its {what} by size only: give "
                                f"{size} bytes, not {value!r}")
            return bytes(value)
        return ctype.encode(value)

    def _key(self, key: Any) -> bytes:
        return self._encode(self.key_type, self.key_size, key, "key")

    def _value(self, value: Any) -> bytes:
        if self.cpus is None:
            return self._encode(self.value_type, self.value_size, value, "value")
        slot = (self.value_size + 7) & ~7
        per_cpu = value if isinstance(value, list) and len(value) == self.cpus else \
            [value] * self.cpus
        return b"".join(self._encode(self.value_type, self.value_size, v, "value")
                        .ljust(slot, b"\0") for v in per_cpu)

    def _decode(self, ctype: CType | None, data: bytes) -> Any:
        return data if ctype is None else ctype.decode(data)

    def _decode_value(self, data: bytes) -> Any:
        if self.cpus is None:
            return self._decode(self.value_type, data)
        slot = (self.value_size + 7) & ~7
        return [self._decode(self.value_type, data[i * slot:i * slot + self.value_size])
                for i in range(self.cpus)]

    def _check(self, ret: int) -> int:
        return check(ret, f"map {self.name}", filename=self._obj.path)

    # -- one element ---------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        raw = self._key(key)
        value = ffi.new("char[]", self._stride)
        ret = lib.fanbpf_obj_map_lookup(self._obj._obj(), self.name.encode(),
                                        ffi.from_buffer(raw), len(raw), value, self._stride, 0)
        if ret == -errno.ENOENT:
            raise KeyError(key)
        self._check(ret)
        return self._decode_value(ffi.buffer(value)[:])

    def set(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        """``self[key] = value`` with BPF update ``flags``: BPF_NOEXIST (FileExistsError
        if it is there) or BPF_EXIST (FileNotFoundError if it is not)."""
        raw, data = self._key(key), self._value(value)
        self._check(lib.fanbpf_obj_map_update(self._obj._obj(), self.name.encode(),
                                              ffi.from_buffer(raw), len(raw),
                                              ffi.from_buffer(data), len(data), flags))

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: Any) -> None:
        raw = self._key(key)
        ret = lib.fanbpf_obj_map_delete(self._obj._obj(), self.name.encode(),
                                        ffi.from_buffer(raw), len(raw), 0)
        if ret == -errno.ENOENT:
            raise KeyError(key)
        self._check(ret)

    # -- all of them ---------------------------------------------------------

    def raw_keys(self) -> list[bytes]:
        """A snapshot of the keys, as bytes."""
        room = 256
        while True:
            buf = ffi.new("char[]", room * self.key_size)
            count = ffi.new("uint64_t *")
            self._check(lib.fanbpf_obj_map_keys(self._obj._obj(), self.name.encode(), buf,
                                                room * self.key_size, count))
            if count[0] <= room:
                data = ffi.buffer(buf, count[0] * self.key_size)[:]
                return [data[i:i + self.key_size] for i in range(0, len(data), self.key_size)]
            room = count[0] + count[0] // 4

    def __iter__(self) -> Iterator[Any]:
        return (self._decode(self.key_type, raw) for raw in self.raw_keys())

    def __len__(self) -> int:
        return len(self.raw_keys())

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set many elements with BPF_MAP_UPDATE_BATCH (4096 a call): ``other``
        is a mapping or an iterable of ``(key, value)`` pairs, as dict.update takes."""
        items = list(other.items() if hasattr(other, "keys") else other)
        if kwargs:
            raise TypeError("a map's keys are not keyword names: pass a dict")
        keys = [self._key(k) for k, _ in items]
        values = [self._value(v) for _, v in items]
        for start in range(0, len(items), _BATCH):
            k = b"".join(keys[start:start + _BATCH])
            v = b"".join(values[start:start + _BATCH])
            done = ffi.new("uint32_t *", len(keys[start:start + _BATCH]))
            self._check(lib.fanbpf_obj_map_update_batch(
                self._obj._obj(), self.name.encode(), ffi.from_buffer(k), len(k),
                ffi.from_buffer(v), len(v), done, BPF_ANY))

    def delete_many(self, keys: Iterable[Any]) -> int:
        """Delete the keys that are there (BPF_MAP_DELETE_BATCH); how many went."""
        pending = [self._key(k) for k in keys]
        deleted = 0
        while pending:
            chunk = pending[:_BATCH]
            data = b"".join(chunk)
            done = ffi.new("uint32_t *", len(chunk))
            ret = lib.fanbpf_obj_map_delete_batch(self._obj._obj(), self.name.encode(),
                                                  ffi.from_buffer(data), len(data), done)
            deleted += done[0]
            if ret == -errno.ENOENT:  # the batch stops at a missing key: go on after it
                pending = pending[done[0] + 1:]
                continue
            self._check(ret)
            pending = pending[len(chunk):]
        return deleted


class Maps(Mapping[str, Map]):
    """The maps an object declares in ``SEC(".maps")``, by name."""

    def __init__(self, obj: BpfObject) -> None:
        self._obj = obj
        self._maps: dict[str, Map] = {}

    def __getitem__(self, name: str) -> Map:
        if name not in self._maps:
            if name not in self._obj.btf.section_vars(".maps"):
                raise KeyError(f"{self._obj.path} has no map {name!r}; maps: "
                               f"{', '.join(self) or 'none'}")
            self._maps[name] = Map(self._obj, name)
        return self._maps[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._obj.btf.section_vars(".maps"))

    def __len__(self) -> int:
        return len(self._obj.btf.section_vars(".maps"))


class Globals(Mapping[str, Any]):
    """The object's global variables (``.bss``, ``.data``, ``.rodata``), decoded;
    after load the live values.  ``globals[name] = value`` is
    :meth:`~fanbpf.handler.BpfObject.set_global`: any global before load,
    after it only writable ones (not ``.rodata``)."""

    _SECTIONS = (".bss", ".data", ".rodata")

    def __init__(self, obj: BpfObject) -> None:
        self._obj = obj

    def _names(self) -> list[str]:
        return self._obj.btf.section_vars(*self._SECTIONS)

    def __getitem__(self, name: str) -> Any:
        if name not in self._names():
            raise KeyError(f"{self._obj.path} has no global {name!r}")
        return self._obj.get_global(name)

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in self._names():
            raise KeyError(f"{self._obj.path} has no global {name!r}")
        self._obj.set_global(name, value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())
