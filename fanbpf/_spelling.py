# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A module's main function standing in for the module, as ``fanbpf.rules``.

``fanbpf.rules(subtree=[...])`` calls :func:`fanbpf.rules.rules`, while
``fanbpf.rules.exact("x")`` (and every other attribute) is the module's, so
that both spellings the documentation uses work, and ``import fanbpf.rules``
still gives the module in ``sys.modules``.
"""
from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class CallableModule(Generic[P, R]):
    """``module`` that can be called as ``function``."""

    def __init__(self, module: types.ModuleType, function: Callable[P, R]) -> None:
        self._module = module
        self._function = function
        self.__doc__ = function.__doc__
        self.__wrapped__ = function

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._function(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def __dir__(self) -> list[str]:
        return dir(self._module)

    def __repr__(self) -> str:
        return f"<function {self._function.__qualname__} of module {self._module.__name__!r}>"
