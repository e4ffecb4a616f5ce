# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Run a handler's decision logic as a ``SEC("syscall")`` program (``BPF_PROG_TEST_RUN``).

Works on any kernel with BPF (no fastpath hook needed); needs ``CAP_BPF``.
See :mod:`fanbpf.testing` for the idea.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from fanbpf.errors import os_error
from fanbpf.model import (MAX_ANCESTRY, MAX_DEPTH, NAME_MAX, NO_DENTRY, Chain, Facts, NoDentry,
                          RulesArgs)

if TYPE_CHECKING:  # fanbpf.handler loads the C extension: imported when a program is made
    from fanbpf.handler import ObjectSource

__all__ = ["LogicProgram", "RulesLogic", "rules_test_ctx", "RULES_TEST_OBJECT", "TEST_CHAIN_MAX"]

#: The compiled fanbpf_rules logic, shipped with fanbpf's built-in handlers.
RULES_TEST_OBJECT = Path(__file__).resolve().parent.parent / "bpf" / "fanbpf_rules_test.bpf.o"


class LogicProgram:
    """A ``SEC("syscall")`` program run with ``BPF_PROG_TEST_RUN``.

    ``ctx_type`` is the name of the struct the program takes; :meth:`run`
    encodes a dict into it (fields left out are zero), runs the program
    and returns the context it wrote back, decoded.  Loading needs
    ``CAP_BPF`` (root); the object is loaded once, in the constructor.
    """

    def __init__(self, path: ObjectSource, prog: str, ctx_type: str) -> None:
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

    def run(self, ctx: Mapping[str, Any]) -> dict[str, Any]:
        retval, out = self.run_raw(self.ctx_type.encode(ctx))
        if retval:
            raise os_error(errno.EIO, f"{self.prog} returned {retval}", self.obj.path)
        decoded: dict[str, Any] = self.ctx_type.decode(out)
        return decoded

    def close(self) -> None:
        self.obj.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Nodes a chain of the test program holds (``FANBPF_TEST_CHAIN_MAX``).
TEST_CHAIN_MAX = MAX_DEPTH + 1
#: Distinct node names per run (``FANBPF_TEST_NAMES``).
TEST_NAMES = 1024
_NO_NAME = 0xFFFFFFFF
_VIRTUAL, _DIR = 1, 2
_OP = {"decide": 0, "init": 1, "free": 2}
_NODE = struct.Struct("=QQII")
_CHAIN_HEAD = struct.Struct("=II")
_NAME = struct.Struct(f"=II{NAME_MAX}s")


def rules_test_ctx(facts: Facts, args: RulesArgs, op: str = "decide") -> dict[str, Any]:
    """The ``struct fanbpf_rules_test_ctx`` dict for these facts and args
    (the chains go to the program's maps: :meth:`RulesLogic.outcome`)."""
    name = facts.name
    return {
        "args": args.to_dict(),
        "facts": {
            "mask": facts.mask,
            "tgid": facts.tgid,
            "uid": facts.uid,
            "cgroup_id": facts.cgroup_id,
            "comm": facts.comm,
        },
        "ancestry": {"len": len(facts.ancestors), "tgids": list(facts.ancestors[:MAX_ANCESTRY])},
        "cgroups": {"len": len(facts.cgroup_path), "ids": list(facts.cgroup_path)},
        "op": _OP[op],
        "name_len": -1 if name is None else len(name),
        "name": b"" if name is None else name,
    }


