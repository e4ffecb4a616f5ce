# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The rules maps of one loaded BPF object: rule sets by id.

The ``fanbpf_rules`` handler keeps what changes while an attachment lives
-- its roots, excluded subtrees and name lists -- in four maps keyed by the
attachment's rule set id (``src/bpf/fanbpf_rules_maps.h``), which the
handler object and the test program object both have.  :class:`RulesMaps`
reads and writes them for one loaded :class:`~fanbpf.handler.BpfObject`::

    maps = RulesMaps(handler.obj)
    set_id = maps.new_set_id()
    maps.write_set(set_id, args)          # a model.RulesArgs with that set_id
    ...attach with args.to_dict()...
    maps.add_nodes(set_id, [(dev, ino)], ROOT)
    print(maps.read_stats(set_id))
    maps.delete_set(set_id)               # after detaching

In front of the nodes map the handler keeps a filter, a bit per inode
number (``fanbpf_rules_node_filter``; the kernel steps past the ancestors
whose bit is clear): :class:`RulesMaps` sets a
node's bit before it inserts the node and rebuilds the filter from the
nodes map once enough nodes have gone, so that every node has its bit
(the handler would not see a node without one) and few bits are stale.
Change the nodes map only through :class:`RulesMaps`.

Keys and values are packed with :mod:`struct` in the layouts of
``src/bpf/fanbpf_rules.h``, checked against the object's BTF and its maps'
sizes when a :class:`RulesMaps` is made.  Bulk changes use the kernel's
batch operations.  Errors are OSErrors (the map operation's errno, e.g.
``E2BIG`` when a map is full) or ValueErrors (entries the handler cannot
hold: names of 256 bytes or more, more than ``MAX_GLOBS`` globs).
"""

from __future__ import annotations

import errno as _errno
import itertools
import struct
import threading
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fanbpf._binding import ffi, lib
from fanbpf.errors import check
from fanbpf.model import (MAX_GLOBS, NAME_MAX, NameList, Node, NodeKind, Pattern, PatternKind,
                          RulesArgs, listed_lengths)

if TYPE_CHECKING:
    from fanbpf.handler import BpfObject

__all__ = ["RulesMaps", "RulesStats", "ROOT", "EXCLUDED", "NODES", "NAMES", "GLOBS", "HOOKS",
           "SETS", "FILTER", "DIR_LENGTHS", "node_filter_bit"]

ROOT = NodeKind.ROOT
EXCLUDED = NodeKind.EXCLUDED

NODES = "fanbpf_rules_nodes"
NAMES = "fanbpf_rules_names"
GLOBS = "fanbpf_rules_globs"
HOOKS = "fanbpf_rules_hooks"
SETS = "fanbpf_rules_sets"
FILTER = "fanbpf_rules_node_filter"
DIR_LENGTHS = "fanbpf_rules_dir_lengths"

_BPF_ANY = 0
_BATCH = 1 << 14  #: elements per batch call

# (struct name, format, field offsets by name) of src/bpf/fanbpf_rules.h
_NODE_KEY = struct.Struct("=QQQ")  # set_id, dev, ino
_NAME_KEY = struct.Struct(f"=QII{NAME_MAX}s")  # set_id, list, len, name
_GLOB_KEY = struct.Struct("=QII")  # set_id, list, index
_PATTERN = struct.Struct(f"=II{NAME_MAX}s")  # kind, len, text
_STATS = struct.Struct("=QQQQ")  # delivered, skipped, denied, undecided
_LENGTHS = struct.Struct(f"=Q{NAME_MAX // 8}s")  # set_id, bits (little-endian words)
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")

_LAYOUTS = {
    "fanbpf_node_key": (_NODE_KEY, {"set_id": 0, "dev": 8, "ino": 16}),
    "fanbpf_name_key": (_NAME_KEY, {"set_id": 0, "list": 8, "len": 12, "name": 16}),
    "fanbpf_glob_key": (_GLOB_KEY, {"set_id": 0, "list": 8, "index": 12}),
    "fanbpf_pattern": (_PATTERN, {"kind": 0, "len": 4, "text": 8}),
    "fanbpf_rules_stats": (_STATS, {"delivered": 0, "skipped": 8, "denied": 16, "undecided": 24}),
    "fanbpf_name_lengths": (_LENGTHS, {"set_id": 0, "bits": 8}),
}
# map name -> (key layout, value layout); a hook's value is its args and its
# counts (struct fanbpf_rules_hook: checked by its size, counts read here)
_MAPS = {
    NODES: (_NODE_KEY, _U32),
    NAMES: (_NAME_KEY, _U32),
    GLOBS: (_GLOB_KEY, _PATTERN),
    HOOKS: (_U64, None),
    SETS: (_U64, _U64),
    FILTER: (_U32, _U64),
    DIR_LENGTHS: (_U32, _LENGTHS),
}

# fanbpf_node_filter_bit() of src/bpf/fanbpf_rules_maps.h
_MAX_SETS = 4096  # FANBPF_MAX_SETS
_FILTER_BITS_LOG = 21
_FILTER_WORDS = 1 << (_FILTER_BITS_LOG - 6)
# arrays this module indexes itself: map name -> the entries it counts on
_ENTRIES = {FILTER: _FILTER_WORDS, DIR_LENGTHS: _MAX_SETS}
#: rebuild the filter once this many nodes went since the last rebuild (or
#: more than were left then): stale bits cost lookups, rebuilds read every key
_FILTER_STALE_MIN = 4096


def _lengths_slot(set_id: int) -> int:
    """The set's slot in the DIR_LENGTHS array (FANBPF_MAX_SETS of them)."""
    return set_id % _MAX_SETS


