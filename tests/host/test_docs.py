"""The documentation's code: every Python block compiles and its imports
work, every dotted ``fanbpf.…`` name it mentions exists as spelled
(``fanbpf.rules.exact``), and so does every ``Class.attribute`` of fanbpf's
(``Handler.load``); the CLI commands it shows parse, and the blocks that
need no fastpath hook run (the README's own example runs in the VM:
tests/vm/test_readme.py)."""
import argparse
import ast
import importlib
import re
import shlex
import subprocess
import threading
from pathlib import Path

import pytest

import fanbpf
from fanbpf import EventMask, Group, MarkFlag
from fanbpf.cli import build_parser

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


@pytest.mark.parametrize("doc", DOCS)
def test_python_blocks_imports_work(doc):
    """The imports each block starts from (``from fanbpf.watchdog import Observer``)."""
    for code in python_blocks(doc):
        imports = [node for node in ast.parse(code).body
                   if isinstance(node, (ast.Import, ast.ImportFrom))]
        exec(compile(ast.Module(body=imports, type_ignores=[]), doc, "exec"), {})


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


def test_every_documented_class_attribute_exists():
    """``Handler.load``, ``MarkFlag.SUBTREE``, ``BpfObject.maps``: the public
    classes' attributes the prose and the code name."""
    spelled = set()
    for doc in DOCS:
        for cls, attrs in re.findall(r"(?<![\w.])([A-Z]\w*)((?:\.[A-Za-z_]\w*)+)",
                                     (ROOT / doc).read_text()):
            if cls in fanbpf.__all__:
                spelled.add(cls + attrs)
    assert {"Handler.load", "MarkFlag.SUBTREE", "BpfObject.maps"} <= spelled
    missing = []
    for name in sorted(spelled):
        try:
            resolve(f"fanbpf.{name}")
        except AttributeError as err:
            missing.append(f"{name}: {err}")
    assert not missing


def cli_subcommands() -> dict[str, set[str]]:
    """``fanbpf`` subcommand -> its options."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: {o for a in p._actions for o in a.option_strings}
            for name, p in sub.choices.items()}


def shown_commands() -> list[str]:
    """The ``python -m fanbpf ...`` lines of the docs' shell blocks, joined
    across backslash continuations."""
    commands = []
    for doc in DOCS:
        for block in re.findall(r"```sh\n(.*?)```", (ROOT / doc).read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                if line.startswith("python -m fanbpf "):
                    commands.append(line)
    return commands


def test_the_shown_cli_commands_parse():
    commands = shown_commands()
    assert any(c.startswith("python -m fanbpf watch --subtree ~/src") for c in commands)
    parser = build_parser()
    for command in commands:
        argv = shlex.split(command, comments=True)[3:]
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"the documented command does not parse: {command}")


def test_the_options_the_prose_gives_a_subcommand_exist():
    """``fanbpf watch --subtree`` in running text: watch has --subtree."""
    commands = cli_subcommands()
    spans = [span for doc in DOCS for span in re.findall(r"`(fanbpf [a-z][^`\n]*)`",
                                                         (ROOT / doc).read_text())]
    assert "fanbpf watch --subtree" in spans
    for span in spans:
        words = span.split()
        assert words[1] in commands, span
        assert {w for w in words[2:] if w.startswith("-")} <= commands[words[1]], span


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
