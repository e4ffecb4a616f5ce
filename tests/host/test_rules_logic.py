"""The compiled fanbpf_rules logic against the Python model, on the host kernel.

src/bpf/fanbpf_rules_test.bpf.c runs the same fanbpf_rules_logic.h code as
the struct_ops handler in a SEC("syscall") program, which BPF_PROG_TEST_RUN
can run on any kernel; hypothesis draws facts and args and every property
compares the BPF answer with fanbpf/model.py.

Example counts: every property runs FANBPF_EXAMPLES examples (default 500),
derandomized (the same examples on every run, no example database), so a
failure reproduces exactly.  Set FANBPF_EXAMPLES higher for a longer hunt.
"""

import os

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from fanbpf import model
from fanbpf.model import Facts, Pattern, PatternKind, RulesArgs, Section
from fanbpf.rules import RulesError, exact, glob, prefix, rules, suffix
from fanbpf.testing.fs import FsOp, Workers
from fanbpf.testing.strategies import (facts, file_names, fs_ops, patterns, property_settings,
                                       rules_args)

PROPERTY = property_settings()


def bpf_decide(logic, f, a):
    check, decision = logic.decide(f, a)
    assert check == 0, f"the BPF check refused args the model accepts: {a!r}"
    return decision


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
    """The whole decision, all sections drawn."""
    assert model.check(args) == 0
    want = model.decide(f, args)
    event(f"decision {'deny' if want < 0 else want}")
    assert bpf_decide(fanbpf_rules_logic, f, args) == want


@PROPERTY
@given(pattern=patterns(), name=file_names())
@example(Pattern(PatternKind.GLOB, b"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"), b"a" * 255)
@example(Pattern(PatternKind.GLOB, b"*" * 31), b"x" * 255)
@example(Pattern(PatternKind.GLOB, b"?" * 31), b"x" * 31)
@example(Pattern(PatternKind.SUFFIX, b"a" * 30 + b"b"), b"a" * 255)
@example(Pattern(PatternKind.PREFIX, b"*"), b"*x")
@example(Pattern(PatternKind.EXACT, b"a?"), b"ab")
@example(Pattern(PatternKind.GLOB, b""), b"a")
def test_pattern_matches_model(fanbpf_rules_logic, pattern, name):
    """One pattern against one name, names section only, both modes."""
    f = Facts(mask=0x100, name=name)
    for mode in (model.NamesMode.INCLUDE, model.NamesMode.EXCLUDE):
        args = RulesArgs(sections=Section.NAMES, names_mode=mode, patterns=(pattern,))
        hit = model.pattern_matches(pattern, name)
        event(f"{pattern.kind.name} {'hit' if hit else 'miss'}")
        want = model.SKIP if hit == bool(mode) else model.SEND
        assert model.decide(f, args) == want
        assert bpf_decide(fanbpf_rules_logic, f, args) == want


@PROPERTY
@given(roots=st.lists(st.sampled_from([(5, 2), (5, 3), (9, 7), (0, 0)]), max_size=16),
       depth=st.integers(0, model.CHAIN_MAX), at=st.integers(0, model.CHAIN_MAX - 1),
       which=st.sampled_from([0, 1]))
def test_subtree_depth(fanbpf_rules_logic, roots, depth, at, which):
    """A root is found anywhere on a chain of up to CHAIN_MAX dentries, on either chain."""
    chain = [(1, 1000 + i) for i in range(depth)]
    if at < depth:
        chain[at] = (9, 7)
    chains = (tuple(chain), ()) if which == 0 else ((), tuple(chain))
    f = Facts(mask=0x20, chains=chains)
    args = RulesArgs(sections=Section.SUBTREE, roots=tuple(roots))
    want = model.decide(f, args)
    assert want == (model.SEND if at < depth and (9, 7) in roots else model.SKIP)
    assert bpf_decide(fanbpf_rules_logic, f, args) == want


@PROPERTY
@given(args=rules_args(), f=facts())
def test_process_section_matches_model(fanbpf_rules_logic, args, f):
    """The process section on its own (facts and args drawn from shared pools)."""
    args = RulesArgs(**{**args.__dict__, "sections": Section.PROCESS})
    want = model.decide(f, args)
    event(f"decision {'deny' if want < 0 else want}")
    assert bpf_decide(fanbpf_rules_logic, f, args) == want


