"""Which fanbpf the tests run against.

`make test` runs them against the wheel installed in a fresh venv, with
FANBPF_TEST_INSTALLED=1 and PYTHONSAFEPATH=1 (so neither pytest nor the
``python -m fanbpf`` subprocesses that tests start with cwd=checkout import
the checkout's fanbpf/).  Stop at once if that did not hold: every result
would be about the wrong code.
"""
import os
import signal
from pathlib import Path

import pytest

import fanbpf

# fanbpf's own tests use its pytest plugin (opt-in, as any project would).
pytest_plugins = ["fanbpf.testing"]

CHECKOUT = Path(__file__).resolve().parents[1]

# Run in the background of a non-interactive shell (`nohup make test &`),
# the tests would ignore SIGINT, and so would every watcher they start:
# the tests that interrupt one need the default (which exec passes on).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config):
    return f"fanbpf {fanbpf.__version__} from {Path(fanbpf.__file__).parent}"


def pytest_configure(config):
    if os.environ.get("FANBPF_TEST_INSTALLED") == "1" and \
            Path(fanbpf.__file__).resolve().is_relative_to(CHECKOUT / "fanbpf"):
        pytest.exit(f"FANBPF_TEST_INSTALLED=1 but fanbpf was imported from the checkout "
                    f"({fanbpf.__file__}): run with PYTHONSAFEPATH=1", returncode=4)
