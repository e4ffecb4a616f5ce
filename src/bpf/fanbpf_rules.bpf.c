// SPDX-License-Identifier: GPL-2.0
/*
 * fanbpf_rules: fanbpf's built-in fastpath handler.
 *
 * One composable rules handler rather than a handler per kind of filter:
 * a fanotify group has exactly one handler attached, so "only *.log files
 * under /srv, not in any .git directory, not written by the watcher
 * itself" must be one handler.  Each attachment passes a struct
 * fanbpf_rules_args (fanbpf_rules.h) that turns on sections -- SUBTREE,
 * EXCLUDE, NAMES, PROCESS -- and names its rule set (set_id): the roots,
 * excluded subtrees and name lists in the rules maps
 * (fanbpf_rules_maps.h), which user space changes while the attachment
 * lives.  The exact semantics are written down, as code shared with the
 * test program, in fanbpf_rules_logic.h; this file gathers the facts that
 * code needs from the kernel objects.
 *
 * The walks: from the event's dentry, and from its dir (after a virtual
 * node for the event's name), or -- with neither -- from a dentry of its
 * inode, the parents iterator (bpf_iter_fanotify_parents) steps up to a
 * root, without taking references, at most FANBPF_MAX_DEPTH steps.  A
 * walk that ends anywhere but at the superblock's root (a disconnected
 * tree, the bound), or that a rename may have torn, cannot decide: the
 * event is delivered and counted.
 *
 * Per-attachment state: one element of fanbpf_rules_hooks, keyed by
 * hook->id, with the args (put there by fp_init, which validates them) and
 * the counts of what fp_handler decided; and the set id's entry in
 * fanbpf_rules_sets, by which user space finds the counts.  fp_free
 * removes both.
 */
#include "fanotify_fastpath.bpf.h"
#include "fanbpf_rules_logic.h"

char LICENSE[] SEC("license") = "GPL";

_Static_assert(FANBPF_RET_SEND == FAN_FP_RET_SEND_TO_USERSPACE, "return codes");
_Static_assert(FANBPF_RET_SKIP == FAN_FP_RET_SKIP_EVENT, "return codes");
_Static_assert(FANBPF_LOGIC_PERM_EVENTS == FANBPF_PERM_EVENTS, "permission events");
_Static_assert(FANBPF_LOGIC_ONDIR == FAN_ONDIR, "FAN_ONDIR");
_Static_assert(sizeof(struct fanbpf_rules_args) <= FAN_FP_ARGS_MAX, "args too big");

/* fp_init inserts this, then fills the element in place (see there). */
static struct fanbpf_rules_hook empty_hook;

extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id__k) __ksym;
extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

/*
 * btrfs: inode numbers repeat across the subvolumes of one superblock, so
 * a node's dev there is its subvolume's anonymous dev (what stat() reports
 * as st_dev): BTRFS_I(inode)->root->anon_dev.  The types are btrfs's,
 * relocated by CO-RE.  The cast to struct btrfs_inode needs its type id in
 * vmlinux BTF (bpf_rdonly_cast() takes vmlinux ids only); CO-RE cannot say
 * whether it found the type in vmlinux or in the btrfs module's BTF, whose
 * ids the verifier would refuse.  So the loader says: fanbpf's shim sets
 * every `fanbpf_vmlinux_struct__<name>` rodata global to the vmlinux BTF id
 * of struct <name>, or 0 when vmlinux has none (btrfs built as a module,
 * or not at all).  0 makes the btrfs branch dead code, which the verifier
 * skips, so the object loads on any kernel; btrfs nodes then get s_dev.
 */
#define BTRFS_SUPER_MAGIC	0x9123683E

struct btrfs_root___fanbpf {
	dev_t anon_dev;
} __attribute__((preserve_access_index));

struct btrfs_inode___fanbpf {
	struct btrfs_root___fanbpf *root;
	struct inode vfs_inode;
} __attribute__((preserve_access_index));

const volatile __u32 fanbpf_vmlinux_struct__btrfs_inode;

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

/*
 * The PROCESS section.  Not inlined: the facts live in this frame only,
 * not beside the name key during the walks.
 */