@PROPERTY
@given(args=rules_args(), f=facts(), flags=st.sampled_from([32, 64, 96, 32 | 2, 64 | 1]))
def test_process_tree_matches_model(fanbpf_rules_logic, args, f, flags):
    """The process-tree conditions (ancestry walk, cgroup subtree), with the
    three-way match: undecided walks must agree too."""
    args = RulesArgs(**{**args.__dict__, "process_flags": flags,
                        "sections": args.sections | Section.PROCESS})
    want = model.match(f, args)
    event(f"match {want.name}")
    check, decision, match = fanbpf_rules_logic.outcome(f, args)
    assert (check, match, decision) == (0, want, model.decide(f, args))


# --- fixed cases: the documented semantics ------------------------------------------

def _tree_args(tgid=7, **kw):
    kw = {"process_flags": model.ProcessFlag.ANCESTOR, **kw}
    return RulesArgs(sections=Section.PROCESS, ancestor_tgid=tgid, **kw)


_M = model.MAX_ANCESTRY


@pytest.mark.parametrize("ancestors,want", [
    ((7, 1, 0), model.Match.YES),  # the process itself
    ((9, 8, 7, 1, 0), model.Match.YES),  # a descendant
    ((9, 8, 1, 0), model.Match.NO),  # the walk reached the top
    (tuple(range(100, 100 + _M - 1)) + (7,), model.Match.YES),  # the last leader looked at
    (tuple(range(100, 100 + _M - 2)) + (0,), model.Match.NO),  # past the top within the bound
    (tuple(range(100, 100 + _M - 1)) + (0,), model.Match.UNDECIDED),  # the top is the last looked at
    (tuple(range(100, 100 + _M)) + (7,), model.Match.UNDECIDED),  # beyond the bound
    ((), model.Match.NO),
])
def test_ancestry_walk(fanbpf_rules_logic, ancestors, want):
    f = Facts(mask=0x20, ancestors=ancestors)
    assert model.match(f, _tree_args()) == want
    assert fanbpf_rules_logic.outcome(f, _tree_args())[1:] == \
        (model.SKIP if want == model.Match.NO else model.SEND, want)


@pytest.mark.parametrize("f,args,want", [
    # undecided permission events go to user space, never denied
    (Facts(mask=0x10000, ancestors=tuple(range(100, 100 + _M))), _tree_args(deny_errno=1), model.SEND),
    (Facts(mask=0x10000, ancestors=(7, 0)), _tree_args(deny_errno=1), -1),
    # another condition that fails decides, undecided or not
    (Facts(mask=0x20, ancestors=tuple(range(100, 100 + _M)), uid=5),
     _tree_args(uid=4, process_flags=model.ProcessFlag.ANCESTOR | model.ProcessFlag.UID), model.SKIP),
    (Facts(mask=0x20, name=b"a", ancestors=tuple(range(100, 100 + _M))),
     RulesArgs(**{**_tree_args().__dict__, "sections": Section.PROCESS | Section.NAMES,
                  "patterns": (Pattern(PatternKind.EXACT, b"b"),)}), model.SKIP),
    # cgroup subtree: the cgroup itself, below it, beside it, above it
    (Facts(mask=0x20, cgroup_path=(1, 50, 60)), RulesArgs(
        sections=Section.PROCESS, process_flags=64, cgroup_tree_id=50, cgroup_tree_level=1), model.SEND),
    (Facts(mask=0x20, cgroup_path=(1, 50)), RulesArgs(
        sections=Section.PROCESS, process_flags=64, cgroup_tree_id=50, cgroup_tree_level=1), model.SEND),
    (Facts(mask=0x20, cgroup_path=(1, 51, 50)), RulesArgs(
        sections=Section.PROCESS, process_flags=64, cgroup_tree_id=50, cgroup_tree_level=1), model.SKIP),
    (Facts(mask=0x20, cgroup_path=(1,)), RulesArgs(
        sections=Section.PROCESS, process_flags=64, cgroup_tree_id=50, cgroup_tree_level=1), model.SKIP),
])
def test_process_tree_semantics(fanbpf_rules_logic, f, args, want):
    assert model.decide(f, args) == want
    assert bpf_decide(fanbpf_rules_logic, f, args) == want


def _names_args(*pats, mode=0, events=0):
    return RulesArgs(sections=Section.NAMES, names_mode=mode, patterns=tuple(pats), events=events)


