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

#define FANBPF_MAX_ROOTS	16	/* roots in the init args; any number more in fanbpf_rules_nodes */
#define FANBPF_MAX_GLOBS	64	/* non-exact name patterns per list */
#define FANBPF_NAME_MAX		256	/* NAME_MAX + 1: a name or a pattern, with its NUL */
#define FANBPF_MAX_DEPTH	4096	/* dentries a walk looks at: the object and its ancestors */
#define FANBPF_COMM_LEN		16
#define FANBPF_MAX_ANCESTRY	32	/* thread-group leaders an ancestry walk looks at */

/* fanbpf_rules_args.sections: which rule sections are on (all must match) */
enum fanbpf_section {
	FANBPF_SEC_SUBTREE	= 1 << 0,	/* under a root (args roots, ROOT nodes) */
	FANBPF_SEC_NAMES	= 1 << 1,	/* the event's name against the NAMES list */
	FANBPF_SEC_PROCESS	= 1 << 2,
	FANBPF_SEC_EXCLUDE	= 1 << 3,	/* not below an EXCLUDED node or a DIRS-list name */
};

/* A subtree root, named the way the kernel sees it (see struct fanbpf_node_key). */
struct fanbpf_root {
	__u64 dev;
	__u64 ino;
};

/* Roots given as init args (a rule set without maps, e.g. attached by name). */
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

enum fanbpf_names_mode {
	FANBPF_NAMES_INCLUDE	= 0,	/* only names matching a pattern */
	FANBPF_NAMES_EXCLUDE	= 1,	/* only names matching no pattern */
};

/* The NAMES section; its patterns are in the maps (list FANBPF_LIST_NAMES). */
struct fanbpf_names_args {
	__u32 mode;			/* enum fanbpf_names_mode */
	__u32 nr_exact;			/* EXACT patterns in fanbpf_rules_names */
	__u32 nr_globs;			/* other patterns in fanbpf_rules_globs, 0..nr_globs-1 */
	__u32 reserved;
	__u64 events;			/* events the rule applies to; 0 = all */
};

/* Directory names excluded at any depth (list FANBPF_LIST_DIRS). */
struct fanbpf_dirs_args {
	__u32 nr_exact;
	__u32 nr_globs;
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
 * allowed in the kernel without a round trip.  set_id names the
 * attachment's entries in the rules maps below (0: it has none, so it can
 * use only init-args roots and the PROCESS section).
 */
struct fanbpf_rules_args {
	__u32 sections;			/* enum fanbpf_section */
	__s32 deny_errno;		/* 0, or e.g. EPERM */
	__u64 set_id;
	struct fanbpf_subtree_args subtree;
	struct fanbpf_names_args names;
	struct fanbpf_dirs_args dirs;
	struct fanbpf_process_args process;
};

/* --- the rules maps: per attachment, keyed by set_id, written by user space */

/*
 * fanbpf_rules_nodes: directories by identity.  dev is the superblock's
 * s_dev (the kernel's dev_t, major << 20 | minor), except on btrfs, where
 * it is the subvolume's anonymous dev (what stat() reports as st_dev),
 * because inode numbers repeat across the subvolumes of one superblock.
 * ino is i_ino.  Value: enum fanbpf_node_kind.
 */
struct fanbpf_node_key {
	__u64 set_id;
	__u64 dev;
	__u64 ino;
};

enum fanbpf_node_kind {
	FANBPF_NODE_ROOT	= 1,	/* a subtree root */
	FANBPF_NODE_EXCLUDED	= 2,	/* an excluded subtree */
};

enum fanbpf_name_list {
	FANBPF_LIST_NAMES	= 1,	/* the NAMES section's patterns */
	FANBPF_LIST_DIRS	= 2,	/* excluded directory names */
};

/*
 * fanbpf_rules_names: EXACT patterns.  name is the pattern's len bytes,
 * zero-filled to the end, so a name copied into a zeroed key finds it.
 * Value: __u32, 1.
 */
struct fanbpf_name_key {
	__u64 set_id;
	__u32 list;			/* enum fanbpf_name_list */
	__u32 len;
	char name[FANBPF_NAME_MAX];
};

/* fanbpf_rules_globs: PREFIX, SUFFIX and GLOB patterns, by index in a list. */
struct fanbpf_glob_key {
	__u64 set_id;
	__u32 list;			/* enum fanbpf_name_list */
	__u32 index;			/* 0 .. nr_globs - 1 */
};

struct fanbpf_pattern {
	__u32 kind;			/* enum fanbpf_pattern_kind, not EXACT */
	__u32 len;			/* strlen(text), < FANBPF_NAME_MAX */
	char text[FANBPF_NAME_MAX];	/* zero-filled past len */
};

/*
 * What the handler decided for one attachment (in its fanbpf_rules_hooks
 * element).  undecided events are also counted as delivered.
 */
struct fanbpf_rules_stats {
	__u64 delivered;		/* sent to user space */
	__u64 skipped;			/* dropped (permission events: allowed) */
	__u64 denied;			/* permission events denied with deny_errno */
	__u64 undecided;		/* delivered because the handler could not decide */
};

#endif /* __FANBPF_RULES_H */
