# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The fixtures of the ``fanbpf.testing`` pytest plugin (see there).

A module of their own so that ``fanbpf.testing`` and its tools import
without pytest; the plugin pulls this in through ``pytest_plugins``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from fanbpf.errors import KernelSupportError
from fanbpf.testing.fs import Workers, tmpfs_mount
from fanbpf.testing.logic import RULES_TEST_OBJECT, RulesLogic

if TYPE_CHECKING:  # the C extension: imported by the fixture when a test asks for it
    from fanbpf.handler import Handler

__all__ = ["fanbpf_rules_logic", "fanbpf_rules_handler", "fanbpf_workers", "fanbpf_tmpfs"]


@pytest.fixture(scope="session")
def fanbpf_rules_logic() -> Iterator[RulesLogic]:
    """The compiled fanbpf_rules logic (:class:`~fanbpf.testing.logic.RulesLogic`);
    skips without root or without the object."""
    if not RULES_TEST_OBJECT.exists():
        pytest.skip(f"{RULES_TEST_OBJECT} is not part of this installation of fanbpf")
    if os.geteuid() != 0:
        pytest.skip("BPF_PROG_TEST_RUN needs root")
    with RulesLogic() as logic:
        yield logic


@pytest.fixture(scope="session")
def fanbpf_rules_handler() -> Iterator[Handler]:
    """The built-in rules handler, loaded (private); skips without the fastpath kernel."""
    from fanbpf.handler import Handler

    if os.geteuid() != 0:
        pytest.skip("loading a fastpath handler needs root")
    try:
        handler = Handler.load("rules", private=True)  # attached by fd: no name to clash
    except KernelSupportError as err:
        pytest.skip(str(err))
    with handler:
        yield handler


@pytest.fixture(scope="module")
def fanbpf_workers() -> Iterator[Workers]:
    """Two :class:`~fanbpf.testing.fs.Workers`, shared by a module's tests (pass to OpsRun)."""
    with Workers(2) as workers:
        yield workers


@pytest.fixture
def fanbpf_tmpfs() -> Iterator[str]:
    """A fresh tmpfs (root needed), so events come from the test alone."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    with tmpfs_mount() as path:
        yield path
