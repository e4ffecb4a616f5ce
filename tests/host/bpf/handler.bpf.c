// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A minimal fastpath handler for the API tests.  The host kernel has no
 * fanotify_fastpath_ops, so there it opens (name, flags and args struct can
 * be read and set) but does not load; tests/vm loads and attaches it.
 * Events in extra_mask are skipped; fp_init refuses args whose first byte
 * is 0xEE, so the tests can see an attach fail in fp_init.
 */
#include "fanotify_fastpath.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct test_handler_args {
	__u32 mask;
	char word[8];
};

const volatile __u32 extra_mask = 0;

SEC("struct_ops/fp_handler")
int BPF_PROG(test_handler, struct fanotify_fastpath_hook *hook, __u32 mask,
	     struct inode *inode, struct dentry *dentry, struct inode *dir,
	     const struct fanotify_fastpath_name *name)
{
	return mask & extra_mask ? FAN_FP_RET_SKIP_EVENT : FAN_FP_RET_SEND_TO_USERSPACE;
}

SEC("struct_ops/fp_init")
int BPF_PROG(test_init, struct fanotify_fastpath_hook *hook,
	     const struct fanotify_fastpath_init_args *args)
{
	return args->len && args->data[0] == 0xEE ? -FANBPF_EINVAL : 0;
}

SEC(".struct_ops.link")
struct fanotify_fastpath_ops test_handler_ops = {
	.fp_handler = (void *)test_handler,
	.fp_init = (void *)test_init,
	.name = "test_handler",
	.desc = "host test handler",
};

/* keep struct test_handler_args in BTF */
struct test_handler_args test_handler_args_btf;