@pytest.mark.parametrize("f,args,want", [
    # a missing name matches no pattern: include skips, exclude delivers
    (Facts(mask=0x400), _names_args(Pattern(PatternKind.GLOB, b"*")), model.SKIP),
    (Facts(mask=0x400), _names_args(Pattern(PatternKind.GLOB, b"*"), mode=1), model.SEND),
    # names.events limits the rule; other events pass
    (Facts(mask=0x20, name=b"x"), _names_args(Pattern(PatternKind.EXACT, b"y"), events=0x100), model.SEND),
    (Facts(mask=0x100, name=b"x"), _names_args(Pattern(PatternKind.EXACT, b"y"), events=0x100), model.SKIP),
    # '*' is literal outside GLOB
    (Facts(mask=0x20, name=b"a*"), _names_args(Pattern(PatternKind.EXACT, b"a*")), model.SEND),
    (Facts(mask=0x20, name=b"ab"), _names_args(Pattern(PatternKind.EXACT, b"a*")), model.SKIP),
    # permission events that match are denied with deny_errno, others skipped
    (Facts(mask=0x10000, chains=(((5, 2),), ())),
     RulesArgs(sections=Section.SUBTREE, roots=((5, 2),), deny_errno=13), -13),
    (Facts(mask=0x10000, chains=(((5, 3),), ())),
     RulesArgs(sections=Section.SUBTREE, roots=((5, 2),), deny_errno=13), model.SKIP),
    (Facts(mask=0x20, chains=(((5, 2),), ())),
     RulesArgs(sections=Section.SUBTREE, roots=((5, 2),), deny_errno=13), model.SEND),
    # no section: everything matches
    (Facts(mask=0x20), RulesArgs(), model.SEND),
    # unused root slots never match a (0, 0) node
    (Facts(mask=0x20, chains=(((0, 0),), ())), RulesArgs(sections=Section.SUBTREE), model.SKIP),
    # a root's dev wider than a dev_t never matches
    (Facts(mask=0x20, chains=(((5, 2),), ())),
     RulesArgs(sections=Section.SUBTREE, roots=(((1 << 32) | 5, 2),)), model.SKIP),
    # exclude the watcher
    (Facts(mask=0x20, tgid=7), RulesArgs(sections=Section.PROCESS, process_flags=2, not_tgid=7), model.SKIP),
    (Facts(mask=0x20, tgid=8), RulesArgs(sections=Section.PROCESS, process_flags=2, not_tgid=7), model.SEND),
    # comm compares as C strings
    (Facts(mask=0x20, comm=b"bash"), RulesArgs(sections=Section.PROCESS, process_flags=16, comm=b"bash"), model.SEND),
    (Facts(mask=0x20, comm=b"bash"), RulesArgs(sections=Section.PROCESS, process_flags=16, comm=b"bas"), model.SKIP),
])
def test_semantics(fanbpf_rules_logic, f, args, want):
    assert model.decide(f, args) == want
    assert bpf_decide(fanbpf_rules_logic, f, args) == want


@pytest.mark.parametrize("args", [
    RulesArgs(sections=8),
    RulesArgs(deny_errno=-1),
    RulesArgs(deny_errno=4096),
    RulesArgs(nr_roots=17),
    RulesArgs(subtree_reserved=1),
    RulesArgs(names_mode=2),
    RulesArgs(nr_patterns=9),
    RulesArgs(patterns=(Pattern(0, b"x"),)),
    RulesArgs(patterns=(Pattern(5, b"x"),)),
    RulesArgs(patterns=(Pattern(1, b"x", 32),)),
    RulesArgs(nr_patterns=1),  # a zeroed pattern slot has kind 0
    RulesArgs(process_flags=128),
    RulesArgs(process_flags=32),  # ancestor tgid 0
    RulesArgs(process_flags=64),  # cgroup id 0
])
def test_check_refuses(fanbpf_rules_logic, args):
    assert model.check(args) == -22
    assert fanbpf_rules_logic.check(args) == -22


# --- the args builder -----------------------------------------------------------------

def test_rules_builds_valid_args(fanbpf_rules_logic, tmp_path):
    (tmp_path / "d").mkdir()
    built = rules(subtree=[tmp_path, tmp_path / "d", tmp_path], names=["*.log", "core", prefix("a*"),
                  suffix(".x"), glob("?"), exact("*")], events=["create", 0x8],
                  tgid=1, exclude_pid=True, uid=0, cgroup=5, comm="bash", deny_errno="EPERM")
    args = RulesArgs.from_dict(built)
    assert model.check(args) == 0
    assert fanbpf_rules_logic.check(args) == 0
    st_dev = os.stat(tmp_path).st_dev
    assert args.roots[0] == (os.major(st_dev) << 20 | os.minor(st_dev), os.stat(tmp_path).st_ino)
    assert len(args.roots) == 2  # duplicates dropped
    kinds = [(p.kind, p.text) for p in args.patterns]
    assert kinds == [(PatternKind.SUFFIX, b".log"), (PatternKind.EXACT, b"core"),
                     (PatternKind.PREFIX, b"a*"), (PatternKind.SUFFIX, b".x"),
                     (PatternKind.GLOB, b"?"), (PatternKind.EXACT, b"*")]
    assert args.events == 0x108 and args.not_tgid == os.getpid() and args.deny_errno == 1


