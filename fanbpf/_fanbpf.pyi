# The cffi extension built by fanbpf/_ffi_build.py: its C API is declared
# in src/c/fanbpf.h, which cffi reads at build time; to Python it is cdata.
from typing import Any

ffi: Any
lib: Any
