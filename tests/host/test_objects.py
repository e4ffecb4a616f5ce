"""BPF objects and handlers on the host kernel: globals, test runs, verifier errors,
register/unregister through a real struct_ops link, and fd hygiene.

The host has no fanotify_fastpath_ops, so a real fastpath handler only gets
as far as KernelSupportError here; Handler.load's register path runs on a
do-nothing TCP congestion control (tests/host/bpf/test_cc.bpf.c) instead.
"""

import errno
import logging
import struct

import pytest

from bpfobjs import bpf_objs, needs_root, open_fds  # noqa: F401  (fixture)
from fanbpf import errors
from fanbpf.handler import BpfObject, Handler, builtin_path

pytestmark = needs_root

CC_LIST = "/proc/sys/net/ipv4/tcp_available_congestion_control"


def registered_ccs():
    with open(CC_LIST) as f:
        return f.read().split()


# -- BpfObject ------------------------------------------------------------

def test_globals_and_test_run(bpf_objs):  # noqa: F811
    with BpfObject(bpf_objs["args"]) as obj:
        obj.set_global("bias", 100)  # .rodata, before load
        assert obj.get_global("bias") == 100
        obj.load()
        assert obj.loaded and obj.log == ""

        run = obj.test_run("echo", struct.pack("<QQ", 21, 0))
        assert run.retval == 7 + 5  # runs_data's initial value
        assert struct.unpack("<QQ", run.ctx) == (21, 142)  # written back
        assert obj.get_global("runs") == 1  # .bss, live

        obj.set_global("runs_data", 10)  # .data, after load: live
        assert obj.test_run("echo", bytes(16)).retval == 17
        assert obj.get_global("runs") == 2

        with pytest.raises(PermissionError, match="read-only"):
            obj.set_global("bias", 1)
        assert obj.get_global("bias") == 100


def test_global_errors(bpf_objs):  # noqa: F811
    with BpfObject(bpf_objs["args"]) as obj:
        with pytest.raises(errors.ArgsError, match="globals: .*bias"):
            obj.set_global("nope", 1)
        with pytest.raises(errors.ArgsError, match="out of range"):
            obj.set_global("runs_data", -1)
        with pytest.raises(OSError) as info:
            obj.set_global("bias", b"\0" * 4)
        assert info.value.errno == errno.EINVAL  # raw bytes of the wrong size
        obj.set_global("args_global", {"name": "abc", "points": [{"x": 1}]})
        assert obj.get_global("args_global")["name"] == "abc"
        assert obj.get_global("bias", raw=True) == bytes(8)


def test_test_run_errors(bpf_objs):  # noqa: F811
    with BpfObject(bpf_objs["args"]) as obj:
        with pytest.raises(OSError, match="not loaded") as info:
            obj.test_run("echo", bytes(16))
        assert info.value.errno == errno.EINVAL and info.value.filename == obj.path
        obj.load()
        with pytest.raises(FileNotFoundError, match="no program named 'nope'"):
            obj.test_run("nope")
        with pytest.raises(OSError, match="loads an object once") as info:
            obj.load()
        assert info.value.errno == errno.EBUSY


def test_verifier_error_carries_the_log(bpf_objs):  # noqa: F811
    obj = BpfObject(bpf_objs["bad"])
    with pytest.raises(errors.VerifierError) as info:
        obj.load()
    err = info.value
    assert err.errno == errno.EACCES
    assert "invalid mem access 'map_value_or_null'" in err.log
    assert "invalid mem access" in str(err)  # the tail is quoted
    assert "prog 'unchecked'" in str(err)  # libbpf's warning too
    assert err.log == obj.log
    obj.close()


def test_log_grows_until_it_fits(bpf_objs, caplog):  # noqa: F811
    # level 2 logs every instruction: megabytes; libbpf grows its buffer
    with caplog.at_level(logging.DEBUG, logger="fanbpf.libbpf"):
        with BpfObject(bpf_objs["biglog"]) as obj:
            obj.load(log_level=2)
            log = obj.log
    assert len(log) > 1 << 20
    assert log.startswith("func#0") or "0: " in log[:200]
    assert log.rstrip().splitlines()[-1].startswith("processed ")
    # the log is the object's, not a message in the log stream
    assert not any("PROG LOAD LOG" in r.getMessage() for r in caplog.records)


def test_failed_load_is_final(bpf_objs):  # noqa: F811
    # libbpf loads an object once: after a failure it can be read, not edited
    with BpfObject(bpf_objs["bad"]) as obj:
        btf = obj.btf
        with pytest.raises(errors.VerifierError):
            obj.load()
        log = obj.log
        for edit in (lambda: obj.set_global("nope", b"\0"), lambda: obj.load()):
            with pytest.raises(OSError) as info:
                edit()
            assert info.value.errno == errno.EBUSY
        assert obj.log == log  # still the failing program's
        assert btf.type(1).size >= 0  # the BTF did not move
    with pytest.raises(ValueError, match="closed"):
        btf.type(2)  # closed with its object, never freed under it


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no BPF object file") as info:
        BpfObject(tmp_path / "missing.bpf.o")
    assert info.value.filename == str(tmp_path / "missing.bpf.o")
    assert "make" not in str(info.value)
    junk = tmp_path / "junk.bpf.o"
    junk.write_bytes(b"not an ELF file")
    with pytest.raises(OSError, match="clang -target bpf") as info:
        BpfObject(junk)
    assert info.value.errno == errno.EINVAL and info.value.filename == str(junk)


