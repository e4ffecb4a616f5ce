# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""hypothesis strategies for fanbpf's rules handler and file-system operations.

Importing this module needs hypothesis (``pip install hypothesis``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from fanbpf import model
from fanbpf.model import Facts, Pattern, PatternKind, RulesArgs
from fanbpf.testing.fs import OPS_DIRS, FsOp
from fanbpf.testing.oracle import RulesSpec

__all__ = ["property_settings", "file_names", "patterns", "rules_args", "facts", "fs_ops",
           "ancestries", "cgroup_paths",
           "rules_specs", "NODE_POOL"]


def property_settings(**overrides):
    """hypothesis settings for fanbpf's property tests: ``FANBPF_EXAMPLES``
    examples (default 500), derandomized and without an example database,
    so that every run tries the same examples; no deadline (BPF loads and
    tmpfs mounts vary)."""
    options = dict(max_examples=int(os.environ.get("FANBPF_EXAMPLES", "500")),
                   derandomize=True, database=None, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    options.update(overrides)
    return settings(**options)



#: A few (dev, ino) values that roots and chains are drawn from, so that
#: they meet often; includes edge values.
NODE_POOL = ((5, 2), (5, 3), (5, 4), (7, 2), (0, 0), (0xFFFFF, 1), (1, (1 << 64) - 1))

_NAME_ALPHABET = b"ab.*?x-"
_MASK_BITS = (0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800,
              0x1000, 0x10000, 0x20000, 0x40000, 0x08000000, 0x10000000, 0x40000000)
_PERM_BITS = (0x10000, 0x20000, 0x40000)


def _bits(pool):
    return st.lists(st.sampled_from(pool), max_size=4).map(lambda bits: sum(set(bits)))


def file_names(max_size: int = model.NAME_MAX - 1):
    """File names as the kernel has them: 1..255 bytes, no NUL, no '/'.

    Mostly short names over a small alphabet (so that patterns hit them,
    ``*`` and ``?`` included as literal bytes), sometimes any bytes and
    sometimes long ones.
    """
    small = st.binary(min_size=1, max_size=12).map(
        lambda b: bytes(_NAME_ALPHABET[x % len(_NAME_ALPHABET)] for x in b))
    anything = st.binary(min_size=1, max_size=max_size).map(
        lambda b: bytes(x if x not in (0, 0x2F) else 0x61 for x in b))
    long = st.integers(min_value=max(1, max_size - 8), max_value=max_size).flatmap(
        lambda n: st.sampled_from([b"a", b"ab", b"a*"]).map(lambda unit: (unit * n)[:n]))
    return st.one_of(small, small, small, anything, long)


def patterns(valid: bool = True):
    """:class:`fanbpf.model.Pattern` s; ``valid=False`` also draws bad kinds and lengths."""
    text = st.binary(max_size=model.PATTERN_MAX - 1).map(
        lambda b: bytes(_NAME_ALPHABET[x % len(_NAME_ALPHABET)] for x in b))
    kinds = st.sampled_from(list(PatternKind))
    if valid:
        return st.builds(Pattern, kinds, text)
    return st.builds(Pattern, st.one_of(kinds, st.integers(0, 6)), text,
                     st.one_of(st.none(), st.integers(0, 40)))


def rules_args(valid: bool = True, nodes=NODE_POOL):
    """:class:`fanbpf.model.RulesArgs`; ``valid=False`` draws structs fp_init may refuse."""
    node = st.sampled_from(nodes)
    ids = st.sampled_from([0, 1, 100, 4242, (1 << 32) - 1])
    comm = st.binary(max_size=model.COMM_LEN - 1).map(
        lambda b: bytes(b"bashx"[x % 5] for x in b))
    common = dict(
        sections=_bits([1, 2, 4]),
        deny_errno=st.one_of(st.just(0), st.integers(1, model.ERRNO_MAX)),
        roots=st.lists(node, max_size=model.MAX_ROOTS).map(tuple),
        names_mode=st.sampled_from([0, 1]),
        patterns=st.lists(patterns(), max_size=model.MAX_PATTERNS).map(tuple),
        events=st.one_of(st.just(0), _bits(_MASK_BITS)),
        process_flags=_bits([1, 2, 4, 8, 16, 32, 64]),
        tgid=ids, not_tgid=ids, uid=ids,
        cgroup_id=st.sampled_from([0, 1, 12345, (1 << 64) - 1]),
        comm=comm,
        ancestor_tgid=_TGIDS,
        cgroup_tree_id=_CGROUPS,
        cgroup_tree_level=st.sampled_from([0, 1, 2, 3, 7, 8, (1 << 32) - 1]),
    )
    if valid:
        return st.builds(RulesArgs, **common)
    bad = dict(common)
    bad.update(
        sections=st.integers(0, 15),
        deny_errno=st.one_of(st.integers(-5, 5), st.integers(4090, 4100),
                             st.integers(-(1 << 31), (1 << 31) - 1)),
        nr_roots=st.one_of(st.none(), st.integers(0, 20), st.just((1 << 32) - 1)),
        subtree_reserved=st.sampled_from([0, 0, 1]),
        names_mode=st.integers(0, 3),
        patterns=st.lists(patterns(valid=False), max_size=model.MAX_PATTERNS).map(tuple),
        nr_patterns=st.one_of(st.none(), st.integers(0, 10)),
        process_flags=st.integers(0, 255),
        ancestor_tgid=st.one_of(st.just(0), _TGIDS),
        cgroup_tree_id=st.one_of(st.just(0), _CGROUPS),
    )
    return st.builds(RulesArgs, **bad)


#: tgids and cgroup ids that ancestries, cgroup paths and args are drawn from (never 0:
#: the check refuses ancestor 0 and cgroup 0, the idle task is added at the top).
_TGIDS = st.sampled_from([1, 2, 100, 4242, (1 << 32) - 1])
_CGROUPS = st.sampled_from([1, 2, 12345, (1 << 64) - 1])


def ancestries():
    """Ancestries as a walk sees them: short ones ending at the idle task
    (tgid 0), and long ones around ``MAX_ANCESTRY`` (the walk's bound)."""
    tgids = st.one_of(_TGIDS, st.integers(3, 99))
    short = st.lists(tgids, max_size=6).map(lambda t: tuple(t) + (0,))
    deep = st.lists(tgids, min_size=model.MAX_ANCESTRY - 3, max_size=model.MAX_ANCESTRY + 3)
    return st.one_of(short, short, deep.map(tuple))


def cgroup_paths():
    """A task's cgroup v2 and those above it, the root (id 1) first."""
    # at most 8 levels: the test program's FANBPF_TEST_CGROUP_DEPTH
    return st.lists(_CGROUPS, max_size=7).map(lambda p: (1,) + tuple(p))


def facts(nodes=NODE_POOL):
    """:class:`fanbpf.model.Facts` whose chains use ``nodes`` (deep ones included)."""
    node = st.sampled_from(nodes)
    chain = st.one_of(
        st.lists(node, max_size=6),
        st.lists(node, min_size=model.CHAIN_MAX - 3, max_size=model.CHAIN_MAX),
    ).map(tuple)
    mask = st.one_of(_bits(_MASK_BITS), st.sampled_from(_PERM_BITS))
    return st.builds(
        Facts,
        mask=mask,
        name=st.one_of(st.none(), file_names()),
        tgid=st.sampled_from([0, 1, 100, 4242, (1 << 32) - 1]),
        uid=st.sampled_from([0, 1, 100, 4242, (1 << 32) - 1]),
        cgroup_id=st.sampled_from([0, 1, 12345, (1 << 64) - 1]),
        comm=st.binary(max_size=model.COMM_LEN - 1).map(lambda b: bytes(b"bashx"[x % 5] for x in b)),
        chains=st.tuples(chain, chain),
        ancestors=ancestries(),
        cgroup_path=cgroup_paths(),
    )


_FS_NAMES = ("a", "b", "c.log", "d.txt")


def fs_ops(dirs=("in", "out"), max_ops: int = 12, procs: int = 2, names=_FS_NAMES):
    """Lists of :class:`FsOp` that are valid in sequence, starting from ``dirs``.

    The strategy simulates the tree, so every op applies: creates and
    mkdirs use fresh names, renames go to names that do not exist (within
    a directory or across directories, directories included, never into
    themselves), rmdir only empties.  ``procs`` worker processes may
    perform ops besides the test process.
    """

    @st.composite
    def build(draw):
        tree = {d: "dir" for d in dirs}  # relative path -> "dir" | "file"
        ops = []
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

            def fresh(parent):
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


def rules_specs(dirs=OPS_DIRS, procs: int = 2):
    """:class:`RulesSpec` s over a test tree: subtree roots among ``dirs`` (``""``
    is the tree's root), name patterns over the names :func:`fs_ops` uses,
    and process conditions on the test process and ``procs`` workers."""
    proc = st.one_of(st.none(), st.integers(0, procs))
    return st.builds(
        RulesSpec,
        subtree=st.lists(st.sampled_from(("",) + tuple(dirs)), max_size=3, unique=True).map(tuple),
        names=st.one_of(st.just(()), st.lists(st.sampled_from(
            ["*.log", "a", "?", "d*", "*", "*.txt", "b*", "[x]"]), min_size=1, max_size=3,
            unique=True).map(tuple)),
        exclude_names=st.booleans(),
        events=st.sampled_from([0, 0, 0x100, 0x20 | 0x8, 0x200 | 0x400]),
        exclude_proc=proc,
        only_proc=st.one_of(st.none(), st.none(), st.integers(0, procs)),
        descendants_of=st.one_of(st.none(), st.none(), st.integers(0, procs)),
    )


