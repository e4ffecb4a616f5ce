// SPDX-License-Identifier: GPL-2.0
/*
 * fanbpf_rules: fanbpf's built-in fastpath handler.
 *
 * One composable rules handler rather than a handler per kind of filter:
 * a fanotify group has exactly one handler attached, so "only *.log files
 * under /srv, not written by the watcher itself" must be one handler.
 * Each attachment passes a struct fanbpf_rules_args (fanbpf_rules.h) that
 * turns on any of three sections -- SUBTREE roots, NAMES patterns, PROCESS
 * conditions -- and an event matches when all sections that are on match.
 * Matching events are delivered (permission events: denied with
 * -deny_errno if set), the others are dropped in the kernel.  The exact
 * semantics are written down, as pure code, in fanbpf_rules_logic.h; this
 * file only gathers the facts that code needs from the kernel objects.
 *
 * The subtree walk is the one of the kernel-module reference handler
 * (kernel/module/fanbpf_subtree_kmod.c) and decides exactly as it does:
 * starting from the event's dentry, then from the dentry of its dir, or --
 * when the event has neither -- from a dentry of its inode, look at that
 * dentry and up to FANBPF_MAX_DEPTH dentries above it, following d_parent
 * without taking references (dentries are RCU-freed and the handler runs
 * under RCU), stopping at a filesystem root (d_parent == itself) or NULL.
 * Negative dentries are walked through but are never roots.
 *
 * Per-attachment state: the args, in a hash map keyed by hook->id, put
 * there by fp_init (which validates them), read by fp_handler, removed by
 * fp_free.
 */
#include "fanotify_fastpath.bpf.h"
#include "fanbpf_rules_logic.h"

char LICENSE[] SEC("license") = "GPL";

_Static_assert(FANBPF_RET_SEND == FAN_FP_RET_SEND_TO_USERSPACE, "return codes");
_Static_assert(FANBPF_RET_SKIP == FAN_FP_RET_SKIP_EVENT, "return codes");
_Static_assert(FANBPF_LOGIC_PERM_EVENTS == FANBPF_PERM_EVENTS, "permission events");
_Static_assert(sizeof(struct fanbpf_rules_args) <= FAN_FP_ARGS_MAX, "args too big");

#define FANBPF_RULES_MAX_ATTACHMENTS	4096

FANBPF_HOOK_MAP(fanbpf_rules_by_hook, struct fanbpf_rules_args,
		FANBPF_RULES_MAX_ATTACHMENTS);

/* fp_init inserts this, then fills the element in place (see there). */
static struct fanbpf_rules_args empty_args;

extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id__k) __ksym;
extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

/*
 * Events delivered because the ancestry walk could not decide (see
 * fanbpf_rules_logic.h), summed over this object's attachments; user
 * space reads it as a global (Handler.obj.get_global).
 */
__u64 fanbpf_rules_undecided;

/*
 * The ancestry walk's cursor steps.  Like the dentry walk, it takes no
 * references: tasks are RCU-freed and the handler runs under RCU, and the
 * pointers are untrusted (bpf_rdonly_cast), so every load is
 * fault-handled.  The top of the tree is the idle task, its own parent.
 */
#define TASK_TGID(t)	((t)->tgid)
static __always_inline struct task_struct *task_up(struct task_struct *t)
{
	struct task_struct *parent = t->real_parent;

	/* Pointer comparison: allowed because loading needs CAP_PERFMON. */
	if (!parent || parent == t)
		return NULL;
	return parent->group_leader;
}

static __always_inline int ancestry_of(__u32 target)
{
	struct task_struct *leader, *t;
	int ret;

	/*
	 * The walk starts at the current thread group's leader, found by its
	 * tgid: bpf_get_current_task_btf() is not offered to struct_ops
	 * programs on kernels without CONFIG_BPF_EVENTS (the test kernel).
	 * That lookup takes the only reference, dropped after the walk.  A
	 * leader no longer hashed (its group is being reaped) cannot be
	 * walked from: undecided.
	 */
	leader = bpf_task_from_pid(bpf_get_current_pid_tgid() >> 32);
	if (!leader)
		return FANBPF_MATCH_UNDECIDED;
	t = bpf_rdonly_cast(leader, bpf_core_type_id_kernel(struct task_struct));
	ret = fanbpf_ancestry_walk(target, t, TASK_TGID, task_up);
	bpf_task_release(leader);
	return ret;
}

/* Is @d, or one of the FANBPF_MAX_DEPTH dentries above it, a root? */
static __always_inline bool walk_inside(const struct fanbpf_subtree_args *sa,
					struct dentry *start)
{
	struct dentry *d, *parent;
	struct inode *inode;
	int depth;

