"""The user-space fallback against the in-kernel handler, event for event, in
the test kernel.

Two FID groups watch the same tmpfs with the same rules: one with the
fanbpf_rules handler attached, one filtered in user space by
fanbpf.fallback.RulesGroup.  After every operation of a drawn sequence
they must have delivered the same events.  The one allowed difference is
the fallback's documented fail-open: an event it delivered because a fact
was gone by the time it read the event (counted in RulesFilter.uncertain)
may be one the kernel dropped.

Example counts: FANBPF_EXAMPLES examples (default 500), derandomized.
"""

import os

from hypothesis import given, note

from fanbpf import EventMask, Group, MarkFlag
from fanbpf.fallback import RulesGroup
from fanbpf.testing.fs import OPS_DIRS, OPS_MASK, tmpfs_mount
from fanbpf.testing.oracle import OpsRun, describe_keys, event_keys
from fanbpf.testing.strategies import fs_ops, property_settings, rules_specs



@property_settings()
@given(ops=fs_ops(dirs=OPS_DIRS), spec=rules_specs())
def test_fallback_agrees_with_the_kernel(fanbpf_rules_handler, fanbpf_workers, ops,
                                         spec):
    with OpsRun(workers=fanbpf_workers) as run:
        args = spec.build(run.base, run.pids)
        note(f"rules: {args!r}")
        # the fallback's group resolves paths, so it is marked first (see OpsRun)
        with RulesGroup(Group(), args, mode="userspace") as fallback, \
                Group(resolve_paths=False) as kernel:
            fallback.group.mark(run.base, OPS_MASK, MarkFlag.FILESYSTEM)
            kernel.mark(run.base, OPS_MASK, MarkFlag.FILESYSTEM)
            kernel.attach(fanbpf_rules_handler, args)
            run.start(OPS_MASK)
            fallback.filter.uncertain_log = uncertain = []
            for step, op in enumerate(ops):
                run.step(op)
                in_kernel = event_keys(kernel.drain())
                in_user = event_keys(fallback.drain())
                allowed = event_keys(e for e, _ in uncertain)
                uncertain.clear()
                where = f"after {ops[:step + 1]!r}"
                assert in_kernel <= in_user, \
                    f"{where}: the fallback dropped {describe_keys(run.tree, in_kernel - in_user)}"
                assert in_user - in_kernel <= allowed, \
                    f"{where}: the fallback delivered " \
                    f"{describe_keys(run.tree, in_user - in_kernel - allowed)}"


def test_rules_group_uses_the_kernel_when_it_can(fanbpf_rules_handler):
    import fanbpf

    with tmpfs_mount() as base:
        os.mkdir(f"{base}/in")
        group = Group()
        group.mark(base, EventMask.CREATE | EventMask.ONDIR, MarkFlag.FILESYSTEM)
        with RulesGroup(group, fanbpf.rules(subtree=[f"{base}/in"])) as watcher:
            assert watcher.mode == "kernel" and watcher.filter is None
            os.mkdir(f"{base}/in/a")
            os.mkdir(f"{base}/b")
            assert [e.name for e in watcher.drain()] == ["a"]
