# fanbpf: in-kernel fanotify filters from Python.
#
#   make test    install what is needed, build everything (the test kernel
#                too, cached), an sdist and a wheel; install the wheel and the
#                example package into a fresh venv and run the host tests and
#                the VM tests against it
#   make build   build in place (make test-host / test-vm test the checkout)
#   make test-upstream-vm  watchdog's and watchfiles' own tests, whole, in the
#                test kernel VM (slow: not part of make test)
#   make dist    build/dist: the sdist, and a wheel built from it
#   make typecheck  mypy --strict on fanbpf (part of make test)
#   make run     the demo: a subtree watcher on the test kernel in a VM
#   make bench   side-by-side benchmarks in the VM (BENCH_ARGS='--dirs 1000,10000'
#                to size them; make bench-smoke: the short run make test does;
#                make bench-cost VARIANT=nodebug: the cost of watching split by
#                configuration, and a perf profile)
#
# Every target pulls in what it needs, so each works on a fresh machine.

SHELL := /bin/bash
.DEFAULT_GOAL := build

TOP := $(CURDIR)
BUILD := $(TOP)/build
VENV := $(TOP)/.venv
PY := $(VENV)/bin/python
# make test installs fanbpf into a fresh venv of this interpreter...
TEST_PYTHON ?= /usr/bin/python3
# ...and the same (abi3) wheel into one of a newer CPython, for a smoke run
# of the host tests: pyenv's where there is one (the CI image has them).
ABI3_PYTHON ?= $(lastword $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3 \
	$(HOME)/.pyenv/versions/3.13.*/bin/python3))
# Outside the checkout, and visible in the guest (whose /var/cache is a tmpfs).
export FANBPF_CACHE ?= $(HOME)/.cache/fanbpf

APT_PACKAGES := clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config \
	qemu-system-x86 linux-source-6.12 build-essential flex bison bc \
	libssl-dev dwarves udev busybox-static cpio kmod rsync xz-utils \
	python3-venv e2fsprogs btrfs-progs xfsprogs inotify-tools liburing-dev strace \
	linux-perf