def test_closed_object(bpf_objs):  # noqa: F811
    obj = BpfObject(bpf_objs["args"])
    obj.close()
    obj.close()
    with pytest.raises(ValueError, match="closed"):
        obj.load()
    assert "closed" in repr(obj)


# -- the fastpath handler object: opens, cannot load on this kernel ----------

def test_ops_name_and_flags(bpf_objs):  # noqa: F811
    with BpfObject(bpf_objs["handler"]) as obj:
        assert obj.ops_map() == "test_handler_ops"
        assert obj.ops_name() == "test_handler"
        assert obj.ops_flags() == 0
        obj.set_ops_name("renamed.v2")
        obj.set_ops_flags(2)
        assert obj.ops_name("test_handler_ops") == "renamed.v2"
        assert obj.ops_flags() == 2
        for bad in ("", "has space", "x" * 64, "slash/"):
            with pytest.raises(errors.ArgsError, match="A-Z a-z 0-9 _ ."):
                obj.set_ops_name(bad)
        with pytest.raises(FileNotFoundError, match="struct_ops map named 'nope'"):
            obj.ops_map("nope")
        assert obj.btf.struct("test_handler_args").size == 12


def test_no_struct_ops_map(bpf_objs):  # noqa: F811
    with pytest.raises(FileNotFoundError, match="SEC\\(\".struct_ops.link\"\\)"):
        Handler.load(bpf_objs["args"])


def test_fastpath_handler_needs_the_test_kernel(bpf_objs):  # noqa: F811
    with pytest.raises(errors.KernelSupportError) as info:
        Handler.load(bpf_objs["handler"], name="other", private=True,
                     globals={"extra_mask": 1})
    assert any("fanotify_fastpath_ops" in m for m in info.value.missing)
    message = str(info.value)
    assert "lacks the fanotify fastpath hook" in message and "\n" not in message
    assert "kernel/patches" in message and "--fallback auto" in message
    assert "make" not in message


def test_builtin_names():
    with pytest.raises(FileNotFoundError, match="no built-in handler 'nope'; built-ins: .*rules"):
        builtin_path("nope")


# -- Handler.load through a struct_ops map this kernel has --------------------

def test_handler_registers_and_unregisters(bpf_objs):  # noqa: F811
    with Handler.load(bpf_objs["test_cc"], globals={"initial_ssthresh": 3}) as h:
        assert h.name == "fanbpf_test_cc" and not h.private
        assert h.ops_map == "fbt_ops"
        assert h.map_fd >= 0 and h.link_fd >= 0 and h.map_fd != h.link_fd
        assert "fanbpf_test_cc" in registered_ccs()
        assert h.args_type.c_name == "struct fanbpf_test_cc_args"
        assert h.encode_args({"level": 1, "tag": "abc"}) == b"\1\0\0\0abc\0"
        with pytest.raises(errors.ArgsError, match="valid fields: level, tag"):
            h.encode_args({"levle": 1})
        assert h.obj.get_global("initial_ssthresh") == 3
    assert "fanbpf_test_cc" not in registered_ccs()
    h.close()  # idempotent


def test_handler_name_taken_then_renamed(bpf_objs):  # noqa: F811
    with Handler.load(bpf_objs["test_cc"]) as first:
        with pytest.raises(FileExistsError, match="name='other'"):
            Handler.load(bpf_objs["test_cc"])
        with Handler.load(bpf_objs["test_cc"], name="fanbpf_cc2") as second:
            assert second.name == "fanbpf_cc2"
            assert {"fanbpf_test_cc", "fanbpf_cc2"} <= set(registered_ccs())
        assert first.name in registered_ccs()


def test_handler_unregister_keeps_object(bpf_objs):  # noqa: F811
    with Handler.load(bpf_objs["test_cc"]) as h:
        h.obj.unregister()
        assert "fanbpf_test_cc" not in registered_ccs()
        with pytest.raises(FileNotFoundError):
            h.link_fd
        h.obj.register()
        assert "fanbpf_test_cc" in registered_ccs()


def test_handler_args_type_override(bpf_objs):  # noqa: F811
    with pytest.raises(errors.ArgsError, match="'nope'"):
        Handler.load(bpf_objs["test_cc"], args_type="nope")
    with Handler.load(bpf_objs["test_cc"], args_type="fanbpf_test_cc_args") as h:
        assert h.args_type.size == 8


