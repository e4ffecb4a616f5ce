"""`fanbpf demo` on the host's stock kernel: the user-space fallback mode."""
import re
import subprocess
import sys


def test_demo_runs_in_user_space_mode_on_a_stock_kernel():
    out = subprocess.run([sys.executable, "-m", "fanbpf", "demo", "--ops", "60", "--quiet"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "filtered in user space" in out
    total, filtered, delivered = map(int, re.search(
        r"(\d+) events happened.* filtered out (\d+) .* and (\d+) reached", out).groups())
    assert total == filtered + delivered and 0 < delivered < total