static __noinline int process_match(const struct fanbpf_rules_args *a, __u32 mask)
{
	struct fanbpf_event_facts f = {};

	f.mask = mask;
	f.tgid = bpf_get_current_pid_tgid() >> 32;
	f.uid = (__u32)bpf_get_current_uid_gid();
	f.cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(f.comm, sizeof(f.comm));
	if (a->process.flags & FANBPF_PROC_CGROUP_TREE)
		f.cgroup_ancestor = bpf_get_current_ancestor_cgroup_id(a->process.cgroup_tree_level);
	if (a->process.flags & FANBPF_PROC_ANCESTOR)
		f.ancestry = ancestry_of(a->process.ancestor_tgid);
	return fanbpf_process_match(&a->process, &f);
}

/*
 * Whether the nodes of @sb are named by subvolume (see above): btrfs, when
 * vmlinux describes struct btrfs_inode.  @sb is untrusted (fault-handled).
 */
static __always_inline bool per_subvolume(struct super_block *sb)
{
	return fanbpf_vmlinux_struct__btrfs_inode && sb->s_magic == BTRFS_SUPER_MAGIC;
}

/* The dev of btrfs inode @inode's node: its subvolume's; @dev if unknown. */
static __always_inline __u64 subvolume_dev(struct inode *inode, __u64 dev)
{
	struct btrfs_inode___fanbpf *bi;
	struct btrfs_root___fanbpf *root;

	/* container_of(inode, struct btrfs_inode, vfs_inode) */
	bi = bpf_rdonly_cast((char *)inode -
			     bpf_core_field_offset(struct btrfs_inode___fanbpf, vfs_inode),
			     fanbpf_vmlinux_struct__btrfs_inode);
	root = bi->root;
	return root ? root->anon_dev : dev;
}

/*
 * The name lengths the kernel's skip stops at: those a DIRS list may
 * name; with roots in the args (no node-filter bits) all of them, so that
 * it stops at every dentry.  Recomputed at each call: a u64 kept across
 * the walk took the frame past 512 bytes.
 */
static __always_inline __u64 walk_len_bits(const struct fanbpf_rules_args *a)
{
	return fanbpf_args_have_roots(a) ? ~0ULL :
	       fanbpf_dirs_apply(a) ? fanbpf_dir_len_bits(a->set_id) : 0;
}

/* walk()'s state bits (one register across the calls, not three) */
#define WALK_DIR	1	/* the dentries from here on are directories */
#define WALK_DEV	2	/* dev has been read */
#define WALK_SUBVOL	4	/* nodes are named by subvolume (btrfs) */

/*
 * One walk: the steps the parents iterator takes from @dentry (or from a
 * dentry of @inode), nearest first.  @first_dir: whether the first one is
 * a directory (the ones above always are).  @k is the handler's key
 * buffer.  *@parent_ino: the inode number of @dentry's parent, set when
 * the walk starts from @dentry and the first dentry did not decide (else
 * left alone).
 * Returns enum fanbpf_walk.
 *
 * The kernel steps past every dentry that no rule can name -- no bit in
 * the node filter (fanbpf_node_maybe()), no listed directory-name length
 * -- so the program sees only the few that may decide; the walk is then
 * a handful of calls at any depth.  With roots in the args (which have
 * no filter bits) all length bits make it stop at every dentry.
 *
 * The iterator keeps the dentries: a step has the dentry's inode
 * (untrusted, so every load through it is fault-handled and a NULL inode
 * -- a dentry that died under a stale d_parent -- reads as 0), its depth
 * and its name's length; the name is copied through the iterator.  How
 * the walk ended says whether it may conclude: only at the superblock's
 * root is "no node decided" OUTSIDE; at a disconnected tree's root (a file
 * opened by handle) or after FANBPF_MAX_DEPTH steps the object cannot be
 * placed, and a walk a concurrent rename may have torn cannot drop the
 * event either.
 *
 * Inlined, for the stack: the chain of frames handler -> walk ->
 * fanbpf_name_listed() -> matcher callback came to more than 512 bytes
 * (the key alone is 272); inlined, the iterator and the walk's variables
 * take less room in the handler's frame than a frame of their own.
 */
