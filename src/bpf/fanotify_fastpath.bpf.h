/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * fanotify_fastpath.bpf.h - write a fanotify fastpath handler in BPF.
 *
 * A fastpath handler is a BPF struct_ops map of type fanotify_fastpath_ops.
 * The kernel calls its fp_handler for every event the fanotify group's marks
 * matched, before the event is queued (and, for permission events, before
 * user space is asked), in the context of the task that caused the event.
 * The handler decides:
 *
 *	FAN_FP_RET_SEND_TO_USERSPACE (0)	deliver the event
 *	FAN_FP_RET_SKIP_EVENT (1)		drop it; a permission event is
 *						allowed without asking user space
 *	-errno					permission events only: deny the
 *						access; -EPERM, -EACCES, -EIO,
 *						-EBUSY, -ETXTBSY, -EAGAIN,
 *						-ENOSPC, -EDQUOT as they are,
 *						any other errno as -EPERM
 *
 * A minimal handler:
 *
 *	#include "fanotify_fastpath.bpf.h"
 *
 *	char LICENSE[] SEC("license") = "GPL";
 *
 *	SEC("struct_ops/fp_handler")
 *	int BPF_PROG(only_dirs, struct fanotify_fastpath_hook *hook, __u32 mask,
 *		     struct inode *inode, struct dentry *dentry, struct inode *dir,
 *		     const struct fanotify_fastpath_name *name)
 *	{
 *		return mask & FAN_ONDIR ? FAN_FP_RET_SEND_TO_USERSPACE
 *					: FAN_FP_RET_SKIP_EVENT;
 *	}
 *
 *	SEC(".struct_ops.link")
 *	struct fanotify_fastpath_ops only_dirs_ops = {
 *		.fp_handler = (void *)only_dirs,
 *		.name = "only_dirs",
 *	};
 *
 * Rules the kernel (6.12 + the fanbpf series) enforces on handlers:
 *
 *  - License GPL; loading needs CAP_BPF and CAP_PERFMON (root);
 *    registering a listed (not FAN_FP_F_PRIVATE) name needs CAP_SYS_ADMIN.
 *  - Attaching needs CAP_SYS_ADMIN (and a group made with it) unless the
 *    handler sets FAN_FP_F_UNPRIV in .flags.
 *  - Destroying the handler's link detaches it from every group.
 *  - fp_handler may not sleep.  It runs under RCU and fsnotify_mark_srcu,
 *    preemptible but not migratable: do not share per-CPU scratch buffers
 *    between handler invocations without disabling preemption.
 *  - Handlers read kernel memory and never write it; their state lives in
 *    BPF maps.  One handler may be attached to many groups at once: keep
 *    per-attachment state in a map keyed by hook->id (FANBPF_HOOK_MAP below),
 *    filled in fp_init, read in fp_handler, deleted in fp_free.
 *  - inode, dentry, dir and name may be NULL (which ones depends on the
 *    event, see fp_handler below); the verifier insists on NULL checks.
 *    They are trusted pointers: loads through them are plain loads.
 *    Pointers reached from them (dentry->d_parent, ...) are "plain"
 *    pointers: loads through them are fault-handled (a bad pointer reads
 *    as 0) and they cannot be passed to the kfuncs.
 *  - Names are not readable through d_name.name (a scalar to the
 *    verifier): use bpf_fanotify_read_name() for the event's name and
 *    bpf_fanotify_dentry_name() for the dentry's.
 *  - Helpers: the base set (maps, bpf_loop, ktime, ...) plus
 *    bpf_get_current_{pid_tgid,uid_gid,comm,cgroup_id}().
 *  - Stack is 512 bytes; loops must be bounded (or use bpf_loop()).
 *
 * The fastpath types are not in a vmlinux.h generated from a kernel without
 * the series, so they are declared here with preserve_access_index: CO-RE
 * relocates every field access against the running kernel's BTF at load
 * time.  If your vmlinux.h already has them (generated from a kernel with
 * the series), define FANBPF_VMLINUX_HAS_FASTPATH before including this
 * header.  Define FANBPF_NO_VMLINUX_H to include your own vmlinux.h (or
 * equivalent) yourself.
 */
#ifndef __FANOTIFY_FASTPATH_BPF_H
#define __FANOTIFY_FASTPATH_BPF_H

#ifndef FANBPF_NO_VMLINUX_H
#include "vmlinux.h"
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

/* --- uapi constants (include/uapi/linux/fanotify.h) ------------------- */

#define FAN_FP_NAME_MAX			64
#define FAN_FP_DESC_MAX			128
#define FAN_FP_ARGS_MAX			1024

