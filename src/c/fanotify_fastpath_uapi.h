/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The fanotify fastpath uapi from kernel/patches (include/uapi/linux/fanotify.h).
 * Host headers predate the series, so the shim carries its own copy; it
 * must match kernel/ABI.md byte for byte, which the asserts below pin.
 */
#ifndef __FANOTIFY_FASTPATH_UAPI_H
#define __FANOTIFY_FASTPATH_UAPI_H

#include <stddef.h>
#include <linux/ioctl.h>
#include <linux/types.h>

/* A patched <linux/fanotify.h> may already provide all of this. */
#ifndef FAN_FP_ARGS_SIZE_VER0

#define FAN_FP_NAME_MAX		64
#define FAN_FP_DESC_MAX		128
#define FAN_FP_ARGS_MAX		1024	/* larger init_args_len gives E2BIG */

/* Handler flags, shown in /sys/fs/fanotify/fastpath/<name>/flags */
#define FAN_FP_F_UNPRIV		0x00000001	/* groups without CAP_SYS_ADMIN may attach */
#define FAN_FP_F_PRIVATE	0x00000002	/* BPF: attach by fd only, not listed */

/* fanotify_fastpath_args.flags */
#define FAN_FP_ADD_BPF_FD	0x00000001	/* attach the handler behind bpf_fd */

/* Handler return values; a negative errno denies a permission event */
#define FAN_FP_RET_SEND_TO_USERSPACE	0
#define FAN_FP_RET_SKIP_EVENT		1

struct fanotify_fastpath_args {
	char name[FAN_FP_NAME_MAX];	/* registered name; "" with FAN_FP_ADD_BPF_FD */
	__u32 flags;			/* FAN_FP_ADD_* */
	__u32 init_args_len;		/* <= FAN_FP_ARGS_MAX */
	__u64 init_args;		/* user pointer; 0 if init_args_len is 0 */
	__s32 bpf_fd;			/* with FAN_FP_ADD_BPF_FD, else 0 */
	__u32 reserved;			/* must be 0 */
};

#define FAN_FP_ARGS_SIZE_VER0	88

#define FAN_IOC_MAGIC	'F'
#define FAN_IOC_ADD_FP	_IOW(FAN_IOC_MAGIC, 0, struct fanotify_fastpath_args)
/* Detach the group's handler; the argument must be 0. */
#define FAN_IOC_DEL_FP	_IO(FAN_IOC_MAGIC, 1)

#endif /* FAN_FP_ARGS_SIZE_VER0 */

_Static_assert(sizeof(struct fanotify_fastpath_args) == FAN_FP_ARGS_SIZE_VER0,
	       "fanotify_fastpath_args must be the 88-byte ABI struct");
_Static_assert(offsetof(struct fanotify_fastpath_args, init_args) == 72,
	       "fanotify_fastpath_args layout differs from kernel/ABI.md");
_Static_assert(FAN_IOC_ADD_FP == 0x40584600, "FAN_IOC_ADD_FP differs from kernel/ABI.md");
_Static_assert(FAN_IOC_DEL_FP == 0x4601, "FAN_IOC_DEL_FP differs from kernel/ABI.md");

#endif /* __FANOTIFY_FASTPATH_UAPI_H */
