"""examples/suffix_filter.bpf.c on the test kernel: the example handler the
guide in examples/README.md walks through does what it says."""
import errno
import os
from pathlib import Path

import pytest

from fanbpf import EventMask, Group, Handler, MarkFlag
from fanbpf.testing.fs import tmpfs_mount

EXAMPLE = Path(__file__).resolve().parents[2] / "build" / "examples" / "suffix_filter.bpf.o"
NOBODY = 65534


@pytest.fixture(scope="module")
def suffix_filter():
    if not EXAMPLE.exists():
        pytest.fail(f"{EXAMPLE} is missing: run make build")
    with Handler.load(EXAMPLE, private=True) as handler:
        yield handler


def create_as(uid, path):
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            os._exit(0)
        except BaseException:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] == 0


def test_suffix_and_ignored_uid(suffix_filter):
    with tmpfs_mount() as base, Group() as group:
        os.chmod(base, 0o1777)
        group.mark(base, EventMask.CREATE, MarkFlag.FILESYSTEM)
        group.attach(suffix_filter, {"suffix": ".log", "ignore_uid": 1, "uid": NOBODY})
        create_as(0, f"{base}/a.log")
        create_as(NOBODY, f"{base}/b.log")
        create_as(0, f"{base}/c.txt")
        create_as(0, f"{base}/.log")
        assert sorted(e.name for e in group.drain()) == [".log", "a.log"]


@pytest.mark.parametrize("args", [
    {"suffix": ""},  # empty
    {"suffix": ".log", "ignore_uid": 2},
    b"\0" * 8,  # wrong size
])
def test_fp_init_checks_its_args(suffix_filter, args):
    with tmpfs_mount() as base, Group() as group:
        group.mark(base, EventMask.CREATE, MarkFlag.FILESYSTEM)
        with pytest.raises(OSError) as err:
            group.attach(suffix_filter, args)
        assert err.value.errno == errno.EINVAL
