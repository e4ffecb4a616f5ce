# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""pytest plugin: property-test fastpath handlers with hypothesis.

fanbpf tests its own ``fanbpf_rules`` handler this way, and you can test
yours the same way.  The idea: keep the handler's decision in pure
``static __always_inline`` functions over plain data (no kernel pointers),
call them from the struct_ops program *and* from a ``SEC("syscall")``
program whose context carries the same data, and compare that program,
run with ``BPF_PROG_TEST_RUN`` on any kernel (no fastpath hook needed),
with a Python model of the decision::

    // my_logic.h: static __always_inline int my_decide(const struct my_facts *f,
    //                                                 const struct my_args *a);
    // my_handler.bpf.c: fp_handler gathers struct my_facts, returns my_decide()
    // my_handler_test.bpf.c:
    struct my_test_ctx { struct my_args args; struct my_facts facts; int decision; };
    SEC("syscall") int my_test(struct my_test_ctx *ctx)
    {
            ctx->decision = my_decide(&ctx->facts, &ctx->args);
            return 0;
    }

and in Python::

    from hypothesis import given
    from fanbpf.testing import LogicProgram

    prog = LogicProgram("build/my_handler_test.bpf.o", "my_test", "my_test_ctx")

    @given(args=..., facts=...)
    def test_matches_model(args, facts):
        out = prog.run({"args": args, "facts": facts})
        assert out["decision"] == my_model(facts, args)

(If the logic indexes arrays with variable offsets, copy the context into
a map value first: see ``src/bpf/fanbpf_rules_test.bpf.c``.)

What the plugin provides (registered through the ``pytest11`` entry
point ``fanbpf``, or with ``pytest_plugins = ["fanbpf.testing"]``):

