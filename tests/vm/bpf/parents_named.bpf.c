// SPDX-License-Identifier: GPL-2.0
/*
 * Walks up from the event's object with the parents iterator and delivers
 * the event only when the object or one of its ancestors has the name the
 * init args give, looking at no more than args.max dentries.  The names
 * are read through the iterator (bpf_iter_fanotify_parents_name()).  It
 * records what its last walk saw and how it ended, so that the tests can
 * check where the iterator starts and stops.
 */
#include "fanotify_fastpath.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define NAME_LEN 64

struct parents_args {
	__u32 max;		/* the iterator's max */
	__u32 len;		/* strlen(name), < NAME_LEN */
	char name[NAME_LEN];	/* zero-filled past len */
};

FANBPF_HOOK_MAP(args_by_hook, struct parents_args, 16);

/* The last handler walk (set by each event). */
int last_new_ret;	/* what bpf_iter_fanotify_parents_new() returned */
__u32 last_count;	/* dentries the walk returned */
__u32 last_match;	/* 1-based position of the first dentry named so, 0: none */
__u32 last_started_from_inode;	/* the event had no dentry */
int last_end;			/* bpf_iter_fanotify_parents_end() */
__u32 last_depth;		/* the last step's depth */
__u64 last_inode_ino;		/* then: the inode it started from */

/* fp_init's walk with neither a dentry nor an inode. */
int init_new_ret = 1;
__u32 init_count = 99;

static __always_inline int same_name(const char *a, const char *b)
{
	int i;

	/* Both zero-filled to NAME_LEN: compare them whole. */
#pragma unroll
	for (i = 0; i < NAME_LEN; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

SEC("struct_ops/fp_init")
int BPF_PROG(parents_init, struct fanotify_fastpath_hook *hook,
	     const struct fanotify_fastpath_init_args *args)
{
	struct bpf_iter_fanotify_parents it;
	struct parents_args a = {};
	__u64 id = hook->id;
	__u32 n = 0;

	if (fanbpf_copy_init_args(&a, args) || a.len >= NAME_LEN)
		return -FANBPF_EINVAL;

	init_new_ret = bpf_iter_fanotify_parents_new(&it, NULL, NULL, 5);
	while (bpf_iter_fanotify_parents_next(&it))
		n++;
	bpf_iter_fanotify_parents_destroy(&it);
	init_count = n;

	return bpf_map_update_elem(&args_by_hook, &id, &a, BPF_ANY);
}

SEC("struct_ops/fp_handler")
int BPF_PROG(parents_handler, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	struct bpf_iter_fanotify_parents it;
	const struct parents_args *a;
	struct fanotify_fastpath_step *step;
	char buf[NAME_LEN];
	__u32 n = 0, match = 0;
	__u64 id = hook->id;
	int ret;

	a = bpf_map_lookup_elem(&args_by_hook, &id);
	if (!a)
		return FAN_FP_RET_SEND_TO_USERSPACE;

	/*
	 * Without a dentry the walk starts from a dentry of the inode.
	 * Verifier: a __nullable argument takes NULL or a checked pointer,
	 * not one that may be NULL, hence the three calls.
	 */
	if (dentry)
		ret = bpf_iter_fanotify_parents_new(&it, dentry, NULL, a->max);
	else if (inode) {
		/*
		 * Reading a field also makes clang emit struct inode whole in
		 * the object's BTF: libbpf refuses a kfunc whose prototype
		 * has a pointer to a forward-declared struct where the
		 * kernel's has the struct ("func_proto incompatible").
		 */
		last_inode_ino = inode->i_ino;
		ret = bpf_iter_fanotify_parents_new(&it, NULL, inode, a->max);
	}
	else
		ret = bpf_iter_fanotify_parents_new(&it, NULL, NULL, a->max);
	/*
	 * Verifier: no branch on n or match inside the loop, so that they
	 * stay imprecise and the loop's states converge; stop at the first
	 * match instead of testing "not matched yet".
	 */
	while ((step = bpf_iter_fanotify_parents_next(&it))) {
		n++;
		last_depth = step->depth;
		__builtin_memset(buf, 0, sizeof(buf));
		if (step->name_len == a->len &&
		    bpf_iter_fanotify_parents_name(&it, buf, sizeof(buf)) == a->len &&
		    same_name(buf, a->name)) {
			match = n;
			break;
		}
	}
	last_end = bpf_iter_fanotify_parents_end(&it);
	bpf_iter_fanotify_parents_destroy(&it);

	last_new_ret = ret;
	last_count = n;
	last_match = match;
	last_started_from_inode = !dentry;
	return match ? FAN_FP_RET_SEND_TO_USERSPACE : FAN_FP_RET_SKIP_EVENT;
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops parents_named_ops = {
	.fp_handler = (void *)parents_handler,
	.fp_init = (void *)parents_init,
	.name = "t_parents_named",
	.flags = FAN_FP_F_PRIVATE,
};
