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

/*
 * In front of fanbpf_rules_nodes, a filter of one bit per inode number
 * (modulo its size) over the nodes of every set: a walk looks an ancestor
 * up in the hash map only when its bit is set, and the kernel steps past
 * the ancestors whose bit is clear without returning them
 * (bpf_iter_fanotify_parents_skip(), which reads this map as one bitmap:
 * hence the bit is the inode number's low bits, the kernel's rule, and the
 * entries a power of two).  Hashing the 24-byte key took two thirds of a
 * walk's time per ancestor; an array lookup the verifier inlines does not.
 * User space (fanbpf/rulesmaps.py) sets a node's bit before it inserts the
 * node, and clears bits only when it rebuilds the filter from the nodes
 * map: a set bit may be stale (one wasted lookup), a node is never missed.
 * fanbpf_node_filter_bit() is mirrored there.  The dev is left out: inode
 * numbers differ between the directories of one filesystem, and a clash
 * across filesystems costs one lookup.
 */
#define FANBPF_NODE_FILTER_BITS_LOG	21
#define FANBPF_NODE_FILTER_WORDS	(1 << (FANBPF_NODE_FILTER_BITS_LOG - 6))

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FANBPF_NODE_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} fanbpf_rules_node_filter SEC(".maps");

static __always_inline __u32 fanbpf_node_filter_bit(__u64 ino)
{
	return ino & ((1U << FANBPF_NODE_FILTER_BITS_LOG) - 1);
}

/* May a node have inode number @ino?  false: certainly not. */
static __always_inline bool fanbpf_node_maybe(__u64 ino)
{
	__u32 bit = fanbpf_node_filter_bit(ino), word = bit / 64;
	const __u64 *w = bpf_map_lookup_elem(&fanbpf_rules_node_filter, &word);

	return !w || (*w >> (bit % 64)) & 1;	/* no word: cannot happen; look */
}

/* {set_id, list, len, name} -> 1 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FANBPF_MAX_NAMES);
	__type(key, struct fanbpf_name_key);
	__type(value, __u32);
} fanbpf_rules_names SEC(".maps");

/*
 * The lengths a name on a set's DIRS list can have: a bit per length
 * (fanbpf.model.listed_lengths()), written with the list.  A walk copies
 * and looks up an ancestor's name only when its length's bit is set, so
 * "exclude .git" costs most directories a load and a test rather than a
 * name copy, a hash of the 272-byte name key and the globs.
 *
 * An array indexed by set_id % FANBPF_MAX_SETS, so that the lookup is
 * inlined and can be made per ancestor: a pointer looked up once per
 * event and kept across the walk's loop (NULL or not) took the handler's
 * verification past a million instructions.  A slot whose set_id is not
 * the set's (never written, or taken by another set with the same slot)
 * means any length may be listed.
 */
struct fanbpf_name_lengths {
	__u64 set_id;
	__u64 bits[FANBPF_NAME_MAX / 64];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FANBPF_MAX_SETS);
	__type(key, __u32);
	__type(value, struct fanbpf_name_lengths);
} fanbpf_rules_dir_lengths SEC(".maps");

/* May a directory name of @len bytes be on set @set_id's DIRS list? */
static __always_inline bool fanbpf_dir_len_listed(__u64 set_id, __u32 len)
{
	__u32 slot = set_id % FANBPF_MAX_SETS;
	const struct fanbpf_name_lengths *l;

	if (len >= FANBPF_NAME_MAX)	/* never listed (fanbpf_name_listed) */
		return false;
	l = bpf_map_lookup_elem(&fanbpf_rules_dir_lengths, &slot);
	return !l || l->set_id != set_id || (l->bits[len / 64] >> (len % 64)) & 1;
}

/*
 * fanbpf_dir_len_listed() folded into one word for
 * bpf_iter_fanotify_parents_skip(): bit len % 64 for every length that may
 * be listed, all bits when any may be.
 */
static __always_inline __u64 fanbpf_dir_len_bits(__u64 set_id)
{
	__u32 slot = set_id % FANBPF_MAX_SETS;
	const struct fanbpf_name_lengths *l;

	l = bpf_map_lookup_elem(&fanbpf_rules_dir_lengths, &slot);
	if (!l || l->set_id != set_id)
		return ~0ULL;
	_Static_assert(FANBPF_NAME_MAX / 64 == 4, "fold every word");
	return l->bits[0] | l->bits[1] | l->bits[2] | l->bits[3];
}

/* {set_id, list, index} -> pattern */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FANBPF_MAX_GLOB_ENTRIES);
	__type(key, struct fanbpf_glob_key);
	__type(value, struct fanbpf_pattern);
} fanbpf_rules_globs SEC(".maps");

/*
 * hook id -> the attachment: what the handler decided for it and its
 * args, in one element so that an event costs one lookup (a second hash
 * lookup, of per-CPU counters by set id, was a seventh of the handler's
 * time at depth 1).  fp_init inserts it, fp_free deletes it.
 */
struct fanbpf_rules_hook {
	struct fanbpf_rules_args args;	/* first: the handler's one pointer is both */
	struct fanbpf_rules_stats stats;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FANBPF_MAX_SETS);
	__type(key, __u64);
	__type(value, struct fanbpf_rules_hook);
} fanbpf_rules_hooks SEC(".maps");

/*
 * set_id -> the hook id of the attachment with that set, so that user
 * space finds its counts; an entry also keeps a set id to one attachment.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FANBPF_MAX_SETS);
	__type(key, __u64);
	__type(value, __u64);
} fanbpf_rules_sets SEC(".maps");

#endif /* __FANBPF_RULES_MAPS_H */
