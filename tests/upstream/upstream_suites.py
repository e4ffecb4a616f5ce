# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Run watchdog's and watchfiles' own tests against fanbpf's drop-ins.

    python tests/upstream/upstream_suites.py SUITE SDIST OUT.json [--mode MODE]
    python tests/upstream/upstream_suites.py fetch URL SHA256 OUT   (make upstream-sdists)

SUITE is ``watchdog`` or ``watchfiles``; SDIST the pinned sdist
(``make upstream-sdists`` fetches both into build/upstream). The sdist's
tests are extracted into a temporary directory and pointed at fanbpf:

- watchdog: its test helper's ``Emitter`` (InotifyEmitter on Linux, and
  InotifyFullEmitter) becomes :class:`fanbpf.watchdog.FanotifyEmitter` (a
  conftest.py above the tests replaces them in
  ``watchdog.observers.inotify`` before the tests import them);
- watchfiles: ``watchfiles``, ``watchfiles.main`` and
  ``watchfiles._rust_notify`` are :mod:`fanbpf.watch` (``RustNotify`` is
  its :class:`~fanbpf.watch.Notify`); in the test texts the mock's target
  ``watchfiles.main.RustNotify`` becomes ``watchfiles.main.Notify`` and the
  logger name ``watchfiles``/``watchfiles.main`` becomes ``fanbpf.watch``.

MODE (``FANBPF_WATCH_MODE``) forces a mechanism. Writes one JSON object:
test id -> "passed", "failed" or "skipped", with the message of each
failure and skip under "details".
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET

SUITES = {
    # Not run: test_observer.py and test_observers_api.py test watchdog's
    # BaseObserver with its abstract EventEmitter on paths that do not exist
    # (FanotifyObserver is that BaseObserver: nothing of fanbpf's is in
    # them); test_inotify_emitter.py tests InotifyObserver's internals (its
    # shared InotifyFD thread, add_callback, the inotify_fd argument).
    "watchdog": ["tests/test_emitter.py"],
    "watchfiles": ["tests/test_watch.py", "tests/test_rust_notify.py", "tests/test_filters.py"],
}

WATCHDOG_SHIM = '''
import os
import watchdog.observers.inotify
from fanbpf.watchdog import FanotifyEmitter

mode = os.environ.get("FANBPF_WATCH_MODE") or None
class Emitter(FanotifyEmitter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, mode=mode, **kwargs)
watchdog.observers.inotify.InotifyEmitter = Emitter
watchdog.observers.inotify.InotifyFullEmitter = Emitter
'''

WATCHFILES_SHIM = '''
import importlib
import os
import sys
import types

watch = importlib.import_module("fanbpf.watch")  # the module (fanbpf.watch is the function)
mode = os.environ.get("FANBPF_WATCH_MODE") or None
class RustNotify(watch.Notify):
    def __init__(self, *args, **kwargs):
        if kwargs.get("mode") is None:
            kwargs["mode"] = mode
        super().__init__(*args, **kwargs)
watch.Notify = RustNotify
rust = types.ModuleType("watchfiles._rust_notify")
rust.RustNotify = RustNotify
rust.WatchfilesRustInternalError = RuntimeError
sys.modules.update({"watchfiles": watch, "watchfiles.main": watch, "watchfiles._rust_notify": rust})
'''

# (pattern, replacement) on the test files' text: names only, no test logic.
REWRITES = {
    "watchdog": [],
    "watchfiles": [(r"watchfiles\.main\.RustNotify", "watchfiles.main.Notify"),
                   (r"""(['"])watchfiles\.main (DEBUG|INFO|WARNING)""", r"\1fanbpf.watch \2"),
                   (r"""(set_level\(['"]\w+['"], )['"]watchfiles['"]""", r"\1'fanbpf.watch'")],
}


def prepare(suite: str, sdist: str, where: str) -> str:
    with tarfile.open(sdist) as tar:
        # filter= came in 3.12 and 3.11.4; Debian bookworm's 3.11.2 lacks it,
        # so check each member by hand there: regular files and dirs only,
        # no absolute or climbing names.
        if hasattr(tarfile, "data_filter"):
            tar.extractall(where, filter="data")
        else:
            members = tar.getmembers()
            for m in members:
                if not (m.isfile() or m.isdir()) or m.name.startswith("/") or \
                        ".." in m.name.split("/"):
                    raise ValueError(f"{sdist}: unsafe member {m.name!r}")
            tar.extractall(where, members=members)
    top = os.path.join(where, os.listdir(where)[0])
    with open(os.path.join(top, "conftest.py"), "w") as f:
        f.write(WATCHDOG_SHIM if suite == "watchdog" else WATCHFILES_SHIM)
    tests = os.path.join(top, "tests")
    for name in os.listdir(tests):
        if not name.endswith(".py"):
            continue
        path = os.path.join(tests, name)
        text = open(path).read()
        for pattern, repl in REWRITES[suite]:
            text = re.sub(pattern, repl, text, flags=re.M)
        open(path, "w").write(text)
    # The installed packages are tested, not the sdist's sources.
    for src in ("src", "watchfiles", "setup.cfg", "pyproject.toml", "tox.ini"):
        target = os.path.join(top, src)
        if os.path.isdir(target):
            os.rename(target, target + ".unused")
        elif os.path.exists(target):
            os.unlink(target)
    return top


