#!/usr/bin/env bash
# make test: test the package as users get it.  The wheel `make dist` built
# (from the sdist) goes into a fresh venv of $TEST_PYTHON (Debian's python3),
# the embedding example is pip-installed against it, then the host tests and
# the VM tests run with that venv's python, the checkout kept off sys.path
# (PYTHONSAFEPATH; tests/conftest.py checks it).  One summary at the end.
# Fails if anything failed or if any VM test was skipped: the VM tests are
# the point, a skipped one is a missing kernel feature.
set -uo pipefail
cd "$(dirname "$0")/.."
out=build/test
venv=$out/venv
mkdir -p "$out"
rm -f "$out"/*.xml

echo "== install: fanbpf wheel and the example into a fresh venv (${TEST_PYTHON:=/usr/bin/python3})"
wheels=(build/dist/fanbpf-*.whl)
[ -f "${wheels[0]}" ] || { echo "no wheel in build/dist: run make dist"; exit 1; }
"$TEST_PYTHON" -m venv --clear "$venv" || exit 1
pip=("$venv/bin/pip" -q --disable-pip-version-check)
# setuptools (and build, in requirements-test.txt): the example builds without
# isolation, against the installed fanbpf.
"${pip[@]}" install "${wheels[0]}" -r requirements-test.txt "setuptools>=77" || exit 1
# The example as its users get it: an sdist, a wheel built from the sdist
# alone (python -m build), and that wheel must hold the compiled handler.
example_dist=$out/example-dist
rm -rf "$example_dist"
"$venv/bin/python" -m build -q --no-isolation --outdir "$example_dist" examples/suffixwatch \
	>/dev/null || exit 1
rm -rf examples/suffixwatch/build examples/suffixwatch/*.egg-info
example_wheels=("$example_dist"/suffixwatch-*.whl)
# The listing is read whole, not piped into grep -q: grep would stop at the
# first match and pipefail would report zipfile's broken pipe as a failure.
example_files=$("$venv/bin/python" -m zipfile -l "${example_wheels[0]}") || exit 1
[[ $example_files == *suffixwatch/suffix_filter.bpf.o* ]] ||
	{ echo "the example's wheel (built from its sdist) has no suffix_filter.bpf.o"; exit 1; }
"${pip[@]}" install --no-deps "${example_wheels[0]}" || exit 1
py=$venv/bin/python
export PYTHONSAFEPATH=1 FANBPF_TEST_INSTALLED=1

echo "== host tests (kernel $(uname -r))"
$py -m pytest -q -p no:cacheprovider tests/host --junitxml="$out/host.xml"
host_rc=$?

# The wheel is abi3 (cp311-abi3): the same file under a second CPython,
# with a smoke subset of the host tests.  make test sets ABI3_PYTHON (a
# pyenv 3.13 or 3.12 where there is one); without one the step says so.
abi3_tests=(tests/host/test_objects.py tests/host/test_btfargs.py tests/host/test_refusal.py tests/host/test_maps.py
	tests/host/test_shim.py tests/host/test_events.py tests/host/test_group.py
	tests/host/test_packaging.py tests/host/test_docs.py)
rm -f "$out/abi3.xml"
if [ -n "${ABI3_PYTHON:-}" ]; then
	echo "== abi3: the same wheel under $("$ABI3_PYTHON" -V), host smoke tests"
	abi3_venv=$out/venv-abi3
	"$ABI3_PYTHON" -m venv --clear "$abi3_venv" &&
	"$abi3_venv/bin/pip" -q --disable-pip-version-check install "${wheels[0]}" \
		-r requirements-test.txt "setuptools>=77" &&
	"$abi3_venv/bin/python" -m pytest -q -p no:cacheprovider "${abi3_tests[@]}" \
		--junitxml="$out/abi3.xml"
	abi3_rc=$?
else
	echo "== abi3: no second CPython (set ABI3_PYTHON to one >= 3.12): not checked"
	abi3_rc=0
fi

echo "== VM tests (fanbpf test kernel)"
# Property tests in the VM run fewer examples than on the host: TCG is slow.
kernel/vm.sh env FANBPF_EXAMPLES="${FANBPF_VM_EXAMPLES:-300}" "$py" -m pytest -q \
	-p no:cacheprovider tests/vm --junitxml="$out/vm.xml"
vm_rc=$?

echo "== kernel selftest (tools/testing/selftests/filesystems/fanotify, in the series)"
kdir=$(kernel/build.sh --dir)
kernel/vm.sh sh -c '"$1/fastpath_test" && "$1/subtree_test"' sh "$kdir"
selftest_rc=$?

echo "== BPF selftests (tools/testing/selftests/bpf, in the series: test_progs -t fanotify_fastpath)"
kernel/vm.sh "$kdir/test_progs" -t fanotify_fastpath
bpf_selftest_rc=$?

exec $py - "$host_rc" "$vm_rc" "$selftest_rc" "$bpf_selftest_rc" "$abi3_rc" "${ABI3_PYTHON:-}" <<'PY'
import sys, xml.etree.ElementTree as ET
host_rc, vm_rc, selftest_rc, bpf_selftest_rc, abi3_rc = map(int, sys.argv[1:6])
abi3 = bool(sys.argv[6])
total = {"passed": 0, "failed": 0, "skipped": 0}
ok = host_rc == 0 and vm_rc == 0 and abi3_rc == 0
print(f"selftest: {'passed' if selftest_rc == 0 else 'FAILED'}")
print(f"bpf selftest: {'passed' if bpf_selftest_rc == 0 else 'FAILED'}")
ok = ok and selftest_rc == 0 and bpf_selftest_rc == 0
if not abi3:
    print("abi3: not checked (no second CPython)")
for name in ("host", "abi3", "vm") if abi3 else ("host", "vm"):
    try:
        suite = ET.parse(f"build/test/{name}.xml").getroot().find("testsuite")
    except (OSError, ET.ParseError):
        print(f"{name}: no results (pytest did not finish)")
        ok = False
        continue
    n = int(suite.get("tests"))
    failed = int(suite.get("failures")) + int(suite.get("errors"))
    skipped = int(suite.get("skipped"))
    total["passed"] += n - failed - skipped
    total["failed"] += failed
    total["skipped"] += skipped
    print(f"{name}: {n - failed - skipped} passed, {failed} failed, {skipped} skipped")
    if name == "vm" and (skipped or n == 0):
        print("vm: VM tests must run, not skip")
        ok = False
print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
sys.exit(0 if ok and total["failed"] == 0 else 1)
PY