/* fanotify_fastpath_ops.flags */
#define FAN_FP_F_UNPRIV			0x1	/* groups without CAP_SYS_ADMIN may attach */
#define FAN_FP_F_PRIVATE		0x2	/* not registered by name; attach by fd */

/* fp_handler return values */
#define FAN_FP_RET_SEND_TO_USERSPACE	0
#define FAN_FP_RET_SKIP_EVENT		1

#ifndef FAN_ACCESS
/* Event bits of fp_handler's mask (FAN_* == FS_* in the kernel). */
#define FAN_ACCESS		0x00000001
#define FAN_MODIFY		0x00000002
#define FAN_ATTRIB		0x00000004
#define FAN_CLOSE_WRITE		0x00000008
#define FAN_CLOSE_NOWRITE	0x00000010
#define FAN_OPEN		0x00000020
#define FAN_MOVED_FROM		0x00000040
#define FAN_MOVED_TO		0x00000080
#define FAN_CREATE		0x00000100
#define FAN_DELETE		0x00000200
#define FAN_DELETE_SELF		0x00000400
#define FAN_MOVE_SELF		0x00000800
#define FAN_OPEN_EXEC		0x00001000
#define FAN_Q_OVERFLOW		0x00004000
#define FAN_FS_ERROR		0x00008000
#define FAN_OPEN_PERM		0x00010000
#define FAN_ACCESS_PERM		0x00020000
#define FAN_OPEN_EXEC_PERM	0x00040000
#define FAN_EVENT_ON_CHILD	0x08000000
#define FAN_RENAME		0x10000000
#define FAN_ONDIR		0x40000000
#define FAN_CLOSE		(FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE)
#define FAN_MOVE		(FAN_MOVED_FROM | FAN_MOVED_TO)
#endif

/* Events a handler may deny by returning -errno. */
#define FANBPF_PERM_EVENTS	(FAN_OPEN_PERM | FAN_ACCESS_PERM | FAN_OPEN_EXEC_PERM)

/* --- kernel types (include/linux/fanotify.h of the series) ------------ */

#ifndef FANBPF_VMLINUX_HAS_FASTPATH

struct fanotify_fastpath_hook;

/* The name an event carries; only fanotify makes these (see the kfuncs). */
struct fanotify_fastpath_name {
	const unsigned char *name;
	__u32 len;
} __attribute__((preserve_access_index));

/* fp_init's arguments: the blob user space attached with, zero past len. */
struct fanotify_fastpath_init_args {
	__u32 len;
	__u32 reserved;
	__u8 data[FAN_FP_ARGS_MAX];
} __attribute__((preserve_access_index));

/*
 * The handler.  Which pointers fp_handler gets, by event:
 *
 *	open, access, modify, close, *_PERM	inode, dentry (+ dir, name when
 *						the group wants parent/name info)
 *	create, attrib, FAN_RENAME		dentry (+ dir, name); for
 *						FAN_RENAME the dentry is already
 *						at its new place and dir/name
 *						are the old ones
 *	delete, moved_from, moved_to,		inode, dir, name (no dentry)
 *	hard-link create
 *	*_SELF, link-count attrib		inode only
 */
struct fanotify_fastpath_ops {
	int (*fp_handler)(struct fanotify_fastpath_hook *hook, __u32 mask,
			  struct inode *inode, struct dentry *dentry,
			  struct inode *dir,
			  const struct fanotify_fastpath_name *name);
	int (*fp_init)(struct fanotify_fastpath_hook *hook,
		       const struct fanotify_fastpath_init_args *args);
	void (*fp_free)(struct fanotify_fastpath_hook *hook);
	char name[FAN_FP_NAME_MAX];		/* [A-Za-z0-9_.] */
	char desc[FAN_FP_DESC_MAX];
	__u32 flags;				/* FAN_FP_F_* */
	struct module *owner;			/* leave NULL */
} __attribute__((preserve_access_index));

/* One attachment of a handler to a group. */
struct fanotify_fastpath_hook {
	struct fanotify_fastpath_ops *ops;
	struct fsnotify_group *group;
	__u64 id;				/* unique per attachment */
	void *data;				/* kernel-module handlers only */
} __attribute__((preserve_access_index));

#endif /* FANBPF_VMLINUX_HAS_FASTPATH */

/* --- kfuncs (fanotify_fastpath_ops programs only) ---------------------- */

/*
 * Copy the name an event carries (fp_handler's @name) into @dst, always
 * NUL-terminated.  Returns its length, or -E2BIG if only a prefix fitted.
 * It takes only fp_handler's @name: the verifier refuses &dentry->d_name.
 */
