"""A few of watchdog's and watchfiles' own tests with subtree marks, on the test kernel.

tests/host/test_upstream_suites.py runs their suites on the host, where
the mechanism is ``userspace`` or ``inode-marks``.  Here they run with
``FANBPF_WATCH_MODE=subtree-marks``, the mechanism fanbpf.watch() picks on
this kernel (no exclusions: no handler).  In ``kernel`` mode (the rules
handler) each test loads the handler, and under TCG the verifier alone
took 49 s of a 74 s load on the loaded 2-core host (2026-12-07): these two
took 3.5-6 min there, and passed (with watchfiles' test_move_in).  Chosen
for what only the kernel decides here: a rename's two ends are judged by
their directories (the end outside the watched directory is not marked),
and a directory moved in is inside the subtree from that moment, with no
watch to add.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "upstream"))
import upstream_suites as upstream  # noqa: E402

SELECTED = {
    # dir1/sub (with sub/nested) moved into the watched dir2, then files made
    # in both: created events for all, none for dir1.
    "watchdog": ["tests.test_emitter::test_move_dir_to_then_change_inside"],
    # files renamed out of the watched dir_a into dir_b: deleted, and nothing
    # for dir_b.
    "watchfiles": ["tests.test_rust_notify::test_move_out"],
}


@pytest.mark.parametrize("suite", sorted(SELECTED))
def test_their_tests_pass_with_subtree_marks(suite, tmpfs, monkeypatch):
    sdist = upstream.sdist_path(suite)
    if not Path(sdist).exists():
        pytest.fail(f"{sdist} is missing: make upstream-sdists fetches it")
    # The guest's /tmp is an overlayfs without file handles, which a FID
    # group cannot mark: the tests and their files go on a tmpfs.
    monkeypatch.setenv("TMPDIR", tmpfs)
    monkeypatch.setattr("tempfile.tempdir", None)
    # pytest-timeout's, per test: the handler loads in a minute or more here.
    report = upstream.run(suite, sdist, None, "subtree-marks", only=SELECTED[suite], timeout=600)
    assert report["results"] == dict.fromkeys(SELECTED[suite], "passed"), report["details"]