- :class:`LogicProgram`: load a BPF object once, run a syscall program
  with a context given as a dict (laid out by the object's BTF), get the
  context back as a dict.
- :class:`RulesLogic`: that, for the built-in ``fanbpf_rules`` logic.
- hypothesis strategies (when hypothesis is installed): :func:`file_names`,
  :func:`patterns`, :func:`rules_args`, :func:`facts`, :func:`fs_ops`.
- fs operations as data (:class:`FsOp`), applied by :func:`apply_op`, from
  the test process or from :class:`Workers` (other processes).
- fixtures: ``fanbpf_rules_logic`` (host), ``fanbpf_rules_handler`` and
  ``fanbpf_tmpfs`` (need the fastpath kernel and root; they skip
  otherwise).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import multiprocessing
import os
import stat
import struct
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import pytest

from fanbpf import model
from fanbpf.model import Facts, Pattern, PatternKind, RulesArgs

try:
    from hypothesis import strategies as st
except ImportError:  # the strategies need hypothesis; the rest does not
    st = None

__all__ = [
    "LogicProgram", "RulesLogic", "rules_test_ctx", "FsOp", "apply_op", "Workers",
    "FsTree", "OpsRun", "RulesSpec", "describe_keys", "drain", "event_keys", "expected_keys",
    "file_handle", "OPS_DIRS", "OPS_MASK", "property_settings",
    "tmpfs_mount",
    "file_names", "patterns", "rules_args", "facts", "fs_ops", "rules_specs", "NODE_POOL",
    "fanbpf_rules_logic", "fanbpf_rules_handler", "fanbpf_tmpfs", "fanbpf_workers",
]

BPF_DIR = Path(__file__).resolve().with_name("bpf")


# --- running SEC("syscall") logic programs -----------------------------------

class LogicProgram:
    """A ``SEC("syscall")`` program run with ``BPF_PROG_TEST_RUN``.

    ``ctx_type`` is the name of the struct the program takes; :meth:`run`
    encodes a dict into it (fields left out are zero), runs the program
    and returns the context it wrote back, decoded.  Loading needs
    ``CAP_BPF`` (root); the object is loaded once, in the constructor.
    """

    def __init__(self, path, prog: str, ctx_type: str):
        from fanbpf.handler import BpfObject

        self.obj = BpfObject(path)
        try:
            self.obj.load()
            self.ctx_type = self.obj.btf.struct(ctx_type)
        except BaseException:
            self.obj.close()
            raise
        self.prog = prog

    def run_raw(self, ctx: bytes) -> tuple[int, bytes]:
        result = self.obj.test_run(self.prog, ctx)
        return result.retval, result.ctx

    def run(self, ctx: dict) -> dict:
        retval, out = self.run_raw(self.ctx_type.encode(ctx))
        if retval:
            raise OSError(errno.EIO, f"{self.prog} returned {retval}")
        return self.ctx_type.decode(out)

    def close(self) -> None:
        self.obj.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def rules_test_ctx(facts: Facts, args: RulesArgs) -> dict:
    """The ``struct fanbpf_rules_test_ctx`` dict for these facts and args."""
    name = facts.name
    return {
        "args": args.to_dict(),
        "facts": {
            "mask": facts.mask,
            "name_len": -1 if name is None else len(name),
            "tgid": facts.tgid,
            "uid": facts.uid,
            "cgroup_id": facts.cgroup_id,
            "comm": facts.comm,
            "name": b"" if name is None else name,
        },
        "chains": [{"len": len(chain),
                    "nodes": [{"dev": dev, "ino": ino} for dev, ino in chain]}
                   for chain in facts.chains],
    }


class RulesLogic(LogicProgram):
    """The compiled ``fanbpf_rules`` logic (``fanbpf/bpf/fanbpf_rules_test.bpf.o``)."""

    def __init__(self, path=None):
        super().__init__(path or BPF_DIR / "fanbpf_rules_test.bpf.o", "fanbpf_rules_test",
                         "fanbpf_rules_test_ctx")

    def check(self, args: RulesArgs) -> int:
        """What fp_init answers for ``args``."""
        return self.run(rules_test_ctx(Facts(mask=0), args))["check"]

    def decide(self, facts: Facts, args: RulesArgs) -> tuple[int, int]:
        """``(check, decision)``: the decision is meaningful when check is 0."""
        out = self.run(rules_test_ctx(facts, args))
        return out["check"], out["decision"]


# --- file-system operations ------------------------------------------------------

@dataclass(frozen=True)
class FsOp:
    """One file-system operation, with paths relative to a base directory.

    ``kind`` is one of :data:`FsOp.KINDS`; ``dest`` is the target of a
    rename; ``proc`` says which process performs it (0: the test process,
    n: :class:`Workers` number n).  Its repr reads like a call, so that a
    shrunk counter-example is a readable list of operations.
    """

    kind: str
    path: str
    dest: Optional[str] = None
    proc: int = 0

    #: create: open(O_CREAT|O_EXCL) + close; write: open, write, close;
    #: open: open read-only + read + close; chmod; mkdir; rmdir; unlink;
    #: rename (to a name that does not exist).
    KINDS = ("create", "write", "open", "chmod", "mkdir", "rmdir", "unlink", "rename")

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis prints examples with it
        printer.text(repr(self))

    def __repr__(self) -> str:
        args = [repr(self.path)]
        if self.dest is not None:
            args.append(repr(self.dest))
        if self.proc:
            args.append(f"proc={self.proc}")
        return f"{self.kind}({', '.join(args)})"


def apply_op(base, op: FsOp) -> None:
    """Perform ``op`` under ``base`` in this process."""
    path = os.path.join(base, op.path)
    if op.kind == "create":
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    elif op.kind == "write":
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
    elif op.kind == "open":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.read(fd, 1)
        finally:
            os.close(fd)
    elif op.kind == "chmod":
        os.chmod(path, 0o600 if os.stat(path).st_mode & 0o044 else 0o644)
    elif op.kind == "mkdir":
        os.mkdir(path)
    elif op.kind == "rmdir":
        os.rmdir(path)
    elif op.kind == "unlink":
        os.unlink(path)
    elif op.kind == "rename":
        os.rename(path, os.path.join(base, op.dest))
    else:
        raise ValueError(f"unknown operation {op!r}")


def _worker(conn) -> None:
    while True:
        msg = conn.recv()
        if msg is None:
            return
        base, op = msg
        try:
            apply_op(base, op)
            conn.send(None)
        except Exception as err:  # reported to the parent, which raises it
            conn.send(err)


class Workers:
    """Helper processes that perform :class:`FsOp` s, so events come from other pids.

    ``workers.pids[n - 1]`` is the pid of worker ``n``; :meth:`apply` runs
    an op in the process it names (``proc`` 0: this one) and returns once
    it is done, so its events are queued by then.
    """

    def __init__(self, count: int = 2):
        ctx = multiprocessing.get_context("fork")
        self._conns = []
        self._procs = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child,), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self.pids = [p.pid for p in self._procs]

    def apply(self, base, op: FsOp) -> None:
        if op.proc == 0:
            apply_op(base, op)
            return
        conn = self._conns[op.proc - 1]
        conn.send((os.fspath(base), op))
        err = conn.recv()
        if err is not None:
            raise err

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        self._conns = []
        self._procs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- an oracle for events on a tree of FsOps ----------------------------------------

