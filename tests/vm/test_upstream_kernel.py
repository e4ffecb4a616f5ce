"""watchdog's and watchfiles' own tests, run against fanbpf's drop-ins on the
test kernel, where the default mechanism is "kernel" (a filesystem mark, the
rules handler in the kernel). tests/upstream/expected.json records which of
their tests fail, and why; every other one must pass."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from test_upstream_suites import check_suite  # noqa: E402


@pytest.mark.parametrize("suite", ["watchdog", "watchfiles"])
def test_their_suite_passes_but_for_what_is_recorded(suite):
    check_suite(suite, "kernel")
