/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Init arguments of fanbpf's built-in handlers, shared by the BPF programs,
 * the kernel-module reference handler and (through BTF) the Python encoder.
 * Fixed-size, no pointers: the struct is passed as the attach blob.
 */
#ifndef __FANBPF_RULES_H
#define __FANBPF_RULES_H

#ifndef __BPF__
#include <linux/types.h>
#endif

#define FANBPF_MAX_ROOTS	16
#define FANBPF_MAX_PATTERNS	8
#define FANBPF_PATTERN_MAX	32	/* bytes, including the NUL */
#define FANBPF_NAME_MAX		256	/* NAME_MAX + 1 */
#define FANBPF_MAX_DEPTH	64	/* directories walked above an object */
#define FANBPF_COMM_LEN		16
#define FANBPF_MAX_ANCESTRY	32	/* thread-group leaders an ancestry walk looks at */

/* fanbpf_rules_args.sections: which rule sections are on (all must match) */
enum fanbpf_section {
	FANBPF_SEC_SUBTREE	= 1 << 0,
	FANBPF_SEC_NAMES	= 1 << 1,
	FANBPF_SEC_PROCESS	= 1 << 2,
};

/* A subtree root, named the way the kernel sees it (dev is s_dev). */
struct fanbpf_root {
	__u64 dev;
	__u64 ino;
};

struct fanbpf_subtree_args {
	__u32 nr_roots;
	__u32 reserved;
	struct fanbpf_root roots[FANBPF_MAX_ROOTS];
};

enum fanbpf_pattern_kind {
	FANBPF_PAT_EXACT	= 1,
	FANBPF_PAT_PREFIX	= 2,
	FANBPF_PAT_SUFFIX	= 3,
	FANBPF_PAT_GLOB		= 4,	/* '*' and '?' */
};

struct fanbpf_pattern {
	__u32 kind;			/* enum fanbpf_pattern_kind */
	__u32 len;			/* strlen(text) */
	char text[FANBPF_PATTERN_MAX];
};

enum fanbpf_names_mode {
	FANBPF_NAMES_INCLUDE	= 0,	/* only names matching a pattern */
	FANBPF_NAMES_EXCLUDE	= 1,	/* only names matching no pattern */
};

struct fanbpf_names_args {
	__u32 mode;			/* enum fanbpf_names_mode */
	__u32 nr_patterns;
	__u64 events;			/* events the rule applies to; 0 = all */
	struct fanbpf_pattern patterns[FANBPF_MAX_PATTERNS];
};

enum fanbpf_process_flags {
	FANBPF_PROC_TGID	= 1 << 0,	/* only events caused by tgid */
	FANBPF_PROC_NOT_TGID	= 1 << 1,	/* drop events caused by not_tgid */
	FANBPF_PROC_UID		= 1 << 2,	/* only events by uid */
	FANBPF_PROC_CGROUP	= 1 << 3,	/* only events from cgroup_id */
	FANBPF_PROC_COMM	= 1 << 4,	/* only events by comm */
	FANBPF_PROC_ANCESTOR	= 1 << 5,	/* only events by ancestor_tgid and its descendants */
	FANBPF_PROC_CGROUP_TREE	= 1 << 6,	/* only events from cgroup_tree_id or a cgroup below */
};

struct fanbpf_process_args {
	__u32 flags;			/* enum fanbpf_process_flags */
	__u32 tgid;
	__u32 not_tgid;
	__u32 uid;
	__u64 cgroup_id;
	char comm[FANBPF_COMM_LEN];
	/* the process-tree rule (appended, so older fields keep their offsets) */
	__u32 ancestor_tgid;		/* not 0 */
	__u32 cgroup_tree_level;	/* cgroup_tree_id's level: 0 is the root cgroup */
	__u64 cgroup_tree_id;		/* a cgroup v2 id (not 0) */
};

/*
 * The "fanbpf_rules" handler.  An event matches when every section in
 * `sections` matches.  Notification events are delivered when they match.
 * Permission events that match are denied with -deny_errno when deny_errno
 * is set and otherwise sent to user space; those that do not match are
 * allowed in the kernel without a round trip.
 */
struct fanbpf_rules_args {
	__u32 sections;			/* enum fanbpf_section */
	__s32 deny_errno;		/* 0, or e.g. EPERM */
	struct fanbpf_subtree_args subtree;
	struct fanbpf_names_args names;
	struct fanbpf_process_args process;
};

#endif /* __FANBPF_RULES_H */
