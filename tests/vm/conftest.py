"""Fixtures for tests that run inside the fanbpf test kernel (kernel/vm.sh).

Outside the VM these tests skip; `make test` runs them in the VM and fails
if any of them skipped there.
"""
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


@pytest.fixture
def tmpfs():
    """A fresh tmpfs, so events come only from the test and marks are cheap."""
    path = tempfile.mkdtemp(prefix="fanbpf-")
    subprocess.run(["mount", "-t", "tmpfs", "fanbpf-test", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=True)
        os.rmdir(path)


@pytest.fixture
def ext4(tmp_path):
    """A small ext4 filesystem on a loop device."""
    image = tmp_path / "fs.img"
    mnt = tempfile.mkdtemp(prefix="fanbpf-ext4-")
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), mnt], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt], check=True)
        os.rmdir(mnt)


@pytest.fixture
def kmod_path():
    return os.path.join(KERNEL_DIR, "fanbpf_subtree_kmod.ko")