_AT_FDCWD = -100
_MAX_HANDLE_SZ = 128
_MNT_DETACH = 2
_FLAG_BITS = 0x40000000 | 0x08000000  # FAN_ONDIR | FAN_EVENT_ON_CHILD
_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check_c(ret: int, what: str, path) -> None:
    if ret:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", os.fspath(path))


def file_handle(path) -> bytes:
    """``name_to_handle_at(2)`` of ``path`` (a final symlink not followed).

    The bytes are those fanotify reports in FID records for the same
    object (same filesystem export operations).
    """
    buf = ctypes.create_string_buffer(8 + _MAX_HANDLE_SZ)
    struct.pack_into("=Ii", buf, 0, _MAX_HANDLE_SZ, 0)
    mount_id = ctypes.c_int()
    _check_c(_c().name_to_handle_at(_AT_FDCWD, os.fsencode(path), buf, ctypes.byref(mount_id), 0),
             "name_to_handle_at", path)
    size, _ = struct.unpack_from("=Ii", buf)
    return buf.raw[8:8 + size]


@dataclass
class _Node:
    dev: int
    ino: int
    is_dir: bool
    path: Optional[str]  # relative; None once removed
    last: str  # the last path it had


class FsTree:
    """What a test knows about the tree under ``base``, kept in step with :class:`FsOp` s.

    Every object's ``(dev, ino)`` and file handle are recorded when it
    appears, and its path is updated on renames, so an event read later
    can be explained without asking the file system again: which object
    its records name, where it was, and the walk the kernel made from
    there (:meth:`facts`).  ``base`` must be the root of its file system
    (a tmpfs), since the kernel's walk ends at the file system's root.
    """

    def __init__(self, base):
        self.base = os.path.abspath(base)
        self.nodes: dict = {}  # relative path -> _Node, live objects
        self.by_handle: dict = {}  # handle bytes -> _Node, removed ones too
        self.removed: dict = {}  # relative path -> the _Node removed from it last
        self._add("")
        for dirpath, dirnames, filenames in os.walk(self.base):
            for name in dirnames + filenames:
                self._add(os.path.relpath(os.path.join(dirpath, name), self.base))

    def _abs(self, rel: str) -> str:
        return os.path.join(self.base, rel) if rel else self.base

    def _add(self, rel: str) -> None:
        path = self._abs(rel)
        st = os.lstat(path)
        from fanbpf.rules import kernel_dev

        node = _Node(kernel_dev(st.st_dev), st.st_ino, stat.S_ISDIR(st.st_mode), rel, rel)
        self.nodes[rel] = node
        self.by_handle[file_handle(path)] = node

    def after(self, op: FsOp) -> None:
        """Record the effect of ``op``, which has just been applied."""
        if op.kind in ("create", "mkdir"):
            self._add(op.path)
        elif op.kind in ("unlink", "rmdir"):
            node = self.nodes.pop(op.path)
            node.path = None
            self.removed[op.path] = node
        elif op.kind == "rename":
            moved = [p for p in self.nodes if p == op.path or p.startswith(op.path + "/")]
            for rel in sorted(moved):
                node = self.nodes.pop(rel)
                node.path = node.last = op.dest + rel[len(op.path):]
                self.nodes[node.path] = node

    # -- explaining events ---------------------------------------------------

    def _record_path(self, record, last: bool = False) -> Optional[str]:
        node = self.by_handle.get(record.handle)
        if node is None:
            return None
        rel = node.last if last and node.path is None else node.path
        if rel is None:
            return None
        name = getattr(record, "name", ".")
        return self._abs(rel) if name == "." else os.path.join(self._abs(rel), name)

    def resolve(self, event, last: bool = False):
        """``event`` with ``path``, ``old_path`` and ``new_path`` set from the tree,
        the way :class:`~fanbpf.group.Group` sets them from the file system.
        ``last``: a removed object's FID resolves to the path it had last."""
        from fanbpf.events import DirFidNameInfo, FidInfo
        from fanbpf.flags import InfoType

        paths = {}
        for record in event.info:
            if isinstance(record, DirFidNameInfo):
                paths[record.info_type] = self._record_path(record)
            elif isinstance(record, FidInfo) and record.info_type == InfoType.FID:
                paths[InfoType.FID] = self._record_path(record, last)
        new = paths.get(InfoType.NEW_DFID_NAME)
        return replace(event, path=paths.get(InfoType.DFID_NAME) or paths.get(InfoType.FID) or new,
                       old_path=paths.get(InfoType.OLD_DFID_NAME), new_path=new)

    def chain(self, path: Optional[str]) -> tuple:
        """The kernel's walk from the dentry at ``path``: it and its ancestors
        up to the file system's root, at most ``CHAIN_MAX``."""
        if path is None:
            return ()
        rel = os.path.relpath(path, self.base)
        rel = "" if rel == "." else rel
        chain = []
        node = self.nodes.get(rel) or self.removed[rel]  # removed: explained by its last path
        while len(chain) < model.CHAIN_MAX:
            chain.append((node.dev, node.ino))
            if rel == "":
                break
            rel = os.path.dirname(rel)
            node = self.nodes[rel]
        return tuple(chain)

    def facts(self, event, bit: int, args: RulesArgs, dir_fid: bool = True) -> Facts:
        """The facts the kernel handler gathered for event ``bit`` of ``event``.

        Which pointers the kernel passed comes from
        :func:`fanbpf.fallback.kernel_pieces` (the kernel's table); where
        they pointed comes from this tree, not from the file system.  One
        case the file system cannot tell after the fact: a link-count
        ATTRIB on an unlinked file was sent while its dentry was still in
        place, so its FID resolves to the last path.
        """
        from fanbpf.fallback import kernel_pieces

        link_count = bit == 0x4 and not event.mask & 0x40000000 and event.dfid is None
        pieces = kernel_pieces(self.resolve(event, last=link_count), bit, dir_fid)
        name = pieces.name
        if name is None and pieces.dentry is not None:
            rel = os.path.relpath(pieces.dentry, self.base)
            name = b"/" if rel == "." else os.fsencode(os.path.basename(rel))
        first = pieces.dentry if pieces.dentry is not None else pieces.inode
        return Facts(mask=bit | (event.mask & _FLAG_BITS), name=name, tgid=event.pid,
                     chains=(self.chain(first or None), self.chain(pieces.dir or None)))


