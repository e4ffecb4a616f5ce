"""The compiled fanbpf_rules logic against the Python model, on the host kernel.

src/bpf/fanbpf_rules_test.bpf.c runs the same fanbpf_rules_logic.h code as
the struct_ops handler in a SEC("syscall") program, which BPF_PROG_TEST_RUN
can run on any kernel, reading the rule set from its own copy of the rules
maps (filled here through fanbpf.rulesmaps); hypothesis draws facts and
rule sets and every property compares the BPF answer with fanbpf/model.py.

Example counts: every property runs FANBPF_EXAMPLES examples (default 500),
derandomized (the same examples on every run, no example database), so a
failure reproduces exactly.  Set FANBPF_EXAMPLES higher for a longer hunt.
"""

import errno
from dataclasses import replace

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from fanbpf import model, rulesmaps
from fanbpf.model import ChainNode, Facts, Match, Pattern, PatternKind, RulesArgs, Section, Walk
from fanbpf.rulesmaps import EXCLUDED, ROOT, RulesStats
from fanbpf.testing.fs import FsOp, Workers
from fanbpf.testing.strategies import (DIR_NAMES, facts, file_names, fs_ops, pattern_lists,
                                       patterns, property_settings, rules_args)

PROPERTY = property_settings()
D = model.MAX_DEPTH
S, X, N, P = Section.SUBTREE, Section.EXCLUDE, Section.NAMES, Section.PROCESS


def bpf_outcome(logic, f, a):
    """(decision, match) of the compiled logic, after checking that it
    agrees with the model on each walk it made."""
    check, decision, match, walks = logic.run_event(f, a)
    assert check == 0, f"the BPF check refused args the model accepts: {a!r}"
    for chain, w in zip(f.chains, walks):
        if w != Walk.NONE:
            assert w == model.walk(a, chain), f"walk of {chain[:4] if chain else chain!r}..."
    return decision, Match(match)


def agree(logic, f, a):
    want = model.outcome(f, a)
    assert bpf_outcome(logic, f, a) == want
    return want


def dentries(*items, first_dir=True):
    """A chain of dentries from (dev, ino[, name]) items, the last being the top."""
    return tuple(ChainNode(item[0], item[1], item[2] if len(item) > 2 else None,
                           first_dir if i == 0 else True) for i, item in enumerate(items))


# --- properties ---------------------------------------------------------------------

@PROPERTY
@given(args=st.one_of(rules_args(valid=False), rules_args()))
def test_check_matches_model(fanbpf_rules_logic, args):
    """fp_init accepts exactly the args the model accepts."""
    want = model.check(args)
    event(f"check {want}")
    assert fanbpf_rules_logic.check(args) == want


@PROPERTY
@given(args=rules_args(), f=facts())
def test_decision_matches_model(fanbpf_rules_logic, args, f):
    """The whole decision, every section drawn, rule sets in the maps."""
    decision, match = agree(fanbpf_rules_logic, f, args)
    event(f"decision {'deny' if decision < 0 else decision}, {match.name}")


@PROPERTY
@given(args=rules_args(), f=facts())
def test_walk_sections_match_model(fanbpf_rules_logic, args, f):
    """SUBTREE and EXCLUDE alone (the other sections off), so every walk
    is made: roots in the args and the map, excluded nodes, DIRS names."""
    args = replace(args, sections=args.sections & (S | X) or S)
    decision, match = agree(fanbpf_rules_logic, f, args)
    event(f"{args.sections!r} {match.name}")


