# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""libbpf's messages, routed into :mod:`logging` (logger ``fanbpf.libbpf``).

Importing this module installs the callback.  :func:`capture_warnings`
also collects the warnings of one call, so an exception can quote them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fanbpf._binding import ffi, lib

logger = logging.getLogger("fanbpf.libbpf")
# a library does not print unless the application configures logging
logger.addHandler(logging.NullHandler())

# enum libbpf_print_level
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
_local = threading.local()


@ffi.def_extern()  # type: ignore[untyped-decorator]  # cffi: ffi is Any
def _fanbpf_print(level: int, msg: Any) -> None:
    pylevel = _LEVELS.get(level, logging.DEBUG)
    lines = getattr(_local, "lines", None)
    if lines is None and not logger.isEnabledFor(pylevel):
        return
    text = ffi.string(msg).decode(errors="replace").rstrip("\n").removeprefix("libbpf: ")
    if lines is not None and pylevel >= logging.WARNING:
        lines.append(text)
    logger.log(pylevel, "%s", text)


@contextmanager
def capture_warnings() -> Iterator[list[str]]:
    """Collect libbpf's warnings in this thread into the yielded list."""
    outer = getattr(_local, "lines", None)
    lines: list[str] = []
    _local.lines = lines
    try:
        yield lines
    finally:
        _local.lines = outer
        if outer is not None:
            outer.extend(lines)


lib.fanbpf_set_print(lib._fanbpf_print)
