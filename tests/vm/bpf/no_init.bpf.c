// SPDX-License-Identifier: GPL-2.0
/*
 * A handler without fp_init: init args for it are refused (EINVAL).  It
 * skips every event, so make bench-cost uses it as the empty BPF handler.
 */
#include "fanotify_fastpath.bpf.h"

#ifndef NO_INIT_NAME
#define NO_INIT_NAME "t_no_init"
#define NO_INIT_DESC ""
#endif

char LICENSE[] SEC("license") = "GPL";

SEC("struct_ops/fp_handler")
int BPF_PROG(no_init_handler, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	return FAN_FP_RET_SKIP_EVENT;
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops no_init_ops = {
	.fp_handler = (void *)no_init_handler,
	.name = NO_INIT_NAME,
	.desc = NO_INIT_DESC,
};
