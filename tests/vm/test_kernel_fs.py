"""The test kernel's disk filesystems: ext4, XFS and btrfs (built in, so
that their types are in vmlinux BTF) mount with `mount -o loop`, and the
parents iterator walks from a file to the root of each, through a btrfs
subvolume too."""
import os
import shutil
import subprocess

import pytest

from conftest import mounted
from fanbpf import EventMask, Group, Handler, InitFlag, MarkFlag
from kabi import WALK_ROOT, parents_args, touch, vm_object, walk

MKFS = {
    "ext4": ["mkfs.ext4", "-q"],
    "xfs": ["mkfs.xfs", "-q"],      # refuses images under 300 MiB
    "btrfs": ["mkfs.btrfs", "-q"],
}


@pytest.fixture(params=sorted(MKFS))
def disk(request, tmpfs):
    """A fresh filesystem of each type on a sparse image in a tmpfs."""
    fstype = request.param
    if not shutil.which(MKFS[fstype][0]):
        pytest.skip(f"{MKFS[fstype][0]} is not installed (apt: e2fsprogs, xfsprogs, btrfs-progs)")
    img = f"{tmpfs}/{fstype}.img"
    with open(img, "wb") as f:
        f.truncate(320 << 20)
    subprocess.run([*MKFS[fstype], img], check=True)
    with mounted(f"fanbpf-{fstype}-", "-o", "loop", img) as path:
        yield fstype, path


def test_parents_iterator_reaches_the_root_of_a_disk_filesystem(disk):
    fstype, mnt = disk
    if fstype == "btrfs":
        subprocess.run(["btrfs", "-q", "subvolume", "create", f"{mnt}/top"], check=True)
    else:
        os.mkdir(f"{mnt}/top")
    os.mkdir(f"{mnt}/top/d")
    with open("/proc/self/mountinfo") as f:
        assert any(line.split()[4] == mnt and f" - {fstype} " in line for line in f)
    with Handler.load(vm_object("parents_named"), private=True) as h, \
            Group(InitFlag.CLASS_NOTIF, event_flags=os.O_RDONLY) as g:
        g.mark(mnt, EventMask.CLOSE_WRITE, MarkFlag.FILESYSTEM)
        # The root dentry of a superblock is named "/".
        g.attach(h, parents_args("/", 4096))
        touch(f"{mnt}/top/d/f")
        # the root is the match, and the walk knows it reached the root
        assert walk(h) == {"new_ret": 0, "count": 4, "match": 4, "started_from_inode": 0,
                           "end": WALK_ROOT}
        assert [e.path for e in g.read_events(timeout=0)] == [f"{mnt}/top/d/f"]