def describe_keys(tree: FsTree, keys) -> list:
    """Keys of :func:`event_keys`, readable: ``"MOVED_TO|ONDIR out/a (pid 42)"``."""
    from fanbpf.flags import EventMask

    out = []
    for bit, flags, pid, records in sorted(keys, key=repr):
        where = []
        for _, handle, name in records:
            node = tree.by_handle.get(handle)
            rel = "?" if node is None else (node.path if node.path is not None else f"{node.last} (gone)")
            where.append(rel if name in (None, ".") else os.path.join(rel, name))
        what = EventMask(bit | flags).name or hex(bit | flags)
        out.append(f"{what} {' '.join(where)} (pid {pid})")
    return out


def _event_bits(mask: int):
    events = int(mask) & ~_FLAG_BITS
    return [1 << i for i in range(32) if events >> i & 1]


def _key(event, bit: int):
    from fanbpf.events import DirFidNameInfo, FidInfo

    records = tuple((int(r.info_type), r.handle, getattr(r, "name", None))
                    for r in event.info if isinstance(r, (FidInfo, DirFidNameInfo)))
    return bit, int(event.mask) & _FLAG_BITS, event.pid, records


def event_keys(events) -> set:
    """Events as a set of ``(bit, flags, pid, records)``: one per event bit.

    Comparing sets makes the comparison blind to merging (the kernel
    merges identical events while they wait in the queue, differently in
    groups that drop different events) and to order.
    """
    return {_key(event, bit) for event in events for bit in _event_bits(event.mask)}


