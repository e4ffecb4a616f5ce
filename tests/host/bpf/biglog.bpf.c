// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test object whose verifier log at level 1 is far over the shim's first
 * 256 KiB buffer: the verifier walks each of the loop's iterations.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("syscall")
int long_walk(__u64 *ctx)
{
	__u64 sum = 0;
	int i;

#pragma clang loop unroll(disable)
	for (i = 0; i < 2000; i++)
		sum += i ^ *ctx;
	return sum & 1;
}