def test_no_fd_leaks(bpf_objs, tmp_path):  # noqa: F811
    before = open_fds()
    for _ in range(5):
        bad = BpfObject(bpf_objs["bad"])
        with pytest.raises(errors.VerifierError):
            bad.load()
        bad.close()
        with pytest.raises(errors.KernelSupportError):
            Handler.load(bpf_objs["handler"])
        with pytest.raises(FileNotFoundError):
            BpfObject(tmp_path / "missing.o")
        with pytest.raises(FileNotFoundError):
            Handler.load(bpf_objs["args"])
        with Handler.load(bpf_objs["test_cc"]) as h:
            with pytest.raises(FileExistsError):
                Handler.load(bpf_objs["test_cc"])
        assert h.obj._ptr is None
    assert open_fds() == before


# -- objects from memory and from package data ---------------------------------

def test_object_from_bytes(bpf_objs):  # noqa: F811
    data = bpf_objs["args"].read_bytes()
    with BpfObject(data, name="args.bpf.o") as obj:
        assert obj.path == "args.bpf.o"
        obj.set_global("bias", 1)
        obj.load()
        assert obj.test_run("echo", bytes(16)).retval == 7 + 5
    with BpfObject(bytearray(data)) as obj:
        assert obj.path == "<bytes>" and "bias" in obj.btf.globals()


def test_handler_from_bytes_and_package_data(bpf_objs, tmp_path, monkeypatch):  # noqa: F811
    import importlib.resources
    import sys
    import zipfile

    data = bpf_objs["test_cc"].read_bytes()
    with Handler.load(memoryview(data), name="fanbpf_cc_mem") as h:
        assert h.name == "fanbpf_cc_mem" and "fanbpf_cc_mem" in registered_ccs()
        assert h.obj.path == "<bytes>"
    # a package that ships its filter, imported from a zip (no file to open)
    archive = tmp_path / "lib.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("cclib/__init__.py", "")
        z.writestr("cclib/filters/cc.bpf.o", data)
    monkeypatch.syspath_prepend(str(archive))
    resource = importlib.resources.files("cclib") / "filters" / "cc.bpf.o"
    assert not isinstance(resource, __import__("os").PathLike)
    with Handler.load(resource, name="fanbpf_cc_zip") as h:
        assert "fanbpf_cc_zip" in registered_ccs()
        assert "cc.bpf.o" in h.obj.path
    sys.modules.pop("cclib", None)
    with pytest.raises(FileNotFoundError):
        BpfObject(importlib.resources.files("cclib") / "missing.bpf.o")


def test_bad_sources(tmp_path):
    with pytest.raises(OSError) as info:
        BpfObject(b"not an ELF file")
    assert info.value.errno == errno.EINVAL and info.value.filename == "<bytes>"
    with pytest.raises(OSError):
        BpfObject(b"")
    with pytest.raises(TypeError, match="importlib.resources"):
        BpfObject(42)


# -- lifetime: no cycles, unclosed objects warn and close at once ----------------

def test_unclosed_handler_unregisters_when_dropped(bpf_objs):  # noqa: F811
    import gc

    gc.disable()  # no cycle collector: only reference counting may free it
    try:
        h = Handler.load(bpf_objs["test_cc"])
        assert not h.closed and "fanbpf_test_cc" in registered_ccs()
        with pytest.warns(ResourceWarning, match="unclosed <Handler 'fanbpf_test_cc'"):
            del h
        assert "fanbpf_test_cc" not in registered_ccs()
        # so the name is free again, right away
        with Handler.load(bpf_objs["test_cc"]) as again:
            assert again.name == "fanbpf_test_cc"
        assert again.closed and again.obj.closed and "closed" in repr(again)
    finally:
        gc.enable()


def test_unclosed_object_warns(bpf_objs):  # noqa: F811
    import gc

    gc.disable()
    try:
        obj = BpfObject(bpf_objs["args"])
        btf = obj.btf
        with pytest.warns(ResourceWarning, match="unclosed <BpfObject"):
            del obj
        assert btf.closed
    finally:
        gc.enable()
    with BpfObject(bpf_objs["args"]) as obj:
        assert not obj.closed
    assert obj.closed


def test_extern_funcs_are_the_kfuncs_an_object_calls():
    from fanbpf.btfargs import Btf
    from fanbpf.handler import builtin_path

    with Btf.from_file(builtin_path("rules")) as btf:
        called = btf.extern_funcs()
        assert {"bpf_iter_fanotify_parents_new", "bpf_iter_fanotify_parents_end"} <= set(called)
        assert not any(name.startswith("fanbpf_rules") for name in called)  # its own, defined
        assert btf.has("fanotify_fastpath_ops", "struct")


def test_the_host_kernel_has_no_fastpath_series():
    from fanbpf.support import fastpath_series, kernel_support

    assert fastpath_series() == 0
    assert kernel_support().series == 0
