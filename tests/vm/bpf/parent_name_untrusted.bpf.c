// SPDX-License-Identifier: GPL-2.0
/*
 * Must NOT load: reads the name of a d_parent the program loaded itself.
 * bpf_fanotify_dentry_name() takes only the handler's own dentry
 * (KF_TRUSTED_ARGS); a pointer loaded from d_parent is untrusted -- a
 * rename may kill that dentry while the name is copied -- and has to be
 * refused.  Ancestors' names are read through the parents iterator.
 */
#include "fanotify_fastpath.bpf.h"

char LICENSE[] SEC("license") = "GPL";

char buf[256];

SEC("struct_ops/fp_handler")
int BPF_PROG(parent_name, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	if (dentry)
		bpf_fanotify_dentry_name(dentry->d_parent, buf, sizeof(buf));
	return FAN_FP_RET_SEND_TO_USERSPACE;
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops parent_name_ops = {
	.fp_handler = (void *)parent_name,
	.name = "t_parent_name",
	.flags = FAN_FP_F_PRIVATE,
};
