// SPDX-License-Identifier: GPL-2.0
/*
 * fanbpf_rules_test: the fanbpf_rules decision, runnable on any kernel.
 *
 * Test-only.  A SEC("syscall") program needs no fastpath hook, so
 * BPF_PROG_TEST_RUN can feed it an event from user space and read back
 * what the compiled fanbpf_rules_logic.h decides; the host tests
 * (tests/host/test_rules_logic.py) compare that with fanbpf/model.py.  It
 * reads the rule set from the same maps as the handler (this object has
 * its own copies, filled by fanbpf/rulesmaps.py).  The only code not
 * shared with the handler is how the facts are gathered: the walks arrive
 * as chains of nodes in fanbpf_rules_test_chains, their names in
 * fanbpf_rules_test_names, the event in the ctx.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "fanbpf_rules_logic.h"

char LICENSE[] SEC("license") = "GPL";

/* Nodes a test chain holds: the virtual node and FANBPF_MAX_DEPTH dentries. */
#define FANBPF_TEST_CHAIN_MAX	(FANBPF_MAX_DEPTH + 1)
#define FANBPF_TEST_NAMES	1024	/* distinct names of the chains' nodes */
#define FANBPF_TEST_NO_NAME	(~0U)

enum fanbpf_test_node_flags {
	FANBPF_TEST_VIRTUAL	= 1 << 0,	/* the event's name before a dir walk: no dev, ino */
	FANBPF_TEST_DIR		= 1 << 1,	/* a directory */
};

/* One node of a walk, as the handler would see it. */
struct fanbpf_test_node {
	__u64 dev;			/* the handler's dev is 32 bits: the rest is dropped */
	__u64 ino;
	__u32 flags;			/* enum fanbpf_test_node_flags */
	__u32 name;			/* index in fanbpf_rules_test_names, or FANBPF_TEST_NO_NAME */
};

/*
 * A walk, nearest node first.  len counts every node up to the
 * superblock's root, which is the last: a len above FANBPF_TEST_CHAIN_MAX
 * says the chain goes on past the nodes given.  walked 0: not walked;
 * walked with len 0: the walk's inode has no dentry (the iterator yields
 * nothing).
 */
struct fanbpf_test_chain {
	__u32 len;
	__u32 walked;
	struct fanbpf_test_node nodes[FANBPF_TEST_CHAIN_MAX];
};

struct fanbpf_test_name {
	__u32 len;
	__u32 reserved;
	char name[FANBPF_NAME_MAX];	/* zero-filled past len */
};

/* chains[0]: from the dentry (or the inode's); chains[1]: from the dir */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct fanbpf_test_chain);
} fanbpf_rules_test_chains SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FANBPF_TEST_NAMES);
	__type(key, __u32);
	__type(value, struct fanbpf_test_name);
} fanbpf_rules_test_names SEC(".maps");

/* The task's ancestry as collected: tgids, the task's own first. */
struct fanbpf_ancestry {
	__u32 len;			/* leaders up to the top; may exceed the array */
	__u32 reserved;
	__u32 tgids[FANBPF_MAX_ANCESTRY];
};

#define FANBPF_TEST_CGROUP_DEPTH	8

/* The task's cgroup and its ancestors, the root cgroup first. */
struct fanbpf_cgroup_path {
	__u32 len;
	__u32 reserved;
	__u64 ids[FANBPF_TEST_CGROUP_DEPTH];
};

enum fanbpf_test_op {
	FANBPF_TEST_DECIDE	= 0,	/* fp_handler (after fp_init's check) */
	FANBPF_TEST_INIT	= 1,	/* fp_init: check, then claim the set id */
	FANBPF_TEST_FREE	= 2,	/* fp_free: give the set id and the counts up */
};

/* BPF_PROG_TEST_RUN's ctx. */
struct fanbpf_rules_test_ctx {
	struct fanbpf_rules_args args;
	struct fanbpf_event_facts facts;
	struct fanbpf_ancestry ancestry;	/* gathered into facts.ancestry */
	struct fanbpf_cgroup_path cgroups;	/* gathered into facts.cgroup_ancestor */
	__u32 op;			/* enum fanbpf_test_op */
	__s32 name_len;			/* the event's name for NAMES; -1: none */
	char name[FANBPF_NAME_MAX];	/* zero-filled past name_len */
	__s32 check;		/* out: fanbpf_rules_check(&args), or fp_init's error */
	__s32 decision;		/* out: fp_handler's return value (if check == 0) */
	__s32 match;		/* out: enum fanbpf_match (if check == 0) */
	__s32 walks[2];		/* out: enum fanbpf_walk of each chain */
	__s32 reserved;
};

