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

/*
 * BPF_PROG_TEST_RUN's ctx.  chains[0] is the walk from the event's dentry
 * (or, without dentry and dir, from its inode's dentry), chains[1] the walk
 * from its dir's dentry; unused chains have len 0.
 */
struct fanbpf_rules_test_ctx {
	struct fanbpf_rules_args args;
	struct fanbpf_event_facts facts;
	struct fanbpf_chain chains[2];
	__s32 check;		/* out: fanbpf_rules_check(&args) */
	__s32 decision;		/* out: fp_handler's return value (if check == 0) */
};

/* The ctx, copied where the logic may index it with variable offsets. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fanbpf_rules_test_ctx);
} fanbpf_rules_test_scratch SEC(".maps");

SEC("syscall")
int fanbpf_rules_test(struct fanbpf_rules_test_ctx *ctx)
{
	struct fanbpf_rules_test_ctx *t;
	__u32 zero = 0;
	int err;

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
	ctx->decision = fanbpf_rules_decide(&t->args, &t->facts,
		fanbpf_chain_inside(&t->args.subtree, t->chains[0].nodes, t->chains[0].len) ||
		fanbpf_chain_inside(&t->args.subtree, t->chains[1].nodes, t->chains[1].len));
	return 0;
}
