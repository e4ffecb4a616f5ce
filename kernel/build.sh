#!/usr/bin/env bash
# Build the fanbpf test kernel (and the reference module and the series'
# selftest) into a cache outside the checkout, keyed by the patches, the
# config, the module source and the Debian source version.  A second run
# with nothing changed only prints the image directory.
#
#   kernel/build.sh          build if needed, print the image directory
#   kernel/build.sh --dir    print the image directory for the current key
#
# FANBPF_KERNEL_VARIANT=NAME selects a variant: kernel/config plus
# kernel/config.NAME (kasan: generic KASAN; nodebug: without lockdep and
# the other debug checks, for benchmarks), with its own key and its own
# object tree, so that variants do not rebuild each other from scratch.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cache=${FANBPF_CACHE:-$HOME/.cache/fanbpf}
tarball=/usr/src/linux-source-6.12.tar.xz
jobs=${JOBS:-$(nproc)}

version=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null) || {
	echo "kernel/build.sh: linux-source-6.12 is not installed (run: make deps)" >&2
	exit 1
}
fragments=("$here/config")
variant=
if [ -n "${FANBPF_KERNEL_VARIANT:-}" ]; then
	if [ ! -f "$here/config.$FANBPF_KERNEL_VARIANT" ]; then
		echo "kernel/build.sh: no kernel variant '$FANBPF_KERNEL_VARIANT' (kernel/config.NAME: $(cd "$here" && ls config.* | sed 's/config\.//' | tr '\n' ' '))" >&2
		exit 1
	fi
	fragments+=("$here/config.$FANBPF_KERNEL_VARIANT")
	variant=$FANBPF_KERNEL_VARIANT-
fi
key=$( { echo "$version"; cat "$here"/patches/*.patch "${fragments[@]}" \
	"$here"/module/* "$top/src/bpf/fanbpf_rules.h" "$here/build.sh" \
	"$here/bpf-selftests.sh"; } |
	sha256sum | cut -c1-16)
out=$cache/kernel-$variant$key

if [ "${1:-}" = --dir ]; then
	echo "$out"
	exit 0
fi
if [ -f "$out/.done" ]; then
	echo "$out"
	exit 0
fi

log() { echo "kernel/build.sh: $*" >&2; }
src=$cache/src
obj=$cache/${variant}obj
mkdir -p "$cache"

# One build at a time: the source and object trees are shared by every key.
exec 9>"$cache/.build-lock"
flock 9
if [ -f "$out/.done" ]; then
	echo "$out"
	exit 0
fi

# A pristine tree under git, so that applying a new series rewrites only
# the files that differ and the incremental build stays small.
if [ ! -f "$src/.fanbpf-version" ] || [ "$(cat "$src/.fanbpf-version")" != "$version" ]; then
	log "extracting $tarball ($version)"
	rm -rf "$src" "$obj"
	mkdir -p "$src"
	tar -xf "$tarball" -C "$src" --strip-components=1
	git -C "$src" init -q
	git -C "$src" add -f -A
	git -C "$src" -c user.name=fanbpf -c user.email=fanbpf@localhost \
		commit -q -m "linux-source $version"
	git -C "$src" tag -f pristine >/dev/null
	echo "$version" >"$src/.fanbpf-version"
fi

log "applying $(ls "$here"/patches/*.patch | wc -l) patches"
index=$(mktemp)
trap 'rm -f "$index"' EXIT
GIT_INDEX_FILE=$index git -C "$src" read-tree pristine
GIT_INDEX_FILE=$index git -C "$src" apply --cached "$here"/patches/*.patch
tree=$(GIT_INDEX_FILE=$index git -C "$src" write-tree)
commit=$(git -C "$src" -c user.name=fanbpf -c user.email=fanbpf@localhost \
	commit-tree "$tree" -p pristine -m "fanbpf series")
git -C "$src" checkout -q -f "$commit"
git -C "$src" clean -q -f -d -e .fanbpf-version

# allnoconfig plus our fragments; the result must hold what they ask for.
# A later fragment may override an option ("# CONFIG_X is not set"): only
# the last word on each option counts.
log "configuring"
scratch=$cache/kconfig
mkdir -p "$scratch" "$obj"
allconfig=$scratch/fragments
cat "${fragments[@]}" >"$allconfig"
make -s -C "$src" O="$scratch" KCONFIG_ALLCONFIG="$allconfig" allnoconfig >/dev/null
missing=$(grep -E '^(CONFIG_|# CONFIG_[A-Za-z0-9_]+ is not set)' "$allconfig" |
	awk '{ opt = ($1 == "#") ? $2 : substr($0, 1, index($0, "=") - 1); last[opt] = $0 }
	     END { for (o in last) print last[o] }' | while read -r line; do
	case $line in
	"# "*) opt=${line#\# }; opt=${opt%% *}
	       ! grep -q "^$opt=" "$scratch/.config" || echo "$line" ;;
	*) grep -qxF "$line" "$scratch/.config" || echo "$line" ;;
	esac; done)
if [ -n "$missing" ]; then
	log "config options that did not stick (missing dependency?):"
	echo "$missing" >&2
	exit 1
fi
cmp -s "$scratch/.config" "$obj/.config" || cp "$scratch/.config" "$obj/.config"

log "building in $obj with $jobs jobs"
start=$(date +%s)
make -s -C "$src" O="$obj" -j"$jobs" olddefconfig >/dev/null
make -s -C "$src" O="$obj" -j"$jobs" bzImage modules
module=$cache/${variant}module
rm -rf "$module"
cp -r "$here/module" "$module"
cp "$top/src/bpf/fanbpf_rules.h" "$module/"
make -s -C "$obj" M="$module" -j"$jobs" modules
# The series' selftest, against the patched uapi headers.
make -s -C "$src" O="$obj" headers
selftest=$cache/${variant}selftest
rm -rf "$selftest"
mkdir -p "$selftest"
make -s -C "$src/tools/testing/selftests/filesystems/fanotify" OUTPUT="$selftest" \
	KHDR_INCLUDES="-isystem $obj/usr/include" "$selftest/fastpath_test" "$selftest/subtree_test"
# The series' BPF selftests: a test_progs with only its fanotify tests,
# their programs compiled against this kernel's BTF.
JOBS=$jobs "$here/bpf-selftests.sh" "$src" "$obj/vmlinux" "$selftest"
log "built in $(( $(date +%s) - start )) s"

tmp=$out.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$obj/arch/x86/boot/bzImage" "$obj/vmlinux" "$obj/.config" "$tmp/"
cp "$module/fanbpf_subtree_kmod.ko" "$selftest/fastpath_test" "$selftest/subtree_test" \
	"$selftest/test_progs" "$tmp/"
echo "$version" >"$tmp/source-version"
touch "$tmp/.done"
rm -rf "$out"
mv "$tmp" "$out"
echo "$out"