	/*
	 * Verifier: the handler's dentry argument is a trusted pointer, and
	 * the verifier believes a trusted dentry's d_inode is never NULL, so
	 * it would drop our NULL check and let inode->i_ino be a plain load.
	 * Casting to an untrusted pointer makes every load below (d_inode,
	 * d_sb, d_parent, i_ino, s_dev) fault-handled and keeps the NULL
	 * checks, exactly like the module's READ_ONCE()s -- and gives the
	 * loop one register type for the start and for the parents.
	 */
	d = bpf_rdonly_cast(start, bpf_core_type_id_kernel(struct dentry));
	for (depth = 0; depth <= FANBPF_MAX_DEPTH; depth++) {
		if (!d)
			return false;
		inode = d->d_inode;
		if (inode && fanbpf_subtree_is_root(sa, d->d_sb->s_dev, inode->i_ino))
			return true;
		parent = d->d_parent;
		/* Pointer comparison: allowed because loading needs CAP_PERFMON. */
		if (parent == d)
			return false;
		d = parent;
	}
	return false;
}

static __always_inline bool subtree_inside(const struct fanbpf_subtree_args *sa,
					   struct inode *inode, struct dentry *dentry,
					   struct inode *dir)
{
	if (dentry && walk_inside(sa, dentry))
		return true;
	if (dir)
		return walk_inside(sa, bpf_fanotify_inode_dentry(dir));
	if (dentry)
		return false;
	/*
	 * Verifier: without the barrier clang merges the two NULL tests that
	 * lead to "return false" into one OR of the pointers, which the
	 * verifier rejects ("pointer |= pointer prohibited").
	 */
	barrier_var(inode);
	if (!inode)
		return false;
	return walk_inside(sa, bpf_fanotify_inode_dentry(inode));
}

SEC("struct_ops/fp_handler")
int BPF_PROG(fanbpf_rules_handler, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	struct fanbpf_event_facts f = {};	/* the kfuncs read what they write */
	const struct fanbpf_rules_args *a;
	__u64 id = hook->id;
	int ret, match;

	a = bpf_map_lookup_elem(&fanbpf_rules_by_hook, &id);
	if (!a)		/* not initialised: cannot happen, fail open */
		return FAN_FP_RET_SEND_TO_USERSPACE;

	f.mask = mask;
	f.name_len = -1;
	if (a->sections & FANBPF_SEC_PROCESS) {
		f.tgid = bpf_get_current_pid_tgid() >> 32;
		f.uid = (__u32)bpf_get_current_uid_gid();
		f.cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(f.comm, sizeof(f.comm));
		if (a->process.flags & FANBPF_PROC_CGROUP_TREE)
			f.cgroup_ancestor = bpf_get_current_ancestor_cgroup_id(
				a->process.cgroup_tree_level);
		if (a->process.flags & FANBPF_PROC_ANCESTOR)
			f.ancestry = ancestry_of(a->process.ancestor_tgid);
	}
	if (a->sections & FANBPF_SEC_NAMES) {
		/* The event's name if it has one, else its dentry's. */
		if (name)
			ret = bpf_fanotify_read_name(name, f.name, sizeof(f.name));
		else if (dentry)
			ret = bpf_fanotify_dentry_name(dentry, f.name, sizeof(f.name));
		else
			ret = -1;
		f.name_len = ret >= 0 ? ret : -1;
	}

	match = fanbpf_rules_match(a, &f, subtree_inside(&a->subtree, inode, dentry, dir));
	if (match == FANBPF_MATCH_UNDECIDED)
		__sync_fetch_and_add(&fanbpf_rules_undecided, 1);
	return fanbpf_rules_verdict(a, mask, match);
}

SEC("struct_ops/fp_init")
int BPF_PROG(fanbpf_rules_init, struct fanotify_fastpath_hook *hook,
	     const struct fanotify_fastpath_init_args *args)
{
	struct fanbpf_rules_args *a;
	__u64 id = hook->id;
	int err;

	if (args->len != sizeof(*a))
		return -FANBPF_EINVAL;
	/*
	 * The args (~650 bytes) do not fit the 512-byte stack: insert an
	 * empty element and fill it in place.  Nobody else can see it yet --
	 * fp_handler runs for this hook only once fp_init has succeeded.
	 */
	err = bpf_map_update_elem(&fanbpf_rules_by_hook, &id, &empty_args, BPF_NOEXIST);
	if (err)
		return err;
	a = bpf_map_lookup_elem(&fanbpf_rules_by_hook, &id);
	if (!a)
		return -FANBPF_EINVAL;
	err = fanbpf_copy_init_args(a, args);
	if (!err)
		err = fanbpf_rules_check(a);
	if (err) {
		bpf_map_delete_elem(&fanbpf_rules_by_hook, &id);
		return err;
	}
	fanbpf_rules_normalize(a);
	return 0;
}

SEC("struct_ops/fp_free")
void BPF_PROG(fanbpf_rules_free, struct fanotify_fastpath_hook *hook)
{
	__u64 id = hook->id;

	bpf_map_delete_elem(&fanbpf_rules_by_hook, &id);
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops fanbpf_rules = {
	.fp_handler = (void *)fanbpf_rules_handler,
	.fp_init = (void *)fanbpf_rules_init,
	.fp_free = (void *)fanbpf_rules_free,
	.name = "fanbpf_rules",
	.desc = "fanbpf rules: subtree roots, name patterns, process filters",
};
