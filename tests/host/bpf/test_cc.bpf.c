// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A struct_ops object the host kernel can load and register: a do-nothing
 * TCP congestion control.  The host has no fanotify_fastpath_ops, so the
 * host tests use this to drive Handler.load, register/unregister, the
 * name override and EEXIST through a real struct_ops link.  It is never
 * selected for a socket; closing the Handler unregisters it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* the init-args struct by the <ops name>_args convention */
struct fanbpf_test_cc_args {
	__u32 level;
	char tag[4];
};

struct fanbpf_test_cc_args args_btf;
const volatile __u32 initial_ssthresh = 2;

SEC("struct_ops")
__u32 BPF_PROG(fbt_ssthresh, struct sock *sk)
{
	return initial_ssthresh;
}

SEC("struct_ops")
void BPF_PROG(fbt_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
}

SEC("struct_ops")
__u32 BPF_PROG(fbt_undo_cwnd, struct sock *sk)
{
	return 10;
}

SEC(".struct_ops.link")
struct tcp_congestion_ops fbt_ops = {
	.ssthresh = (void *)fbt_ssthresh,
	.cong_avoid = (void *)fbt_cong_avoid,
	.undo_cwnd = (void *)fbt_undo_cwnd,
	.name = "fanbpf_test_cc",
};
