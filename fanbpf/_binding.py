"""The raw cffi binding: ``ffi`` and ``lib`` of the C shim (src/c/fanbpf.h)."""
from fanbpf._fanbpf import ffi, lib

__all__ = ["ffi", "lib"]
