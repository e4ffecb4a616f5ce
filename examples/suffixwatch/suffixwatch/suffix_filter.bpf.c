// SPDX-License-Identifier: GPL-2.0
/*
 * suffix_filter: an example fastpath handler, complete and small.
 *
 * Delivers only events about names that end with a suffix given at
 * attach time (say ".log"), and can drop everything one user does (say a
 * log shipper's own uid, so that it does not see its own reads).  Events
 * without a name (DELETE_SELF, MOVE_SELF, ...) are dropped.
 *
 * Part of the example package suffixwatch: `pip install` compiles it into
 * suffixwatch/suffix_filter.bpf.o (fanbpf.build), suffixwatch/__init__.py
 * loads and attaches it:
 *
 *	group.attach(handler, {"suffix": ".log", "ignore_uid": 1, "uid": 997})
 *
 * See examples/README.md for a walk through it.
 */
#include "fanotify_fastpath.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define SUFFIX_MAX	32
#define NAME_BUF	256	/* NAME_MAX + 1: any name fits */

/*
 * The init args.  Handler.load finds this struct by its name, the ops
 * name plus "_args", and encodes a dict into it for group.attach().
 */
struct suffix_filter_args {
	char suffix[SUFFIX_MAX];	/* 1..31 bytes, NUL-terminated */
	__u32 ignore_uid;		/* 1: drop the events caused by uid */
	__u32 uid;
};

/* Per attachment: the args and the suffix's length, computed once. */
struct suffix_state {
	struct suffix_filter_args args;
	__u32 len;
};

/* One handler can be attached to many groups: state is keyed by hook->id. */
FANBPF_HOOK_MAP(suffix_states, struct suffix_state, 1024);

SEC("struct_ops/fp_init")
int BPF_PROG(suffix_init, struct fanotify_fastpath_hook *hook,
	     const struct fanotify_fastpath_init_args *args)
{
	struct suffix_state st = {};
	__u64 id = hook->id;
	int err, i;

	/* -EINVAL unless user space passed exactly sizeof(st.args) bytes */
	err = fanbpf_copy_init_args(&st.args, args);
	if (err)
		return err;
	for (i = 0; i < SUFFIX_MAX; i++)
		if (!st.args.suffix[i])
			break;
	/*
	 * fanbpf_refuse() fails the attach with EINVAL, and fanbpf's
	 * ArgsError then names the field: "suffix: ... refused ...".
	 */
	if (i == 0 || i == SUFFIX_MAX)
		return fanbpf_refuse(&st.args, suffix);
	if (st.args.ignore_uid > 1)
		return fanbpf_refuse(&st.args, ignore_uid);
	st.len = i;
	return bpf_map_update_elem(&suffix_states, &id, &st, BPF_NOEXIST);
}

SEC("struct_ops/fp_handler")
int BPF_PROG(suffix_handler, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	char buf[NAME_BUF] = {};	/* the kfuncs want initialised memory */
	const struct suffix_state *st;
	__u64 id = hook->id;
	__u32 off;
	int n, i;

	st = bpf_map_lookup_elem(&suffix_states, &id);
	if (!st)
		return FAN_FP_RET_SEND_TO_USERSPACE;

	/* fp_handler runs in the context of the task that caused the event */
	if (st->args.ignore_uid && (__u32)bpf_get_current_uid_gid() == st->args.uid)
		return FAN_FP_RET_SKIP_EVENT;

	/* The event's name if it carries one, else its dentry's. */
	if (name)
		n = bpf_fanotify_read_name(name, buf, sizeof(buf));
	else if (dentry)
		n = bpf_fanotify_dentry_name(dentry, buf, sizeof(buf));
	else
		return FAN_FP_RET_SKIP_EVENT;
	if (n < 0 || n < (int)st->len)
		return FAN_FP_RET_SKIP_EVENT;

	off = n - st->len;
	/* Bounded loop; the mask keeps every buf access provably in bounds. */
	for (i = 0; i < SUFFIX_MAX; i++) {
		if (i >= (int)st->len)
			break;
		if (buf[(off + i) & (NAME_BUF - 1)] != st->args.suffix[i])
			return FAN_FP_RET_SKIP_EVENT;
	}
	return FAN_FP_RET_SEND_TO_USERSPACE;
}

SEC("struct_ops/fp_free")
void BPF_PROG(suffix_free, struct fanotify_fastpath_hook *hook)
{
	__u64 id = hook->id;

	bpf_map_delete_elem(&suffix_states, &id);
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops suffix_filter = {
	.fp_handler = (void *)suffix_handler,
	.fp_init = (void *)suffix_init,
	.fp_free = (void *)suffix_free,
	.name = "suffix_filter",
	.desc = "deliver only names with a given suffix, optionally not one uid's",
};
