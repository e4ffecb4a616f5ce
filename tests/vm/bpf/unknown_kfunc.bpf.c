// SPDX-License-Identifier: GPL-2.0
/*
 * Calls a kfunc no kernel has, as a handler written for a later series
 * would on this one: the loader must name the kfunc, not fail in libbpf.
 */
#include "fanotify_fastpath.bpf.h"

char LICENSE[] SEC("license") = "GPL";

extern int bpf_fanotify_from_a_later_series(struct inode *inode) __ksym;

SEC("struct_ops/fp_handler")
int BPF_PROG(unknown_kfunc_handler, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	return inode ? bpf_fanotify_from_a_later_series(inode) : FAN_FP_RET_SEND_TO_USERSPACE;
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops unknown_kfunc_ops = {
	.fp_handler = (void *)unknown_kfunc_handler,
	.name = "t_unknown_kfunc",
	.flags = FAN_FP_F_PRIVATE,
};
