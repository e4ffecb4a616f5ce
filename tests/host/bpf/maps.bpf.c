// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Maps and globals for fanbpf.maps' host tests: a hash map with struct keys
 * and values, an array, a per-CPU array, a map declared by sizes only, and
 * counters in .bss/.data.  The SEC("syscall") program counts a run in each
 * (as a handler would count events), so the tests see the kernel's writes.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct flow_key {
	__u32 uid;
	char comm[8];
};

struct flow_stat {
	__u64 events;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct flow_key);
	__type(value, struct flow_stat);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} per_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__uint(key_size, 4);
	__uint(value_size, 2);
} by_size SEC(".maps");

__u64 runs;			/* .bss */
__u32 limit = 7;		/* .data */
const volatile __u32 step = 1;	/* .rodata */

struct run_ctx {
	__u32 uid;
	__u32 bytes;
};

SEC("syscall")
int count(struct run_ctx *ctx)
{
	struct flow_key key = { .uid = ctx->uid, .comm = "run" };
	struct flow_stat *st, fresh = {};
	__u32 zero = 0;
	__u64 *v;

	runs += step;
	st = bpf_map_lookup_elem(&flows, &key);
	if (!st) {
		bpf_map_update_elem(&flows, &key, &fresh, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&flows, &key);
		if (!st)
			return 1;
	}
	__sync_fetch_and_add(&st->events, 1);
	__sync_fetch_and_add(&st->bytes, ctx->bytes);
	v = bpf_map_lookup_elem(&slots, &zero);
	if (v)
		*v += 1;
	v = bpf_map_lookup_elem(&per_cpu, &zero);
	if (v)
		*v += 1;
	return 0;
}