extern int bpf_fanotify_read_name(const struct fanotify_fastpath_name *name,
				  char *dst, __u32 dst__sz) __ksym;

/*
 * Copy the current name of fp_handler's @dentry (the verifier takes no
 * other) into @dst.  Returns the length or -E2BIG.  A concurrent rename
 * may give a mix of the old and the new name.
 */
extern int bpf_fanotify_dentry_name(struct dentry *dentry, char *dst,
				    __u32 dst__sz) __ksym;

/*
 * An open-coded iterator that walks up the tree: from @dentry if given,
 * else from a dentry of @inode (a directory's, or a hashed alias of a file;
 * none when the inode has none left), then each d_parent up to and
 * including a root, one step per dentry, at most @max steps (the kernel
 * caps it at 4096).  The dentries stay in the kernel: a step gives the
 * dentry's inode (NULL for a negative dentry; untrusted, so loads through
 * it are fault-handled and it cannot be passed to kfuncs), its depth and
 * the length of its name, and bpf_iter_fanotify_parents_name() copies the
 * current step's name.  No references, no locks.
 *
 * bpf_iter_fanotify_parents_end() says how the walk ended (FANBPF_WALK_*):
 * only FANBPF_WALK_ROOT means the walk saw every ancestor there is.  A walk
 * that ended at the root of a disconnected tree (a file opened by handle),
 * at @max, or that a concurrent rename may have torn, cannot place the
 * object: a filter must deliver such an event.  It may be called at any
 * time, also after the program stopped stepping (for TORN).
 *
 * new() returns 0, -EINVAL with neither a dentry nor an inode, -ENOENT when
 * the inode has no dentry; the walk is empty then.
 *
 * Verifier: @dentry and @inode each take NULL or a pointer the program has
 * tested, not one that may be NULL ("must be referenced or trusted"):
 *
 *	if (dentry)
 *		bpf_for_each(fanotify_parents, step, dentry, NULL, FANBPF_MAX_DEPTH) { ... }
 *
 * libbpf: a program that passes an inode must also read a field of struct
 * inode somewhere, or clang puts only a forward declaration of it in the
 * object's BTF and libbpf refuses the kfunc ("func_proto ... incompatible
 * with vmlinux").
 */
#ifndef FANBPF_VMLINUX_HAS_FASTPATH
struct bpf_iter_fanotify_parents {
	__u64 __opaque[7];
} __attribute__((aligned(8)));

struct fanotify_fastpath_step {
	struct inode *inode;
	__u32 depth;				/* 0 for the start */
	__u32 name_len;
} __attribute__((preserve_access_index));
#endif

/* bpf_iter_fanotify_parents_end() (the kernel's enum d_walk_up_end) */
#define FANBPF_WALK_RUNNING		0	/* not at a root yet, or stopped early */
#define FANBPF_WALK_ROOT		1	/* reached the superblock's root */
#define FANBPF_WALK_DISCONNECTED	2	/* reached a disconnected tree's root */
#define FANBPF_WALK_LIMIT		3	/* @max steps, no root */
#define FANBPF_WALK_TORN		4	/* a rename ran meanwhile */

extern int bpf_iter_fanotify_parents_new(struct bpf_iter_fanotify_parents *it,
					 struct dentry *dentry__nullable,
					 struct inode *inode__nullable,
					 unsigned int max) __ksym;
extern struct fanotify_fastpath_step *
bpf_iter_fanotify_parents_next(struct bpf_iter_fanotify_parents *it) __ksym;
extern int bpf_iter_fanotify_parents_name(struct bpf_iter_fanotify_parents *it,
					  char *dst, __u32 dst__sz) __ksym;
extern int bpf_iter_fanotify_parents_end(struct bpf_iter_fanotify_parents *it) __ksym;

/*
 * The steps a program would take only to rule dentries out, taken in C:
 * steps up, without returning the dentries, to just before the first whose
 * inode number has its bit set in @ino_filter (an array map of __u64 words,
 * a power of two of them, read as one bitmap: bit ino % (64 * entries)) or
 * whose name's length has its bit (len % 64) set in @len_bits; next()
 * returns that one.  A negative dentry is looked at by its name only.  The
 * current step stays current.  Returns the number of dentries passed (they
 * count in the depth), or -EINVAL (no step taken) if the map is not such an
 * array.  For a walk that looks for a few ancestors among many: a kfunc
 * call and the program's tests per ancestor cost a BPF handler several
 * times what the same walk costs C.
 */
extern int bpf_iter_fanotify_parents_skip(struct bpf_iter_fanotify_parents *it,
					  void *ino_filter__map, __u64 len_bits) __ksym;
