"""The documentation's code: every Python block compiles, every dotted
``fanbpf.…`` name it mentions exists as spelled (``fanbpf.rules.exact``),
and the blocks that need no fastpath hook run (the README's own example
runs in the VM: tests/vm/test_readme.py)."""
import importlib
import re
import subprocess
import threading
from pathlib import Path

import pytest

import fanbpf
from fanbpf import EventMask, Group, MarkFlag

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "docs/rules.md", "examples/README.md"]


def python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), re.S)


@pytest.mark.parametrize("doc", DOCS)
def test_python_blocks_compile(doc):
    blocks = python_blocks(doc)
    assert blocks
    for code in blocks:
        compile(code, doc, "exec")


def documented_names() -> set[str]:
    names = set()
    for doc in DOCS:
        names.update(re.findall(r"\bfanbpf(?:\.[A-Za-z_]\w*)+", (ROOT / doc).read_text()))
    return names


def resolve(dotted: str) -> object:
    """``dotted`` as code spells it after ``import fanbpf`` (and importing
    the submodule it names, as a user would): an attribute chain."""
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):  # import fanbpf.testing.logic, ...
        try:
            importlib.import_module(".".join(parts[:end]))
            break
        except ImportError:
            continue
    obj: object = fanbpf
    for part in parts[1:]:
        obj = getattr(obj, part)
    return obj


def test_every_documented_name_exists():
    names = documented_names()
    assert {"fanbpf.rules.exact", "fanbpf.rules.root_of", "fanbpf.build.build_py"} <= names
    missing = []
    for name in sorted(names):
        try:
            resolve(name)
        except AttributeError as err:
            missing.append(f"{name}: {err}")
    assert not missing


def test_rules_spellings():
    import fanbpf.rules as rules_module
    from fanbpf.rules import exact

    assert fanbpf.rules.exact is exact is rules_module.exact
    assert fanbpf.rules(names=[fanbpf.rules.exact("*")]).args == \
        rules_module.rules(names=[exact("*")]).args
    assert callable(fanbpf.trace) and fanbpf.trace.Tracer is not None


@pytest.fixture
def private_tmpfs(tmp_path):
    """A tmpfs of the test's own: a filesystem mark on the host's /tmp also
    sees every other process's files (events with no path to name)."""
    subprocess.run(["mount", "-t", "tmpfs", "fanbpf-docs", str(tmp_path)], check=True)
    try:
        yield tmp_path
    finally:
        subprocess.run(["umount", "-l", str(tmp_path)], check=True)


def test_rules_md_fallback_block_runs_on_a_kernel_without_the_hook(private_tmpfs, capsys):
    """docs/rules.md's RulesGroup block, its /srv/www a fresh directory and
    its group one marked on it; the group closes after the first event."""
    tmp_path = private_tmpfs
    (code,) = [b for b in python_blocks("docs/rules.md") if "RulesGroup" in b]
    (tmp_path / "www").mkdir()
    code = code.replace('"/srv/www"', repr(str(tmp_path / "www")))
    with Group() as group:
        group.mark(tmp_path, EventMask.CREATE | EventMask.ONDIR, MarkFlag.FILESYSTEM)
        seen = threading.Event()

        def close_after_an_event():
            (tmp_path / "elsewhere").touch()  # filtered out in user space
            (tmp_path / "www/index.html").touch()
            seen.wait(10)
            group.close()

        closer = threading.Thread(target=close_after_an_event)
        closer.start()
        namespace = {"group": group, "fanbpf": fanbpf}
        code = code.replace("        ...\n", "        print(event.path)\n        seen.set()\n")
        exec(compile(code, "docs/rules.md", "exec"), {**namespace, "seen": seen})
        closer.join()
    out = capsys.readouterr().out.splitlines()
    assert out[0] in ("kernel", "userspace") and out[1:] == [str(tmp_path / "www/index.html")]
