"""watchdog's and watchfiles' own tests, run against fanbpf's drop-ins on the host.

The host is root on a stock kernel: the default mechanism is "userspace"
(a filesystem mark, the rules in user space); "inode-marks" (what runs
without privilege) is forced too. tests/upstream/expected.json records
which of their tests fail, and why; every other one must pass.
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "upstream"))
import upstream_suites as upstream  # noqa: E402


@pytest.mark.skipif(os.geteuid() != 0, reason="the userspace mode needs CAP_SYS_ADMIN")
@pytest.mark.parametrize("mode", ["userspace", "inode-marks"])
@pytest.mark.parametrize("suite", ["watchdog", "watchfiles"])
def test_their_suite_passes_but_for_what_is_recorded(suite, mode):
    upstream.check(suite, mode)


def test_expected_failures_name_real_modes_and_give_reasons():
    """expected.json's entries: a reason, or reasons for named modes only."""
    import json

    from fanbpf.watching import MODES

    with open(upstream.EXPECTED) as f:
        expected = json.load(f)
    for suite in upstream.SUITES:
        for section in ("failed", "skipped"):
            entries = expected[suite][section]
            for mode in MODES:
                assert all(why.strip() for why in upstream.recorded(entries, mode).values())
            for test, why in entries.items():
                if isinstance(why, dict):
                    assert why["modes"] and set(why["modes"]) <= set(MODES), (test, why)
    with pytest.raises(ValueError, match="a reason, or"):
        upstream.recorded({"t": {"kernel": "why"}}, "kernel")