def expected_keys(tree: FsTree, events, args, dir_fid: bool = True) -> set:
    """The keys of the ``events`` (read from a group without a handler) that
    the rules handler, attached with ``args``, delivers according to the model."""
    args = args if isinstance(args, RulesArgs) else RulesArgs.from_dict(args)
    keep = set()
    for event in events:
        for bit in _event_bits(event.mask):
            if model.decide(tree.facts(event, bit, args, dir_fid), args) != model.SKIP:
                keep.add(_key(event, bit))
    return keep


@contextlib.contextmanager
def tmpfs_mount():
    """Mount a fresh tmpfs on a new directory, yield its path, unmount it.

    Straight syscalls rather than mount(8): property tests mount one per
    example, and fork+exec is slow in an emulated test VM.
    """
    path = tempfile.mkdtemp(prefix="fanbpf-")
    raw = os.fsencode(path)
    try:
        _check_c(_c().mount(b"fanbpf-test", raw, b"tmpfs", 0, None), "mount tmpfs", path)
        try:
            yield path
        finally:
            _check_c(_c().umount2(raw, _MNT_DETACH), "umount", path)
    finally:
        os.rmdir(path)


#: The directories :class:`OpsRun` creates (and :func:`fs_ops` leaves alone).
OPS_DIRS = ("in", "out", "in/sub")
#: Every event the operations of :class:`FsOp` cause (FAN_* bits and FAN_ONDIR).
OPS_MASK = (0x100 | 0x200 | 0x40 | 0x80 | 0x10000000 | 0x400 | 0x800 | 0x20 | 0x1 | 0x2 | 0x8
            | 0x10 | 0x4 | 0x40000000)