@PROPERTY
@given(pattern=patterns(), name=file_names())
@example(Pattern(PatternKind.GLOB, b"*a" * 127 + b"b"), b"a" * 255)
@example(Pattern(PatternKind.GLOB, b"*" * 255), b"x" * 255)
@example(Pattern(PatternKind.GLOB, b"?" * 255), b"x" * 255)
@example(Pattern(PatternKind.GLOB, b"?" * 254), b"x" * 255)
@example(Pattern(PatternKind.SUFFIX, b"a" * 254 + b"b"), b"a" * 255)
@example(Pattern(PatternKind.PREFIX, b"a" * 255), b"a" * 255)
@example(Pattern(PatternKind.PREFIX, b"*"), b"*x")
@example(Pattern(PatternKind.EXACT, b"a?"), b"ab")
@example(Pattern(PatternKind.GLOB, b""), b"a")
def test_pattern_matches_model(fanbpf_rules_logic, pattern, name):
    """One pattern (up to 255 bytes) against one name, NAMES only, both modes."""
    f = Facts(mask=0x100, name=name)
    for mode in (model.NamesMode.INCLUDE, model.NamesMode.EXCLUDE):
        args = RulesArgs(sections=N, set_id=3, names_mode=mode, patterns=(pattern,))
        hit = model.pattern_matches(pattern, name)
        event(f"{PatternKind(pattern.kind).name} {'hit' if hit else 'miss'}")
        want = model.SKIP if hit == bool(mode) else model.SEND
        assert model.decide(f, args) == want
        assert bpf_outcome(fanbpf_rules_logic, f, args)[0] == want