@PROPERTY
@given(text=st.text(alphabet="ab*?.", min_size=1, max_size=31), name=file_names())
def test_plain_patterns_are_globs(text, name):
    """A str pattern means the glob, whichever cheaper kind rules() stores it as."""
    args = RulesArgs.from_dict(rules(names=[text]))
    assert model.pattern_matches(args.patterns[0], name) == \
        model.pattern_matches(Pattern(PatternKind.GLOB, text.encode()), name)


@pytest.mark.parametrize("kwargs,message", [
    (dict(subtree=["/etc/hostname"]), "not a directory"),
    (dict(subtree=[(1, i) for i in range(17)]), "at most 16"),
    (dict(subtree=[]), "no roots"),
    (dict(names=["x" * 32]), "at most 31"),
    (dict(names=["a/b"]), "'/'"),
    (dict(names=[""]), "empty"),
    (dict(names=["a"] * 9), "at most 8"),
    (dict(names=["a"], exclude_names=["b"]), "cannot be combined"),
    (dict(events=["create"]), "only restricts the name rule"),
    (dict(names=["a"], events=["nonsense"]), "no event named"),
    (dict(comm="x" * 16), "task name"),
    (dict(uid=-1), "out of range"),
    (dict(deny_errno=5000), "denies only with"),
    (dict(deny_errno="EINTR"), "EINTR would become EPERM"),
    (dict(deny_errno=529), "would become EPERM"),  # EIOCBQUEUED, kernel-internal
    (dict(deny_errno="ENOSUCH"), "unknown errno"),
])
def test_rules_errors(kwargs, message):
    with pytest.raises(RulesError, match=message):
        rules(**kwargs)


def test_process_tree_args(tmp_path):
    from fanbpf.rules import cgroup2_mount

    args = RulesArgs.from_dict(rules(descendants_of=os.getpid()))
    assert args.process_flags == model.ProcessFlag.ANCESTOR and args.ancestor_tgid == os.getpid()
    with pytest.raises(RulesError, match="0 is not a process"):
        rules(descendants_of=0)
    with pytest.raises(RulesError, match="not a cgroup directory"):
        rules(cgroup_tree=tmp_path)
    mount = cgroup2_mount()
    if mount is not None:  # the host may have none; the VM tests have one
        args = RulesArgs.from_dict(rules(cgroup_tree=mount))
        assert (args.cgroup_tree_id, args.cgroup_tree_level) == (os.stat(mount).st_ino, 0)


def test_missing_root():
    with pytest.raises(FileNotFoundError):
        rules(subtree=["/no/such/dir"])


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

    header = (Path(__file__).resolve().parents[2] / "src/bpf/fanbpf_rules.h").read_text()
    defines = dict(re.findall(r"#define\s+(FANBPF_\w+)\s+(\d+)", header))
    assert int(defines["FANBPF_MAX_ROOTS"]) == model.MAX_ROOTS
    assert int(defines["FANBPF_MAX_PATTERNS"]) == model.MAX_PATTERNS
    assert int(defines["FANBPF_PATTERN_MAX"]) == model.PATTERN_MAX
    assert int(defines["FANBPF_NAME_MAX"]) == model.NAME_MAX
    assert int(defines["FANBPF_MAX_DEPTH"]) == model.MAX_DEPTH
    assert int(defines["FANBPF_COMM_LEN"]) == model.COMM_LEN


def test_rules_object_shape():
    from fanbpf.handler import BpfObject, builtin_path

    with BpfObject(builtin_path("rules")) as obj:
        assert obj.ops_name() == "fanbpf_rules"
        args = obj.btf.struct("fanbpf_rules_args")
        assert args.size <= 1024
        encoded = args.encode(rules(subtree=[(5, 2)], names=["*.log"], uid=0))
        assert RulesArgs.from_dict(args.decode(encoded)).active_roots() == ((5, 2),)
