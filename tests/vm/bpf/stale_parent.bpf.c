// SPDX-License-Identifier: GPL-2.0
/*
 * The handler the review of series v3 oopsed the kernel with, written for
 * v4's iterator: it walks from the event's inode (a file, so a hashed alias
 * that an unlink may kill), waits inside the walk so that the dentry has
 * time to turn negative, then dereferences the step's inode without a NULL
 * check.  On v3 next() returned the dentry itself, typed RCU-trusted, and
 * the verifier emitted d->d_inode->i_ino as two plain loads: a NULL d_inode
 * was a kernel NULL-pointer dereference.  On v4 next() returns a step whose
 * inode is untrusted, so the same loads are fault-handled and read 0.
 */
#include "fanotify_fastpath.bpf.h"

char LICENSE[] SEC("license") = "GPL";

__u64 walks;		/* walks that took at least one step */
__u64 zero_ino;		/* steps whose inode read as 0 (it had died) */

static long spin(__u64 index, void *ctx)
{
	return 0;
}

SEC("struct_ops/fp_handler")
int BPF_PROG(stale_parent, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	struct bpf_iter_fanotify_parents it;
	struct fanotify_fastpath_step *step;

	/* reading a field keeps struct inode whole in BTF (see parents_named) */
	if (!inode || !inode->i_ino)
		return FAN_FP_RET_SEND_TO_USERSPACE;
	bpf_iter_fanotify_parents_new(&it, NULL, inode, 16);
	step = bpf_iter_fanotify_parents_next(&it);
	if (step) {
		bpf_loop(20000, spin, NULL, 0);
		/* no NULL check on purpose */
		if (!step->inode->i_ino)
			__sync_fetch_and_add(&zero_ino, 1);
		__sync_fetch_and_add(&walks, 1);
	}
	bpf_iter_fanotify_parents_destroy(&it);
	return FAN_FP_RET_SEND_TO_USERSPACE;
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops stale_parent_ops = {
	.fp_handler = (void *)stale_parent,
	.name = "t_stale_parent",
	.flags = FAN_FP_F_PRIVATE,
};
