// SPDX-License-Identifier: GPL-2.0
/*
 * fanbpf_subtree_kmod: the kernel-module reference for fanbpf's subtree rule.
 *
 * Delivers an event only when the object it concerns lies under one of the
 * roots given at attach time (struct fanbpf_subtree_args).  It decides exactly
 * as the BPF "fanbpf_rules" handler's subtree section does, so the two can be
 * compared event for event and timed side by side.  Roots are named by
 * (s_dev, i_ino); no dentry, path or mount is referenced.  One difference:
 * on btrfs the BPF handler names a node by its subvolume's anonymous dev
 * (stat's st_dev), this module by the superblock's s_dev, because a module
 * cannot reach struct btrfs_inode.
 */
#include <linux/dcache.h>
#include <linux/fanotify.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/rcupdate.h>
#include <linux/sched/clock.h>
#include <linux/slab.h>
#include <linux/wait.h>

#include "fanbpf_rules.h"

/*
 * Timing, for comparing the module with a BPF handler from the inside:
 * with stats=1 each call is timed with sched_clock() as BPF programs are
 * with kernel.bpf_stats_enabled=1, and the sums read back as run_cnt and
 * run_time_ns (bpftool's names).  The events delivered because a walk
 * could not place them are counted always (undecided), as the BPF
 * handler counts them: an exact filter's extra events are those.
 */
static bool stats;
module_param(stats, bool, 0644);
MODULE_PARM_DESC(stats, "time each call (read run_cnt and run_time_ns)");

struct call_stats {
	u64 run_cnt;
	u64 run_time_ns;
	u64 undecided;
};

static DEFINE_PER_CPU(struct call_stats, call_stats);

static int stat_get(char *buf, const struct kernel_param *kp)
{
	size_t offset = (size_t)kp->arg;
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += *(u64 *)((char *)per_cpu_ptr(&call_stats, cpu) + offset);
	return sysfs_emit(buf, "%llu\n", sum);
}

static const struct kernel_param_ops stat_ops = {
	.get = stat_get,
};
module_param_cb(run_cnt, &stat_ops, (void *)offsetof(struct call_stats, run_cnt), 0444);
module_param_cb(run_time_ns, &stat_ops, (void *)offsetof(struct call_stats, run_time_ns), 0444);
module_param_cb(undecided, &stat_ops, (void *)offsetof(struct call_stats, undecided), 0444);
MODULE_PARM_DESC(undecided, "events delivered because no walk could place them");

/*
 * For tests of the fastpath's locking: with free_gate set, fp_free waits
 * until it is cleared (at most 10 s), and free_waiting counts the calls
 * waiting, so that a test can hold a detach inside fp_free and watch what
 * else still goes on meanwhile.
 */
static bool free_gate;
static atomic_t free_waiting = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(free_gate_wq);

static int free_gate_set(const char *val, const struct kernel_param *kp)
{
	int ret = param_set_bool(val, kp);

	wake_up_all(&free_gate_wq);
	return ret;
}

static const struct kernel_param_ops free_gate_ops = {
	.set = free_gate_set,
	.get = param_get_bool,
};
module_param_cb(free_gate, &free_gate_ops, &free_gate, 0644);
MODULE_PARM_DESC(free_gate, "tests: hold fp_free until cleared (10 s at most)");

static int free_waiting_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&free_waiting));
}

static const struct kernel_param_ops free_waiting_ops = {
	.get = free_waiting_get,
};
module_param_cb(free_waiting, &free_waiting_ops, NULL, 0444);

static bool is_root(const struct fanbpf_subtree_args *args, struct dentry *d)
{
	struct inode *inode = READ_ONCE(d->d_inode);
	u32 i;

	if (!inode)
		return false;
	for (i = 0; i < args->nr_roots; i++)
		if (args->roots[i].ino == inode->i_ino &&
		    args->roots[i].dev == d->d_sb->s_dev)
			return true;
	return false;
}

/* What a walk found; ordered so that max() combines two walks. */
enum walk_result {
	WALK_OUTSIDE,		/* reached the superblock's root without a root */
	WALK_UNDECIDED,		/* cannot tell: see walk_up() */
	WALK_INSIDE,		/* met a root */
};

/*
 * Walk up from @d, without references, looking for a root among at most
 * FANBPF_MAX_DEPTH dentries: @d and its ancestors.  Only a walk that ends
 * at the superblock's root is OUTSIDE: one that ends at the root of a
 * disconnected tree (a file opened by handle), at the bound, or that a
 * rename may have torn (d_walk_up_end()) cannot place @d.
 */
static enum walk_result walk_up(const struct fanbpf_subtree_args *args,
				struct dentry *d)
{
	struct d_walk_up walk;
	struct dentry *cur;

