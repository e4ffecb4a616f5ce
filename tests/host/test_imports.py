"""Imports: ``import fanbpf`` and its pure-Python parts do not load the C
extension, and an import inside a function is there for a reason: the
module it imports loads the extension, or imports the importer at its top
(a cycle).  Every other import belongs at the top of the module."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fanbpf

PACKAGE = Path(fanbpf.__file__).resolve().parent
EXTENSION = "fanbpf._fanbpf"

# Function-level imports of modules that leave the extension alone, each
# because the imported module imports the importer at its top.
CYCLES = {
    ("fanbpf.errors", "fanbpf.support"),
}
# Optional dependencies, imported where they are used (none so far: the
# modules that need watchdog, hypothesis or pytest import it at their top).
OPTIONAL: set[str] = set()


def loaded_after(code: str) -> set[str]:
    """The fanbpf modules in sys.modules after running ``code`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\n"
         "print(' '.join(m for m in sys.modules if m.startswith('fanbpf')))"],
        cwd=PACKAGE.parent, capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("code", [
    "import fanbpf",
    "import fanbpf; fanbpf.Attachment; fanbpf.rules(names=[fanbpf.rules.exact('x')])",
    "import fanbpf.model, fanbpf.fallback, fanbpf.watch",
    "import fanbpf.testing, fanbpf.testing.logic, fanbpf.testing.fs, fanbpf.testing.oracle",
])
def test_the_pure_python_parts_do_not_load_the_extension(code):
    assert EXTENSION not in loaded_after(code)


def test_what_needs_it_loads_it():
    """The check above can fail: the lazy names do load the extension."""
    assert EXTENSION in loaded_after("import fanbpf; fanbpf.Handler")
    assert EXTENSION in loaded_after("import fanbpf; fanbpf.BpfObject")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """The modules an import statement loads (``from . import handler`` loads fanbpf.handler)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = importer if is_package else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    module = ".".join(filter(None, [base if node.level else "", node.module or ""]))
    if not module.startswith("fanbpf"):
        return [module]
    return [f"{module}.{alias.name}" if is_module(f"{module}.{alias.name}") else module
            for alias in node.names]


def function_level_imports() -> list[tuple[str, int, str]]:
    """(importer, line, imported module) of every import inside a function,
    ``if TYPE_CHECKING:`` blocks aside."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)

        def visit(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
                    continue
                if isinstance(child, (ast.Import, ast.ImportFrom)) and in_function:
                    found.extend((importer, child.lineno, m) for m in
                                 imported_modules(child, importer, path.name == "__init__.py"))
                visit(child, in_function or isinstance(child, (ast.FunctionDef,
                                                               ast.AsyncFunctionDef)))
        visit(ast.parse(path.read_text()), False)
    return found


def top_level_imports(module: str) -> set[str]:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    return {m for node in ast.parse(path.read_text()).body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for m in imported_modules(node, module, False)}


def test_every_function_level_import_has_a_reason():
    imports = function_level_imports()
    assert imports  # the walk finds them: fanbpf.group imports the extension lazily
    reasons = {}
    for target in sorted({m for _, _, m in imports}):
        if target.partition(".")[0] in OPTIONAL:
            reasons[target] = "optional"
        elif not target.startswith("fanbpf."):
            reasons[target] = "not fanbpf's"
        elif EXTENSION in loaded_after(f"import {target}"):
            reasons[target] = "extension"
    needless = [f"{importer}:{line} imports {target}" for importer, line, target in imports
                if reasons.get(target) not in ("extension", "optional")
                and (importer, target) not in CYCLES]
    assert not needless, "move these imports to the top of the module"
    for importer, target in CYCLES:
        assert importer in top_level_imports(target), f"{target} no longer imports {importer}"