extern void bpf_iter_fanotify_parents_destroy(struct bpf_iter_fanotify_parents *it) __ksym;

/* --- helpers ----------------------------------------------------------- */

#define FANBPF_EINVAL	22

/* A hash map for per-attachment state, keyed by hook->id. */
#define FANBPF_HOOK_MAP(_name, _value_type, _max_entries)		\
	struct {							\
		__uint(type, BPF_MAP_TYPE_HASH);			\
		__uint(map_flags, BPF_F_NO_PREALLOC);			\
		__uint(max_entries, _max_entries);			\
		__type(key, __u64);					\
		__type(value, _value_type);				\
	} _name SEC(".maps")

static __always_inline int fanbpf_is_perm_event(__u32 mask)
{
	return (mask & FANBPF_PERM_EVENTS) != 0;
}

/*
 * Which init-args field fp_init refused, for the attacher's error message.
 * fp_init returns fanbpf_refuse(args, field) instead of -EINVAL:
 *
 *	if (st.args.ignore_uid > 1)
 *		return fanbpf_refuse(&st.args, ignore_uid);
 *	if (a->subtree.nr_roots > MAX_ROOTS)
 *		return fanbpf_refuse(a, subtree.nr_roots);
 *
 * @args points to the args struct (its type is what matters; it is not
 * dereferenced), @field is a member designator as offsetof() takes it
 * (names.patterns[2].text, exts[i]).  It records the field's offset and
 * size with the calling thread in fanbpf_init_refusal (.bss) and evaluates
 * to -EINVAL.  When the attach fails with EINVAL, fanbpf reads the record
 * back, and if it is the attaching thread's, raises an ArgsError whose
 * path names the field (found in the args struct's BTF) and its value.
 * One record per object: attaches of one handler racing in two threads
 * may lose a record (the error then just does not name the field).
 */
#define FANBPF_REFUSED_LEN	0xffffffffU	/* offset: args->len was refused */

struct fanbpf_init_refusal {
	__u64 pid_tgid;		/* the refused attacher, bpf_get_current_pid_tgid() */
	__u32 offset;		/* of the field in the args struct, or FANBPF_REFUSED_LEN */
	__u32 size;		/* of the field */
};

struct fanbpf_init_refusal fanbpf_init_refusal SEC(".bss");

static __always_inline int fanbpf_refuse_at(__u32 offset, __u32 size)
{
	fanbpf_init_refusal.pid_tgid = bpf_get_current_pid_tgid();
	fanbpf_init_refusal.offset = offset;
	fanbpf_init_refusal.size = size;
	return -FANBPF_EINVAL;
}

#define fanbpf_refuse(args, field)						\
	fanbpf_refuse_at(__builtin_offsetof(__typeof__(*(args)), field),	\
			 sizeof((args)->field))

/*
 * Copy fp_init's arguments into *dst (a map value, or the stack if small),
 * after checking that user space passed exactly sizeof(*dst) bytes.
 * Evaluates to 0 or -EINVAL (recording a refused length, see
 * fanbpf_refuse()).
 *
 * Verifier: args->data is a byte array in a BTF-typed struct, which may be
 * read in wider loads as long as every offset is a constant; hence the
 * fully unrolled word copy instead of a loop with a variable index (and
 * instead of memcpy, which clang only inlines up to 128 stores).
 */
#define fanbpf_copy_init_args(dst, args)					\
({										\
	int __fb_ret = 0;							\
	_Static_assert(sizeof(*(dst)) <= FAN_FP_ARGS_MAX,			\
		       "init args larger than FAN_FP_ARGS_MAX");		\
	if ((args)->len != sizeof(*(dst))) {					\
		__fb_ret = fanbpf_refuse_at(FANBPF_REFUSED_LEN, sizeof(*(dst)));	\
	} else {								\
		__u64 *__fb_d = (__u64 *)(dst);					\
		const __u64 *__fb_s = (const __u64 *)(args)->data;		\
		__u8 *__fb_db = (__u8 *)(dst);					\
		const __u8 *__fb_sb = (const __u8 *)(args)->data;		\
		_Pragma("unroll")						\
		for (int __fb_i = 0; __fb_i < (int)(sizeof(*(dst)) / 8); __fb_i++) \
			__fb_d[__fb_i] = __fb_s[__fb_i];			\
		_Pragma("unroll")						\
		for (int __fb_i = sizeof(*(dst)) & ~7; __fb_i < (int)sizeof(*(dst)); __fb_i++) \
			__fb_db[__fb_i] = __fb_sb[__fb_i];			\
	}									\
	__fb_ret;								\
})

#endif /* __FANOTIFY_FASTPATH_BPF_H */
