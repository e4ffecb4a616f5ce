"""Compiles the test BPF objects in tests/host/bpf/ once per session.

Test modules import the fixtures: ``from bpfobjs import bpf_objs, needs_root``.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "tests" / "host" / "bpf"
BUILD = ROOT / "build"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF needs root")


def open_fds() -> set:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="session")
def bpf_objs():
    """Short name ("args", "bad", ...) -> path of the object `make build` compiled."""
    objs = {}
    for src in sorted(SRC.glob("*.bpf.c")):
        name = src.name[: -len(".bpf.c")]
        obj = BUILD / "test-bpf" / f"{name}.bpf.o"
        if not obj.exists() or obj.stat().st_mtime < src.stat().st_mtime:
            pytest.fail(f"{obj} is missing or older than {src}: run `make build`")
        objs[name] = obj
    return objs