def node_filter_bit(ino: int) -> int:
    """The filter bit of a node with inode number ``ino``: its low bits, the
    rule of the handler and of the kernel's ``bpf_iter_fanotify_parents_skip()``."""
    return ino & ((1 << _FILTER_BITS_LOG) - 1)


@dataclass(frozen=True)
class RulesStats:
    """What the handler decided for one attachment, summed over the CPUs.

    ``undecided`` events (a walk could not reach the top) are delivered and
    counted in ``delivered`` too.
    """

    delivered: int = 0
    skipped: int = 0
    denied: int = 0
    undecided: int = 0


class RulesMaps:
    """The rules maps of a loaded BPF object (the rules handler's or its test object's).

    Raises LookupError if ``obj`` lacks one of the maps, RuntimeError if
    their layout is not the one this module packs (a stale object).
    """

    def __init__(self, obj: BpfObject) -> None:
        self.obj = obj
        self._check_layout()
        self._ids = itertools.count(1)
        # The filter as written to the map; the lock keeps a node's bit and
        # the node together against a concurrent rebuild.
        self._filter = array("Q", bytes(8 * _FILTER_WORDS))
        self._nodes_lock = threading.Lock()
        self._stale = 0
        self._rebuilt_with = 0
        with self._nodes_lock:
            self._rebuild_filter()

    @classmethod
    def of(cls, obj: BpfObject) -> RulesMaps | None:
        """The object's rules maps, or None if it has none."""
        try:
            return cls(obj)
        except LookupError:
            return None

    def __repr__(self) -> str:
        return f"<RulesMaps of {self.obj!r}>"

    # -- layout --------------------------------------------------------------

    def _check_layout(self) -> None:
        btf = self.obj.btf
        for name, (layout, offsets) in _LAYOUTS.items():
            ctype = btf.find_struct(name)
            if ctype is None:
                raise LookupError(f"{self.obj.path} has no struct {name}: not a rules object")
            got = {field: off for field, (off, _) in ctype.fields.items()}
            if ctype.size != layout.size or got != offsets:
                raise RuntimeError(f"{self.obj.path}: struct {name} is not the layout fanbpf "
                                   f"packs ({ctype.size} bytes, {got}); rebuild the object")
        hook = btf.find_struct("fanbpf_rules_hook")
        if hook is None or "stats" not in hook.fields:
            raise RuntimeError(f"{self.obj.path}: no struct fanbpf_rules_hook with stats; "
                               "rebuild the object")
        self._stats_offset = hook.fields["stats"][0]
        self._stride: dict[str, int] = {}
        for name, (key, value) in _MAPS.items():
            value_size = hook.size if value is None else value.size
            info = ffi.new("struct fanbpf_map_info *")
            ret = lib.fanbpf_obj_map_info(self.obj._obj(), name.encode(), info)
            if ret == -_errno.ENOENT:
                raise LookupError(f"{self.obj.path} has no map {name}: not a rules object")
            self._call(ret, name)
            if info.key_size != key.size or info.value_size != value_size:
                raise RuntimeError(f"{self.obj.path}: map {name} has {info.key_size}-byte keys and "
                                   f"{info.value_size}-byte values, not {key.size} and "
                                   f"{value_size}; rebuild the object")
            self._stride[name] = info.value_stride
            if info.max_entries != _ENTRIES.get(name, info.max_entries):
                raise RuntimeError(f"{self.obj.path}: map {name} has {info.max_entries} entries, "
                                   f"not {_ENTRIES[name]}; rebuild the object")

    # -- raw operations ------------------------------------------------------

    def _call(self, ret: int, name: str) -> int:
        return check(ret, f"map {name}", filename=self.obj.path)

    def _update_batch(self, name: str, keys: bytes, values: bytes, count: int) -> None:
        key_size = _MAPS[name][0].size
        stride = self._stride[name]
        for start in range(0, count, _BATCH):
            n = min(_BATCH, count - start)
            k = keys[start * key_size:(start + n) * key_size]
            v = values[start * stride:(start + n) * stride]
            done = ffi.new("uint32_t *", n)
            ret = lib.fanbpf_obj_map_update_batch(self.obj._obj(), name.encode(),
                                                  ffi.from_buffer(k), len(k),
                                                  ffi.from_buffer(v), len(v), done, _BPF_ANY)
            if ret == -_errno.E2BIG or ret == -_errno.ENOMEM:
                raise OSError(-ret, f"the {name} map is full (it holds the entries of every "
                                    f"attachment of this handler; {done[0]} of {n} added)")
            self._call(ret, name)

    def _delete_keys(self, name: str, keys: Iterable[bytes]) -> int:
        """Delete keys that are there; the others are ignored.  Returns how many went."""
        keys = list(keys)
        deleted = 0
        while keys:
            chunk = b"".join(keys[:_BATCH])
            n = min(_BATCH, len(keys))
            done = ffi.new("uint32_t *", n)
            ret = lib.fanbpf_obj_map_delete_batch(self.obj._obj(), name.encode(),
                                                  ffi.from_buffer(chunk), len(chunk), done)
            deleted += done[0]
            if ret == -_errno.ENOENT:
                # the batch stops at a missing key: skip it, go on after it
                keys = keys[done[0] + 1:]
                continue
            self._call(ret, name)
            keys = keys[n:]
        return deleted

    def keys(self, name: str) -> list[bytes]:
        """Every key of map ``name`` (packed)."""
        size = _MAPS[name][0].size
        room = 1024
        while True:
            buf = ffi.new("char[]", room * size)
            count = ffi.new("uint64_t *")
            self._call(lib.fanbpf_obj_map_keys(self.obj._obj(), name.encode(), buf,
                                               room * size, count), name)
            if count[0] <= room:
                data = ffi.buffer(buf, count[0] * size)[:]
                return [data[i:i + size] for i in range(0, len(data), size)]
            room = count[0] + count[0] // 4

    def _value_stride(self, name: str) -> int:
        if name not in self._stride:
            info = ffi.new("struct fanbpf_map_info *")
            self._call(lib.fanbpf_obj_map_info(self.obj._obj(), name.encode(), info), name)
            self._stride[name] = info.value_stride
        return self._stride[name]

    def lookup(self, name: str, key: bytes) -> bytes | None:
        """The value of ``key`` in map ``name`` of the object (per CPU: every
        CPU's, each rounded up to 8 bytes), or None."""
        stride = self._value_stride(name)
        value = ffi.new("char[]", stride)
        ret = lib.fanbpf_obj_map_lookup(self.obj._obj(), name.encode(), ffi.from_buffer(key),
                                        len(key), value, stride, 0)
        if ret == -_errno.ENOENT:
            return None
        self._call(ret, name)
        return bytes(ffi.buffer(value))

    def update(self, name: str, key: bytes, value: bytes, flags: int = _BPF_ANY) -> None:
        """Set ``key`` to ``value`` in map ``name`` of the object."""
        self._call(lib.fanbpf_obj_map_update(self.obj._obj(), name.encode(), ffi.from_buffer(key),
                                             len(key), ffi.from_buffer(value), len(value),
                                             flags), name)

    def delete(self, name: str, key: bytes) -> bool:
        """Remove ``key`` from map ``name``; False if it was not there."""
        ret = lib.fanbpf_obj_map_delete(self.obj._obj(), name.encode(), ffi.from_buffer(key),
                                        len(key), 0)
        if ret == -_errno.ENOENT:
            return False
        self._call(ret, name)
        return True

    # -- rule sets -------------------------------------------------------------

    def new_set_id(self) -> int:
        """A new set id: they count up from 1 per RulesMaps (one per loaded
        handler), skipping any an attachment still holds."""
        for set_id in self._ids:
            if self.lookup(SETS, _U64.pack(set_id)) is None:
                return set_id
        raise AssertionError("unreachable")

    def _set_keys(self, set_id: int) -> dict[str, list[bytes]]:
        """The keys of every entry of a set, by map (stats excluded)."""
        prefix = _U64.pack(set_id)
        return {name: keys for name in (NODES, NAMES, GLOBS)
                if (keys := [k for k in self.keys(name) if k[:8] == prefix])}

    # -- the node filter ----------------------------------------------------------

    def _write_filter(self, words: Iterable[int]) -> None:
        words = sorted(set(words))
        if words:
            self._update_batch(FILTER, b"".join(_U32.pack(w) for w in words),
                               b"".join(_U64.pack(self._filter[w]) for w in words), len(words))

    def _set_bit(self, ino: int) -> int | None:
        """Set the node's bit in the filter copy: the word's index if it changed."""
        bit = node_filter_bit(ino)
        word, mask = bit >> 6, 1 << (bit & 63)
        if self._filter[word] & mask:
            return None
        self._filter[word] |= mask
        return word

    def _rebuild_filter(self) -> None:
        """The filter from the nodes map's keys (caller holds the nodes lock)."""
        old = self._filter
        self._filter = array("Q", bytes(8 * _FILTER_WORDS))
        keys = self.keys(NODES)
        for key in keys:
            self._set_bit(_NODE_KEY.unpack(key)[2])
        self._write_filter(w for w in range(_FILTER_WORDS) if self._filter[w] != old[w])
        self._stale, self._rebuilt_with = 0, len(keys)

    def _delete_node_keys(self, keys: Iterable[bytes]) -> int:
        """Delete node keys, then rebuild the filter if enough nodes went since the last time."""
        with self._nodes_lock:
            went = self._delete_keys(NODES, keys)
            self._stale += went
            if self._stale >= max(_FILTER_STALE_MIN, self._rebuilt_with):
                self._rebuild_filter()
        return went

    # -- nodes ---------------------------------------------------------------------

    def add_nodes(self, set_id: int, nodes: Iterable[Node], kind: NodeKind = ROOT) -> None:
        """Make each ``(dev, ino)`` a node of ``kind`` (ROOT, EXCLUDED or both) in the set."""
        keys, values = bytearray(), bytearray()
        count = 0
        value = _U32.pack(int(kind))
        changed: set[int] = set()
        with self._nodes_lock:
            for dev, ino in nodes:
                keys += _NODE_KEY.pack(set_id, dev, ino)
                values += value
                count += 1
                word = self._set_bit(ino)
                if word is not None:
                    changed.add(word)
            # the bits first: the handler must not meet a node without its bit
            self._write_filter(changed)
            if count:
                self._update_batch(NODES, bytes(keys), bytes(values), count)

    def delete_nodes(self, set_id: int, nodes: Iterable[Node]) -> int:
        """Remove nodes from the set (those it does not have are ignored)."""
        return self._delete_node_keys(_NODE_KEY.pack(set_id, dev, ino) for dev, ino in nodes)

    def nodes(self, set_id: int) -> dict[Node, NodeKind]:
        """The set's nodes: ``{(dev, ino): NodeKind}``."""
        out: dict[Node, NodeKind] = {}
        for key in self.keys(NODES):
            sid, dev, ino = _NODE_KEY.unpack(key)
            if sid == set_id:
                value = self.lookup(NODES, key)
                if value is not None:
                    out[(dev, ino)] = NodeKind(_U32.unpack(value)[0])
        return out

    def write_list(self, set_id: int, which: NameList, patterns: Iterable[Pattern]) -> None:
        """Replace list ``which`` (NAMES or DIRS) of the set: EXACT patterns
        into the names map, the others into the globs map by index."""
        patterns = tuple(patterns)
        exact = tuple(dict.fromkeys(p.text for p in patterns if p.kind == PatternKind.EXACT))
        globs = tuple(p for p in patterns if p.kind != PatternKind.EXACT)
        for text in exact:
            if not 0 < len(text) < NAME_MAX:
                raise ValueError(f"name {text!r}: names are 1 to {NAME_MAX - 1} bytes")
        for p in globs:
            if not 0 <= p.len < NAME_MAX or len(p.text) >= NAME_MAX:
                raise ValueError(f"pattern {p.text!r}: patterns are at most {NAME_MAX - 1} bytes")
        if len(globs) > MAX_GLOBS:
            raise ValueError(f"{len(globs)} patterns with wildcards; the handler takes at most "
                             f"{MAX_GLOBS} per list (exact names: any number)")
        self.delete_list(set_id, which)
        if exact:
            keys = b"".join(_NAME_KEY.pack(set_id, which, len(t), t) for t in exact)
            self._update_batch(NAMES, keys, _U32.pack(1) * len(exact), len(exact))
        if globs:
            keys = b"".join(_GLOB_KEY.pack(set_id, which, i) for i in range(len(globs)))
            values = b"".join(_PATTERN.pack(int(p.kind) & 0xFFFFFFFF, p.len, p.text)
                              for p in globs)
            self._update_batch(GLOBS, keys, values, len(globs))
        if which == NameList.DIRS:
            bits = listed_lengths(patterns)
            self.update(DIR_LENGTHS, _U32.pack(_lengths_slot(set_id)),
                        _LENGTHS.pack(set_id, bits.to_bytes(NAME_MAX // 8, "little")))

    def delete_list(self, set_id: int, which: NameList) -> None:
        """Remove every entry of list ``which`` of the set."""
        head = _GLOB_KEY.pack(set_id, which, 0)[:12]
        self._delete_keys(NAMES, (k for k in self.keys(NAMES) if k[:12] == head))
        self._delete_keys(GLOBS, (k for k in self.keys(GLOBS) if k[:12] == head))
        if which == NameList.DIRS:
            self._clear_lengths(set_id)

    def read_list(self, set_id: int, which: NameList
                  ) -> tuple[frozenset[bytes], dict[int, Pattern]]:
        """``(exact names, {index: Pattern})`` of list ``which`` of the set."""
        head = _GLOB_KEY.pack(set_id, which, 0)[:12]
        exact = frozenset(_NAME_KEY.unpack(k)[3][:_NAME_KEY.unpack(k)[2]]
                          for k in self.keys(NAMES) if k[:12] == head)
        globs: dict[int, Pattern] = {}
        for key in self.keys(GLOBS):
            if key[:12] == head:
                value = self.lookup(GLOBS, key)
                if value is not None:
                    kind, length, text = _PATTERN.unpack(value)
                    kind = PatternKind(kind) if kind in PatternKind.__members__.values() else kind
                    text = text[:length]
                    globs[_GLOB_KEY.unpack(key)[2]] = Pattern(
                        kind, text, None if length == len(text) else length)
        return exact, globs

    def write_set(self, set_id: int, args: RulesArgs) -> None:
        """Write the map entries of rule set ``args`` under ``set_id``: its map
        roots, excluded subtrees and both lists (replacing what was there)."""
        if not set_id:
            raise ValueError("set id 0 has no map entries")
        if args.set_id != set_id:
            args = replace(args, set_id=set_id)
        roots, excluded = set(args.map_roots), set(args.excluded)
        self.delete_nodes(set_id, self.nodes(set_id))
        self.add_nodes(set_id, roots - excluded, ROOT)
        self.add_nodes(set_id, excluded - roots, EXCLUDED)
        self.add_nodes(set_id, roots & excluded, ROOT | EXCLUDED)
        self.write_list(set_id, NameList.NAMES, args.patterns)
        self.write_list(set_id, NameList.DIRS, args.dirs)

    def _clear_lengths(self, set_id: int) -> None:
        """Give up the set's DIRS lengths slot, if it holds it (another set
        of the same slot may have taken it: then that one's stays)."""
        key = _U32.pack(_lengths_slot(set_id))
        value = self.lookup(DIR_LENGTHS, key)
        if value is not None and _U64.unpack_from(value)[0] == set_id:
            self.update(DIR_LENGTHS, key, bytes(_LENGTHS.size))

    def delete_set(self, set_id: int) -> None:
        """Remove every node, name and glob entry of the set (not its stats,
        which the handler's fp_free removes)."""
        self._clear_lengths(set_id)
        for name, keys in self._set_keys(set_id).items():
            if name == NODES:
                self._delete_node_keys(keys)
            else:
                self._delete_keys(name, keys)

    def read_stats(self, set_id: int) -> RulesStats:
        """The set's counters; FileNotFoundError if it
        has none (not attached, or detached)."""
        hook = self.lookup(SETS, _U64.pack(set_id))
        value = self.lookup(HOOKS, hook) if hook is not None else None
        if value is None:  # also when it was detached between the two lookups
            raise FileNotFoundError(_errno.ENOENT, f"rule set {set_id} has no stats: it is not "
                                    "attached")
        return RulesStats(*_STATS.unpack_from(value, self._stats_offset))