@property_settings(max_examples=max(20, property_settings().max_examples // 10))
@given(names=pattern_lists(max_exact=300, max_globs=model.MAX_GLOBS),
       f=facts(), mode=st.sampled_from([0, 1]))
def test_many_long_patterns_match_model(fanbpf_rules_logic, names, f, mode):
    """Lists far past the old 8 patterns: hundreds of exact names, up to 64 globs."""
    args = RulesArgs(sections=N, set_id=5, names_mode=mode, patterns=names)
    agree(fanbpf_rules_logic, f, args)


@PROPERTY
@given(roots=st.lists(st.sampled_from([(5, 2), (5, 3), (9, 7), (0, 0)]), max_size=20),
       depth=st.integers(1, D + 3), at=st.integers(0, D + 2), dir_walk=st.booleans(),
       in_map=st.booleans())
@example([(9, 7)], D, D - 1, False, True)  # the last dentry looked at
@example([(9, 7)], D + 1, D, False, True)  # the first one not looked at
@example([(9, 7)], D, D - 1, True, False)  # the virtual node is no dentry
def test_roots_at_any_depth(fanbpf_rules_logic, roots, depth, at, dir_walk, in_map):
    """A root is found on a chain of up to MAX_DEPTH dentries, from the
    args or the map, on either chain; past that, or without the top within
    it, the walk is undecided."""
    chain = [(1, 1000 + i, b"d") for i in range(depth)]
    if at < depth:
        chain[at] = (9, 7, b"r")
    chain = dentries(*chain)
    if dir_walk:
        chains = ((), model.dir_chain(b"f", 0, chain))
    else:
        chains = (chain, ())
    f = Facts(mask=0x20, chains=chains)
    set_id = 9 if in_map or len(roots) > model.MAX_ROOTS else 0
    args = RulesArgs(sections=S, set_id=set_id, roots=roots)
    decision, match = agree(fanbpf_rules_logic, f, args)
    found = at < min(depth, D) and (9, 7) in roots
    want = Match.YES if found else Match.NO if depth <= D else Match.UNDECIDED
    assert match == want


@PROPERTY
@given(f=facts(), roots=st.lists(st.sampled_from([(5, 2), (5, 3), (7, 2)]), max_size=3),
       split=st.integers(0, 3))
def test_roots_in_map_or_args_agree(fanbpf_rules_logic, f, roots, split):
    """The same roots decide the same, in the init args, the map, or both."""
    outcomes = set()
    for set_id, args_roots in ((0, None), (4, None), (4, tuple(roots[:split]))):
        args = RulesArgs(sections=S, set_id=set_id, roots=roots, args_roots=args_roots)
        outcomes.add(agree(fanbpf_rules_logic, f, args))
    assert len(outcomes) == 1


@PROPERTY
@given(n=st.integers(2, 8), root=st.integers(0, 7), excl=st.integers(0, 7),
       by_name=st.booleans(), both=st.booleans(), subtree=st.booleans())
def test_nearest_node_decides(fanbpf_rules_logic, n, root, excl, by_name, both, subtree):
    """Walking up, the first root or excluded node decides; a node that is
    both is a root; a root's own name is never looked at."""
    items = [(3, 100 + i, b"d%d" % i) for i in range(n)]
    if excl < n and by_name:
        items[excl] = (3, 100 + excl, b".git")
    chain = dentries(*items)
    roots = [(3, 100 + root)] if root < n else []
    excluded = [(3, 100 + excl)] if excl < n and not by_name else []
    if both and root < n:
        excluded.append((3, 100 + root))
    args = RulesArgs(sections=(S if subtree else 0) | X, set_id=6, roots=roots,
                     excluded=excluded, dirs=(Pattern(PatternKind.EXACT, b".git"),))
    decision, match = agree(fanbpf_rules_logic, Facts(mask=0x2, chains=(chain, ())), args)
    deciders = []
    if subtree and root < n:
        deciders.append((root, Walk.INSIDE))
    if excl < n:
        deciders.append((excl, Walk.EXCLUDED))
    if both and root < n and not subtree:
        deciders.append((root, Walk.EXCLUDED))
    want = min(deciders)[1] if deciders else Walk.OUTSIDE
    assert model.walk(args, chain) == want


# --- fixed cases: the documented semantics ------------------------------------------

def _tree_args(tgid=7, **kw):
    kw = {"process_flags": model.ProcessFlag.ANCESTOR, **kw}
    return RulesArgs(sections=P, ancestor_tgid=tgid, **kw)


_M = model.MAX_ANCESTRY


@pytest.mark.parametrize("ancestors,want", [
    ((7, 1, 0), Match.YES),  # the process itself
    ((9, 8, 7, 1, 0), Match.YES),  # a descendant
    ((9, 8, 1, 0), Match.NO),  # the walk reached the top
    (tuple(range(100, 100 + _M - 1)) + (7,), Match.YES),  # the last leader looked at
    (tuple(range(100, 100 + _M - 2)) + (0,), Match.NO),  # past the top within the bound
    (tuple(range(100, 100 + _M - 1)) + (0,), Match.UNDECIDED),  # the top is the last looked at
    (tuple(range(100, 100 + _M)) + (7,), Match.UNDECIDED),  # beyond the bound
    ((), Match.NO),
])
def test_ancestry_walk(fanbpf_rules_logic, ancestors, want):
    f = Facts(mask=0x20, ancestors=ancestors)
    assert model.match(f, _tree_args()) == want
    assert bpf_outcome(fanbpf_rules_logic, f, _tree_args()) == \
        (model.SKIP if want == Match.NO else model.SEND, want)


_ROOT = (5, 2)
_TOP = (5, 1, b"/")


def _chain(*names, top=True, first_dir=False):
    """A chain below the root (5, 2): names[0] nearest; then the root, then the top."""
    items = [(5, 10 + i, name) for i, name in enumerate(names)] + [(5, 2, b"r")]
    return dentries(*items, *([_TOP] if top else []), first_dir=first_dir)


_GIT = Pattern(PatternKind.EXACT, b".git")
_EGG = Pattern(PatternKind.GLOB, b"*.egg-info")


@pytest.mark.parametrize("f,args,want", [
    # undecided permission events go to user space, never denied
    (Facts(mask=0x10000, ancestors=tuple(range(100, 100 + _M))), _tree_args(deny_errno=1), model.SEND),
    (Facts(mask=0x10000, ancestors=(7, 0)), _tree_args(deny_errno=1), -1),
    # another condition that fails decides, undecided or not
    (Facts(mask=0x20, ancestors=tuple(range(100, 100 + _M)), uid=5),
     _tree_args(uid=4, process_flags=model.ProcessFlag.ANCESTOR | model.ProcessFlag.UID), model.SKIP),
    (Facts(mask=0x20, name=b"a", ancestors=tuple(range(100, 100 + _M))),
     replace(_tree_args(), sections=P | N, set_id=1, patterns=(Pattern(PatternKind.EXACT, b"b"),)),
     model.SKIP),
    # cgroup subtree: the cgroup itself, below it, beside it, above it
    (Facts(mask=0x20, cgroup_path=(1, 50, 60)), RulesArgs(
        sections=P, process_flags=64, cgroup_tree_id=50, cgroup_tree_level=1), model.SEND),
    (Facts(mask=0x20, cgroup_path=(1, 50)), RulesArgs(
        sections=P, process_flags=64, cgroup_tree_id=50, cgroup_tree_level=1), model.SEND),
    (Facts(mask=0x20, cgroup_path=(1, 51, 50)), RulesArgs(
        sections=P, process_flags=64, cgroup_tree_id=50, cgroup_tree_level=1), model.SKIP),
    (Facts(mask=0x20, cgroup_path=(1,)), RulesArgs(
        sections=P, process_flags=64, cgroup_tree_id=50, cgroup_tree_level=1), model.SKIP),
])
def test_process_tree_semantics(fanbpf_rules_logic, f, args, want):
    assert model.decide(f, args) == want
    assert bpf_outcome(fanbpf_rules_logic, f, args)[0] == want


def _names_args(*pats, mode=0, events=0):
    return RulesArgs(sections=N, set_id=1, names_mode=mode, patterns=tuple(pats), events=events)


@pytest.mark.parametrize("f,args,want", [
    # a missing name is on no list: include skips, exclude delivers
    (Facts(mask=0x400), _names_args(Pattern(PatternKind.GLOB, b"*")), model.SKIP),
    (Facts(mask=0x400), _names_args(Pattern(PatternKind.GLOB, b"*"), mode=1), model.SEND),
    # names.events limits the rule; other events pass
    (Facts(mask=0x20, name=b"x"), _names_args(Pattern(PatternKind.EXACT, b"y"), events=0x100), model.SEND),
    (Facts(mask=0x100, name=b"x"), _names_args(Pattern(PatternKind.EXACT, b"y"), events=0x100), model.SKIP),
    # '*' is literal outside GLOB; exact names of any length up to 255
    (Facts(mask=0x20, name=b"a*"), _names_args(Pattern(PatternKind.EXACT, b"a*")), model.SEND),
    (Facts(mask=0x20, name=b"ab"), _names_args(Pattern(PatternKind.EXACT, b"a*")), model.SKIP),
    (Facts(mask=0x20, name=b"n" * 255), _names_args(Pattern(PatternKind.EXACT, b"n" * 255)), model.SEND),
    (Facts(mask=0x20, name=b"n" * 254), _names_args(Pattern(PatternKind.EXACT, b"n" * 255)), model.SKIP),
    # a glob beyond nr_globs is not looked at; nr_exact 0 skips the exact names
    (Facts(mask=0x20, name=b"x"), replace(_names_args(Pattern(PatternKind.GLOB, b"?")), nr_globs=0),
     model.SKIP),
    (Facts(mask=0x20, name=b"x"), replace(_names_args(Pattern(PatternKind.EXACT, b"x")), nr_exact=0),
     model.SKIP),
    # permission events that match are denied with deny_errno, others skipped
    (Facts(mask=0x10000, chains=(_chain(b"f"), ())),
     RulesArgs(sections=S, roots=(_ROOT,), deny_errno=13), -13),
    (Facts(mask=0x10000, chains=(dentries((5, 3), _TOP), ())),
     RulesArgs(sections=S, roots=(_ROOT,), deny_errno=13), model.SKIP),
    (Facts(mask=0x20, chains=(_chain(b"f"), ())),
     RulesArgs(sections=S, roots=(_ROOT,), deny_errno=13), model.SEND),
    # no section: everything matches
    (Facts(mask=0x20), RulesArgs(), model.SEND),
    # unused root slots never match a (0, 0) node
    (Facts(mask=0x20, chains=(dentries((0, 0)), ())), RulesArgs(sections=S), model.SKIP),
    # a root's dev wider than a dev_t never matches; a node's is cut to 32 bits
    (Facts(mask=0x20, chains=(dentries(_ROOT), ())),
     RulesArgs(sections=S, roots=(((1 << 32) | 5, 2),)), model.SKIP),
    (Facts(mask=0x20, chains=(dentries(((1 << 32) | 5, 2)), ())),
     RulesArgs(sections=S, roots=(_ROOT,)), model.SEND),
    # exclude the watcher
    (Facts(mask=0x20, tgid=7), RulesArgs(sections=P, process_flags=2, not_tgid=7), model.SKIP),
    (Facts(mask=0x20, tgid=8), RulesArgs(sections=P, process_flags=2, not_tgid=7), model.SEND),
    # comm compares as C strings
    (Facts(mask=0x20, comm=b"bash"), RulesArgs(sections=P, process_flags=16, comm=b"bash"), model.SEND),
    (Facts(mask=0x20, comm=b"bash"), RulesArgs(sections=P, process_flags=16, comm=b"bas"), model.SKIP),
])
def test_semantics(fanbpf_rules_logic, f, args, want):
    assert model.decide(f, args) == want
    assert bpf_outcome(fanbpf_rules_logic, f, args)[0] == want


def _dirs(sections=S | X, **kw):
    return RulesArgs(sections=sections, set_id=2, roots=(_ROOT,), dirs=(_GIT, _EGG), **kw)


@pytest.mark.parametrize("f,args,want", [
    # below an excluded directory name, at any depth below the root
    (Facts(mask=0x2, chains=(_chain(b"f", b".git"), ())), _dirs(), Match.NO),
    (Facts(mask=0x2, chains=(_chain(b"f", b"a", b"b", b"x.egg-info", b"c"), ())), _dirs(), Match.NO),
    (Facts(mask=0x2, chains=(_chain(b"f", b"src"), ())), _dirs(), Match.YES),
    # a file named like an excluded directory is not excluded; a directory is
    (Facts(mask=0x2, chains=(_chain(b".git"), ())), _dirs(), Match.YES),
    (Facts(mask=0x2 | model.ONDIR, chains=(_chain(b".git", first_dir=True), ())), _dirs(), Match.NO),
    # the dir walk's virtual node: creating .git/ in the root, or a file in .git/
    (Facts(mask=0x100 | model.ONDIR, chains=((), model.dir_chain(b".git", 0x100 | model.ONDIR,
                                                                 _chain()))), _dirs(), Match.NO),
    (Facts(mask=0x100, chains=((), model.dir_chain(b".git", 0x100, _chain()))), _dirs(), Match.YES),
    (Facts(mask=0x100, chains=((), model.dir_chain(b"f", 0x100, _chain(b".git", first_dir=True)))),
     _dirs(), Match.NO),
    # above the root: the root decides first
    (Facts(mask=0x2, chains=(_chain(b"f") + dentries((5, 0, b".git")), ())), _dirs(), Match.YES),
    # exclusions without roots: delivered unless excluded
    (Facts(mask=0x2, chains=(_chain(b"f"), ())), _dirs(X), Match.YES),
    (Facts(mask=0x2, chains=(_chain(b"f", b"node_modules"), ())),
     RulesArgs(sections=X, set_id=2, dirs=(Pattern(PatternKind.EXACT, b"node_modules"),)), Match.NO),
    # an excluded subtree by identity
    (Facts(mask=0x2, chains=(_chain(b"f", b"sub"), ())), _dirs(excluded=((5, 11),)), Match.NO),
    (Facts(mask=0x2, chains=(_chain(b"f", b"sub"), ())), _dirs(excluded=((5, 12),)), Match.YES),
    # one chain excluded, the other not: SUBTREE wants INSIDE on one chain
    (Facts(mask=0x100, chains=(_chain(b"f", b".git"),
                               model.dir_chain(b"f", 0x100, _chain(b"src", first_dir=True)))),
     _dirs(), Match.YES),
    # nothing to start a walk from (FAN_FS_ERROR about a whole file system): outside
    (Facts(mask=0x8000), _dirs(X), Match.YES),
    (Facts(mask=0x8000), _dirs(), Match.NO),
    # an inode without a dentry (DELETE_SELF), a dir without one: cannot be placed
    (Facts(mask=0x400, chains=(model.NO_DENTRY, ())), _dirs(X), Match.UNDECIDED),
    (Facts(mask=0x400, chains=(model.NO_DENTRY, ())), _dirs(), Match.UNDECIDED),
    (Facts(mask=0x100, chains=((), model.dir_chain(b"f", 0x100, ()))), _dirs(), Match.UNDECIDED),
    # ... the virtual node is still looked at, and the other chain still settles
    (Facts(mask=0x100 | model.ONDIR, chains=((), model.dir_chain(b".git", 0x100 | model.ONDIR, ()))),
     _dirs(X), Match.NO),
    (Facts(mask=0x100, chains=(_chain(b"f"), model.dir_chain(b"f", 0x100, ()))), _dirs(), Match.YES),
    # the depth bound: undecided, delivered; an excluded name beyond it is not seen
    (Facts(mask=0x2, chains=(dentries(*[(1, i, b"d") for i in range(D + 1)]), ())),
     RulesArgs(sections=X, set_id=2, dirs=(_GIT,)), Match.UNDECIDED),
    (Facts(mask=0x2, chains=(dentries(*[(1, i, b"d") for i in range(D)], (1, D, b".git")), ())),
     RulesArgs(sections=X, set_id=2, dirs=(_GIT,)), Match.UNDECIDED),
    (Facts(mask=0x2, chains=(dentries(*[(1, i, b"d") for i in range(D - 1)], (1, D, b".git")), ())),
     RulesArgs(sections=X, set_id=2, dirs=(_GIT,)), Match.NO),
])
def test_walk_semantics(fanbpf_rules_logic, f, args, want):
    assert model.match(f, args) == want
    assert bpf_outcome(fanbpf_rules_logic, f, args)[1] == want


@pytest.mark.parametrize("args", [
    RulesArgs(sections=16),
    RulesArgs(deny_errno=-1),
    RulesArgs(deny_errno=4096),
    RulesArgs(nr_roots=17),
    RulesArgs(subtree_reserved=1),
    RulesArgs(names_mode=2),
    RulesArgs(names_reserved=1),
    RulesArgs(set_id=1, nr_globs=65),
    RulesArgs(set_id=1, dirs_nr_globs=65),
    RulesArgs(sections=N),  # the lists need a set id
    RulesArgs(sections=X),
    RulesArgs(process_flags=128),
    RulesArgs(process_flags=32),  # ancestor tgid 0
    RulesArgs(process_flags=64),  # cgroup id 0
])
def test_check_refuses(fanbpf_rules_logic, args):
    assert model.check(args) == -errno.EINVAL
    assert fanbpf_rules_logic.check(args) == -errno.EINVAL


# --- stats and the map layer ----------------------------------------------------------

def test_stats_per_set(fanbpf_rules_logic):
    """fp_init claims a set id once (EEXIST after), the decisions count per
    outcome in the attachment's hook element; fp_free removes both."""
    logic = fanbpf_rules_logic
    a = RulesArgs(sections=S, set_id=41, roots=(_ROOT,), deny_errno=1)
    b = replace(a, set_id=42)
    assert logic.init(a) == 0 and logic.init(b) == 0
    try:
        assert logic.init(a) == -errno.EEXIST
        inside, outside = (_chain(b"f"), ()), (dentries((5, 3), _TOP), ())
        deep = (dentries(*[(1, i) for i in range(D + 1)]), ())
        for mask, chains, times in ((0x2, inside, 3), (0x2, outside, 2), (0x10000, inside, 1),
                                    (0x2, deep, 4)):
            for _ in range(times):
                logic.outcome(Facts(mask=mask, chains=chains), a)
        assert logic.maps.read_stats(41) == RulesStats(delivered=7, skipped=2, denied=1,
                                                       undecided=4)
        assert logic.maps.read_stats(42) == RulesStats()
    finally:
        logic.free(a)
        logic.free(b)
    with pytest.raises(FileNotFoundError):
        logic.maps.read_stats(41)
    assert logic.init(a) == 0  # free again
    logic.free(a)


def test_sets_are_separate(fanbpf_rules_logic):
    """Entries of one set are invisible to another; removing a set leaves the others."""
    maps = fanbpf_rules_logic.maps
    a = RulesArgs(sections=S | X | N, set_id=51, roots=(_ROOT,), excluded=((5, 11),),
                  patterns=(Pattern(PatternKind.EXACT, b"f"), _EGG), dirs=(_GIT,))
    b = RulesArgs(sections=S, set_id=52, roots=((5, 3),))
    maps.write_set(52, b)
    try:
        f = Facts(mask=0x2, name=b"f", chains=(_chain(b"f", b"sub"), ()))
        assert model.match(f, a) == Match.NO
        assert bpf_outcome(fanbpf_rules_logic, f, a)[1] == Match.NO  # writes and removes set 51
        f = Facts(mask=0x2, name=b"f", chains=(_chain(b"f"), ()))
        assert bpf_outcome(fanbpf_rules_logic, f, a)[1] == Match.YES
        assert maps.nodes(51) == {} and maps.read_list(51, model.NameList.NAMES) == (frozenset(), {})
        assert maps.nodes(52) == {(5, 3): ROOT}
    finally:
        maps.delete_set(52)
    assert maps.nodes(52) == {}


def test_set_contents_round_trip(fanbpf_rules_logic):
    """write_set puts what RulesArgs says where the handler looks; lists are replaced."""
    maps = fanbpf_rules_logic.maps
    args = RulesArgs(sections=S | X | N, set_id=61, roots=((1, 1), (1, 2), (1, 3)),
                     args_roots=((1, 1),), excluded=((1, 2), (1, 4)),
                     patterns=(Pattern(PatternKind.EXACT, b"a"), Pattern(PatternKind.SUFFIX, b".c"),
                               Pattern(PatternKind.EXACT, b"n" * 255)),
                     dirs=(_GIT, _EGG, Pattern(PatternKind.PREFIX, b"tmp")))
    maps.write_set(61, args)
    try:
        assert maps.nodes(61) == {(1, 2): ROOT | EXCLUDED, (1, 3): ROOT, (1, 4): EXCLUDED}
        assert maps.read_list(61, model.NameList.NAMES) == (
            frozenset({b"a", b"n" * 255}), {0: Pattern(PatternKind.SUFFIX, b".c")})
        assert maps.read_list(61, model.NameList.DIRS) == (
            frozenset({b".git"}), {0: _EGG, 1: Pattern(PatternKind.PREFIX, b"tmp")})
        maps.write_list(61, model.NameList.DIRS, [Pattern(PatternKind.GLOB, b"?")])
        assert maps.read_list(61, model.NameList.DIRS) == (
            frozenset(), {0: Pattern(PatternKind.GLOB, b"?")})
        assert maps.read_list(61, model.NameList.NAMES)[0] == frozenset({b"a", b"n" * 255})
    finally:
        maps.delete_set(61)
    assert maps.nodes(61) == {}


def test_many_roots_in_bulk(fanbpf_rules_logic):
    """100 000 roots go in and out in batches; the walk finds any of them."""
    maps = fanbpf_rules_logic.maps
    roots = [(7, i) for i in range(100_000)]
    maps.add_nodes(71, roots, ROOT)
    try:
        assert len(maps.nodes(71)) == 100_000
        args = RulesArgs(sections=S, set_id=71, roots=roots)
        for ino in (0, 54_321, 99_999, 100_000):
            f = Facts(mask=0x2, chains=(dentries((7, 200_000), (7, ino), (7, 300_000)), ()))
            check, decision, match, _ = fanbpf_rules_logic.run_event(
                f, RulesArgs(sections=S, set_id=71), write=False)
            assert Match(match) == model.match(f, args) == (Match.YES if ino < 100_000 else Match.NO)
        assert maps.delete_nodes(71, roots[:50_000] + [(8, 8)]) == 50_000
        assert len(maps.nodes(71)) == 50_000
    finally:
        maps.delete_set(71)
    assert maps.nodes(71) == {}


def _filter_bits(maps) -> set:
    """The bits set in the object's node filter, read back from the map."""
    bits = set()
    for w in range(rulesmaps._FILTER_WORDS):
        word = int.from_bytes(maps.lookup(rulesmaps.FILTER, w.to_bytes(4, "little"))[:8], "little")
        bits |= {w * 64 + b for b in range(64) if word >> b & 1}
    return bits


def test_node_filter_follows_the_nodes(fanbpf_rules_logic):
    """Every node has its filter bit; once enough nodes went, the bits of
    nodes no set has any more are cleared, those of the others stay."""
    maps = fanbpf_rules_logic.maps

    def live_bits():
        return {rulesmaps.node_filter_bit(rulesmaps._NODE_KEY.unpack(k)[2])
                for k in maps.keys(rulesmaps.NODES)}

    with maps._nodes_lock:  # start from no stale bits, no stale count
        maps._rebuild_filter()
    before = _filter_bits(maps)
    assert before == live_bits()
    gone = [(9, i) for i in range(5000)]
    kept = [(9, 10**9 + i) for i in range(3)]
    maps.add_nodes(91, gone + kept, ROOT)
    maps.add_nodes(92, kept[:1], EXCLUDED)
    try:
        want = before | {rulesmaps.node_filter_bit(i) for _, i in gone + kept}
        assert _filter_bits(maps) == want
        assert maps.delete_nodes(91, gone[:1000]) == 1000
        assert _filter_bits(maps) == want  # stale bits stay until a rebuild
        maps.delete_nodes(91, gone[1000:])  # 5000 gone: rebuilt
        assert _filter_bits(maps) == live_bits()
        assert {rulesmaps.node_filter_bit(i) for _, i in kept} <= live_bits()
    finally:
        maps.delete_set(91)
        maps.delete_set(92)


def test_map_layer_refuses_what_the_handler_cannot_hold(fanbpf_rules_logic):
    maps = fanbpf_rules_logic.maps
    with pytest.raises(ValueError, match="at most 64"):
        maps.write_list(81, model.NameList.DIRS, [Pattern(PatternKind.GLOB, b"*%d" % i)
                                                  for i in range(65)])
    with pytest.raises(ValueError, match="1 to 255 bytes"):
        maps.write_list(81, model.NameList.NAMES, [Pattern(PatternKind.EXACT, b"n" * 256)])
    with pytest.raises(ValueError, match="set id 0"):
        maps.write_set(0, RulesArgs())
    maps.delete_set(81)


# --- the fs-operation strategy (used by the VM tests) ------------------------------

@property_settings(max_examples=100)
@given(ops=fs_ops())
def test_fs_ops_apply_in_sequence(ops, tmp_path_factory):
    """Every drawn sequence applies cleanly, from this process and from workers."""
    base = tmp_path_factory.mktemp("ops")
    for d in ("in", "out"):
        (base / d).mkdir()
    with Workers(2) as workers:
        for op in ops:
            workers.apply(base, op)


def test_fs_op_repr_reads_like_a_call():
    assert repr([FsOp("rename", "in/a", "out/b", proc=2), FsOp("mkdir", "in/c")]) == \
        "[rename('in/a', 'out/b', proc=2), mkdir('in/c')]"


# --- the objects and the constants ------------------------------------------------------

def test_constants_match_the_c_header():
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src/bpf"
    defines = dict(re.findall(r"#define\s+(FANBPF_\w+)\s+(\d+)", (src / "fanbpf_rules.h").read_text()))
    assert int(defines["FANBPF_MAX_ROOTS"]) == model.MAX_ROOTS
    assert int(defines["FANBPF_MAX_GLOBS"]) == model.MAX_GLOBS
    assert int(defines["FANBPF_NAME_MAX"]) == model.NAME_MAX
    assert int(defines["FANBPF_MAX_DEPTH"]) == model.MAX_DEPTH
    assert int(defines["FANBPF_COMM_LEN"]) == model.COMM_LEN
    assert int(defines["FANBPF_MAX_ANCESTRY"]) == model.MAX_ANCESTRY


def test_rules_object_shape():
    """The handler object has the maps the map layer packs for, and its
    args encode from RulesArgs.to_dict() and decode back."""
    from fanbpf.handler import BpfObject, builtin_path

    with BpfObject(builtin_path("rules")) as obj:
        assert obj.ops_name() == "fanbpf_rules"
        ctype = obj.btf.struct("fanbpf_rules_args")
        assert ctype.size <= 1024
        args = RulesArgs(sections=S | X, set_id=3, roots=((5, 2),), args_roots=((5, 2),),
                         dirs=(_GIT, _EGG), uid=0)
        decoded = RulesArgs.from_dict(ctype.decode(ctype.encode(args.to_dict())))
        assert decoded.active_roots() == ((5, 2),) and decoded.counts(model.NameList.DIRS) == (1, 1)
        assert decoded.set_id == 3
        for name in ("fanbpf_node_key", "fanbpf_name_key", "fanbpf_glob_key", "fanbpf_pattern",
                     "fanbpf_rules_stats", "fanbpf_rules_hook"):
            obj.btf.struct(name)  # the map layer checks the layouts against these on load
        assert "fanbpf_vmlinux_struct__btrfs_inode" in obj.btf.globals()
