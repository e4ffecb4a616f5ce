# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""pytest plugin (opt-in): fixtures and tools to test fastpath handlers.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["fanbpf.testing"]``,
or per run with ``pytest -p fanbpf.testing``.  It is not registered
automatically, and importing it loads neither the C extension nor
hypothesis: the fixtures import what they need when a test asks for them.

The idea, for a handler of your own: keep its decision in pure
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
    from fanbpf.testing.logic import LogicProgram

    prog = LogicProgram("build/my_handler_test.bpf.o", "my_test", "my_test_ctx")

    @given(args=..., facts=...)
    def test_matches_model(args, facts):
        out = prog.run({"args": args, "facts": facts})
        assert out["decision"] == my_model(facts, args)

(If the logic indexes arrays with variable offsets, copy the context into
a map value first: see ``src/bpf/fanbpf_rules_test.bpf.c``.)

The pieces, one module each:

- :mod:`fanbpf.testing.logic`: :class:`~fanbpf.testing.logic.LogicProgram`
  (load an object once, run a syscall program with a dict context laid
  out by its BTF) and :class:`~fanbpf.testing.logic.RulesLogic` for the
  built-in ``fanbpf_rules`` logic;
- :mod:`fanbpf.testing.fs`: file-system operations as data
  (:class:`~fanbpf.testing.fs.FsOp`), applied here or by
  :class:`~fanbpf.testing.fs.Workers` (other processes), and
  :func:`~fanbpf.testing.fs.tmpfs_mount`;
- :mod:`fanbpf.testing.oracle`: :class:`~fanbpf.testing.oracle.FsTree`,
  which explains events from its own record of the tree, the expected
  events of the rules handler, :class:`~fanbpf.testing.oracle.OpsRun`;
- :mod:`fanbpf.testing.strategies`: hypothesis strategies (needs hypothesis).

Fixtures (this module): ``fanbpf_rules_logic`` (root), ``fanbpf_rules_handler``
(the fastpath kernel and root), ``fanbpf_workers`` and ``fanbpf_tmpfs``
(root); each skips where it cannot work.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["fanbpf_rules_logic", "fanbpf_rules_handler", "fanbpf_workers", "fanbpf_tmpfs"]


@pytest.fixture(scope="session")
def fanbpf_rules_logic():
    """The compiled fanbpf_rules logic (:class:`~fanbpf.testing.logic.RulesLogic`);
    skips without root or without the object."""
    from fanbpf.testing.logic import RULES_TEST_OBJECT, RulesLogic

    if not RULES_TEST_OBJECT.exists():
        pytest.skip(f"{RULES_TEST_OBJECT} is not part of this installation of fanbpf")
    if os.geteuid() != 0:
        pytest.skip("BPF_PROG_TEST_RUN needs root")
    with RulesLogic() as logic:
        yield logic


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
        pytest.skip(str(err))
    with handler:
        yield handler


@pytest.fixture(scope="module")
def fanbpf_workers():
    """Two :class:`~fanbpf.testing.fs.Workers`, shared by a module's tests (pass to OpsRun)."""
    from fanbpf.testing.fs import Workers

    with Workers(2) as workers:
        yield workers


@pytest.fixture
def fanbpf_tmpfs():
    """A fresh tmpfs (root needed), so events come from the test alone."""
    from fanbpf.testing.fs import tmpfs_mount

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    with tmpfs_mount() as path:
        yield path
