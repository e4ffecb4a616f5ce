# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""fanbpf.rules(): the rule set it builds and how it names directories (host: tmpfs, ext4, overlayfs)."""

import contextlib
import os
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanbpf import model
from fanbpf.model import Pattern, PatternKind, Section
from fanbpf.rules import (RulesError, exact, glob, kernel_dev, mounts, name_dirs, nested_mounts,
                          prefix, resolve_dirs, root_of, rules, suffix)
from fanbpf.testing.strategies import file_names, property_settings

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


def stat_key(path):
    st = os.stat(path)
    return kernel_dev(st.st_dev), st.st_ino


@contextlib.contextmanager
def mounted(fstype: str, where, data: str = ""):
    from fanbpf._binding import ffi, lib

    raw = os.fsencode(where)
    ret = lib.fanbpf_mount(b"fanbpf-test", raw, fstype.encode(), 0,
                           data.encode() if data else ffi.NULL)
    if ret < 0:
        pytest.skip(f"cannot mount {fstype} here: {os.strerror(-ret)}")
    try:
        yield where
    finally:
        lib.fanbpf_umount2(raw, 2)  # MNT_DETACH


# --- naming directories ---------------------------------------------------------------


def test_root_of_is_the_stat_name_where_stat_tells_it(tmp_path):
    """ext4 and tmpfs: inotify's s_dev and i_ino are stat's st_dev and st_ino."""
    (tmp_path / "d").mkdir()
    assert root_of(tmp_path) == stat_key(tmp_path)
    assert root_of(str(tmp_path / "d")) == stat_key(tmp_path / "d")
    assert root_of(os.fsencode(tmp_path)) == stat_key(tmp_path)
    if os.path.isdir("/dev/shm"):
        assert root_of("/dev/shm") == stat_key("/dev/shm")


