// SPDX-License-Identifier: GPL-2.0
/*
 * Denies every permission event with `deny` (a negative errno, set before
 * load) and fails fp_init with `init_ret`: lets the tests hand the kernel
 * errnos a handler must not be able to leak.
 */
#include "fanotify_fastpath.bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile int deny = -1;
const volatile int init_ret;

SEC("struct_ops/fp_handler")
int BPF_PROG(deny_handler, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	return fanbpf_is_perm_event(mask) ? deny : FAN_FP_RET_SEND_TO_USERSPACE;
}

SEC("struct_ops/fp_init")
int BPF_PROG(deny_init, struct fanotify_fastpath_hook *hook,
	     const struct fanotify_fastpath_init_args *args)
{
	return init_ret;
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops deny_ops = {
	.fp_handler = (void *)deny_handler,
	.fp_init = (void *)deny_init,
	.name = "t_deny",
	.flags = FAN_FP_F_PRIVATE,
};