LIBBPF_SRC := $(BUILD)/linux-tools/tools/lib/bpf
LIBBPF_OUT := $(BUILD)/libbpf
LIBBPF_A := $(LIBBPF_OUT)/libbpf.a
TEST_BPF_OBJS := $(patsubst tests/host/bpf/%.bpf.c,$(BUILD)/test-bpf/%.bpf.o,$(wildcard tests/host/bpf/*.bpf.c))
# Handlers the kernel VM tests load (some of which the verifier must refuse),
# and an io_uring reader for the permission-event tests.
VM_TEST_BPF_OBJS := $(patsubst tests/vm/bpf/%.bpf.c,$(BUILD)/test-bpf-vm/%.bpf.o,$(wildcard tests/vm/bpf/*.bpf.c))
URING_READ := $(BUILD)/tests/uring_read

.PHONY: deps build dist kernel test test-host test-vm test-upstream-vm test-kasan test-kasan-long typecheck run bench bench-smoke bench-cost bench-tools vm clean

# --- dependencies --------------------------------------------------------

deps: $(BUILD)/.apt-done $(VENV)/.pip-done

$(BUILD)/.apt-done: Makefile
	@mkdir -p $(BUILD)
	@if ! dpkg-query -W $(APT_PACKAGES) >/dev/null 2>&1 || \
	    dpkg-query -W -f='$${db:Status-Status}\n' $(APT_PACKAGES) | grep -qvx installed; then \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi
	@touch $@

$(VENV)/.pip-done: requirements-dev.txt requirements-test.txt | $(BUILD)/.apt-done
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	@touch $@

# --- user-space build ----------------------------------------------------
# The same steps as `pip install .` (setup.py), run in the checkout so that
# the tests and the demo use it in place.

# libbpf 1.5 from the kernel tree (bookworm's 1.1 predates .struct_ops.link),
# static and position-independent so it links into the cffi extension.
# The tree (tools/, include/uapi/ for tests/host/test_flags.py) stays in
# build/linux-tools.
$(LIBBPF_A): | $(VENV)/.pip-done
	$(PY) fanbpf/_ffi_build.py libbpf $(LIBBPF_OUT) $(BUILD)/linux-tools

$(LIBBPF_SRC)/Makefile: $(LIBBPF_A)
	@test -f $@

# Built-in handlers -> fanbpf/bpf/, headers (vmlinux.h from the running
# kernel's BTF, libbpf's) -> fanbpf/include/: setup.py build_bpf.
BPF_STAMP := $(BUILD)/.bpf-done
$(BPF_STAMP): $(LIBBPF_A) $(wildcard src/bpf/*) fanbpf/_bpfcc.py setup.py
	FANBPF_LIBBPF_DIR=$(LIBBPF_OUT) $(PY) setup.py -q build_bpf --inplace
	@touch $@

# Small objects the tests load (built here once, not by each test run).
$(BUILD)/test-bpf/%.bpf.o: tests/host/bpf/%.bpf.c $(BPF_STAMP)
	$(PY) fanbpf/_bpfcc.py $< $@ fanbpf/include src/bpf

$(BUILD)/test-bpf-vm/%.bpf.o: tests/vm/bpf/%.bpf.c $(BPF_STAMP)
	$(PY) fanbpf/_bpfcc.py $< $@ fanbpf/include src/bpf

$(URING_READ): tests/vm/uring_read.c | $(BUILD)/.apt-done
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -o $@ $< -luring

EXT_STAMP := $(BUILD)/.ext-done
$(EXT_STAMP): $(LIBBPF_A) $(wildcard src/c/*.c src/c/*.h src/bpf/*.h) fanbpf/_ffi_build.py setup.py pyproject.toml $(VENV)/.pip-done
	FANBPF_LIBBPF_DIR=$(LIBBPF_OUT) $(PY) setup.py -q build_ext --inplace
	@touch $@

# The embedding example, built by fanbpf.build against this checkout.
EXAMPLE_STAMP := $(BUILD)/.example-done
$(EXAMPLE_STAMP): $(EXT_STAMP) $(BPF_STAMP) $(wildcard examples/suffixwatch/* examples/suffixwatch/*/*) fanbpf/build.py
	PYTHONPATH=$(TOP) $(VENV)/bin/pip install -q --no-build-isolation --no-deps --force-reinstall examples/suffixwatch
	@touch $@

build: deps $(BPF_STAMP) $(TEST_BPF_OBJS) $(VM_TEST_BPF_OBJS) $(URING_READ) $(EXT_STAMP) \
	$(EXAMPLE_STAMP)

# sdist, then a wheel built from it (so the sdist is proven complete).
dist: build
	rm -rf $(BUILD)/dist
	FANBPF_LIBBPF_DIR=$(LIBBPF_OUT) FANBPF_VMLINUX_H=$(TOP)/fanbpf/include/vmlinux.h \
		$(PY) -m build -q --outdir $(BUILD)/dist . >/dev/null

# --- kernel and VM -------------------------------------------------------

# make kernel VARIANT=kasan|nodebug: kernel/config plus kernel/config.VARIANT
# (own cache key and object tree); VARIANT applies to vm, run and bench too.
VARIANT ?=
export FANBPF_KERNEL_VARIANT := $(VARIANT)
kernel: deps
	kernel/build.sh

# make vm CMD='...': run a command in the test kernel, checkout visible.
vm: kernel
	kernel/vm.sh $(CMD)

# --- tests ---------------------------------------------------------------

# mypy --strict on every module of fanbpf (pyproject.toml [tool.mypy]).
typecheck: deps
	$(PY) -m mypy


# watchdog's and watchfiles' own tests judge fanbpf's drop-ins
# (tests/upstream): their sdists, at the versions requirements-test.txt pins.
UPSTREAM := $(BUILD)/upstream
WATCHDOG_VERSION := $(shell sed -n 's/^watchdog==//p' requirements-test.txt)
WATCHFILES_VERSION := $(shell sed -n 's/^watchfiles==//p' requirements-test.txt)
UPSTREAM_SDISTS := $(UPSTREAM)/watchdog-$(WATCHDOG_VERSION).tar.gz \
	$(UPSTREAM)/watchfiles-$(WATCHFILES_VERSION).tar.gz
# watchfiles' sdist cannot go through pip download: preparing its metadata
# runs maturin, which needs the crates.io index.  Its PyPI file, by hash:
WATCHFILES_SDIST_URL := https://files.pythonhosted.org/packages/b3/68/e6aa0b77d217b31f8f486ec0cdfe5e00e6e38dc0be657e7d85819b9faf0a/watchfiles-1.3.0.tar.gz
WATCHFILES_SDIST_SHA256 := 99aee4a07847c06820765fd7b1b49ceac4f3f711ccb7d104655a33231de1c207

$(UPSTREAM)/watchdog-%.tar.gz: | $(VENV)/.pip-done
	$(VENV)/bin/pip download -q --no-deps --no-binary :all: --no-build-isolation \
		-d $(UPSTREAM) watchdog==$*

$(UPSTREAM)/watchfiles-%.tar.gz: | $(VENV)/.pip-done
	@test "$*" = 1.3.0 || { echo "update WATCHFILES_SDIST_URL/SHA256 for watchfiles $*"; exit 1; }
	$(PY) tests/upstream/upstream_suites.py fetch $(WATCHFILES_SDIST_URL) $(WATCHFILES_SDIST_SHA256) $@

.PHONY: upstream-sdists
upstream-sdists: $(UPSTREAM_SDISTS)

test-host: build bench-tools upstream-sdists
	$(PY) -m pytest -q -p no:cacheprovider tests/host

test-vm: build kernel upstream-sdists
	kernel/vm.sh $(PY) -m pytest -q -p no:cacheprovider tests/vm

# watchdog's and watchfiles' whole selection on the test kernel, in the mode
# fanbpf picks there (subtree-marks), watchdog's also in kernel mode; reports
# in build/upstream-vm.  Not part of make test: 30-40 min under TCG, 18 of them
# kernel mode's handler loads (PYTEST_ARGS='-k subtree-marks' skips those).
test-upstream-vm: build kernel upstream-sdists
	kernel/vm.sh $(PY) -m pytest -q -p no:cacheprovider -s tests/upstream $(PYTEST_ARGS)

# Against the installed package: sdist -> wheel -> fresh venv (Debian's
# python3), the example installed into it, then host and VM tests.
# The bench smoke run first, so that the test summary stays the last line.
test: typecheck dist kernel bench-tools upstream-sdists
	@$(MAKE) --no-print-directory bench-smoke; smoke=$$?; \
	TEST_PYTHON=$(TEST_PYTHON) ABI3_PYTHON=$(ABI3_PYTHON) tests/run-all.sh && exit $$smoke

# The VM tests that exercise the kernel, and the series' selftests (the
# kselftests and the BPF test_progs), on the KASAN kernel (slow: not part
# of make test).
KASAN_TESTS := tests/vm/test_kernel_module.py tests/vm/test_kernel_bpf.py tests/vm/test_subtree_marks.py \
	tests/vm/test_kernel_audit.py tests/vm/test_kernel_walk.py \
	tests/vm/test_kernel_safety.py
test-kasan: export FANBPF_KERNEL_VARIANT := kasan
test-kasan: build
	kernel/build.sh
	kernel/vm.sh $(PY) -m pytest -q -p no:cacheprovider $(KASAN_TESTS)
	kdir=$$(kernel/build.sh --dir) && kernel/vm.sh sh -c '"$$1/fastpath_test" && "$$1/subtree_test" && \
		"$$1/test_progs" -t fanotify_fastpath' sh "$$kdir"

# The two races the review of series v3 reproduced, 20 times as long as in
# make test (FANBPF_STRESS), on the KASAN kernel: a dentry dying under a walk
# (defect 1) and names copied while renames swap them.
test-kasan-long: export FANBPF_KERNEL_VARIANT := kasan
test-kasan-long: build
	kernel/build.sh
	kernel/vm.sh env FANBPF_STRESS=$(or $(STRESS),20) $(PY) -m pytest -q -p no:cacheprovider \
		tests/vm/test_kernel_walk.py::test_a_dentry_dying_under_a_walk_cannot_oops \
		tests/vm/test_kernel_safety.py::test_name_copies_race_renames_between_short_and_long_names

run: build kernel
	kernel/vm.sh $(PY) -m fanbpf demo

# --- benchmarks ----------------------------------------------------------

BENCH_BIN := $(BUILD)/bench/workload $(BUILD)/bench/fanwatch

$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

# The watchers fanbpf is compared with, and matplotlib for the plots.
$(VENV)/.bench-pip-done: bench/requirements.txt $(VENV)/.pip-done
	$(VENV)/bin/pip install -q -r bench/requirements.txt
	@touch $@

bench-tools: $(BENCH_BIN) $(VENV)/.bench-pip-done

# Measured in the VM, tables and plots made on the host (matplotlib is slow under TCG).
bench: build kernel bench-tools
	kernel/vm.sh $(PY) bench/run.py $(BENCH_ARGS)
	MPLCONFIGDIR=$(BUILD)/mpl $(PY) bench/report.py $(BUILD)/bench/results.json bench/results \
		--conditions "$(BENCH_CONDITIONS)"

bench-smoke: build kernel bench-tools
	kernel/vm.sh $(PY) bench/run.py --smoke
	MPLCONFIGDIR=$(BUILD)/mpl $(PY) bench/report.py $(BUILD)/bench/smoke.json $(BUILD)/bench \
		--stem smoke

# The cost of watching at f = 1 %, split by configuration (issue 18), and a
# perf profile of the workload under some of them (perf: linux-perf, the
# host's, which the guest sees).  Its handlers that skip everything: a test
# BPF object (make build), and a module built against the kernel's object
# tree, which kernel/build.sh keeps in the cache (rebuilt every time: seconds).
KOBJ = $(FANBPF_CACHE)/$(if $(VARIANT),$(VARIANT)-)obj
BENCH_SKIP_KMOD := $(BUILD)/bench/kmod/fanbpf_bench_skip.ko
BENCH_COST_STEM ?= $(shell date -u +%F)-cost$(if $(VARIANT),-$(VARIANT))

$(BENCH_SKIP_KMOD): bench/kmod/fanbpf_bench_skip.c bench/kmod/Kbuild kernel
	@test -f $(KOBJ)/Makefile || { echo "no kernel object tree at $(KOBJ): make kernel$(if $(VARIANT), VARIANT=$(VARIANT)) builds it"; exit 1; }
	rm -rf $(dir $@) && mkdir -p $(dir $@) && cp bench/kmod/* $(dir $@)
	$(MAKE) -s -C $(KOBJ) M=$(dir $@) modules

bench-cost: build kernel bench-tools $(BENCH_SKIP_KMOD)
	kernel/vm.sh $(PY) bench/run.py --parts split,profile --out $(BUILD)/bench/cost.json $(BENCH_ARGS)
	MPLCONFIGDIR=$(BUILD)/mpl $(PY) bench/report.py $(BUILD)/bench/cost.json bench/results \
		--stem $(BENCH_COST_STEM) --conditions "$(BENCH_CONDITIONS)"

clean:
	rm -rf $(BUILD) fanbpf/bpf/*.o fanbpf/include fanbpf/_fanbpf*.so fanbpf/_fanbpf.c \
		fanbpf/__pycache__ examples/suffixwatch/build examples/suffixwatch/*.egg-info

# --- ASAN ----------------------------------------------------------------
# make test-asan: the host tests once with the shim, the cffi module and
# libbpf built with AddressSanitizer (gcc), loaded into the normal Python
# through LD_PRELOAD.  The instrumented package is a tree of links to the
# sources plus its own extension, in build/asan; leaks are not checked
# (CPython keeps much alive until exit).
ASAN := $(BUILD)/asan
ASAN_FLAGS := -fsanitize=address -fno-omit-frame-pointer -g -O1
ASAN_LIB = $(shell gcc -print-file-name=libasan.so)

$(ASAN)/libbpf/libbpf.a: $(LIBBPF_SRC)/Makefile
	@mkdir -p $(ASAN)/libbpf/obj
	$(MAKE) -s -C $(LIBBPF_SRC) OUTPUT=$(ASAN)/libbpf/obj/ DESTDIR=$(ASAN)/libbpf \
		prefix= libdir=/ CC=gcc EXTRA_CFLAGS='-fPIC $(ASAN_FLAGS)' install >/dev/null
	@test -f $@

.PHONY: test-asan
test-asan: build $(ASAN)/libbpf/libbpf.a
	rm -rf $(ASAN)/lib $(ASAN)/tmp && mkdir -p $(ASAN)/lib/fanbpf
	CC=gcc CFLAGS='$(ASAN_FLAGS)' LDFLAGS='-fsanitize=address' \
		FANBPF_LIBBPF_DIR=$(ASAN)/libbpf $(PY) setup.py -q build_ext --force \
		--build-lib $(ASAN)/lib --build-temp $(ASAN)/tmp
	for f in fanbpf/*; do case $$f in *.so|*/__pycache__) ;; *) ln -s $(TOP)/$$f $(ASAN)/lib/fanbpf/;; esac; done
	cd $(ASAN)/lib && LD_PRELOAD=$(ASAN_LIB) PYTHONMALLOC=malloc \
		ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		$(PY) -m pytest -q -p no:cacheprovider $(TOP)/tests/host