static __always_inline int walk(const struct fanbpf_rules_args *a, union fanbpf_rules_key *k,
			   struct dentry *dentry, struct inode *inode, bool first_dir,
			   __u64 *parent_ino)
{
	__u32 state = first_dir ? WALK_DIR : 0;
	int w = FANBPF_WALK_NEXT, len, end;
	struct bpf_iter_fanotify_parents it;
	struct fanotify_fastpath_step *step;
	struct inode *i;
	__u64 dev = 0;

	bpf_iter_fanotify_parents_new(&it, dentry, inode, FANBPF_MAX_DEPTH);
	/*
	 * The parent, for the dir walk's shortcut: read from the event's
	 * dentry after the walk began, so that a rename since then tears
	 * the walk (its answer then stands only if it delivers).  A plain
	 * number: d_parent is an untrusted pointer, every load fault-handled.
	 */
	if (dentry)
		*parent_ino = dentry->d_parent->d_inode->i_ino;
	bpf_iter_fanotify_parents_skip(&it, &fanbpf_rules_node_filter, walk_len_bits(a));
	while ((step = bpf_iter_fanotify_parents_next(&it))) {
		i = step->inode;
		if (i && !(state & WALK_DEV)) {
			/* d_parent stays on one superblock: its dev, read once */
			dev = i->i_sb->s_dev;
			state |= WALK_DEV;
			if (per_subvolume(i->i_sb))
				state |= WALK_SUBVOL;
		}
		if (i)		/* negative dentries are walked through, never roots */
			w = fanbpf_node_decides(a, k, state & WALK_SUBVOL ? subvolume_dev(i, dev) : dev,
						i->i_ino);
		/* Above the start every dentry is a directory. */
		if (w == FANBPF_WALK_NEXT && ((state & WALK_DIR) || step->depth) &&
		    fanbpf_dirs_apply(a) && fanbpf_dir_len_listed(a->set_id, step->name_len)) {
			fanbpf_name_key_reset(k, a->set_id, FANBPF_LIST_DIRS);
			len = bpf_iter_fanotify_parents_name(&it, k->name.name, sizeof(k->name.name));
			if (len >= 0) {
				k->name.len = len;
				if (fanbpf_dir_excluded(a, k))
					w = FANBPF_WALK_EXCLUDED;
			}
		}
		if (w != FANBPF_WALK_NEXT) {
			if (!step->depth)	/* the start decided: no shortcut */
				*parent_ino = 0;
			break;
		}
		state |= WALK_DIR;
		/*
		 * Verifier: called on every step, the choice in its argument;
		 * a call behind a branch took the handler's verification past
		 * a million insns.
		 */
		bpf_iter_fanotify_parents_skip(&it, &fanbpf_rules_node_filter, walk_len_bits(a));
	}
	end = bpf_iter_fanotify_parents_end(&it);
	bpf_iter_fanotify_parents_destroy(&it);
	if (w == FANBPF_WALK_NEXT)
		/*
		 * Outside only when the superblock's root was reached.  No
		 * dentry at all (no alias of the inode to start from: after
		 * its last unlink, overwritten by a rename, unhashed by
		 * overlayfs' unlink), a disconnected tree, or the bound:
		 * where the object is cannot be told.
		 */
		w = end == FANBPF_WALK_ROOT ? FANBPF_WALK_OUTSIDE : FANBPF_WALK_UNDECIDED;
	/* A torn chain may be wrong either way: only a delivering answer stands. */
	if (end == FANBPF_WALK_TORN && !fanbpf_walk_settles(a, w))
		w = FANBPF_WALK_UNDECIDED;
	return w;
}

/* The event's name as the dir walk's virtual node: an excluded directory name? */
static __always_inline bool name_excluded(const struct fanbpf_rules_args *a,
					  union fanbpf_rules_key *k, __u32 mask,
					  const struct fanotify_fastpath_name *name)
{
	int len;

	if (!name || !(mask & FAN_ONDIR) || !fanbpf_dirs_apply(a))
		return false;
	fanbpf_name_key_reset(k, a->set_id, FANBPF_LIST_DIRS);
	len = bpf_fanotify_read_name(name, k->name.name, sizeof(k->name.name));
	if (len < 0)
		return false;
	k->name.len = len;
	return fanbpf_dir_excluded(a, k);
}

