// SPDX-License-Identifier: GPL-2.0
/*
 * Must NOT load: hands bpf_fanotify_read_name() the dentry's own d_name,
 * which a concurrent rename rewrites (pointer and length separately).  The
 * kfunc takes only the struct fanotify_fastpath_name fanotify builds for
 * the event, so the verifier has to refuse this program.
 */
#include "fanotify_fastpath.bpf.h"

char LICENSE[] SEC("license") = "GPL";

char buf[256];

SEC("struct_ops/fp_handler")
int BPF_PROG(read_d_name, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	if (dentry)
		bpf_fanotify_read_name((const void *)&dentry->d_name, buf, sizeof(buf));
	return FAN_FP_RET_SEND_TO_USERSPACE;
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops read_d_name_ops = {
	.fp_handler = (void *)read_d_name,
	.name = "t_read_d_name",
	.flags = FAN_FP_F_PRIVATE,
};
