#!/usr/bin/env bash
# Build the series' BPF selftests (tools/testing/selftests/bpf:
# prog_tests/fanotify_fastpath.c and progs/fanotify_fastpath*.c) into a
# test_progs that runs only them.
#
#   kernel/bpf-selftests.sh SRC VMLINUX OUT
#
# SRC is a kernel tree with the series applied, VMLINUX the kernel the tests
# will run on (its BTF gives vmlinux.h), OUT the directory that receives
# test_progs (and keeps the intermediate files under OUT/bpf-selftests).
# kernel/build.sh calls it after the kselftests; run the result in the VM:
#   kernel/vm.sh sh -c 'cd "$1" && ./test_progs -t fanotify_fastpath' sh IMAGE_DIR
#
# Why not `make -C tools/testing/selftests/bpf`: it builds every one of the
# ~900 programs, and many of 6.12's need a newer clang than bookworm's 14.
# This script makes the same files with the same flags as that Makefile's
# test_progs runner, for our tests only:
#  - bpftool from the tree, its bootstrap flavour (what the selftests use
#    to make skeletons; bookworm's bpftool links libbpf 1.1, which does not
#    know .struct_ops.link sections), and the libbpf 1.5 it builds;
#  - each progs/fanotify_fastpath*.c with clang -target bpf against
#    vmlinux.h, then its skeleton;
#  - test_progs.c, test_loader.c (RUN_TESTS(): the __failure/__msg
#    annotations) and the helper files the runner links, with a tests.h
#    that lists only our tests (the Makefile generates it from every file in
#    prog_tests/).
set -euo pipefail

if [ $# -ne 3 ]; then
	echo "usage: $0 SRC VMLINUX OUT" >&2
	exit 2
fi
src=$(cd "$1" && pwd)
vmlinux=$2
out=$(mkdir -p "$3" && cd "$3" && pwd)
sel=$src/tools/testing/selftests/bpf
work=$out/bpf-selftests
jobs=${JOBS:-$(nproc)}
log() { echo "kernel/bpf-selftests.sh: $*" >&2; }

for f in "$sel/prog_tests/fanotify_fastpath.c" "$sel/progs/fanotify_fastpath.c" "$vmlinux"; do
	[ -f "$f" ] || { log "missing $f (a tree without the series' BPF selftests?)"; exit 1; }
done

rm -rf "$work"
mkdir -p "$work/bpftool" "$work/progs" "$work/prog_tests"

log "bpftool and libbpf (bootstrap) from the tree"
make -s -C "$src/tools/bpf/bpftool" OUTPUT="$work/bpftool/" -j"$jobs" bootstrap >/dev/null
bpftool=$work/bpftool/bootstrap/bpftool
libbpf=$work/bpftool/bootstrap/libbpf	# libbpf.a, include/bpf/*.h

"$bpftool" btf dump file "$vmlinux" format c >"$work/vmlinux.h"

# BPF_CFLAGS of the selftests' Makefile; the headers it installs next to
# vmlinux.h (bpf_helpers.h, ...) are libbpf's.
bpf_cflags=(-g -O2 -Wall -Werror -D__TARGET_ARCH_x86 -mlittle-endian
	-I"$work" -I"$libbpf/include" -I"$sel" -I"$src/tools/include/uapi"
	-Wno-compare-distinct-pointer-types)
objs=()
for prog in "$sel"/progs/fanotify_fastpath*.c; do
	name=$(basename "$prog" .c)
	log "BPF $name"
	clang "${bpf_cflags[@]}" -target bpf -c "$prog" -o "$work/progs/$name.bpf.o"
	"$bpftool" gen skeleton "$work/progs/$name.bpf.o" name "$name" >"$work/$name.skel.h"
done

# tests.h: one DEFINE_TEST per test_*() in our prog_tests file, as the
# Makefile's rule writes it for every file.
grep -oE '^void (serial_)?test_[a-z0-9_]+\(void\)' "$sel/prog_tests/fanotify_fastpath.c" |
	sed -E 's/^void (serial_)?test_([a-z0-9_]+)\(void\)/DEFINE_TEST(\1\2)/;
		s/^DEFINE_TEST\(serial_/DEFINE_TEST(SERIAL_PREFIX/' >"$work/prog_tests/tests.h"
[ -s "$work/prog_tests/tests.h" ] || { log "no test_*() in prog_tests/fanotify_fastpath.c"; exit 1; }

# The runner: CFLAGS of the Makefile (-O0, as it builds them), its include
# path, and TRUNNER_EXTRA_SOURCES.  jit_disasm_helpers.c compiles to a stub
# without HAVE_LLVM_SUPPORT (our tests check no jited code); xsk.c is left
# out (only the XDP socket tests use it).
cflags=(-g -O0 -rdynamic -Wall -Werror -fno-omit-frame-pointer
	-I"$sel" -I"$work" -I"$libbpf/include" -I"$src/tools/lib"
	-I"$src/tools/include" -I"$src/tools/arch/x86/include" -I"$src/tools/include/uapi")
sources=(test_progs.c cgroup_helpers.c trace_helpers.c network_helpers.c
	testing_helpers.c btf_helpers.c cap_helpers.c unpriv_helpers.c
	netlink_helpers.c jit_disasm_helpers.c test_loader.c disasm.c
	disasm_helpers.c json_writer.c prog_tests/fanotify_fastpath.c)
log "test_progs"
for s in "${sources[@]}"; do
	echo "$work/$(basename "$s" .c).o: $sel/$s"
	echo "	$(printf '%q ' cc "${cflags[@]}") -c \$< -o \$@"
done >"$work/objs.mk"
make -s -f "$work/objs.mk" -j"$jobs" $(printf "$work/%s.o " $(basename -a -s .c "${sources[@]}"))
cc -g -rdynamic -o "$out/test_progs" "$work"/*.o "$libbpf/libbpf.a" -lelf -lz -lrt -lpthread
log "built $out/test_progs"
