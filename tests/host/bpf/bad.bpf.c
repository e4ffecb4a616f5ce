// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Test object the verifier must refuse: a map value used without a NULL check. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("syscall")
int unchecked(void *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&values, &key);

	return *value;	/* R0 invalid mem access 'map_value_or_null' */
}
