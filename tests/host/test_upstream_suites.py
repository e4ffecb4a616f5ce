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


def check_suite(suite: str, mode: str) -> None:
    sdist = upstream.sdist_path(suite)
    if not os.path.exists(sdist):
        pytest.fail(f"{sdist} is missing: make upstream-sdists fetches it")
    report, problems, fixed = upstream.judge(suite, sdist, mode)
    print(f"{suite} in {mode} mode: {report['summary']}"
          + (f"; recorded failures that passed: {fixed}" if fixed else ""))
    assert not problems, "\n".join(problems)
    assert report["summary"]["passed"] >= len(report["results"]) // 2  # the suite really ran


@pytest.mark.skipif(os.geteuid() != 0, reason="the userspace mode needs CAP_SYS_ADMIN")
@pytest.mark.parametrize("mode", ["userspace", "inode-marks"])
@pytest.mark.parametrize("suite", ["watchdog", "watchfiles"])
def test_their_suite_passes_but_for_what_is_recorded(suite, mode):
    check_suite(suite, mode)
