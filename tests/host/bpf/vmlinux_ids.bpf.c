// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test object for the shim's fanbpf_vmlinux_struct__* globals: the load
 * fills them with vmlinux BTF ids, which bpf_rdonly_cast() takes; a struct
 * vmlinux lacks gets 0, which makes its cast dead code the verifier skips
 * (a cast to id 0 would not load).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id__k) __ksym;

const volatile __u32 fanbpf_vmlinux_struct__task_struct = 0;
const volatile __u32 fanbpf_vmlinux_struct__fanbpf_no_such_struct = 0;
const volatile __u64 fanbpf_vmlinux_struct__wrong_size = 0;	/* not 4 bytes: left alone */

struct fanbpf_no_such_struct {
	int x;
};

SEC("syscall")
int cast(void *ctx)
{
	struct fanbpf_no_such_struct *n;
	struct task_struct *t;
	int ret = 0;

	if (fanbpf_vmlinux_struct__task_struct) {
		t = bpf_rdonly_cast(ctx, fanbpf_vmlinux_struct__task_struct);
		ret += 1 + (t->pid & 0);	/* a load the verifier checks against the type */
	}
	if (fanbpf_vmlinux_struct__fanbpf_no_such_struct) {
		n = bpf_rdonly_cast(ctx, fanbpf_vmlinux_struct__fanbpf_no_such_struct);
		ret += 2 + n->x;
	}
	return ret;
}
