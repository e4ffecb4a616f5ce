# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""hypothesis strategies: values for any BTF type (:func:`btf_values`: your
handler's init args), and for fanbpf's rules handler and file-system operations.

Importing this module needs hypothesis (``pip install hypothesis``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Literal, Optional

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from fanbpf import model
from fanbpf.btfargs import ArrayType, CType, EnumType, FloatType, IntType, StructType, UnsupportedType
from fanbpf.model import Chain, ChainNode, Facts, Node, Pattern, PatternKind, RulesArgs, Section
from fanbpf.testing.fs import OPS_DIRS, FsOp
from fanbpf.testing.oracle import RulesSpec

__all__ = ["btf_values", "property_settings", "file_names", "patterns", "pattern_lists",
           "rules_args", "facts", "fs_ops", "ancestries", "cgroup_paths", "rules_specs", "NODE_POOL", "DIR_NAMES",
           "DIR_PATTERNS"]


#: st.floats' width of the C floats btfargs encodes (float, double), by size.
_FLOAT_WIDTHS: dict[int, Literal[32, 64]] = {4: 32, 8: 64}


def btf_values(ctype: CType) -> st.SearchStrategy[Any]:
    """Values that :meth:`~fanbpf.btfargs.CType.encode` takes for ``ctype``:
    "a valid dict for this BTF struct", for a handler's init args
    (``btf_values(handler.args_type)``), a map's keys and values or a global.

    Integers in the type's range (``bool`` for C ``bool``), enum member
    names or values, ``str`` (no NUL, fitting with its NUL) for ``char``
    arrays, ``bytes`` for other byte arrays, lists up to an array's length,
    dicts with any subset of a struct's fields (of fields that share bytes,
    as an anonymous union's, at most one) and a union's one member.
    Fields no Python value maps to (pointers, bitfields) are left out.
    """
    if isinstance(ctype, EnumType):
        return st.sampled_from(sorted(ctype.members)) | st.sampled_from(
            sorted(set(ctype.members.values())))
    if isinstance(ctype, IntType):
        return st.booleans() if ctype.boolean else st.integers(ctype.min, ctype.max)
    if isinstance(ctype, FloatType) and ctype.size in _FLOAT_WIDTHS:
        return st.floats(width=_FLOAT_WIDTHS[ctype.size], allow_nan=False)
    if isinstance(ctype, ArrayType):
        if ctype.is_string:
            room = ctype.nelems - 1
            return st.text(st.characters(min_codepoint=1, exclude_categories=["Cs"]),
                           max_size=room).filter(lambda t: len(t.encode()) <= room)
        if ctype.is_bytes:
            return st.binary(max_size=ctype.nelems)
        return st.lists(btf_values(ctype.elem), max_size=ctype.nelems)
    if isinstance(ctype, StructType):
        fields = {k: (off, t) for k, (off, t) in ctype.fields.items()
                  if not isinstance(t, UnsupportedType) and t.size}
        if ctype.union:
            return st.one_of(st.just({}), *(st.fixed_dictionaries({k: btf_values(t)})
                                           for k, (_, t) in fields.items()))
        groups: list[list[str]] = []  # fields that share bytes, in offset order
        end = -1
        for k, (off, t) in sorted(fields.items(), key=lambda f: f[1][0]):
            if off < end:
                groups[-1].append(k)
            else:
                groups.append([k])
            end = max(end, off + t.size)
        parts = [st.one_of(st.just({}), *(st.fixed_dictionaries({k: btf_values(fields[k][1])})
                                          for k in group)) for group in groups]
        return st.tuples(*parts).map(lambda dicts: {k: v for d in dicts for k, v in d.items()})
    raise TypeError(f"no values to draw for {ctype!r}")


def property_settings(**overrides: Any) -> settings:
    """hypothesis settings for fanbpf's property tests: ``FANBPF_EXAMPLES``
    examples (default 500), derandomized and without an example database,
    so that every run tries the same examples; no deadline (BPF loads and
    tmpfs mounts vary)."""
    options: dict[str, Any] = dict(  # settings' keyword arguments
        max_examples=int(os.environ.get("FANBPF_EXAMPLES", "500")),
        derandomize=True, database=None, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    options.update(overrides)
    return settings(**options)



#: A few (dev, ino) values that roots, exclusions and chains are drawn
#: from, so that they meet often; includes edge values.
NODE_POOL = ((5, 2), (5, 3), (5, 4), (7, 2), (0, 0), (0xFFFFF, 1), (1, (1 << 64) - 1))
#: Directory names chains are drawn from, and the DIRS patterns that hit them.
DIR_NAMES = (b".git", b"node_modules", b"a.egg-info", b"src", b"build", b"/", b"x" * 255)
DIR_PATTERNS = (Pattern(PatternKind.EXACT, b".git"), Pattern(PatternKind.EXACT, b"node_modules"),
                Pattern(PatternKind.GLOB, b"*.egg-info"), Pattern(PatternKind.PREFIX, b"bui"),
                Pattern(PatternKind.SUFFIX, b"rc"), Pattern(PatternKind.GLOB, b"?"),
                Pattern(PatternKind.GLOB, b"x*x"), Pattern(PatternKind.EXACT, b"x" * 255),
                Pattern(PatternKind.GLOB, b"*"))

_NAME_ALPHABET = b"ab.*?x-"
_MASK_BITS = (0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800,
              0x1000, 0x10000, 0x20000, 0x40000, 0x08000000, 0x10000000, 0x40000000)
_PERM_BITS = (0x10000, 0x20000, 0x40000)


def _bits(pool: Sequence[int]) -> st.SearchStrategy[int]:
    return st.lists(st.sampled_from(pool), max_size=4).map(lambda bits: sum(set(bits)))


def _small(max_size: int = 12, min_size: int = 1) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=max_size).map(
        lambda b: bytes(_NAME_ALPHABET[x % len(_NAME_ALPHABET)] for x in b))


def file_names(max_size: int = model.NAME_MAX - 1) -> st.SearchStrategy[bytes]:
    """File names as the kernel has them: 1..255 bytes, no NUL, no '/'.

    Mostly short names over a small alphabet (so that patterns hit them,
    ``*`` and ``?`` included as literal bytes), sometimes any bytes and
    sometimes long ones.
    """
    anything = st.binary(min_size=1, max_size=max_size).map(
        lambda b: bytes(x if x not in (0, 0x2F) else 0x61 for x in b))
    long = st.integers(min_value=max(1, max_size - 8), max_value=max_size).flatmap(
        lambda n: st.sampled_from([b"a", b"ab", b"a*"]).map(lambda unit: (unit * n)[:n]))
    return st.one_of(_small(), _small(), _small(), anything, long)


def patterns(valid: bool = True, kinds: Iterable[int] = tuple(PatternKind)
             ) -> st.SearchStrategy[Pattern]:
    """:class:`fanbpf.model.Pattern` s of texts up to 255 bytes (mostly
    short); ``valid=False`` also draws bad kinds and lengths, which match
    nothing."""
    long = st.integers(200, model.NAME_MAX - 1).flatmap(
        lambda n: st.sampled_from([b"a", b"a*", b"*a", b"?"]).map(lambda unit: (unit * n)[:n]))
    text = st.one_of(_small(31, 0), _small(31, 0), long)
    if valid:  # exact names are never empty
        return st.builds(Pattern, st.sampled_from(list(kinds)), text).map(
            lambda p: p if p.text or p.kind != PatternKind.EXACT else Pattern(p.kind, b"a"))
    return st.builds(Pattern, st.one_of(st.sampled_from(list(kinds)), st.integers(0, 6)), text,
                     st.one_of(st.none(), st.integers(0, 300)))


def pattern_lists(max_exact: int = 6, max_globs: int = 6, pool: Sequence[Pattern] = ()
                  ) -> st.SearchStrategy[tuple[Pattern, ...]]:
    """A name list: exact names and globs (any order), from ``pool`` too."""
    exact = st.lists(st.builds(Pattern, st.just(PatternKind.EXACT), file_names()),
                     max_size=max_exact)
    globs = st.lists(patterns(kinds=(PatternKind.PREFIX, PatternKind.SUFFIX, PatternKind.GLOB)),
                     max_size=max_globs)
    picked = st.lists(st.sampled_from(pool), max_size=3) if pool else st.just([])
    return st.tuples(exact, globs, picked).flatmap(
        lambda t: st.permutations(t[0] + t[1] + t[2])).map(tuple)


def _with_set_id(args: RulesArgs) -> RulesArgs:
    """Valid args: sections that need the maps get a set id."""
    if args.sections & (Section.NAMES | Section.EXCLUDE) and not args.set_id:
        return replace(args, set_id=1)
    if not args.set_id and len(args.roots) > model.MAX_ROOTS:
        return replace(args, set_id=2)
    return args


def rules_args(valid: bool = True, nodes: Sequence[Node] = NODE_POOL
               ) -> st.SearchStrategy[RulesArgs]:
    """:class:`fanbpf.model.RulesArgs` over ``nodes``; ``valid=False`` draws
    structs fp_init may refuse.  Roots land in the init args, the map, or
    both; patterns and excluded directory names come from pools that the
    :func:`facts` names hit."""
    node = st.sampled_from(nodes)
    ids = st.sampled_from([0, 1, 100, 4242, (1 << 32) - 1])
    comm = st.binary(max_size=model.COMM_LEN - 1).map(
        lambda b: bytes(b"bashx"[x % 5] for x in b))
    roots = st.lists(node, max_size=model.MAX_ROOTS + 4)
    common: dict[str, st.SearchStrategy[Any]] = dict(  # RulesArgs' fields, of several types
        sections=_bits([1, 2, 4, 8]),
        deny_errno=st.one_of(st.just(0), st.integers(1, model.ERRNO_MAX)),
        set_id=st.sampled_from([0, 1, 77, (1 << 64) - 1]),
        roots=roots,
        args_roots=st.one_of(st.none(), st.lists(node, max_size=model.MAX_ROOTS).map(tuple)),
        excluded=st.lists(node, max_size=4),
        names_mode=st.sampled_from([0, 1]),
        patterns=pattern_lists(pool=DIR_PATTERNS),
        events=st.one_of(st.just(0), _bits(_MASK_BITS)),
        dirs=pattern_lists(pool=DIR_PATTERNS),
        process_flags=_bits([1, 2, 4, 8, 16, 32, 64]),
        tgid=ids, not_tgid=ids, uid=ids,
        cgroup_id=st.sampled_from([0, 1, 12345, (1 << 64) - 1]),
        comm=comm,
        ancestor_tgid=_TGIDS,
        cgroup_tree_id=_CGROUPS,
        cgroup_tree_level=st.sampled_from([0, 1, 2, 3, 7, 8, (1 << 32) - 1]),
    )
    if valid:
        return st.builds(RulesArgs, **common).map(_with_set_id).filter(
            lambda a: model.check(a) == 0)
    bad = dict(common)
    bad.update(
        sections=st.integers(0, 31),
        deny_errno=st.one_of(st.integers(-5, 5), st.integers(4090, 4100),
                             st.integers(-(1 << 31), (1 << 31) - 1)),
        nr_roots=st.one_of(st.none(), st.integers(0, 20), st.just((1 << 32) - 1)),
        subtree_reserved=st.sampled_from([0, 0, 1]),
        names_mode=st.integers(0, 3),
        names_reserved=st.sampled_from([0, 0, 1]),
        nr_exact=st.one_of(st.none(), st.integers(0, 3)),
        nr_globs=st.one_of(st.none(), st.integers(0, 70)),
        dirs_nr_globs=st.one_of(st.none(), st.integers(0, 70), st.just((1 << 32) - 1)),
        process_flags=st.integers(0, 255),
        ancestor_tgid=st.one_of(st.just(0), _TGIDS),
        cgroup_tree_id=st.one_of(st.just(0), _CGROUPS),
    )
    return st.builds(RulesArgs, **bad)


#: tgids and cgroup ids that ancestries, cgroup paths and args are drawn from (never 0:
#: the check refuses ancestor 0 and cgroup 0, the idle task is added at the top).
_TGIDS = st.sampled_from([1, 2, 100, 4242, (1 << 32) - 1])
_CGROUPS = st.sampled_from([1, 2, 12345, (1 << 64) - 1])


def ancestries() -> st.SearchStrategy[tuple[int, ...]]:
    """Ancestries as a walk sees them: short ones ending at the idle task
    (tgid 0), and long ones around ``MAX_ANCESTRY`` (the walk's bound)."""
    tgids = st.one_of(_TGIDS, st.integers(3, 99))
    short = st.lists(tgids, max_size=6).map(lambda t: tuple(t) + (0,))
    deep = st.lists(tgids, min_size=model.MAX_ANCESTRY - 3, max_size=model.MAX_ANCESTRY + 3)
    return st.one_of(short, short, deep.map(tuple))


def cgroup_paths() -> st.SearchStrategy[tuple[int, ...]]:
    """A task's cgroup v2 and those above it, the root (id 1) first."""
    # at most 8 levels: the test program's FANBPF_TEST_CGROUP_DEPTH
    return st.lists(_CGROUPS, max_size=7).map(lambda p: (1,) + tuple(p))


def _dentries(nodes: Sequence[Node], first_dir: bool) -> st.SearchStrategy[Chain]:
    """The dentries of a walk, nearest first, the superblock's root last:
    short ones drawn node by node, and deep ones around ``MAX_DEPTH`` --
    filler directories (never in ``nodes``) with a few drawn nodes placed
    at drawn depths."""
    node = st.tuples(st.sampled_from(nodes), st.one_of(st.none(), st.sampled_from(DIR_NAMES)))
    short = st.lists(node, min_size=1, max_size=6)

    @st.composite
    def deep(draw: st.DrawFn) -> list[tuple[Node, Optional[bytes]]]:
        length = draw(st.integers(model.MAX_DEPTH - 3, model.MAX_DEPTH + 3))
        out: list[tuple[Node, Optional[bytes]]] = [((9, 1 << 40 | i), b"d")
                                                    for i in range(length)]
        for _ in range(draw(st.integers(0, 2))):
            out[draw(st.integers(0, length - 1))] = draw(node)
        return out

    def chain(items: Sequence[tuple[Node, Optional[bytes]]]) -> Chain:
        return tuple(ChainNode(dev, ino, name, first_dir if i == 0 else True)
                     for i, ((dev, ino), name) in enumerate(items))

    return st.one_of(short, short, short, deep()).map(chain)


def facts(nodes: Sequence[Node] = NODE_POOL) -> st.SearchStrategy[Facts]:
    """:class:`fanbpf.model.Facts` whose chains use ``nodes`` and
    :data:`DIR_NAMES` (deep ones included): a walk from the dentry (or the
    inode's) and one from the dir after the virtual node of the event's
    name, either of them missing (not both, mostly); some from an inode
    without a dentry (:data:`~fanbpf.model.NO_DENTRY`) or a dir without
    one (the virtual node alone)."""

    @st.composite
    def build(draw: st.DrawFn) -> Facts:
        mask = draw(st.one_of(_bits(_MASK_BITS), st.sampled_from(_PERM_BITS)))
        ondir = bool(mask & model.ONDIR)
        name = draw(st.one_of(st.none(), file_names(), st.sampled_from(DIR_NAMES[:-2])))
        shape = draw(st.sampled_from(["dentry", "dir", "both", "both", "none", "no dentry"]))
        chain0: model.Walked = ()
        chain1: Chain = ()
        if shape in ("dentry", "both"):
            chain0 = draw(_dentries(nodes, ondir))
        elif shape == "no dentry":
            chain0 = model.NO_DENTRY
        if shape in ("dir", "both"):
            no_dentry = draw(st.integers(0, 5)) == 0
            chain1 = model.dir_chain(name, mask, () if no_dentry else draw(_dentries(nodes, True)))
        return Facts(
            mask=mask, name=name,
            tgid=draw(st.sampled_from([0, 1, 100, 4242, (1 << 32) - 1])),
            uid=draw(st.sampled_from([0, 1, 100, 4242, (1 << 32) - 1])),
            cgroup_id=draw(st.sampled_from([0, 1, 12345, (1 << 64) - 1])),
            comm=draw(st.binary(max_size=model.COMM_LEN - 1).map(
                lambda b: bytes(b"bashx"[x % 5] for x in b))),
            chains=(chain0, chain1),
            ancestors=draw(ancestries()),
            cgroup_path=draw(cgroup_paths()),
        )

    return build()


_FS_NAMES = ("a", "b", "c.log", "d.txt")


def fs_ops(dirs: Sequence[str] = ("in", "out"), max_ops: int = 12, procs: int = 2,
           names: Sequence[str] = _FS_NAMES) -> st.SearchStrategy[list[FsOp]]:
    """Lists of :class:`FsOp` that are valid in sequence, starting from ``dirs``.

    The strategy simulates the tree, so every op applies: creates and
    mkdirs use fresh names, renames go to names that do not exist (within
    a directory or across directories, directories included, never into
    themselves), rmdir only empties.  ``procs`` worker processes may
    perform ops besides the test process.
    """

    @st.composite
    def build(draw: st.DrawFn) -> list[FsOp]:
        tree = {d: "dir" for d in dirs}  # relative path -> "dir" | "file"
        ops: list[FsOp] = []
        for _ in range(draw(st.integers(0, max_ops))):
            all_dirs = [""] + sorted(p for p, kind in tree.items() if kind == "dir")
            files = sorted(p for p, kind in tree.items() if kind == "file")
            movable = sorted(p for p in tree if p not in dirs)
            empty = [p for p in movable if tree[p] == "dir"
                     and not any(q.startswith(p + "/") for q in tree)]
            choices = ["create", "mkdir"]
            if files:
                choices += ["write", "open", "chmod", "unlink"]
            if empty:
                choices.append("rmdir")
            if movable:
                choices.append("rename")
            kind = draw(st.sampled_from(choices))
            proc = draw(st.integers(0, procs))

            def fresh(parent: str) -> str:
                taken = {p for p in tree}
                free = [n for n in names if os.path.join(parent, n) not in taken]
                name = draw(st.sampled_from(free)) if free else \
                    f"n{draw(st.integers(0, 99))}"
                return os.path.join(parent, name) if parent else name

            if kind in ("create", "mkdir"):
                path = fresh(draw(st.sampled_from(all_dirs)))
                if path in tree:
                    continue
                tree[path] = "file" if kind == "create" else "dir"
                ops.append(FsOp(kind, path, proc=proc))
            elif kind in ("write", "open", "chmod", "unlink"):
                path = draw(st.sampled_from(files))
                if kind == "unlink":
                    del tree[path]
                ops.append(FsOp(kind, path, proc=proc))
            elif kind == "rmdir":
                path = draw(st.sampled_from(empty))
                del tree[path]
                ops.append(FsOp(kind, path, proc=proc))
            else:
                src = draw(st.sampled_from(movable))
                targets = [d for d in all_dirs if d != src and not d.startswith(src + "/")]
                dest = fresh(draw(st.sampled_from(targets)))
                if dest in tree:
                    continue
                for p in sorted(tree):
                    if p == src or p.startswith(src + "/"):
                        tree[dest + p[len(src):]] = tree.pop(p)
                ops.append(FsOp("rename", src, dest, proc=proc))
        return ops

    return build()


def rules_specs(dirs: Sequence[str] = OPS_DIRS, procs: int = 2
                ) -> st.SearchStrategy[RulesSpec]:
    """:class:`RulesSpec` s over a test tree: subtree roots and excluded
    subtrees among ``dirs`` (``""`` is the tree's base), excluded directory
    names and name patterns over the names :func:`fs_ops` uses, and process
    conditions on the test process and ``procs`` workers."""
    proc = st.one_of(st.none(), st.integers(0, procs))
    where = st.sampled_from(("",) + tuple(dirs))
    return st.builds(
        RulesSpec,
        subtree=st.lists(where, max_size=3, unique=True).map(tuple),
        exclude_dirs=st.one_of(st.just(()), st.lists(st.sampled_from(
            ["a", "b", "in", "*.log", "?", "c*", "d.txt"]), min_size=1, max_size=3,
            unique=True).map(tuple)),
        exclude_subtrees=st.one_of(
            st.just(()), st.just(()),
            st.lists(where, min_size=1, max_size=2, unique=True).map(tuple)),
        names=st.one_of(st.just(()), st.lists(st.sampled_from(
            ["*.log", "a", "?", "d*", "*", "*.txt", "b*", "[x]"]), min_size=1, max_size=3,
            unique=True).map(tuple)),
        exclude_names=st.booleans(),
        events=st.sampled_from([0, 0, 0x100, 0x20 | 0x8, 0x200 | 0x400]),
        exclude_proc=proc,
        only_proc=st.one_of(st.none(), st.none(), st.integers(0, procs)),
        descendants_of=st.one_of(st.none(), st.none(), st.integers(0, procs)),
    )


