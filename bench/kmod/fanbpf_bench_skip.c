// SPDX-License-Identifier: GPL-2.0
/*
 * bench (make bench-cost): a fastpath handler that skips every event at
 * once, the floor under the reference module (kernel/module/) and the BPF
 * handlers; tests/vm/bpf/no_init.bpf.c is the same in BPF.  Built against the
 * kernel's object tree by the Makefile, not part of the kernel's cache key.
 */
#include <linux/fanotify.h>
#include <linux/module.h>

static int skip_handler(struct fanotify_fastpath_hook *hook, u32 mask,
			struct inode *inode, struct dentry *dentry,
			struct inode *dir,
			const struct fanotify_fastpath_name *name)
{
	return FAN_FP_RET_SKIP_EVENT;
}

static struct fanotify_fastpath_ops skip_ops = {
	.fp_handler = skip_handler,
	.name = "fanbpf_bench_skip",
	.desc = "bench: skip every event",
	.owner = THIS_MODULE,
};

static int __init skip_init(void)
{
	return fanotify_fastpath_register(&skip_ops);
}

static void __exit skip_exit(void)
{
	fanotify_fastpath_unregister(&skip_ops);
}

module_init(skip_init);
module_exit(skip_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("fanbpf bench: a fastpath handler that skips every event");
