"""The embedding example on the test kernel: the package examples/suffixwatch,
pip-installed against fanbpf (make test: into the fresh venv that runs these
tests; make build: into .venv), loads the filter it ships as package data and
its events arrive filtered."""
import errno
import os
import time
from importlib.resources import files
from pathlib import Path

import pytest

from fanbpf import ArgsError, EventMask, Group, MarkFlag
from fanbpf.testing.fs import tmpfs_mount

try:
    import suffixwatch
except ImportError as err:
    pytest.fail(f"the example package is not installed ({err}): "
                "pip install --no-build-isolation examples/suffixwatch", pytrace=False)

NOBODY = 65534


def test_installed_with_its_compiled_filter():
    checkout = Path(__file__).resolve().parents[2]
    assert not Path(suffixwatch.__file__).resolve().is_relative_to(checkout / "examples")
    assert (files(suffixwatch) / "suffix_filter.bpf.o").read_bytes()[:4] == b"\x7fELF"


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


def test_suffix_and_ignored_uid():
    with tmpfs_mount() as base, suffixwatch.watch(base, ".log", ignore_uid=NOBODY,
                                                        mask=EventMask.CREATE) as watch:
        os.chmod(base, 0o1777)
        create_as(0, f"{base}/a.log")
        create_as(NOBODY, f"{base}/b.log")
        create_as(0, f"{base}/c.txt")
        create_as(0, f"{base}/.log")
        assert sorted(e.name for e in watch.group.drain()) == [".log", "a.log"]


@pytest.fixture(scope="module")
def suffix_filter():
    with suffixwatch.load_filter() as handler:
        yield handler


@pytest.mark.parametrize("args, message", [
    ({"suffix": ""}, "suffix: refused by handler 'suffix_filter' (fp_init): ''"),
    ({"suffix": ".log", "ignore_uid": 2},
     "ignore_uid: refused by handler 'suffix_filter' (fp_init): 2"),
    # fanbpf_copy_init_args() refuses the length (no args at all)
    (None, "handler 'suffix_filter' (fp_init) refused init args of 0 bytes: it takes 40 "
     "bytes (none were given)"),
    # a wrong size is refused in Python, before the kernel sees it
    (b"\0" * 8, "init args of 8 bytes for 'suffix_filter': its struct suffix_filter_args is "
     "40 bytes; pass a dict (encoded to fit) or exactly 40 bytes"),
])
def test_fp_init_refusals_name_the_field(suffix_filter, args, message):
    with tmpfs_mount() as base, Group() as group:
        group.mark(base, EventMask.CREATE, MarkFlag.FILESYSTEM)
        with pytest.raises(ArgsError) as err:
            group.attach(suffix_filter, args)
        assert err.value.errno == errno.EINVAL
        assert str(err.value) == f"{message} [EINVAL]"


def test_the_handlers_map_and_globals_from_python(suffix_filter):
    """handler.maps: the per-attachment state fp_init stored, decoded by BTF."""
    states = suffix_filter.maps["suffix_states"]
    with tmpfs_mount() as base, Group() as group, Group() as refused:
        group.mark(base, EventMask.CREATE, MarkFlag.FILESYSTEM)
        group.attach(suffix_filter, {"suffix": ".log", "ignore_uid": 1, "uid": 7})
        (state,) = states.values()
        assert state == {"args": {"suffix": ".log", "ignore_uid": 1, "uid": 7}, "len": 4}
        refused.mark(base, EventMask.CREATE, MarkFlag.FILESYSTEM)
        with pytest.raises(ArgsError):
            refused.attach(suffix_filter, {"suffix": ""})
        assert len(states) == 1
    deadline = time.monotonic() + 10
    while len(states) and time.monotonic() < deadline:  # fp_free runs after the detach
        time.sleep(0.05)
    assert len(states) == 0
    assert suffix_filter.globals["fanbpf_init_refusal"]["size"] == 32  # suffix: char[32]
