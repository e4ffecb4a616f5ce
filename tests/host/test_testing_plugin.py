"""fanbpf.testing is an opt-in pytest plugin, light to import, with one FFI."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *code], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_importing_the_plugin_is_light():
    heavy = ["fanbpf._fanbpf", "fanbpf.handler", "hypothesis", "multiprocessing", "ctypes",
             "pytest"]
    result = run_python(["-c", f"import sys, fanbpf.testing; print([m for m in {heavy!r} "
                               "if m in sys.modules])"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_tools_import_without_pytest():
    """fanbpf.testing.logic & co. are for any test runner: pytest blocked, they import."""
    result = run_python(["-c", "import sys; sys.modules['pytest'] = None\n"
                               "import fanbpf.testing, fanbpf.testing.logic, fanbpf.testing.fs, "
                               "fanbpf.testing.oracle\n"
                               "print(fanbpf.testing.logic.LogicProgram.__name__)"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "LogicProgram"


def test_no_ctypes_beside_cffi():
    sources = [p for p in (ROOT / "fanbpf").rglob("*.py")]
    assert sources
    assert [p for p in sources if "import ctypes" in p.read_text()] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the fixture mounts a tmpfs")
@pytest.mark.parametrize("how", ["none", "-p", "conftest"])
def test_plugin_is_opt_in(tmp_path, how):
    (tmp_path / "test_uses_fixture.py").write_text(textwrap.dedent("""
        import os

        def test_tmpfs(fanbpf_tmpfs):
            assert os.path.ismount(fanbpf_tmpfs)
    """))
    if how == "conftest":
        (tmp_path / "conftest.py").write_text('pytest_plugins = ["fanbpf.testing"]\n')
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", *(["-p", "fanbpf.testing"] if how == "-p" else []),
            "test_uses_fixture.py"]
    result = run_python(args, cwd=tmp_path)
    if how == "none":
        assert result.returncode != 0 and "fixture 'fanbpf_tmpfs' not found" in result.stdout
    else:
        assert result.returncode == 0, result.stdout + result.stderr