SEC("struct_ops/fp_handler")
int BPF_PROG(fanbpf_rules_handler, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	/*
	 * The one key buffer (272 bytes of the 512-byte stack): the event's
	 * name for NAMES, then each node and directory name on the walks.
	 */
	union fanbpf_rules_key key;
	const struct fanbpf_rules_args *a;
	struct fanbpf_rules_hook *h;
	int match = FANBPF_MATCH_YES, w0 = FANBPF_WALK_NONE, w1 = FANBPF_WALK_NONE;
	bool first_dir = mask & FAN_ONDIR;
	__u64 parent_ino = 0;
	__u64 id = hook->id;
	int len, verdict;

	h = bpf_map_lookup_elem(&fanbpf_rules_hooks, &id);
	if (!h)		/* not initialised: cannot happen, fail open */
		return FAN_FP_RET_SEND_TO_USERSPACE;
	a = &h->args;

	if (a->sections & FANBPF_SEC_PROCESS)
		match = process_match(a, mask);
	if (match != FANBPF_MATCH_NO && fanbpf_names_apply(a, mask)) {
		/* The event's name if it has one, else its dentry's. */
		fanbpf_name_key_reset(&key, a->set_id, FANBPF_LIST_NAMES);
		if (name)
			len = bpf_fanotify_read_name(name, key.name.name, sizeof(key.name.name));
		else if (dentry)
			len = bpf_fanotify_dentry_name(dentry, key.name.name, sizeof(key.name.name));
		else
			len = -1;
		if (len >= 0)
			key.name.len = len;
		if (!fanbpf_names_match(a, &key, len >= 0))
			match = FANBPF_MATCH_NO;
	}
	if (match != FANBPF_MATCH_NO && (a->sections & FANBPF_SEC_WALK)) {
		/*
		 * From the dentry, or with neither dentry nor dir from the
		 * inode.  Verifier: the iterator takes NULL or a tested
		 * pointer, not one that may be NULL, hence the tests here (an
		 * event with none of the three has nothing to walk).
		 */
		if (dentry || (!dir && inode))
			w0 = walk(a, &key, dentry, dentry ? NULL : inode, first_dir, &parent_ino);
		/*
		 * The dir walk (the event's name, then dir and up) is the rest
		 * of the dentry walk when the dentry's parent is dir (create,
		 * moved_to: the name is the dentry's): when the dentry itself
		 * did not decide, it comes to what the dentry walk came to --
		 * unless that could not decide (the bound, one dentry further
		 * up; a disconnected tree; a torn walk).  The parent is told by
		 * its inode number: on the dentry's superblock, where dir is.
		 */
		if (dir && parent_ino && parent_ino == dir->i_ino && w0 != FANBPF_WALK_UNDECIDED)
			w1 = w0;
		else if (dir && !fanbpf_walk_settles(a, w0))
			w1 = name_excluded(a, &key, mask, name) ? FANBPF_WALK_EXCLUDED :
			     walk(a, &key, NULL, dir, true, &parent_ino);
		match = fanbpf_match_and(match, fanbpf_walks_match(a, w0, w1));
	}
	verdict = fanbpf_rules_verdict(a, mask, match);
	fanbpf_stats_count(&h->stats, match, verdict);
	return verdict;
}

SEC("struct_ops/fp_init")
int BPF_PROG(fanbpf_rules_init, struct fanotify_fastpath_hook *hook,
	     const struct fanotify_fastpath_init_args *args)
{
	struct fanbpf_rules_hook *h;
	__u64 id = hook->id;
	int err;

	if (args->len != sizeof(h->args))
		return -FANBPF_EINVAL;
	/*
	 * The element (~450 bytes) is too big for the stack beside
	 * everything else: insert an empty one and fill it in place.  Nobody
	 * else can see it yet -- fp_handler runs for this hook only once
	 * fp_init has succeeded.
	 */
	err = bpf_map_update_elem(&fanbpf_rules_hooks, &id, &empty_hook, BPF_NOEXIST);
	if (err)
		return err;
	h = bpf_map_lookup_elem(&fanbpf_rules_hooks, &id);
	if (!h)
		return -FANBPF_EINVAL;
	err = fanbpf_copy_init_args(&h->args, args);
	if (!err)
		err = fanbpf_rules_check(&h->args);
	if (!err)
		err = fanbpf_set_claim(h->args.set_id, id);	/* EEXIST: set id in use */
	if (err) {
		bpf_map_delete_elem(&fanbpf_rules_hooks, &id);
		return err;
	}
	fanbpf_rules_normalize(&h->args);
	return 0;
}

SEC("struct_ops/fp_free")
void BPF_PROG(fanbpf_rules_free, struct fanotify_fastpath_hook *hook)
{
	const struct fanbpf_rules_hook *h;
	__u64 id = hook->id;

	h = bpf_map_lookup_elem(&fanbpf_rules_hooks, &id);
	if (h)
		fanbpf_set_release(h->args.set_id);
	bpf_map_delete_elem(&fanbpf_rules_hooks, &id);
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops fanbpf_rules = {
	.fp_handler = (void *)fanbpf_rules_handler,
	.fp_init = (void *)fanbpf_rules_init,
	.fp_free = (void *)fanbpf_rules_free,
	.name = "fanbpf_rules",
	.desc = "fanbpf rules: subtrees, excluded directories, names, processes",
};