def test_root_of_follows_symlinks(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    assert root_of(tmp_path / "link") == root_of(tmp_path / "real")


def test_root_of_errors(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RulesError, match="is not a directory"):
        root_of(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match="missing"):
        root_of(tmp_path / "missing")
    with pytest.raises(RulesError, match="not a path"):
        root_of("")
    with pytest.raises(RulesError, match="expected a directory path"):
        root_of(3.5)


def test_many_directories_are_named_in_batches(tmp_path):
    """More than one inotify fd's worth (4096), in order, each the stat name."""
    dirs = []
    for i in range(5000):
        d = tmp_path / f"d{i}"
        d.mkdir()
        dirs.append(d)
    before = len(os.listdir("/proc/self/fd"))
    named = resolve_dirs(dirs)
    assert [d.key for d in named] == [stat_key(d) for d in dirs]
    assert all(d.fd is None and d.fstype for d in named)
    assert len(os.listdir("/proc/self/fd")) == before  # the inotify fds are closed


def test_name_dirs_keeps_order_and_drops_duplicates(tmp_path):
    (tmp_path / "a").mkdir()
    keys, dirs = name_dirs([tmp_path / "a", (7, 9), tmp_path / "a", tmp_path], "subtree")
    assert keys == [stat_key(tmp_path / "a"), (7, 9), stat_key(tmp_path)]
    assert [d.path for d in dirs] == [os.fsencode(tmp_path / "a")] * 2 + [os.fsencode(tmp_path)]
    with pytest.raises(RulesError, match=r"not a \(dev, ino\) pair"):
        name_dirs([(1, 2, 3)], "subtree")
    with pytest.raises(RulesError, match="out of range"):
        name_dirs([(-1, 2)], "subtree")


def test_mountinfo_paths_are_unescaped():
    assert any(m.point == b"/" for m in mounts())
    from fanbpf.rules import _unescape

    assert _unescape(rb"/a\040b\134c\011d") == b"/a b\\c\td"


@root_only
def test_nested_mounts_become_roots(tmp_path):
    for d in ("a/m", "x/m2", "x/y"):
        (tmp_path / d).mkdir(parents=True)
    with mounted("tmpfs", tmp_path / "a/m"), mounted("tmpfs", tmp_path / "x/m2"):
        (tmp_path / "a/m/deeper").mkdir()
        with mounted("tmpfs", tmp_path / "a/m/deeper"):
            top = root_of(tmp_path)
            found = nested_mounts([top])
            paths = {d.path: (root, d.key) for root, d in found}
            assert set(paths) == {os.fsencode(tmp_path / p) for p in ("a/m", "x/m2", "a/m/deeper")}
            assert all(root == top for root, _ in paths.values())
            assert paths[os.fsencode(tmp_path / "a/m")][1] == stat_key(tmp_path / "a/m")
            # an excluded subtree nearer than the root keeps its mounts out
            excluded = nested_mounts([top], [root_of(tmp_path / "x")])
            assert {d.path for _, d in excluded} == {os.fsencode(tmp_path / p)
                                                     for p in ("a/m", "a/m/deeper")}
            # a root below a mount claims what is mounted below it
            inner = nested_mounts([root_of(tmp_path / "a/m")])
            assert [d.path for _, d in inner] == [os.fsencode(tmp_path / "a/m/deeper")]
            assert nested_mounts([root_of(tmp_path / "x/y")]) == []

            built = rules(subtree=[tmp_path])
            assert set(built.args.roots) == {top, *(k for _, k in paths.values())}
            assert set(built.nested) == set(paths.values())
            assert built.filesystems[0] == os.fsencode(tmp_path)
            assert len(built.filesystems) == 4  # the root's, and one per tmpfs


@root_only
def test_overlay_directories_are_pinned(tmp_path):
    """overlayfs: named as the kernel names them, through an O_PATH fd that holds them."""
    for d in ("upper", "work", "merged"):
        (tmp_path / d).mkdir()
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        os.makedirs(f"{shm}/lower/d")
        # lower and upper on two filesystems: where overlayfs may make i_ino up
        opts = f"lowerdir={shm}/lower,upperdir={tmp_path}/upper,workdir={tmp_path}/work"
        with mounted("overlay", tmp_path / "merged", opts):
            merged = tmp_path / "merged"
            (merged / "new").mkdir()
            pinned = resolve_dirs([merged, merged / "d", merged / "new"], pin=True)
            try:
                assert {d.fstype for d in pinned} == {"overlay"}
                for d in pinned:
                    assert d.fd is not None
                    assert os.path.samefile(f"/proc/self/fd/{d.fd}", d.path)
                    assert root_of(d.path) == d.key  # held, so named the same again
                assert pinned[0].dev == os.stat(merged).st_dev == kernel_dev(os.stat(merged).st_dev)
                built = rules(subtree=[merged / "d"])
                assert built.overlay == ((pinned[1].key, os.fsencode(merged / "d")),)
            finally:
                for d in pinned:
                    os.close(d.fd)
            assert all(d.fd is None for d in resolve_dirs([merged]))  # pin=False: no fd


# --- the rule set ----------------------------------------------------------------------


def test_rules_returns_a_rule_set(tmp_path):
    (tmp_path / "d").mkdir()
    built = rules(subtree=[tmp_path, tmp_path / "d", tmp_path], names=["*.log", "core", exact("*")],
                  exclude_dirs=[".git", "node_modules", "*.egg-info"],
                  exclude_subtrees=[tmp_path / "d"], uid=0, deny_errno="EPERM")
    args = built.args
    assert isinstance(args, model.RulesArgs)
    assert args.sections == Section.SUBTREE | Section.NAMES | Section.EXCLUDE | Section.PROCESS
    assert args.roots == (stat_key(tmp_path), stat_key(tmp_path / "d"))  # duplicates dropped
    assert args.excluded == (stat_key(tmp_path / "d"),)
    assert [(p.kind, p.text) for p in args.dirs] == [
        (PatternKind.EXACT, b".git"), (PatternKind.EXACT, b"node_modules"),
        (PatternKind.SUFFIX, b".egg-info")]
    assert [(p.kind, p.text) for p in args.patterns] == [
        (PatternKind.SUFFIX, b".log"), (PatternKind.EXACT, b"core"), (PatternKind.EXACT, b"*")]
    assert built.needs_maps and built.filesystems == (os.fsencode(tmp_path),)
    assert model.check(args) != 0  # NAMES and EXCLUDE need a set id: attaching gives one
    assert model.check(built.model_args) == 0


def test_rules_subtree_may_start_empty():
    built = rules(subtree=[])
    assert built.args.sections == Section.SUBTREE and built.args.roots == ()
    built = rules(exclude_subtrees=[])
    assert built.args.sections == Section.EXCLUDE


def test_rules_take_many_names():
    """Any number of exact names, 64 other patterns, each up to NAME_MAX (255) bytes."""
    many = rules(names=[f"name{i}" for i in range(1000)] + [f"*.{i}" for i in range(64)]
                 + ["x" * 255])
    assert len(many.args.patterns) == 1065
    rules(exclude_dirs=[glob(f"{i}*{i}") for i in range(64)])
    with pytest.raises(RulesError, match=r"65 patterns with wildcards.*at most 64 \(exact names: any"):
        rules(names=[f"*.{i}" for i in range(65)])
    with pytest.raises(RulesError, match="exclude_dirs: 65 patterns"):
        rules(exclude_dirs=[f"{i}*" for i in range(65)])
    with pytest.raises(RulesError, match="256 bytes; the handler takes at most 255"):
        rules(exclude_names=["y" * 256])


@pytest.mark.parametrize("kwargs,message", [
    (dict(subtree=["/etc/hostname"]), "subtree: '/etc/hostname' is not a directory"),
    (dict(exclude_subtrees=["/etc/hostname"]), "exclude_subtrees: '/etc/hostname' is not"),
    (dict(subtree=[(1, 2, 3)]), r"not a \(dev, ino\) pair"),
    (dict(exclude_dirs=["a/b"]), "exclude_dirs: pattern b'a/b' contains NUL or '/'"),
    (dict(exclude_dirs=[""]), "exclude_dirs: empty pattern"),
    (dict(names=[]), "names: no patterns given"),
    (dict(names=["a/b"]), "'/'"),
    (dict(names=["a"], exclude_names=["b"]), "cannot be combined"),
    (dict(events=["create"]), "only restricts the name rule"),
    (dict(names=["a"], events=["nonsense"]), "no event named"),
    (dict(comm="x" * 16), "task name"),
    (dict(uid=-1), "out of range"),
    (dict(deny_errno=5000), "denies only with"),
    (dict(deny_errno="EINTR"), "EINTR would become EPERM"),
    (dict(deny_errno=529), "would become EPERM"),  # EIOCBQUEUED, kernel-internal
    (dict(deny_errno="ENOSUCH"), "unknown errno"),
    (dict(cgroup=True), "cgroup: expected an id or a cgroup v2 directory, got bool"),
    (dict(cgroup=1.5), "cgroup: expected an id or a cgroup v2 directory, got float"),
])
def test_rules_errors(kwargs, message):
    with pytest.raises(RulesError, match=message):
        rules(**kwargs)


def test_rules_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        rules(subtree=[tmp_path, tmp_path / "nothere"])


def test_rules_pattern_kinds_and_process_fields():
    args = rules(names=["*.log", "core", prefix("a*"), suffix(".x"), glob("?"), exact("*")],
                 events=["create", 0x8], tgid=1, exclude_pid=True, cgroup=5, comm="bash").args
    assert [(p.kind, p.text) for p in args.patterns] == [
        (PatternKind.SUFFIX, b".log"), (PatternKind.EXACT, b"core"), (PatternKind.PREFIX, b"a*"),
        (PatternKind.SUFFIX, b".x"), (PatternKind.GLOB, b"?"), (PatternKind.EXACT, b"*")]
    assert args.events == 0x108 and args.not_tgid == os.getpid() and args.tgid == 1
    assert args.cgroup_id == 5 and args.comm == b"bash"


@property_settings()
@given(text=st.text(alphabet="ab*?.", min_size=1, max_size=31), name=file_names())
def test_plain_patterns_are_globs(text, name):
    """A str pattern means the glob, whichever cheaper kind rules() stores it as."""
    [pattern] = rules(names=[text]).args.patterns
    assert model.pattern_matches(pattern, name) == \
        model.pattern_matches(Pattern(PatternKind.GLOB, text.encode()), name)


def test_process_tree_args(tmp_path):
    from fanbpf.rules import cgroup2_mount

    args = rules(descendants_of=os.getpid()).args
    assert args.process_flags == model.ProcessFlag.ANCESTOR and args.ancestor_tgid == os.getpid()
    with pytest.raises(RulesError, match="0 is not a process"):
        rules(descendants_of=0)
    with pytest.raises(RulesError, match="not a cgroup directory"):
        rules(cgroup_tree=tmp_path)
    mount = cgroup2_mount()
    if mount is not None:  # the host may have none; the VM tests have one
        args = rules(cgroup_tree=mount).args
        assert (args.cgroup_tree_id, args.cgroup_tree_level) == (os.stat(mount).st_ino, 0)


def test_rules_encode_as_init_args():
    """A rule set that fits the init args (no set id) encodes with the handler's BTF."""
    from fanbpf.handler import BpfObject, builtin_path

    built = rules(subtree=[(5, 2)], uid=0)
    assert not built.needs_maps
    with BpfObject(builtin_path("rules")) as obj:
        ctype = obj.btf.struct("fanbpf_rules_args")
        decoded = model.RulesArgs.from_dict(ctype.decode(ctype.encode(built.args.to_dict())))
        assert decoded.active_roots() == ((5, 2),) and decoded.uid == 0
    assert rules(subtree=[(5, i) for i in range(17)]).needs_maps
    assert rules(exclude_dirs=[".git"]).needs_maps and rules(names=["a"]).needs_maps
    with pytest.raises(RulesError, match="attach it as a loaded Handler"):
        rules(names=["a"]).init_args()


def test_a_rule_set_with_maps_does_not_attach_by_name():
    from fanbpf import handler

    with pytest.raises(RulesError, match="names, exclusions or more than 16 roots"):
        handler.attach(-1, "fanbpf_rules", rules(exclude_dirs=[".git"]))