	if (!d)
		return WALK_UNDECIDED;
	d_walk_up_start(&walk, d, FANBPF_MAX_DEPTH);
	while ((cur = d_walk_up_next(&walk)))
		if (is_root(args, cur))
			return WALK_INSIDE;
	return d_walk_up_end(&walk) == D_WALK_UP_ROOT ? WALK_OUTSIDE : WALK_UNDECIDED;
}

/*
 * A dentry of @inode to walk up from, chosen as d_find_alias_rcu() chooses
 * (which is not exported): a directory's only dentry, a hashed alias of a
 * file (an unlinked alias has a stale parent chain), none once the inode is
 * being freed (i_dentry shares its storage with i_rcu then).  Caller holds
 * RCU; the event pins @inode.
 */
static struct dentry *inode_dentry(struct inode *inode)
{
	struct dentry *alias, *found = NULL;

	spin_lock(&inode->i_lock);
	if (!(inode->i_state & I_FREEING)) {
		hlist_for_each_entry(alias, &inode->i_dentry, d_u.d_alias) {
			if (S_ISDIR(inode->i_mode) || !d_unhashed(alias)) {
				found = alias;
				break;
			}
		}
	}
	spin_unlock(&inode->i_lock);
	return found;
}

static int subtree_handler(struct fanotify_fastpath_hook *hook, u32 mask,
			   struct inode *inode, struct dentry *dentry,
			   struct inode *dir,
			   const struct fanotify_fastpath_name *name)
{
	const struct fanbpf_subtree_args *args = hook->data;
	enum walk_result res = WALK_OUTSIDE;
	u64 start = READ_ONCE(stats) ? sched_clock() : 0;

	/* Dentries are RCU-freed: the walk needs no reference. */
	rcu_read_lock();
	if (dentry)
		res = walk_up(args, dentry);
	/*
	 * Then from dir, unless that walk is the rest of the first: the
	 * dentry's parent is dir (create, moved_to) and the dentry walk
	 * reached the top.
	 */
	if (res != WALK_INSIDE && dir &&
	    !(res == WALK_OUTSIDE && dentry &&
	      READ_ONCE(READ_ONCE(dentry->d_parent)->d_inode) == dir))
		res = max(res, walk_up(args, inode_dentry(dir)));
	/* No dentry to start from (after the last unlink): undecided. */
	if (!dentry && !dir && inode)
		res = walk_up(args, inode_dentry(inode));
	rcu_read_unlock();

	if (res == WALK_UNDECIDED)
		this_cpu_inc(call_stats.undecided);
	if (start) {
		this_cpu_inc(call_stats.run_cnt);
		this_cpu_add(call_stats.run_time_ns, sched_clock() - start);
	}

	/* Undecided: deliver, a filter must not lose an event it cannot place. */
	return res == WALK_OUTSIDE ? FAN_FP_RET_SKIP_EVENT
				   : FAN_FP_RET_SEND_TO_USERSPACE;
}

static int subtree_init(struct fanotify_fastpath_hook *hook,
			const struct fanotify_fastpath_init_args *args)
{
	const struct fanbpf_subtree_args *sargs = (const void *)args->data;

	/* No args: no roots, every event is outside (the selftest attaches so). */
	if (args->len && args->len != sizeof(*sargs))
		return -EINVAL;
	if (sargs->nr_roots > FANBPF_MAX_ROOTS)
		return -EINVAL;
	hook->data = kmemdup(sargs, sizeof(*sargs), GFP_KERNEL_ACCOUNT);
	return hook->data ? 0 : -ENOMEM;
}

static void subtree_free(struct fanotify_fastpath_hook *hook)
{
	if (READ_ONCE(free_gate)) {
		atomic_inc(&free_waiting);
		wait_event_timeout(free_gate_wq, !READ_ONCE(free_gate), 10 * HZ);
		atomic_dec(&free_waiting);
	}
	kfree(hook->data);
}

static struct fanotify_fastpath_ops subtree_ops = {
	.fp_handler = subtree_handler,
	.fp_init = subtree_init,
	.fp_free = subtree_free,
	.name = "fanbpf_subtree_kmod",
	.desc = "deliver only events under the given (dev, ino) roots",
	.owner = THIS_MODULE,
	/*
	 * Not FAN_FP_F_UNPRIV: subtree_init() has not been written for
	 * arguments from unprivileged users.
	 */
};

static int __init subtree_kmod_init(void)
{
	return fanotify_fastpath_register(&subtree_ops);
}

static void __exit subtree_kmod_exit(void)
{
	fanotify_fastpath_unregister(&subtree_ops);
}

module_init(subtree_kmod_init);
module_exit(subtree_kmod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("fanbpf subtree fastpath handler (reference)");
