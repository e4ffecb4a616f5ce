# fanbpf: in-kernel fanotify filters from Python.
#
#   make test    install what is needed, build everything (the test kernel
#                too, cached), run the host tests and the VM tests
#   make run     the demo: a subtree watcher on the test kernel in a VM
#   make bench   side-by-side benchmarks in the VM
#
# Every target pulls in what it needs, so each works on a fresh machine.

SHELL := /bin/bash
.DEFAULT_GOAL := build

TOP := $(CURDIR)
BUILD := $(TOP)/build
VENV := $(TOP)/.venv
PY := $(VENV)/bin/python
# Outside the checkout, and visible in the guest (whose /var/cache is a tmpfs).
export FANBPF_CACHE ?= $(HOME)/.cache/fanbpf

APT_PACKAGES := clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config \
	qemu-system-x86 linux-source-6.12 build-essential flex bison bc \
	libssl-dev dwarves udev busybox-static cpio kmod rsync xz-utils \
	python3-venv e2fsprogs liburing-dev

CLANG ?= clang
BPFTOOL ?= bpftool
LIBBPF_SRC := $(BUILD)/linux-tools/tools/lib/bpf
LIBBPF_OUT := $(BUILD)/libbpf
LIBBPF_A := $(LIBBPF_OUT)/libbpf.a
VMLINUX_H := $(BUILD)/vmlinux.h
BPF_SRCS := $(wildcard src/bpf/*.bpf.c)
BPF_OBJS := $(patsubst src/bpf/%.bpf.c,fanbpf/bpf/%.bpf.o,$(BPF_SRCS))
EXAMPLE_OBJS := $(patsubst examples/%.bpf.c,$(BUILD)/examples/%.bpf.o,$(wildcard examples/*.bpf.c))
TEST_BPF_OBJS := $(patsubst tests/host/bpf/%.bpf.c,$(BUILD)/test-bpf/%.bpf.o,$(wildcard tests/host/bpf/*.bpf.c))
# Handlers the kernel VM tests load (some of which the verifier must refuse),
# and an io_uring reader for the permission-event tests.
VM_TEST_BPF_OBJS := $(patsubst tests/vm/bpf/%.bpf.c,$(BUILD)/test-bpf-vm/%.bpf.o,$(wildcard tests/vm/bpf/*.bpf.c))
URING_READ := $(BUILD)/tests/uring_read
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror \
	-I$(BUILD) -I$(LIBBPF_OUT)/include -Isrc/bpf

.PHONY: deps build kernel test test-host test-vm test-kasan run bench vm clean

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

$(VENV)/.pip-done: requirements-dev.txt | $(BUILD)/.apt-done
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	@touch $@

# --- user-space build ----------------------------------------------------

# libbpf 1.5 from the kernel tree (bookworm's 1.1 predates .struct_ops.link),
# static and position-independent so it links into the cffi extension.
$(LIBBPF_SRC)/Makefile: | $(BUILD)/.apt-done
	@mkdir -p $(BUILD)/linux-tools
	tar -xf /usr/src/linux-source-6.12.tar.xz -C $(BUILD)/linux-tools \
		--strip-components=1 linux-source-6.12/tools linux-source-6.12/include/uapi \
		linux-source-6.12/scripts
	@touch $@

$(LIBBPF_A): $(LIBBPF_SRC)/Makefile
	@mkdir -p $(LIBBPF_OUT)/obj
	$(MAKE) -s -C $(LIBBPF_SRC) OUTPUT=$(LIBBPF_OUT)/obj/ DESTDIR=$(LIBBPF_OUT) \
		prefix= libdir=/ EXTRA_CFLAGS='-fPIC -O2' install >/dev/null
	@test -f $@

# CO-RE: types come from the running kernel's BTF; the fastpath types,
# which only the test kernel has, are declared in src/bpf/fanotify_fastpath.bpf.h.
$(VMLINUX_H): | $(BUILD)/.apt-done
	@mkdir -p $(BUILD)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

fanbpf/bpf/%.bpf.o: src/bpf/%.bpf.c $(wildcard src/bpf/*.h) $(VMLINUX_H) $(LIBBPF_A)
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/examples/%.bpf.o: examples/%.bpf.c $(wildcard src/bpf/*.h) $(VMLINUX_H) $(LIBBPF_A)
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# Small objects the tests load (built here once, not by each test run).
$(BUILD)/test-bpf/%.bpf.o: tests/host/bpf/%.bpf.c $(wildcard src/bpf/*.h) $(VMLINUX_H) $(LIBBPF_A)
	@mkdir -p $(dir $@)
	$(CLANG) $(subst -Werror,,$(BPF_CFLAGS)) -c $< -o $@

$(BUILD)/test-bpf-vm/%.bpf.o: tests/vm/bpf/%.bpf.c $(wildcard tests/vm/bpf/*.c src/bpf/*.h) $(VMLINUX_H) $(LIBBPF_A)
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(URING_READ): tests/vm/uring_read.c | $(BUILD)/.apt-done
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -o $@ $< -luring

EXT_STAMP := $(BUILD)/.ext-done
$(EXT_STAMP): $(LIBBPF_A) $(wildcard src/c/*.c src/c/*.h src/bpf/*.h) fanbpf/_ffi_build.py setup.py $(VENV)/.pip-done
	FANBPF_LIBBPF_DIR=$(LIBBPF_OUT) $(PY) setup.py -q build_ext --inplace
	@touch $@

build: deps $(BPF_OBJS) $(EXAMPLE_OBJS) $(TEST_BPF_OBJS) $(VM_TEST_BPF_OBJS) $(URING_READ) $(EXT_STAMP)

# --- kernel and VM -------------------------------------------------------

# make kernel KASAN=1: the KASAN variant (own cache key and object tree).
kernel: deps
	FANBPF_KASAN=$(if $(filter 1,$(KASAN)),1,0) kernel/build.sh

# make vm CMD='...': run a command in the test kernel, checkout visible.
vm: kernel
	kernel/vm.sh $(CMD)

# --- tests ---------------------------------------------------------------

test-host: build
	$(PY) -m pytest -q -p no:cacheprovider tests/host

test-vm: build kernel
	kernel/vm.sh $(PY) -m pytest -q -p no:cacheprovider tests/vm

test: build kernel
	@tests/run-all.sh

# The VM tests that exercise the kernel, and the series' selftest, on the
# KASAN kernel (slow: not part of make test).
KASAN_TESTS := tests/vm/test_kernel_module.py tests/vm/test_kernel_bpf.py \
	tests/vm/test_kernel_safety.py
test-kasan: build
	FANBPF_KASAN=1 kernel/build.sh
	FANBPF_KASAN=1 kernel/vm.sh $(PY) -m pytest -q -p no:cacheprovider $(KASAN_TESTS)
	FANBPF_KASAN=1 kernel/vm.sh "$$(FANBPF_KASAN=1 kernel/build.sh --dir)/fastpath_test"

run: build kernel
	kernel/vm.sh $(PY) -m fanbpf demo

bench: build kernel
	kernel/vm.sh $(PY) bench/run.py

clean:
	rm -rf $(BUILD) fanbpf/bpf/*.o fanbpf/_fanbpf*.so fanbpf/_fanbpf.c fanbpf/__pycache__
