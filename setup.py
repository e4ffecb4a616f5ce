# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The build steps that need code; metadata is in pyproject.toml.

build_libbpf  finds or builds libbpf >= 1.2 (fanbpf/_ffi_build.py: find_libbpf)
build_ext     the cffi extension fanbpf._fanbpf, linked with that libbpf
build_bpf     the built-in handlers src/bpf/*.bpf.c, compiled with clang into
              fanbpf/bpf/*.bpf.o, and fanbpf/include/ (fanbpf.get_include():
              fanotify_fastpath.bpf.h, vmlinux.h, libbpf's BPF headers);
              run by build_py, so every wheel has them.  --inplace writes into
              the checkout (make build).

Environment: FANBPF_LIBBPF_DIR, FANBPF_LIBBPF_SRC (libbpf), FANBPF_CLANG,
FANBPF_VMLINUX_H, FANBPF_BPFTOOL (handlers); README.md, "Install".
"""
import importlib.util
import os
import shutil
from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.command.build_py import build_py as _build_py
from setuptools.errors import CompileError, SetupError


def _load(name, path):
    # By path: fanbpf itself cannot be imported before its extension exists.
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bpfcc = _load("_fanbpf_bpfcc", "fanbpf/_bpfcc.py")
ffi_build = _load("_fanbpf_ffi_build", "fanbpf/_ffi_build.py")


class build_libbpf(Command):
    description = "find or build libbpf >= 1.2 (see fanbpf/_ffi_build.py)"
    user_options = []

    def initialize_options(self):
        self.build_temp = None
        self.libbpf = None

    def finalize_options(self):
        self.set_undefined_options("build", ("build_temp", "build_temp"))

    def run(self):
        try:
            self.libbpf = ffi_build.find_libbpf(os.path.join(self.build_temp, "libbpf"))
        except ffi_build.LibbpfNotFound as err:
            raise SetupError(str(err)) from None
        self.announce(f"fanbpf: libbpf from {self.libbpf.origin}", level=3)


def _libbpf(cmd):
    cmd.run_command("build_libbpf")
    return cmd.get_finalized_command("build_libbpf").libbpf


class build_bpf(Command):
    description = "compile the built-in BPF handlers and stage fanbpf/include"
    user_options = [("inplace", "i", "write into the source tree's fanbpf/ (make build)")]
    boolean_options = ["inplace"]

    def initialize_options(self):
        self.inplace = False
        self.build_lib = None

    def finalize_options(self):
        self.set_undefined_options("build_py", ("build_lib", "build_lib"))

    def run(self):
        try:
            bpfcc.find_clang()  # before libbpf, which may take a while to build
            libbpf = _libbpf(self)
            pkg = Path("fanbpf") if self.inplace else Path(self.build_lib, "fanbpf")
            include = pkg / "include"
            (include / "bpf").mkdir(parents=True, exist_ok=True)
            for header in bpfcc.LIBBPF_BPF_HEADERS:
                shutil.copyfile(Path(libbpf.include_dir, "bpf", header), include / "bpf" / header)
            shutil.copyfile("src/bpf/fanotify_fastpath.bpf.h", include / "fanotify_fastpath.bpf.h")
            bpfcc.write_vmlinux_h(include / "vmlinux.h")
            for source in sorted(Path("src/bpf").glob("*.bpf.c")):
                output = pkg / "bpf" / (source.name[: -len(".c")] + ".o")
                bpfcc.compile_bpf(source, output, include_dirs=[include, "src/bpf"], werror=True)
                self.announce(f"compiled {source} -> {output}", level=3)
        except bpfcc.BpfBuildError as err:
            raise CompileError(str(err)) from None


class build_py(_build_py):
    def run(self):
        super().run()
        # Editable installs import fanbpf/ from the checkout: build into it.
        self.get_finalized_command("build_bpf").inplace = self.editable_mode
        self.run_command("build_bpf")


class build_ext(_build_ext):
    def pre_run(self, ext, ffi):
        # cffi's hook, called before it writes the extension's C source.
        for key, values in _libbpf(self).ext_kwargs.items():
            getattr(ext, key).extend(values)


setup(
    cmdclass={"build_libbpf": build_libbpf, "build_bpf": build_bpf, "build_py": build_py,
              "build_ext": build_ext},
    cffi_modules=["fanbpf/_ffi_build.py:ffibuilder"],
    # cffi builds the extension against the stable ABI (Py_LIMITED_API,
    # _fanbpf.abi3.so): tag the wheel so, one wheel for CPython >= 3.11.
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
