# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Build support for packages that ship their own fastpath handlers.

A package keeps its handler's source beside its Python code
(``mypkg/my_filter.bpf.c``, including ``"fanotify_fastpath.bpf.h"``) and
lets setuptools compile it.  ``pyproject.toml``::

    [build-system]
    requires = ["setuptools>=77", "fanbpf"]
    build-backend = "setuptools.build_meta"

``setup.py``::

    from setuptools import setup
    from fanbpf.build import build_py

    setup(cmdclass={"build_py": build_py})

Every ``*.bpf.c`` in the package's directories is compiled with clang
(``-g -O2 -target bpf``, CO-RE, ``-I`` :func:`fanbpf.get_include`) into a
``.bpf.o`` of the same name in the wheel (beside the source for editable
installs).  At run time the package loads it from its package data::

    from importlib.resources import as_file, files
    with as_file(files(__package__) / "my_filter.bpf.o") as path:
        handler = fanbpf.Handler.load(path, private=True)

Without clang, or when the headers are missing, the build stops with a
message that says what to install.  ``FANBPF_CLANG`` picks the compiler.
Other build systems call :func:`compile_bpf` (or run ``clang`` with
``-I$(python -c 'import fanbpf; print(fanbpf.get_include())')``).
"""
from pathlib import Path

from setuptools.command.build_py import build_py as _build_py
from setuptools.errors import CompileError

from fanbpf._bpfcc import BpfBuildError, compile_bpf, get_include

__all__ = ["BpfBuildError", "build_py", "compile_bpf", "get_include"]


class build_py(_build_py):
    """setuptools' ``build_py`` that also compiles the packages' ``*.bpf.c``."""

    def run(self):
        super().run()
        for package in self.packages or ():
            src_dir = Path(self.get_package_dir(package))
            out_dir = src_dir if self.editable_mode else Path(self.build_lib, *package.split("."))
            for source in sorted(src_dir.glob("*.bpf.c")):
                output = out_dir / (source.name[: -len(".c")] + ".o")
                try:
                    compile_bpf(source, output)
                except BpfBuildError as err:
                    raise CompileError(str(err)) from None
                self.announce(f"compiled {source} -> {output}", level=2)
