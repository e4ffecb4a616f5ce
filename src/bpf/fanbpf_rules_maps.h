/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The rules maps, defined once for the two objects that use them: the
 * fanbpf_rules handler (fanbpf_rules.bpf.c) and its test program
 * (fanbpf_rules_test.bpf.c).  Both objects get maps of the same names,
 * types and layouts, so user space (fanbpf/rulesmaps.py) fills either the
 * same way.  Keys and values are the structs of fanbpf_rules.h; every key
 * starts with the attachment's rule set id (fanbpf_rules_args.set_id).
 *
 * BPF only: include after vmlinux.h and bpf_helpers.h.
 */
#ifndef __FANBPF_RULES_MAPS_H
#define __FANBPF_RULES_MAPS_H

#include "fanbpf_rules.h"

#define FANBPF_MAX_NODES	(1 << 20)	/* roots and excluded subtrees, all sets */
#define FANBPF_MAX_NAMES	(1 << 16)	/* EXACT name patterns, all sets */
#define FANBPF_MAX_GLOB_ENTRIES	(1 << 14)	/* other name patterns, all sets */
#define FANBPF_MAX_SETS		4096		/* attachments with a set id at once */

/* {set_id, dev, ino} -> enum fanbpf_node_kind bits */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FANBPF_MAX_NODES);
	__type(key, struct fanbpf_node_key);
	__type(value, __u32);
} fanbpf_rules_nodes SEC(".maps");

/* {set_id, list, len, name} -> 1 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FANBPF_MAX_NAMES);
	__type(key, struct fanbpf_name_key);
	__type(value, __u32);
} fanbpf_rules_names SEC(".maps");

/* {set_id, list, index} -> pattern */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FANBPF_MAX_GLOB_ENTRIES);
	__type(key, struct fanbpf_glob_key);
	__type(value, struct fanbpf_pattern);
} fanbpf_rules_globs SEC(".maps");

/* set_id -> what the handler decided, per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FANBPF_MAX_SETS);
	__type(key, __u64);
	__type(value, struct fanbpf_rules_stats);
} fanbpf_rules_stats SEC(".maps");

#endif /* __FANBPF_RULES_MAPS_H */
