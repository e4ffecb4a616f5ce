// SPDX-License-Identifier: GPL-2.0
/*
 * Copies both names every event offers -- the event's and the dentry's
 * current one -- and counts what it got, delivering everything.  Run
 * while files are renamed between short (inline) and long (external)
 * names: the copies race with the renames.
 */
#include "fanotify_fastpath.bpf.h"

char LICENSE[] SEC("license") = "GPL";

__u64 copies;		/* names copied */
__u64 too_long;		/* copies longer than NAME_MAX: must stay 0 */

static __always_inline void count(int len)
{
	if (len >= 0)
		__sync_fetch_and_add(&copies, 1);
	if (len > 255)
		__sync_fetch_and_add(&too_long, 1);
}

SEC("struct_ops/fp_handler")
int BPF_PROG(names_handler, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	char buf[260];	/* > NAME_MAX + 1: a longer copy would show */

	if (name)
		count(bpf_fanotify_read_name(name, buf, sizeof(buf)));
	if (dentry)
		count(bpf_fanotify_dentry_name(dentry, buf, sizeof(buf)));
	return FAN_FP_RET_SEND_TO_USERSPACE;
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops names_ops = {
	.fp_handler = (void *)names_handler,
	.name = "t_names",
	.flags = FAN_FP_F_PRIVATE,
};
