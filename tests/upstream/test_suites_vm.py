"""watchdog's and watchfiles' own tests, whole, on the test kernel: `make test-upstream-vm`.

Not part of `make test` (tests/vm/test_upstream_vm.py runs two of them
there): under TCG the suites take many minutes. They run with
``FANBPF_WATCH_MODE=subtree-marks``, what fanbpf.watch() and the
observer pick on this kernel, and watchdog's emitter tests also in
``kernel`` mode (the rules handler, loaded by each test).
tests/upstream/expected.json records what fails, and why, per mode where
it differs from the host's; every other test must pass. Each report is
written to $FANBPF_UPSTREAM_REPORTS (default build/upstream-vm).
"""
import os
import subprocess
import tempfile

import pytest

import upstream_suites as upstream

pytestmark = pytest.mark.skipif(os.environ.get("FANBPF_IN_VM") != "1",
                                reason="needs the fanbpf test kernel: run `make test-upstream-vm`")

RUNS = [("watchdog", "subtree-marks"), ("watchfiles", "subtree-marks"), ("watchdog", "kernel")]
# pytest-timeout's, per test: in kernel mode the handler loads in a minute
# or more under TCG (the verifier, on a loaded 2-core host).
TIMEOUT = {"subtree-marks": 60, "kernel": 600}


@pytest.fixture
def tmpfs_tmpdir(monkeypatch):
    """TMPDIR on a fresh tmpfs: the guest's /tmp is an overlayfs without
    file handles, which a FID group cannot mark."""
    path = tempfile.mkdtemp(prefix="fanbpf-upstream-")
    subprocess.run(["mount", "-t", "tmpfs", "fanbpf-upstream", path], check=True)
    monkeypatch.setenv("TMPDIR", path)
    monkeypatch.setattr("tempfile.tempdir", None)
    yield path
    subprocess.run(["umount", "-l", path], check=True)
    os.rmdir(path)


@pytest.mark.parametrize("suite,mode", RUNS, ids=[f"{s}-{m}" for s, m in RUNS])
def test_their_suite_passes_but_for_what_is_recorded(suite, mode, tmpfs_tmpdir):
    reports = os.environ.get("FANBPF_UPSTREAM_REPORTS") or os.path.join(upstream.TOP, "build", "upstream-vm")
    os.makedirs(reports, exist_ok=True)
    upstream.check(suite, mode, timeout=TIMEOUT[mode], out=os.path.join(reports, f"{suite}-{mode}.json"))
