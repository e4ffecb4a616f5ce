#!/usr/bin/env bash
# Run a command inside the fanbpf test kernel (virtme-ng), with the host's
# root filesystem over 9p and the checkout writable, and return its exit
# status.  The guest's dmesg is kept in build/vm/; a WARN, BUG, lockdep,
# RCU or KASAN report in it fails the call even if the command passed.
#
#   kernel/vm.sh CMD [ARGS...]
#
# FANBPF_VM_ACCEL=kvm|tcg forces the accelerator; by default KVM is used
# when a probe boot under KVM completes, TCG otherwise.
# FANBPF_KERNEL_VARIANT=kasan|nodebug boots that variant (kernel/build.sh);
# FANBPF_VM_KERNEL=DIR boots another cached image
# (e.g. an older series, to show a test failing there).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# Real path: the guest sees the host root, not symlinks into its tmpfs dirs.
kdir=$(readlink -f "${FANBPF_VM_KERNEL:-$("$here/build.sh" --dir)}")
vng=${VNG:-$top/.venv/bin/vng}
export PATH="$top/.venv/bin:$PATH"
logdir=$top/build/vm
mkdir -p "$logdir"

[ $# -gt 0 ] || { echo "usage: kernel/vm.sh CMD [ARGS...]" >&2; exit 2; }
[ -f "$kdir/.done" ] || { echo "kernel/vm.sh: no test kernel at $kdir (run: make kernel)" >&2; exit 1; }
[ -x "$vng" ] || { echo "kernel/vm.sh: $vng missing (run: make deps)" >&2; exit 1; }

# KVM guests hang on some hosts that have /dev/kvm: probe once per host
# boot with a kernel that panics straight away, and remember the answer.
accel() {
	if [ -n "${FANBPF_VM_ACCEL:-}" ]; then
		echo "$FANBPF_VM_ACCEL"
		return
	fi
	if [ ! -w /dev/kvm ]; then
		echo tcg
		return
	fi
	local stamp
	stamp=${FANBPF_CACHE:-$HOME/.cache/fanbpf}/kvm-probe-$(cat /proc/sys/kernel/random/boot_id)
	if [ ! -f "$stamp" ]; then
		if timeout 20 qemu-system-x86_64 -enable-kvm -cpu host -m 256 -nographic \
			-no-reboot -kernel "$kdir/bzImage" \
			-append "console=ttyS0 panic=-1 init=/fanbpf-kvm-probe" \
			>/dev/null 2>&1 </dev/null; then
			echo kvm >"$stamp"
		else
			echo tcg >"$stamp"
		fi
	fi
	cat "$stamp"
}

mode=$(accel)
vng_accel=()
[ "$mode" = kvm ] || vng_accel=(--disable-kvm)

stamp=$(date +%Y%m%d-%H%M%S)-$$
dmesg_log=$logdir/dmesg-$stamp.log
status_file=$logdir/status-$stamp

# In the guest: load the reference module, run the command, keep dmesg.
guest_script=$logdir/guest-$stamp.sh
cat >"$guest_script" <<EOF
cd '$top'
insmod '$kdir/fanbpf_subtree_kmod.ko' || echo 'kernel/vm.sh: insmod failed' >&2
export FANBPF_IN_VM=1 FANBPF_KERNEL_DIR='$kdir'
$(printf '%q ' "$@")
rc=\$?
dmesg >'$dmesg_log'
echo \$rc >'$status_file'
exit \$rc
EOF

echo "kernel/vm.sh: booting $(basename "$kdir") ($mode)" >&2
# Through a pipe: virtme-ng hands QEMU /proc/self/fd/1 and 2 as file
# chardevs, and QEMU opens those with O_TRUNC; a caller's log file behind
# them would lose everything written before the guest started.
set +e
"$vng" --run "$kdir/bzImage" --force-9p "${vng_accel[@]}" --cpus 2 --memory 2G \
	--rwdir "$top" --rwdir "$logdir" --cwd "$top" \
	--append "panic_on_warn=0 softlockup_panic=0" \
	--exec "bash $guest_script" 2>&1 | cat
rc=${PIPESTATUS[0]}
set -e

if [ ! -f "$status_file" ]; then
	echo "kernel/vm.sh: the guest did not finish the command (vng exit $rc)" >&2
	[ -f "$dmesg_log" ] && tail -50 "$dmesg_log" >&2
	exit $(( rc ? rc : 1 ))
fi
rc=$(cat "$status_file")
rm -f "$status_file" "$guest_script"

splat='WARNING:|BUG:|INFO: possible|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|KASAN|UBSAN|Oops|Kernel panic|general protection fault|RCU stall|rcu_sched detected stalls|INFO: task .* blocked|refcount_t:'
if grep -Eq "$splat" "$dmesg_log"; then
	echo "kernel/vm.sh: kernel splat in guest dmesg ($dmesg_log):" >&2
	grep -E -A25 "$splat" "$dmesg_log" | head -80 >&2
	exit 1
fi
exit "$rc"
