# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""pytest plugin (opt-in): fixtures and tools to test fastpath handlers.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["fanbpf.testing"]``,
or per run with ``pytest -p fanbpf.testing``.  It is not registered
automatically, and importing it (or :mod:`fanbpf.testing.logic`, ...)
loads neither pytest, the C extension nor hypothesis: the fixtures are in
:mod:`fanbpf.testing.fixtures`, which the plugin loads through
``pytest_plugins``; they load the C extension only when a test uses them.

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

Fixtures (:mod:`fanbpf.testing.fixtures`): ``fanbpf_rules_logic`` (root), ``fanbpf_rules_handler``
(the fastpath kernel and root), ``fanbpf_workers`` and ``fanbpf_tmpfs``
(root); each skips where it cannot work.
"""

# pytest loads a plugin's own pytest_plugins: the fixtures, with pytest.
pytest_plugins = ["fanbpf.testing.fixtures"]
