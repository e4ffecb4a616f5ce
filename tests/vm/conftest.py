"""Fixtures for tests that run inside the fanbpf test kernel (kernel/vm.sh).

Outside the VM these tests skip; `make test` runs them in the VM and fails
if any of them skipped there.
"""
import contextlib
import os
import subprocess
import tempfile

import pytest

IN_VM = os.environ.get("FANBPF_IN_VM") == "1"
KERNEL_DIR = os.environ.get("FANBPF_KERNEL_DIR", "")


def pytest_collection_modifyitems(config, items):
    if IN_VM:
        return
    skip = pytest.mark.skip(reason="needs the fanbpf test kernel: run `make test-vm`")
    for item in items:
        item.add_marker(skip)


@contextlib.contextmanager
def mounted(prefix, *mount_args):
    """`mount *mount_args` on a fresh directory, unmounted and removed after."""
    path = tempfile.mkdtemp(prefix=prefix)
    subprocess.run(["mount", *mount_args, path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=True)
        os.rmdir(path)


@pytest.fixture
def tmpfs():
    """A fresh tmpfs, so events come only from the test and marks are cheap."""
    with mounted("fanbpf-", "-t", "tmpfs", "fanbpf-test") as path:
        yield path


@pytest.fixture
def kmod_path():
    return os.path.join(KERNEL_DIR, "fanbpf_subtree_kmod.ko")


# --- real file systems (tests/vm/fsimages.py) ---------------------------------------

@pytest.fixture
def mounts():
    """A :class:`fsimages.Mounts`: what a test mounts goes down after it, failed or not."""
    from fsimages import Mounts

    with Mounts() as m:
        yield m


@pytest.fixture(params=["tmpfs", "ext4", "xfs", "btrfs"])
def fs_kind(request):
    """Each file system kind a test should hold on (a parameter)."""
    return request.param


@pytest.fixture
def fs_root(mounts, fs_kind):
    """The root of a fresh file system of ``fs_kind``."""
    return mounts.fs(fs_kind)