/* The ctx, copied where the logic may index it with variable offsets. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fanbpf_rules_test_ctx);
} fanbpf_rules_test_scratch SEC(".maps");

/*
 * The ancestry walk's cursor: 1 + an index into t->ancestry.tgids, 0 past
 * the top.  The walk visits at most FANBPF_MAX_ANCESTRY cursors, so the
 * index stays in the array; the mask tells the verifier so.
 */
#define TEST_TGID(c)	(t->ancestry.tgids[((c) - 1) & (FANBPF_MAX_ANCESTRY - 1)])
#define TEST_UP(c)	((c) < t->ancestry.len ? (c) + 1 : 0)
_Static_assert((FANBPF_MAX_ANCESTRY & (FANBPF_MAX_ANCESTRY - 1)) == 0, "a power of two");

/* Copy a node's name into @k, as bpf_fanotify_dentry_name() would. */
static __always_inline bool test_name(union fanbpf_rules_key *k, __u64 set_id, __u32 list,
				      __u32 index)
{
	const struct fanbpf_test_name *n;

	if (index == FANBPF_TEST_NO_NAME)
		return false;
	n = bpf_map_lookup_elem(&fanbpf_rules_test_names, &index);
	if (!n || n->len >= FANBPF_NAME_MAX)
		return false;
	fanbpf_name_key_reset(k, set_id, list);
	__builtin_memcpy(k->name.name, n->name, sizeof(k->name.name));
	k->name.len = n->len;
	return true;
}

/*
 * fanbpf_dir_excluded() after the handler's test of the name's length
 * (which the handler makes before it copies the name).  Verifier: a
 * global function, so the walk below sees one unknown result, as before;
 * the test inline in the walk took it past a million instructions.
 */
__noinline int test_dir_excluded(union fanbpf_rules_key *k, __u32 nr_exact, __u32 nr_globs)
{
	if (!k || !fanbpf_dir_len_listed(k->name.set_id, k->name.len))
		return 0;
	return fanbpf_name_listed(k, nr_exact, nr_globs);
}

/*
 * The handler's walk() over a chain from user space.  Only its first node
 * may be virtual: that is where the handler looks at the event's name.
 * Inlined, like the handler's walk().
 */
static __always_inline int test_walk(const struct fanbpf_rules_args *a,
				union fanbpf_rules_key *k, __u32 which)
{
	const struct fanbpf_test_chain *c;
	const struct fanbpf_test_node *node;
	bool dirs = fanbpf_dirs_apply(a), is_dir;
	__u32 len, virtual;
	int w = FANBPF_WALK_NEXT, i;

	c = bpf_map_lookup_elem(&fanbpf_rules_test_chains, &which);
	if (!c || !c->walked)
		return FANBPF_WALK_NONE;
	len = c->len;
	virtual = c->nodes[0].flags & FANBPF_TEST_VIRTUAL;
	bpf_for(i, 0, FANBPF_TEST_CHAIN_MAX) {
		if (i >= len)
			break;
		node = &c->nodes[i];
		is_dir = node->flags & FANBPF_TEST_DIR;
		if (i == 0 && virtual) {
			if (dirs && is_dir && test_name(k, a->set_id, FANBPF_LIST_DIRS, node->name) &&
			    fanbpf_dir_excluded(a, k)) {
				w = FANBPF_WALK_EXCLUDED;
				break;
			}
			continue;
		}
		/*
		 * The iterator's bound: FANBPF_MAX_DEPTH dentries looked at.
		 * Verifier: derived from i, not counted in a variable of its
		 * own, whose every value the verifier would tell apart
		 * (the test on it makes it precise), walking 4096 states.
		 */
		if (i - virtual >= FANBPF_MAX_DEPTH) {
			w = FANBPF_WALK_UNDECIDED;
			break;
		}
		w = fanbpf_node_decides(a, k, (__u32)node->dev, node->ino);
		if (w == FANBPF_WALK_NEXT && dirs && is_dir &&
		    test_name(k, a->set_id, FANBPF_LIST_DIRS, node->name) &&
		    test_dir_excluded(k, a->dirs.nr_exact, a->dirs.nr_globs))
			w = FANBPF_WALK_EXCLUDED;
		if (w != FANBPF_WALK_NEXT)
			break;
	}
	if (w != FANBPF_WALK_NEXT)
		return w;
	/* As the handler: outside only if the top, a dentry, was reached. */
	return len <= FANBPF_TEST_CHAIN_MAX && len > virtual ? FANBPF_WALK_OUTSIDE
							    : FANBPF_WALK_UNDECIDED;
}