def property_settings(**overrides):
    """hypothesis settings for fanbpf's property tests: ``FANBPF_EXAMPLES``
    examples (default 500), derandomized and without an example database,
    so that every run tries the same examples; no deadline (BPF loads and
    tmpfs mounts vary)."""
    _require_hypothesis()
    from hypothesis import HealthCheck, settings

    options = dict(max_examples=int(os.environ.get("FANBPF_EXAMPLES", "500")),
                   derandomize=True, database=None, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    options.update(overrides)
    return settings(**options)


def drain(group) -> list:
    """Every event queued in ``group`` now (a Group or RulesGroup), without waiting."""
    events = []
    while True:
        batch = group.read_events(timeout=0)
        if not batch:
            return events
        events.extend(batch)


class OpsRun:
    """Apply :class:`FsOp` s on a fresh tmpfs, with a reference group watching.

    ``dirs`` are created first (and never touched by :func:`fs_ops`);
    ``procs`` :class:`Workers` are started, unless ``workers`` are given.  Mark the groups under test on
    :attr:`base`, then call :meth:`start`, which marks the reference group
    (a group without a handler that sees every event) *last*: marking a
    group that resolves paths opens the directory, an event for groups
    marked before.  :meth:`step` applies one op, updates :attr:`tree` and
    returns the reference group's events for it.
    """

    def __init__(self, dirs=OPS_DIRS, procs: int = 2, workers: Optional[Workers] = None):
        self._dirs = dirs
        self._procs = procs
        self._stack = contextlib.ExitStack()
        self.ref = None
        self.workers = workers  # shared across runs: forking is slow in an emulated VM

    def __enter__(self) -> OpsRun:
        try:
            self.base = self._stack.enter_context(tmpfs_mount())
            for d in self._dirs:
                os.mkdir(os.path.join(self.base, d))
            if self.workers is None:
                self.workers = self._stack.enter_context(Workers(self._procs))
            self.pids = self.workers.pids
            self.tree = FsTree(self.base)
        except BaseException:
            self._stack.close()
            raise
        return self

    def start(self, mask: int) -> None:
        from fanbpf.flags import MarkFlag
        from fanbpf.group import Group

        self.ref = self._stack.enter_context(Group(resolve_paths=False))
        self.ref.mark(self.base, mask, MarkFlag.FILESYSTEM)

    def step(self, op: FsOp) -> list:
        self.workers.apply(self.base, op)
        self.tree.after(op)
        return drain(self.ref)

    def __exit__(self, *exc) -> None:
        self._stack.close()


@dataclass(frozen=True)
class RulesSpec:
    """:func:`fanbpf.rules.rules` keyword arguments with directories named
    relative to a test tree and processes by worker number, so that
    hypothesis can draw them before the tree exists; :meth:`build` makes
    the args.  ``exclude_proc``/``only_proc``: 0 is the test process."""

    subtree: tuple = ()
    names: tuple = ()
    exclude_names: bool = False
    events: int = 0
    exclude_proc: Optional[int] = None
    only_proc: Optional[int] = None

    def build(self, base, pids=()) -> dict:
        from fanbpf.rules import rules

        pid = [os.getpid(), *pids]
        kwargs: dict = {}
        if self.subtree:
            kwargs["subtree"] = [os.path.join(base, d) if d else base for d in self.subtree]
        if self.names:
            kwargs["exclude_names" if self.exclude_names else "names"] = list(self.names)
            if self.events:
                kwargs["events"] = self.events
        if self.exclude_proc is not None:
            kwargs["exclude_pid"] = pid[self.exclude_proc]
        if self.only_proc is not None:
            kwargs["tgid"] = pid[self.only_proc]
        return rules(**kwargs)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(repr(self))

    def __repr__(self) -> str:
        fields = [f"{k}={v!r}" for k, v in self.__dict__.items()
                  if v != RulesSpec.__dataclass_fields__[k].default]
        return f"RulesSpec({', '.join(fields)})"


# --- hypothesis strategies ---------------------------------------------------------

#: A few (dev, ino) values that roots and chains are drawn from, so that
#: they meet often; includes edge values.
NODE_POOL = ((5, 2), (5, 3), (5, 4), (7, 2), (0, 0), (0xFFFFF, 1), (1, (1 << 64) - 1))

_NAME_ALPHABET = b"ab.*?x-"
_MASK_BITS = (0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800,
              0x1000, 0x10000, 0x20000, 0x40000, 0x08000000, 0x10000000, 0x40000000)
_PERM_BITS = (0x10000, 0x20000, 0x40000)


def _require_hypothesis():
    if st is None:
        raise RuntimeError("fanbpf.testing strategies need hypothesis (pip install hypothesis)")


def _bits(pool):
    return st.lists(st.sampled_from(pool), max_size=4).map(lambda bits: sum(set(bits)))


def file_names(max_size: int = model.NAME_MAX - 1):
    """File names as the kernel has them: 1..255 bytes, no NUL, no '/'.

    Mostly short names over a small alphabet (so that patterns hit them,
    ``*`` and ``?`` included as literal bytes), sometimes any bytes and
    sometimes long ones.
    """
    _require_hypothesis()
    small = st.binary(min_size=1, max_size=12).map(
        lambda b: bytes(_NAME_ALPHABET[x % len(_NAME_ALPHABET)] for x in b))
    anything = st.binary(min_size=1, max_size=max_size).map(
        lambda b: bytes(x if x not in (0, 0x2F) else 0x61 for x in b))
    long = st.integers(min_value=max(1, max_size - 8), max_value=max_size).flatmap(
        lambda n: st.sampled_from([b"a", b"ab", b"a*"]).map(lambda unit: (unit * n)[:n]))
    return st.one_of(small, small, small, anything, long)


def patterns(valid: bool = True):
    """:class:`fanbpf.model.Pattern` s; ``valid=False`` also draws bad kinds and lengths."""
    _require_hypothesis()
    text = st.binary(max_size=model.PATTERN_MAX - 1).map(
        lambda b: bytes(_NAME_ALPHABET[x % len(_NAME_ALPHABET)] for x in b))
    kinds = st.sampled_from(list(PatternKind))
    if valid:
        return st.builds(Pattern, kinds, text)
    return st.builds(Pattern, st.one_of(kinds, st.integers(0, 6)), text,
                     st.one_of(st.none(), st.integers(0, 40)))


def rules_args(valid: bool = True, nodes=NODE_POOL):
    """:class:`fanbpf.model.RulesArgs`; ``valid=False`` draws structs fp_init may refuse."""
    _require_hypothesis()
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
        process_flags=_bits([1, 2, 4, 8, 16]),
        tgid=ids, not_tgid=ids, uid=ids,
        cgroup_id=st.sampled_from([0, 1, 12345, (1 << 64) - 1]),
        comm=comm,
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
        process_flags=st.integers(0, 63),
    )
    return st.builds(RulesArgs, **bad)


