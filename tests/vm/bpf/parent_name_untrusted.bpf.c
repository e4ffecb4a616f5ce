// SPDX-License-Identifier: GPL-2.0
/*
 * Must NOT load: reads the name of a d_parent the program loaded itself.
 * Only the iterator's dentries (and the handler's own) are RCU-protected
 * for the verifier; a pointer loaded from d_parent is untrusted, and
 * bpf_fanotify_dentry_name() (KF_RCU) has to refuse it.
 */
#include "fanotify_fastpath.bpf.h"

char LICENSE[] SEC("license") = "GPL";

char buf[256];

SEC("struct_ops/fp_handler")
int BPF_PROG(parent_name, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	struct bpf_iter_fanotify_parents it;
	struct dentry *d;

	/*
	 * i_ino is read only so that struct inode is whole in BTF (see
	 * parents_named.bpf.c): the load must reach the verifier.
	 */
	if (!dentry || !inode || !inode->i_ino)
		return FAN_FP_RET_SEND_TO_USERSPACE;
	bpf_iter_fanotify_parents_new(&it, dentry, NULL, 1);
	d = bpf_iter_fanotify_parents_next(&it);
	if (d)
		bpf_fanotify_dentry_name(d->d_parent, buf, sizeof(buf));
	bpf_iter_fanotify_parents_destroy(&it);
	return FAN_FP_RET_SEND_TO_USERSPACE;
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops parent_name_ops = {
	.fp_handler = (void *)parent_name,
	.name = "t_parent_name",
	.flags = FAN_FP_F_PRIVATE,
};