/* A test attachment's fanbpf_rules_hooks element when it is created. */
static struct fanbpf_rules_hook empty_hook;

SEC("syscall")
int fanbpf_rules_test(struct fanbpf_rules_test_ctx *ctx)
{
	union fanbpf_rules_key key;	/* the handler's one key buffer */
	struct fanbpf_rules_test_ctx *t;
	struct fanbpf_rules_args *a;
	struct fanbpf_rules_hook *h;
	__u32 zero = 0, level, mask;
	int err, match = FANBPF_MATCH_YES, w0 = FANBPF_WALK_NONE, w1 = FANBPF_WALK_NONE;
	bool has_name;

	/*
	 * Verifier: ctx accesses must have constant offsets, but the logic
	 * indexes arrays, so work on a copy in a map value.  Helpers taking
	 * memory do not accept a ctx pointer; the syscall ctx is a kernel
	 * buffer, so probe-read it (CAP_PERFMON).
	 */
	t = bpf_map_lookup_elem(&fanbpf_rules_test_scratch, &zero);
	if (!t)
		return -1;
	err = bpf_probe_read_kernel(t, sizeof(*t), ctx);
	if (err)
		return err;
	a = &t->args;

	ctx->walks[0] = ctx->walks[1] = FANBPF_WALK_NONE;
	/*
	 * The hook id of a test attachment is its set id: its
	 * fanbpf_rules_hooks element holds its counts (not its args, which
	 * come in the ctx).  Keys point into the scratch value: the stack is
	 * full.
	 */
	if (t->op == FANBPF_TEST_FREE) {
		fanbpf_set_release(a->set_id);
		bpf_map_delete_elem(&fanbpf_rules_hooks, &a->set_id);
		return 0;
	}
	/* As fp_init: args that fail the check are never used. */
	err = fanbpf_rules_check(a);
	if (!err && t->op == FANBPF_TEST_INIT && a->set_id) {
		err = bpf_map_update_elem(&fanbpf_rules_sets, &a->set_id, &a->set_id, BPF_NOEXIST);
		if (!err)
			err = bpf_map_update_elem(&fanbpf_rules_hooks, &a->set_id, &empty_hook,
						  BPF_NOEXIST);
	}
	ctx->check = err;
	if (err || t->op != FANBPF_TEST_DECIDE)
		return 0;
	fanbpf_rules_normalize(a);
	mask = t->facts.mask;

	if (a->sections & FANBPF_SEC_PROCESS) {
		t->facts.ancestry = fanbpf_ancestry_walk(a->process.ancestor_tgid, 1,
							 TEST_TGID, TEST_UP);
		/* As bpf_get_current_ancestor_cgroup_id(): 0 above the task's level. */
		level = a->process.cgroup_tree_level;
		t->facts.cgroup_ancestor = level < t->cgroups.len &&
					   level < FANBPF_TEST_CGROUP_DEPTH ?
					   t->cgroups.ids[level] : 0;
		match = fanbpf_process_match(&a->process, &t->facts);
	}
	if (match != FANBPF_MATCH_NO && fanbpf_names_apply(a, mask)) {
		fanbpf_name_key_reset(&key, a->set_id, FANBPF_LIST_NAMES);
		has_name = t->name_len >= 0 && t->name_len < FANBPF_NAME_MAX;
		if (has_name) {
			__builtin_memcpy(key.name.name, t->name, sizeof(key.name.name));
			key.name.len = t->name_len;
		}
		if (!fanbpf_names_match(a, &key, has_name))
			match = FANBPF_MATCH_NO;
	}
	if (match != FANBPF_MATCH_NO && (a->sections & FANBPF_SEC_WALK)) {
		w0 = test_walk(a, &key, 0);
		if (!fanbpf_walk_settles(a, w0))
			w1 = test_walk(a, &key, 1);
		match = fanbpf_match_and(match, fanbpf_walks_match(a, w0, w1));
	}
	ctx->walks[0] = w0;
	ctx->walks[1] = w1;
	ctx->match = match;
	ctx->decision = fanbpf_rules_verdict(a, mask, match);
	h = bpf_map_lookup_elem(&fanbpf_rules_hooks, &a->set_id);
	if (h)
		fanbpf_stats_count(&h->stats, match, ctx->decision);
	return 0;
}