def facts(nodes=NODE_POOL):
    """:class:`fanbpf.model.Facts` whose chains use ``nodes`` (deep ones included)."""
    _require_hypothesis()
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
    _require_hypothesis()

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
    _require_hypothesis()
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
    )


# --- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="session")
def fanbpf_rules_logic():
    """The compiled fanbpf_rules logic (:class:`RulesLogic`); skips without root or the object."""
    path = BPF_DIR / "fanbpf_rules_test.bpf.o"
    if not path.exists():
        pytest.skip(f"{path} is missing: run make build")
    if os.geteuid() != 0:
        pytest.skip("BPF_PROG_TEST_RUN needs root")
    logic = RulesLogic(path)
    yield logic
    logic.close()


@pytest.fixture(scope="session")
def fanbpf_rules_handler():
    """The built-in rules handler, loaded (private); skips without the fastpath kernel."""
    from fanbpf.errors import KernelSupportError
    from fanbpf.handler import Handler

    if os.geteuid() != 0:
        pytest.skip("loading a fastpath handler needs root")
    try:
        handler = Handler.load("rules", private=True)  # attached by fd: no name to clash
    except KernelSupportError as err:
        pytest.skip(f"no fastpath support in this kernel: {err}")
    yield handler
    handler.close()


@pytest.fixture(scope="module")
def fanbpf_workers():
    """Two :class:`Workers`, shared by a module's tests (pass to :class:`OpsRun`)."""
    with Workers(2) as workers:
        yield workers


@pytest.fixture
def fanbpf_tmpfs():
    """A fresh tmpfs (root needed), so events come from the test alone."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    with tmpfs_mount() as path:
        yield path