def run(suite: str, sdist: str, out: str | None, mode: str | None, only: list[str] | None = None,
        timeout: int = 15) -> dict:
    """Run the suite (or the ``only`` test ids) and return its report; ``timeout``:
    pytest-timeout's, per test."""
    with tempfile.TemporaryDirectory(prefix=f"fanbpf-{suite}-") as where:
        top = prepare(suite, sdist, where)
        xml = os.path.join(where, "junit.xml")
        env = dict(os.environ, FANBPF_WATCH_MODE=mode or "")
        env.pop("PYTHONSAFEPATH", None)  # the extracted tests import their own helpers
        import fanbpf  # the fanbpf this process has (a checkout's or the installed one)

        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(fanbpf.__file__)))
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", f"timeout={timeout}",
               "-o", "log_format=%(name)s %(levelname)s: %(message)s", "-o", "addopts=",
               "--junitxml", xml, *(map(_pytest_id, only) if only else SUITES[suite])]
        proc = subprocess.run(cmd, cwd=top, env=env, capture_output=True, text=True)
        if not os.path.exists(xml):
            raise SystemExit(f"{suite}: pytest did not finish:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        results, details = {}, {}
        for case in ET.parse(xml).getroot().iter("testcase"):
            test = f"{case.get('classname')}::{case.get('name')}"
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                elif child.tag == "skipped":
                    outcome = "skipped"
                if child.tag in ("failure", "error", "skipped"):
                    details[test] = (child.get("message") or "")[:300]
            if results.get(test) != "failed":
                results[test] = outcome
    report = {"suite": suite, "mode": mode, "results": results, "details": details,
              "summary": {k: sum(v == k for v in results.values()) for k in ("passed", "failed", "skipped")}}
    if out:
        with open(out, "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
    return report


def _pytest_id(test: str) -> str:
    """``tests.test_x::test_y[a]`` (junit's) -> ``tests/test_x.py::test_y[a]``."""
    module, name = test.split("::", 1)
    return module.replace(".", "/") + ".py::" + name


HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED = os.path.join(HERE, "expected.json")
TOP = os.path.dirname(os.path.dirname(HERE))


def sdist_path(suite: str) -> str:
    """Where make upstream-sdists puts the sdist of the version requirements-test.txt pins."""
    with open(os.path.join(TOP, "requirements-test.txt")) as f:
        version = next(line.split("==")[1].strip() for line in f if line.startswith(suite + "=="))
    return os.path.join(TOP, "build", "upstream", f"{suite}-{version}.tar.gz")


def recorded(entries: dict, mode: str | None) -> dict[str, str]:
    """The entries of an expected.json section ("failed", "skipped") that
    hold in ``mode``: test id -> why. An entry is a reason (every mode) or
    ``{"modes": {MODE: reason, ...}}`` (only those modes)."""
    out = {}
    for test, why in entries.items():
        if isinstance(why, str):
            out[test] = why
        elif not isinstance(why, dict) or set(why) != {"modes"} or not isinstance(why["modes"], dict):
            raise ValueError(f"{EXPECTED}: {test}: a reason, or {{\"modes\": {{MODE: reason}}}}, not {why!r}")
        elif mode in why["modes"]:
            out[test] = why["modes"][mode]
    return out


def judge(suite: str, sdist: str, mode: str | None, timeout: int = 15) -> tuple[dict, list[str], list[str]]:
    """The suite's report, the tests that should pass in ``mode`` and did not
    (each run a second time first: a few of them give the watcher 0.1 s to
    start), and the failures recorded for ``mode`` that passed. ``timeout``:
    per test, as for :func:`run`."""
    with open(EXPECTED) as f:
        expected = json.load(f)[suite]
    failed, skipped = recorded(expected["failed"], mode), recorded(expected["skipped"], mode)
    known = {**failed, **skipped}
    report = run(suite, sdist, None, mode, timeout=timeout)
    results = report["results"]
    bad = [t for t, outcome in results.items() if outcome != "passed" and t not in known]
    if bad:
        again = run(suite, sdist, None, mode, only=bad, timeout=timeout)["results"]
        report["rerun"] = again
        bad = [t for t in bad if again.get(t) != "passed"]
    problems = [f"{t}: {results[t]}: {report['details'].get(t, '')}" for t in bad]
    problems += [f"{t}: not run" for t in skipped if t not in results]
    fixed = [t for t in failed if results.get(t) == "passed"]
    return report, problems, fixed


def check(suite: str, mode: str, timeout: int = 15, out: str | None = None) -> dict:
    """Judge the suite in ``mode`` (pytest's assertions: the tests' own
    check): fails on any test that should have passed; the report is
    written to ``out`` if given, and returned."""
    sdist = sdist_path(suite)
    if not os.path.exists(sdist):
        raise AssertionError(f"{sdist} is missing: make upstream-sdists fetches it")
    start = time.monotonic()
    report, problems, fixed = judge(suite, sdist, mode, timeout)
    report["recorded_failures_passed"], report["seconds"] = fixed, round(time.monotonic() - start)
    if out:
        with open(out, "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
    print(f"{suite} in {mode} mode: {report['summary']} in {report['seconds']} s"
          + (f"; recorded failures that passed: {fixed}" if fixed else ""))
    assert not problems, "\n".join(problems)
    assert report["summary"]["passed"] >= len(report["results"]) // 2  # the suite really ran
    return report


def fetch(url: str, sha256: str, out: str) -> None:
    """Download ``url`` to ``out`` if its SHA-256 is ``sha256`` (make upstream-sdists)."""
    import hashlib
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{url}: SHA-256 {digest}, expected {sha256}: not written")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".part", "wb") as f:
        f.write(data)
    os.replace(out + ".part", out)


def main() -> int:
    if sys.argv[1:2] == ["fetch"]:
        fetch(*sys.argv[2:5])
        return 0
    p = argparse.ArgumentParser()
    p.add_argument("suite", choices=SUITES)
    p.add_argument("sdist")
    p.add_argument("out")
    p.add_argument("--mode")
    args = p.parse_args()
    report = run(args.suite, args.sdist, args.out, args.mode)
    print(f"{args.suite} ({args.mode or 'auto'}): {report['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
