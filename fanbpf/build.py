# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Build support for packages that ship their own fastpath handlers.

A package keeps its handler's source beside its Python code
(``mypkg/my_filter.bpf.c``, including ``"fanotify_fastpath.bpf.h"``) and
lets setuptools compile it.  ``pyproject.toml``::

    [build-system]
    requires = ["setuptools>=77", "fanbpf"]
    build-backend = "setuptools.build_meta"

    # optional: compile these (and only these); a missing one fails the build
    [tool.fanbpf]
    handlers = ["mypkg/my_filter.bpf.c"]

``setup.py``::

    from setuptools import setup
    from fanbpf.build import build_py

    setup(cmdclass={"build_py": build_py})

The handlers are the ``[tool.fanbpf] handlers`` if given, else every
``*.bpf.c`` in the package's directories.  Each is compiled with clang
(``-g -O2 -target bpf``, CO-RE, ``-I`` :func:`fanbpf.get_include`, then
``llvm-strip -g``, which keeps the BTF) into a ``.bpf.o`` of the same name
in the wheel (beside the source for editable installs).  The sdist gets the
sources and the local headers they include (``#include "x.h"`` found beside
the including file) without a ``MANIFEST.in``: this ``build_py`` lists them
as its source files, which is where setuptools' sdist looks.  At run time
the package loads the object from its package data::

    from importlib.resources import files
    handler = fanbpf.Handler.load(files(__package__) / "my_filter.bpf.o", private=True)

Without clang, or when the headers are missing, the build stops with a
message that says what to install.  ``FANBPF_CLANG`` picks the compiler.
Other build systems call :func:`compile_bpf` (or run ``clang`` with
``-I$(python -c 'import fanbpf; print(fanbpf.get_include())')``).
"""
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from setuptools.command.build_py import build_py as _build_py
from setuptools.errors import CompileError, SetupError

from fanbpf._bpfcc import BpfBuildError, compile_bpf, get_include

__all__ = ["BpfBuildError", "build_py", "compile_bpf", "get_include", "local_headers"]

_INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


def local_headers(source: str | os.PathLike[str], root: str | os.PathLike[str] = ".") -> list[Path]:
    """The headers ``source`` includes with ``#include "..."`` that live in the
    project (below ``root``), recursively, as paths relative to ``root``.

    A quoted include found neither beside its includer nor in
    :func:`get_include` is an error naming both files: the sdist would
    build into a wheel whose compile fails.
    """
    root = Path(root).resolve()
    fanbpf_include = Path(get_include())
    found: dict[Path, None] = {}
    pending = [Path(source).resolve()]
    while pending:
        including = pending.pop()
        for name in _INCLUDE_RE.findall(including.read_text(errors="replace")):
            header = (including.parent / name).resolve()
            if header.is_file() and header.is_relative_to(root):
                if header not in found:
                    found[header] = None
                    pending.append(header)
            elif not (fanbpf_include / name).is_file():
                raise BpfBuildError(
                    f'{including.relative_to(root) if including.is_relative_to(root) else including}'
                    f' includes "{name}", which is neither in the project beside it nor in '
                    f"fanbpf.get_include() ({fanbpf_include}); add the header or fix the include")
    return [h.relative_to(root) for h in found]


class build_py(_build_py):
    """setuptools' ``build_py`` that also compiles the packages' handlers
    and puts their sources and local headers into the sdist."""

    def handler_sources(self) -> list[tuple[str, Path]]:
        """``(package, source)`` of every handler to compile, sources relative
        to the project.  SetupError naming a declared handler that is missing
        (e.g. from an sdist made without it) or outside every package."""
        packages = {Path(self.get_package_dir(p)): p for p in self.packages or ()}
        declared = _declared_handlers()
        if declared is None:
            return [(package, source) for src_dir, package in packages.items()
                    for source in sorted(src_dir.glob("*.bpf.c"))]
        found = []
        for name in declared:
            source = Path(name)
            if not source.is_file():
                raise SetupError(
                    f"{source}: declared in pyproject.toml [tool.fanbpf] handlers, but there "
                    "is no such file (an sdist made without it? fanbpf.build's build_py puts "
                    "handlers into the sdist; check setup.py's cmdclass)")
            package = packages.get(source.parent)
            if package is None or not source.name.endswith(".bpf.c"):
                raise SetupError(f"{source}: a [tool.fanbpf] handler must be a .bpf.c in a "
                                 f"package directory ({', '.join(map(str, packages)) or 'none'})")
            found.append((package, source))
        return found

    def get_source_files(self) -> list[str]:
        files: list[str] = list(super().get_source_files())  # type: ignore[no-untyped-call]
        try:
            for _, source in self.handler_sources():
                files.append(str(source))
                files.extend(str(h) for h in local_headers(source))
        except BpfBuildError as err:
            raise SetupError(str(err)) from None
        return list(dict.fromkeys(files))

    def run(self) -> None:
        super().run()
        for package, source in self.handler_sources():
            src_dir = Path(self.get_package_dir(package))
            out_dir = src_dir if self.editable_mode else Path(self.build_lib, *package.split("."))
            output = out_dir / (source.name[: -len(".c")] + ".o")
            try:
                compile_bpf(source, output)
            except BpfBuildError as err:
                raise CompileError(str(err)) from None
            self.announce(f"compiled {source} -> {output}", level=2)


def _declared_handlers() -> list[str] | None:
    """``[tool.fanbpf] handlers`` of the project's pyproject.toml, None if absent."""
    try:
        with open("pyproject.toml", "rb") as f:
            config = tomllib.load(f)
    except FileNotFoundError:
        return None
    handlers = config.get("tool", {}).get("fanbpf", {}).get("handlers")
    if handlers is not None and not (isinstance(handlers, list)
                                     and all(isinstance(h, str) for h in handlers)):
        raise SetupError("pyproject.toml: [tool.fanbpf] handlers must be a list of paths "
                         '(e.g. ["mypkg/my_filter.bpf.c"])')
    return handlers
