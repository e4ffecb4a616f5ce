"""The README's Python example runs as written on the test kernel."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_example_runs_as_written():
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    *events, stats = out
    assert [line.split(" ", 1)[1].rsplit("/", 2)[-2:] for line in events] == \
        [["www", "index.html"], ["img", "logo.png"], ["logs", "error.log"]], out
    assert "delivered=3, skipped=3, denied=0, undecided=0" in stats, out
