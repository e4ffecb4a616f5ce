"""The loader knows which revision of the fastpath series the kernel has,
and names the kfuncs a handler calls that the kernel lacks (the compass
row "one loader across ABI revisions")."""
import pytest

from fanbpf import Handler
from fanbpf.btfargs import Btf
from fanbpf.errors import KernelSupportError
from fanbpf.handler import builtin_path
from fanbpf.support import SERIES, fastpath_series, kernel_support, missing_kfuncs

from kabi import vm_object


def test_the_test_kernel_has_the_series_fanbpf_is_built_for():
    assert fastpath_series() == SERIES == 4
    support = kernel_support()
    assert support.series == SERIES and support.fastpath, support.missing


def test_the_built_in_handler_calls_only_kfuncs_the_kernel_has():
    with Btf.from_file(builtin_path("rules")) as btf:
        called = btf.extern_funcs()
    assert "bpf_iter_fanotify_parents_end" in called  # v4's, so the check means something
    assert missing_kfuncs(called) == ([], SERIES)


def test_a_kfunc_the_kernel_lacks_is_named_not_libbpfs_message():
    with pytest.raises(KernelSupportError) as info:
        Handler.load(vm_object("unknown_kfunc"))
    assert info.value.missing == ["kfunc bpf_fanotify_from_a_later_series"]
    message = str(info.value)
    assert "unknown_kfunc.bpf.o" in message and "lacks what the handler calls" in message
    assert "\n" not in message
