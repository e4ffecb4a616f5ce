# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Run a handler's decision logic as a ``SEC("syscall")`` program (``BPF_PROG_TEST_RUN``).

Works on any kernel with BPF (no fastpath hook needed); needs ``CAP_BPF``.
See :mod:`fanbpf.testing` for the idea.
"""

from __future__ import annotations

import errno
from pathlib import Path

from fanbpf.model import MAX_ANCESTRY, Facts, RulesArgs

__all__ = ["LogicProgram", "RulesLogic", "rules_test_ctx", "RULES_TEST_OBJECT"]

#: The compiled fanbpf_rules logic, shipped with fanbpf's built-in handlers.
RULES_TEST_OBJECT = Path(__file__).resolve().parent.parent / "bpf" / "fanbpf_rules_test.bpf.o"


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
            from fanbpf.errors import os_error

            raise os_error(errno.EIO, f"{self.prog} returned {retval}", self.obj.path)
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
        "ancestry": {"len": len(facts.ancestors), "tgids": list(facts.ancestors[:MAX_ANCESTRY])},
        "cgroups": {"len": len(facts.cgroup_path), "ids": list(facts.cgroup_path)},
    }


class RulesLogic(LogicProgram):
    """The compiled ``fanbpf_rules`` logic (``fanbpf/bpf/fanbpf_rules_test.bpf.o``)."""

    def __init__(self, path=None):
        super().__init__(path or RULES_TEST_OBJECT, "fanbpf_rules_test",
                         "fanbpf_rules_test_ctx")

    def check(self, args: RulesArgs) -> int:
        """What fp_init answers for ``args``."""
        return self.run(rules_test_ctx(Facts(mask=0), args))["check"]

    def decide(self, facts: Facts, args: RulesArgs) -> tuple[int, int]:
        """``(check, decision)``: the decision is meaningful when check is 0."""
        check, decision, _ = self.outcome(facts, args)
        return check, decision

    def outcome(self, facts: Facts, args: RulesArgs) -> tuple[int, int, int]:
        """``(check, decision, match)``, match a :class:`fanbpf.model.Match` value."""
        out = self.run(rules_test_ctx(facts, args))
        return out["check"], out["decision"], out["match"]

