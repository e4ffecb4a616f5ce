// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fanbpf_refuse() (fanotify_fastpath.bpf.h) outside fp_init: a SEC("syscall")
 * program that refuses the field ctx->which names, with ctx->index as a
 * run-time array index, so the host tests can check the record it leaves
 * and the field path fanbpf makes of it, on any kernel.
 */
#include "fanotify_fastpath.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct refuse_item {
	__u32 kind;
	char text[12];
};

struct refuse_args {
	__u32 flags;
	__u32 nr_items;
	struct refuse_item items[4];
	struct {
		__u64 id;
	} owner;
};

struct refuse_ctx {
	__u32 which;
	__u32 index;
};

/* keep struct refuse_args in BTF */
struct refuse_args refuse_args_btf;

SEC("syscall")
int refuse(struct refuse_ctx *ctx)
{
	const struct refuse_args *a = &refuse_args_btf;	/* only its type matters */
	__u32 i = ctx->index & 3;

	switch (ctx->which) {
	case 0:
		return fanbpf_refuse(a, flags);
	case 1:
		return fanbpf_refuse(a, items[i].text);
	case 2:
		return fanbpf_refuse(a, items[i]);
	case 3:
		return fanbpf_refuse(a, owner.id);
	default:
		return fanbpf_refuse_at(FANBPF_REFUSED_LEN, sizeof(*a));
	}
}