def _chain_value(chain: Chain | NoDentry, names: dict[bytes, int]) -> bytes:
    """A ``struct fanbpf_test_chain``: the first TEST_CHAIN_MAX nodes, len the
    whole chain's; walked unless ``()`` (:data:`~fanbpf.model.NO_DENTRY`:
    walked, no nodes)."""
    if chain is NO_DENTRY:
        chain, walked = (), 1
    else:
        walked = int(bool(chain))
    out = bytearray(_CHAIN_HEAD.pack(len(chain), walked))
    for i, node in enumerate(chain[:TEST_CHAIN_MAX]):
        if node.is_virtual and i:
            raise ValueError("only the first node of a chain can be virtual")
        index = _NO_NAME
        if node.name is not None:
            index = names.setdefault(node.name, len(names))
            if index >= TEST_NAMES:
                raise ValueError(f"more than {TEST_NAMES} distinct names in one event's chains")
        flags = (_VIRTUAL if node.is_virtual else 0) | (_DIR if node.is_dir else 0)
        out += _NODE.pack(0 if node.is_virtual else (node.dev or 0) & ((1 << 64) - 1),
                          0 if node.is_virtual else node.ino, flags, index)
    return bytes(out.ljust(_CHAIN_HEAD.size + TEST_CHAIN_MAX * _NODE.size, b"\0"))


class RulesLogic(LogicProgram):
    """The compiled ``fanbpf_rules`` logic (``fanbpf/bpf/fanbpf_rules_test.bpf.o``).

    The program reads the rule set from its own copy of the rules maps,
    which :meth:`outcome` fills (through :attr:`maps`) from the args' map
    entries for the run and empties after it; the event's chains go to its
    chains and names maps.
    """

    def __init__(self, path: ObjectSource | None = None) -> None:
        super().__init__(path or RULES_TEST_OBJECT, "fanbpf_rules_test",
                         "fanbpf_rules_test_ctx")
        from fanbpf.rulesmaps import RulesMaps

        try:
            self.maps = RulesMaps(self.obj)
        except BaseException:
            self.obj.close()
            raise

    def check(self, args: RulesArgs) -> int:
        """What fp_init answers for ``args`` (the check only, no stats entry)."""
        return int(self.run(rules_test_ctx(Facts(mask=0), args))["check"])

    def init(self, args: RulesArgs) -> int:
        """fp_init: the check, then the set's stats entry (-EEXIST if taken)."""
        return int(self.run(rules_test_ctx(Facts(mask=0), args, "init"))["check"])

    def free(self, args: RulesArgs) -> None:
        """fp_free: the set's stats entry goes."""
        self.run(rules_test_ctx(Facts(mask=0), args, "free"))

    def decide(self, facts: Facts, args: RulesArgs) -> tuple[int, int]:
        """``(check, decision)``: the decision is meaningful when check is 0."""
        check, decision, _ = self.outcome(facts, args)
        return check, decision

    def _write_chains(self, facts: Facts) -> None:
        chains: list[Chain | NoDentry] = [c for c in facts.chains]
        if len(chains) > 2:
            raise ValueError("an event has at most two chains")
        chains += [()] * (2 - len(chains))
        names: dict[bytes, int] = {}
        for i, chain in enumerate(chains):
            value = _chain_value(chain, names)
            self.maps.update("fanbpf_rules_test_chains", struct.pack("=I", i), value)
        for name, index in names.items():
            if len(name) >= NAME_MAX:
                raise ValueError(f"node name {name!r} is longer than NAME_MAX")
            self.maps.update("fanbpf_rules_test_names", struct.pack("=I", index),
                             _NAME.pack(len(name), 0, name))

    def outcome(self, facts: Facts, args: RulesArgs, keep: bool = False) -> tuple[int, int, int]:
        """``(check, decision, match)``, match a :class:`fanbpf.model.Match` value.

        The args' map entries are written under ``args.set_id`` for the run
        and removed after it (``keep``: left in place)."""
        check, decision, match, _ = self.run_event(facts, args, keep)
        return check, decision, match

    def run_event(self, facts: Facts, args: RulesArgs, keep: bool = False,
                  write: bool = True) -> tuple[int, int, int, tuple[int, ...]]:
        """``(check, decision, match, walks)``; walks: each chain's
        :class:`fanbpf.model.Walk` value (-1: not walked).  ``write``
        False: run on what the maps hold for the set (and leave it)."""
        self._write_chains(facts)
        write = write and bool(args.set_id)
        if write:
            self.maps.write_set(args.set_id, args)
        try:
            out = self.run(rules_test_ctx(facts, args))
        finally:
            if write and not keep:
                self.maps.delete_set(args.set_id)
        return out["check"], out["decision"], out["match"], tuple(out["walks"])
