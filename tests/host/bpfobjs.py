"""Compiles the test BPF objects in tests/host/bpf/ once per session.

Test modules import the fixtures: ``from bpfobjs import bpf_objs, needs_root``.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "tests" / "host" / "bpf"
BUILD = ROOT / "build"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF needs root")


def open_fds() -> set:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="session")
def bpf_objs(tmp_path_factory):
    """Short name ("args", "bad", ...) -> path of the compiled object."""
    clang = os.environ.get("CLANG", "clang")
    if not (BUILD / "vmlinux.h").exists() or not shutil.which(clang):
        pytest.skip("needs clang and build/vmlinux.h (run make build)")
    out = tmp_path_factory.mktemp("bpf")
    objs = {}
    for src in sorted(SRC.glob("*.bpf.c")):
        name = src.name[: -len(".bpf.c")]
        obj = out / f"{name}.bpf.o"
        subprocess.run(
            [clang, "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-Wall",
             f"-I{BUILD}", f"-I{BUILD / 'libbpf' / 'include'}", f"-I{ROOT / 'src' / 'bpf'}",
             "-c", str(src), "-o", str(obj)],
            check=True)
        objs[name] = obj
    return objs
