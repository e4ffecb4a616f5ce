/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The fanotify fastpath uapi from kernel/patches (include/uapi/linux/fanotify.h).
 * Host headers predate the series, so the shim carries its own copy; it
 * must match kernel/ABI.md byte for byte, which the asserts below pin.
 */
#ifndef __FANOTIFY_FASTPATH_UAPI_H
#define __FANOTIFY_FASTPATH_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* A patched <linux/fanotify.h> may already provide all of this. */
#ifndef FAN_FP_ARGS_VERSION

#define FAN_FP_NAME_MAX		64
#define FAN_FP_DESC_MAX		128
#define FAN_FP_ARGS_MAX		1024	/* larger init_args_len gives E2BIG */
#define FAN_FP_ARGS_VERSION	1

/* fanotify_fastpath_args.flags */
#define FAN_FP_ADD_BPF_FD	0x00000001	/* attach bpf_fd, ignore name */

/* Handler flags, shown in sysfs */
#define FAN_FP_F_SYS_ADMIN_ONLY	0x00000001	/* attach needs CAP_SYS_ADMIN */
#define FAN_FP_F_PRIVATE	0x00000002	/* BPF: attach by fd only, not listed */

/* Handler return values; a negative errno denies a permission event */
#define FAN_FP_RET_SEND_TO_USERSPACE	0
#define FAN_FP_RET_SKIP_EVENT		1

struct fanotify_fastpath_args {
	char name[FAN_FP_NAME_MAX];	/* NUL-terminated registered name */
	__u32 version;			/* FAN_FP_ARGS_VERSION */
	__u32 flags;			/* FAN_FP_ADD_* */
	__u64 init_args;		/* user pointer to a binary blob */
	__u32 init_args_len;		/* <= FAN_FP_ARGS_MAX */
	__s32 bpf_fd;			/* struct_ops map or link fd */
} __attribute__((__packed__));

#define FAN_IOC_MAGIC	'F'
#define FAN_IOC_ADD_FP	_IOW(FAN_IOC_MAGIC, 0, struct fanotify_fastpath_args)
/* The argument is NULL or the attached handler's name ("" matches any). */
#define FAN_IOC_DEL_FP	_IOW(FAN_IOC_MAGIC, 1, char[FAN_FP_NAME_MAX])

#endif /* FAN_FP_ARGS_VERSION */

_Static_assert(sizeof(struct fanotify_fastpath_args) == 88,
	       "fanotify_fastpath_args must be the packed 88-byte ABI struct");
_Static_assert(FAN_IOC_ADD_FP == 0x40584600, "FAN_IOC_ADD_FP differs from kernel/ABI.md");
_Static_assert(FAN_IOC_DEL_FP == 0x40404601, "FAN_IOC_DEL_FP differs from kernel/ABI.md");

#endif /* __FANOTIFY_FASTPATH_UAPI_H */
