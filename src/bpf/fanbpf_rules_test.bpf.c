// SPDX-License-Identifier: GPL-2.0
/*
 * fanbpf_rules_test: the fanbpf_rules decision, runnable on any kernel.
 *
 * Test-only.  A SEC("syscall") program needs no fastpath hook, so
 * BPF_PROG_TEST_RUN can feed it facts and args from user space and read
 * back what the compiled fanbpf_rules_logic.h decides; the host tests
 * (tests/host/test_rules_logic.py) compare that with fanbpf/model.py.
 * The only code not shared with the real handler is how the facts are
 * gathered: here the subtree walks arrive as chains of (dev, ino).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "fanbpf_rules_logic.h"

char LICENSE[] SEC("license") = "GPL";

/* A walk, as collected: its positive dentries, the start first. */
struct fanbpf_chain {
	__u32 len;
	__u32 reserved;
	struct fanbpf_node nodes[FANBPF_CHAIN_MAX];
};

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

/*
 * BPF_PROG_TEST_RUN's ctx.  chains[0] is the walk from the event's dentry
 * (or, without dentry and dir, from its inode's dentry), chains[1] the walk
 * from its dir's dentry; unused chains have len 0.
 */
struct fanbpf_rules_test_ctx {
	struct fanbpf_rules_args args;
	struct fanbpf_event_facts facts;
	struct fanbpf_chain chains[2];
	struct fanbpf_ancestry ancestry;	/* gathered into facts.ancestry */
	struct fanbpf_cgroup_path cgroups;	/* gathered into facts.cgroup_ancestor */
	__s32 check;		/* out: fanbpf_rules_check(&args) */
	__s32 decision;		/* out: fp_handler's return value (if check == 0) */
	__s32 match;		/* out: enum fanbpf_match (if check == 0) */
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

SEC("syscall")
int fanbpf_rules_test(struct fanbpf_rules_test_ctx *ctx)
{
	struct fanbpf_rules_test_ctx *t;
	__u32 zero = 0, level;
	int err, match;

	/*
	 * Verifier: ctx accesses must have constant offsets, but the logic
	 * indexes chains, patterns and names, so work on a copy in a map
	 * value.  Helpers taking memory do not accept a ctx pointer; the
	 * syscall ctx is a kernel buffer, so probe-read it (CAP_PERFMON).
	 */
	t = bpf_map_lookup_elem(&fanbpf_rules_test_scratch, &zero);
	if (!t)
		return -1;
	err = bpf_probe_read_kernel(t, sizeof(*t), ctx);
	if (err)
		return err;

	/* As fp_init: args that fail the check are never used. */
	ctx->check = fanbpf_rules_check(&t->args);
	if (ctx->check)
		return 0;
	fanbpf_rules_normalize(&t->args);
	t->facts.ancestry = fanbpf_ancestry_walk(t->args.process.ancestor_tgid, 1,
						 TEST_TGID, TEST_UP);
	/* As bpf_get_current_ancestor_cgroup_id(): 0 above the task's level. */
	level = t->args.process.cgroup_tree_level;
	t->facts.cgroup_ancestor = level < t->cgroups.len && level < FANBPF_TEST_CGROUP_DEPTH ?
				   t->cgroups.ids[level] : 0;
	match = fanbpf_rules_match(&t->args, &t->facts,
		fanbpf_chain_inside(&t->args.subtree, t->chains[0].nodes, t->chains[0].len) ||
		fanbpf_chain_inside(&t->args.subtree, t->chains[1].nodes, t->chains[1].len));
	ctx->match = match;
	ctx->decision = fanbpf_rules_verdict(&t->args, t->facts.mask, match);
	return 0;
}
