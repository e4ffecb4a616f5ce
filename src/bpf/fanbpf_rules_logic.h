/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The decision of the fanbpf_rules handler, written once for the two
 * programs that run it:
 *   fanbpf_rules.bpf.c       the struct_ops handler, which walks the event's
 *                            dentries with the parents iterator and reads
 *                            names with the fanotify kfuncs;
 *   fanbpf_rules_test.bpf.c  a SEC("syscall") program that takes the same
 *                            walks as chains of nodes from user space
 *                            (BPF_PROG_TEST_RUN), so the compiled logic can
 *                            be compared with the Python model
 *                            (fanbpf/model.py) on any kernel.
 * Both read the attachment's rule set from the same maps
 * (fanbpf_rules_maps.h).  No kernel object is touched here: the callers
 * hand in (dev, ino) pairs, names copied into a struct fanbpf_name_key,
 * and the process facts.
 *
 * The semantics, which fanbpf/model.py restates in Python and
 * docs/rules.md explains:
 *
 *  An event MATCHES when every section enabled in args->sections matches.
 *
 *  PROCESS  every condition set in process.flags holds for the task that
 *           caused the event: tgid == process.tgid; tgid != not_tgid;
 *           uid (real uid, as bpf_get_current_uid_gid() reports it) ==
 *           process.uid; cgroup v2 id == process.cgroup_id; comm equals
 *           process.comm (compared up to the first NUL, at most 16 bytes);
 *           ANCESTOR: ancestor_tgid is the task's thread group or one of
 *           its ancestors -- walking the thread-group leaders up through
 *           real_parent, the task's own first, looking at most at
 *           FANBPF_MAX_ANCESTRY of them; CGROUP_TREE: the task's cgroup v2
 *           is cgroup_tree_id or below it (its ancestor at level
 *           cgroup_tree_level is cgroup_tree_id).  An ancestry walk that
 *           looks at FANBPF_MAX_ANCESTRY leaders without meeting
 *           ancestor_tgid or the top of the tree cannot decide: UNDECIDED.
 *
 *  NAMES    only for events with a bit in names.events (0 = all events;
 *           other events pass the section).  The name is the event's name
 *           argument if it has one, else the name of its dentry; events
 *           with neither (*_SELF, link-count attrib) have no name, and a
 *           missing name is on no list.  INCLUDE mode: the section matches
 *           when the name is on the NAMES list; EXCLUDE: when it is not.
 *
 *  SUBTREE, EXCLUDE: the walks.  A walk ("chain") starts at a node and
 *           goes up to the superblock's root, looking at most at
 *           FANBPF_MAX_DEPTH dentries.  An event has up to two: from its
 *           dentry; from its dir, preceded by a virtual node for the
 *           event's name (no dev/ino: never a root or an excluded node);
 *           events with neither dentry nor dir walk from a dentry of the
 *           inode (none if it has none left: nothing to look at).
 *           Walking up, the FIRST node that decides wins:
 *             a root (in the args, or ROOT in fanbpf_rules_nodes), SUBTREE
 *               on                                      -> INSIDE
 *             EXCLUDED in fanbpf_rules_nodes, or a directory whose name
 *               is on the DIRS list, EXCLUDE on         -> EXCLUDED
 *           (a node that is both counts as a root; a root's name is never
 *           looked at).  The first node of a chain is a directory when
 *           the event's mask has FAN_ONDIR; the nodes above it are
 *           directories.  No node decides up to the top: OUTSIDE; the walk
 *           looked at FANBPF_MAX_DEPTH dentries without reaching the top:
 *           UNDECIDED.
 *           SUBTREE on: the sections match when some chain is INSIDE;
 *           else UNDECIDED if some chain is; else not.  SUBTREE off,
 *           EXCLUDE on: they match when some chain is OUTSIDE; else
 *           UNDECIDED if some chain is; else (every chain EXCLUDED) not.
 *           Nothing to walk counts as one OUTSIDE chain.
 *
 *  A list (NAMES, DIRS) holds a name when the names map has {set_id,
 *  list, name} (looked up only if the list's nr_exact is not 0) or when
 *  one of the list's globs map entries 0 .. nr_globs - 1 matches it.
 *  Patterns are byte strings compared case-sensitively:
 *      EXACT  name == text          PREFIX  name starts with text
 *      SUFFIX name ends with text   GLOB    '*' any run of bytes, '?' any
 *                                           one byte (nothing else special)
 *  A glob entry with an unknown kind or len >= FANBPF_NAME_MAX matches
 *  nothing; so does a missing one.
 *
 *  A matching event is delivered, except that a matching permission event
 *  is denied with -deny_errno when deny_errno is set.  An UNDECIDED event
 *  is delivered (never denied).  Other events are skipped (a permission
 *  event is then allowed in the kernel, without asking user space).  With
 *  a set id, the attachment's stats count each outcome.
 */
#ifndef __FANBPF_RULES_LOGIC_H
#define __FANBPF_RULES_LOGIC_H

#include "fanbpf_rules_maps.h"

/* fp_handler's return values (== FAN_FP_RET_*) */
#define FANBPF_RET_SEND		0
#define FANBPF_RET_SKIP		1

#define FANBPF_ERRNO_MAX	4095
#define FANBPF_LOGIC_EINVAL	22

/*
 * The handler's fp_init names the field it refuses (fanbpf_refuse() of
 * fanotify_fastpath.bpf.h); the test program, which does not include
 * that header, just says -EINVAL.
 */
#ifdef fanbpf_refuse
#define FANBPF_RULES_REFUSE(a, field)	fanbpf_refuse(a, field)
#else
#define FANBPF_RULES_REFUSE(a, field)	(-FANBPF_LOGIC_EINVAL)
#endif
#define FANBPF_LOGIC_PERM_EVENTS	(0x00010000 | 0x00020000 | 0x00040000)
#define FANBPF_LOGIC_ONDIR	0x40000000

#define FANBPF_SEC_ALL	(FANBPF_SEC_SUBTREE | FANBPF_SEC_NAMES | FANBPF_SEC_PROCESS | \
			 FANBPF_SEC_EXCLUDE)
#define FANBPF_SEC_MAPS	(FANBPF_SEC_NAMES | FANBPF_SEC_EXCLUDE)	/* need a set id */
#define FANBPF_SEC_WALK	(FANBPF_SEC_SUBTREE | FANBPF_SEC_EXCLUDE)	/* need the walks */
#define FANBPF_PROC_ALL	(FANBPF_PROC_TGID | FANBPF_PROC_NOT_TGID | FANBPF_PROC_UID | \
			 FANBPF_PROC_CGROUP | FANBPF_PROC_COMM | FANBPF_PROC_ANCESTOR | \
			 FANBPF_PROC_CGROUP_TREE)

/* Whether an event matched: no, yes, or cannot tell (delivered, counted). */
enum fanbpf_match {
	FANBPF_MATCH_NO		= 0,
	FANBPF_MATCH_YES	= 1,
	FANBPF_MATCH_UNDECIDED	= 2,
};

/* What one walk found: the nearest node that decided, or why none did. */
enum fanbpf_walk {
	FANBPF_WALK_NONE	= -1,	/* not walked */
	FANBPF_WALK_OUTSIDE	= 0,	/* reached the top, no node decided */
	FANBPF_WALK_INSIDE	= 1,	/* a root */
	FANBPF_WALK_EXCLUDED	= 2,	/* an excluded node or directory name */
	FANBPF_WALK_UNDECIDED	= 3,	/* no top: FANBPF_MAX_DEPTH dentries, or none */
	FANBPF_WALK_NEXT	= 4,	/* (this node does not decide) */
};

/* What the handler knows about the task that caused an event. */
struct fanbpf_event_facts {
	__u32 mask;			/* fp_handler's mask */
	__u32 tgid;			/* of the task that caused the event */
	__u32 uid;			/* its real uid */
	/*
	 * Gathered only for the process-tree rule, which needs the args:
	 * ancestry is the ancestry walk's answer for process.ancestor_tgid
	 * (enum fanbpf_match), cgroup_ancestor the id of the task's cgroup's
	 * ancestor at process.cgroup_tree_level (0 if its cgroup is higher).
	 */
	__u32 ancestry;
	__u64 cgroup_id;		/* its cgroup v2 id */
	__u64 cgroup_ancestor;
	char comm[FANBPF_COMM_LEN];
};

/* A dev no dentry has: dev_t is 32 bits, roots' dev fields 64. */
#define FANBPF_NO_DEV		(~0ULL)

/* --- validation (fp_init) ---------------------------------------------- */

/* 0 if fp_init accepts @a, -EINVAL otherwise. */
static __always_inline int fanbpf_rules_check(const struct fanbpf_rules_args *a)
{
	if (a->sections & ~FANBPF_SEC_ALL)
		return FANBPF_RULES_REFUSE(a, sections);
	/* the lists and nodes are keyed by the set id: 0 has none */
	if ((a->sections & FANBPF_SEC_MAPS) && !a->set_id)
		return FANBPF_RULES_REFUSE(a, set_id);
	if (a->deny_errno < 0 || a->deny_errno > FANBPF_ERRNO_MAX)
		return FANBPF_RULES_REFUSE(a, deny_errno);
	if (a->subtree.nr_roots > FANBPF_MAX_ROOTS)
		return FANBPF_RULES_REFUSE(a, subtree.nr_roots);
	if (a->subtree.reserved)
		return FANBPF_RULES_REFUSE(a, subtree.reserved);
	if (a->names.mode > FANBPF_NAMES_EXCLUDE)
		return FANBPF_RULES_REFUSE(a, names.mode);
	if (a->names.reserved)
		return FANBPF_RULES_REFUSE(a, names.reserved);
	if (a->names.nr_globs > FANBPF_MAX_GLOBS)
		return FANBPF_RULES_REFUSE(a, names.nr_globs);
	if (a->dirs.nr_globs > FANBPF_MAX_GLOBS)
		return FANBPF_RULES_REFUSE(a, dirs.nr_globs);
	if (a->process.flags & ~FANBPF_PROC_ALL)
		return FANBPF_RULES_REFUSE(a, process.flags);
	/* 0 would match the idle task at the top of every walk / no cgroup */
	if ((a->process.flags & FANBPF_PROC_ANCESTOR) && !a->process.ancestor_tgid)
		return FANBPF_RULES_REFUSE(a, process.ancestor_tgid);
	if ((a->process.flags & FANBPF_PROC_CGROUP_TREE) && !a->process.cgroup_tree_id)
		return FANBPF_RULES_REFUSE(a, process.cgroup_tree_id);
	return 0;
}

/*
 * After a successful check, fp_init points the unused root slots at
 * FANBPF_NO_DEV so that matching can compare all FANBPF_MAX_ROOTS slots
 * without looking at nr_roots.
 *
 * Verifier: a root loop bounded by nr_roots, nested in the walk's loop,
 * keeps nr_roots' range live and different on every path; an unrolled
 * loop over all slots adds no states.
 */
static __always_inline void fanbpf_rules_normalize(struct fanbpf_rules_args *a)
{
	__u32 i, nr = a->subtree.nr_roots;

#pragma unroll
	for (i = 0; i < FANBPF_MAX_ROOTS; i++) {
		if (i >= nr) {
			a->subtree.roots[i].dev = FANBPF_NO_DEV;
			a->subtree.roots[i].ino = 0;
		}
	}
}

/* --- PROCESS ------------------------------------------------------------- */

static __always_inline bool fanbpf_comm_eq(const char *a, const char *b)
{
	int i;

	for (i = 0; i < FANBPF_COMM_LEN; i++) {
		if (a[i] != b[i])
			return false;
		if (!a[i])
			return true;
	}
	return true;
}

/*
 * The ancestry walk, written once for both programs over a cursor: the
 * handler's cursor is a task pointer, the test program's an index into a
 * list of tgids.  TGID(c) is the thread-group id at c, UP(c) the next
 * leader up, or 0 past the top.  Evaluates to an enum fanbpf_match.
 */
#define fanbpf_ancestry_walk(target, start, TGID, UP) ({			\
	__typeof__(start) __c = (start);					\
	int __r = FANBPF_MATCH_UNDECIDED, __i;					\
										\
	for (__i = 0; __i < FANBPF_MAX_ANCESTRY; __i++) {			\
		if (!__c) {							\
			__r = FANBPF_MATCH_NO;					\
			break;							\
		}								\
		if (TGID(__c) == (target)) {					\
			__r = FANBPF_MATCH_YES;					\
			break;							\
		}								\
		__c = UP(__c);							\
	}									\
	__r;									\
})

static __always_inline int fanbpf_process_match(const struct fanbpf_process_args *p,
						const struct fanbpf_event_facts *f)
{
	__u32 flags = p->flags;

	if ((flags & FANBPF_PROC_TGID) && f->tgid != p->tgid)
		return FANBPF_MATCH_NO;
	if ((flags & FANBPF_PROC_NOT_TGID) && f->tgid == p->not_tgid)
		return FANBPF_MATCH_NO;
	if ((flags & FANBPF_PROC_UID) && f->uid != p->uid)
		return FANBPF_MATCH_NO;
	if ((flags & FANBPF_PROC_CGROUP) && f->cgroup_id != p->cgroup_id)
		return FANBPF_MATCH_NO;
	if ((flags & FANBPF_PROC_COMM) && !fanbpf_comm_eq(f->comm, p->comm))
		return FANBPF_MATCH_NO;
	if ((flags & FANBPF_PROC_CGROUP_TREE) && f->cgroup_ancestor != p->cgroup_tree_id)
		return FANBPF_MATCH_NO;
	if (flags & FANBPF_PROC_ANCESTOR)
		return f->ancestry == FANBPF_MATCH_YES ? FANBPF_MATCH_YES :
		       f->ancestry == FANBPF_MATCH_NO ? FANBPF_MATCH_NO : FANBPF_MATCH_UNDECIDED;
	return FANBPF_MATCH_YES;
}

/* --- names: one matcher for all four pattern kinds ----------------------- */

/*
 * Every kind is a glob over "tokens": EXACT is the text taken literally,
 * PREFIX the literal text then a '*', SUFFIX a '*' then the literal text,
 * GLOB the text with '*' and '?' active.  The tokens are matched with the
 * classic greedy algorithm that remembers only the last '*' (correct for
 * globs without character classes), one step per bpf_loop() iteration.
 *
 * Step bound: a backtrack increments `mark`, which never decreases and
 * stays <= n, so there are at most n backtracks; between two of them
 * every step advances p, which stays <= m.  Hence at most
 * n + (n + 1) * m + 1 steps while s < n, then at most m + 1 to finish:
 * FANBPF_MATCH_STEPS(n, m) = (n + 1) * (m + 1) + m + 1 suffices (66049
 * for n = 255, m = 256; bpf_loop() allows 1 << 23).
 *
 * Verifier, which shaped all of this:
 *  - A name is up to 255 bytes and a step may back up, so a bounded loop
 *    would be verified once per possible iteration; bpf_loop() verifies
 *    the step until its state converges.
 *  - The state lives on the caller's stack, reached through the callback's
 *    ctx.  s and p index the name and the text, so the verifier tracks
 *    their ranges precisely, and every path through a step would store
 *    slightly different ranges ([0,30], [1,31], ...): the state would
 *    never converge.  So positions are stored "laundered": OR-ed with
 *    st->zero, a zero the verifier cannot see through (it comes from a
 *    writable global), then masked to a power of two above their real
 *    maximum.  Every stored position then has the same range,
 *    [0, mask], and the callback converges after one pass.  Neither the
 *    OR nor the mask changes a value (s, mark <= 255 and p, star1 <= 257
 *    are all < 511).  Fields are also loaded OR-ed with st->zero: a plain
 *    load stays linked to its stack slot, and a test on it (p == 0,
 *    s < n) would narrow the slot's range on that path.
 *  - star is kept as star1 = star + 1 (0: none) so it is never negative.
 *  - Indices are masked to the buffer sizes at each access, so every
 *    access is provably in bounds.
 */
#define FANBPF_TOK_STAR		(-1)
#define FANBPF_TOK_ANY		(-2)
#define FANBPF_MATCH_STEPS(n, m)	(((n) + 1) * ((m) + 1) + (m) + 1)
#define FANBPF_POS_MASK		511	/* > FANBPF_NAME_MAX + 1 */

_Static_assert((FANBPF_NAME_MAX & (FANBPF_NAME_MAX - 1)) == 0, "a power of two");

/* Always 0; a load from a writable global, so the verifier cannot know. */
static volatile __u32 fanbpf_unknown_zero;

#define FANBPF_LAUNDER(st, v)		(((v) | (st)->zero) & FANBPF_POS_MASK)
/* Load a field as a fresh value, so tests on it do not narrow the slot. */
#define FANBPF_LOAD(st, field)		((st)->field | (st)->zero)

struct fanbpf_match_state {
	const char *name;
	const char *text;
	__u32 n;		/* name length */
	__u32 len;		/* text length */
	__u32 m;		/* token count: len, +1 for PREFIX/SUFFIX */
	__u32 kind;
	__u32 s;		/* next name byte */
	__u32 p;		/* next token */
	__u32 star1;		/* 1 + token index of the last '*' seen, 0 if none */
	__u32 mark;		/* name index that '*' currently extends to */
	__s32 result;		/* -1 running, 0 no match, 1 match */
	__u32 zero;		/* fanbpf_unknown_zero */
};

static __always_inline int fanbpf_token(const struct fanbpf_match_state *st, __u32 p)
{
	__u32 i = p, kind = FANBPF_LOAD(st, kind);
	unsigned char c;

	if (kind == FANBPF_PAT_SUFFIX) {
		if (p == 0)
			return FANBPF_TOK_STAR;
		i = p - 1;
	}
	if (i >= FANBPF_LOAD(st, len))	/* PREFIX: the '*' after the text */
		return FANBPF_TOK_STAR;
	c = st->text[i & (FANBPF_NAME_MAX - 1)];
	if (kind == FANBPF_PAT_GLOB) {
		if (c == '*')
			return FANBPF_TOK_STAR;
		if (c == '?')
			return FANBPF_TOK_ANY;
	}
	return c;
}

static long fanbpf_match_step(__u64 index, void *ctx)
{
	struct fanbpf_match_state *st = ctx;
	__u32 s = FANBPF_LOAD(st, s), p = FANBPF_LOAD(st, p);
	__u32 n = FANBPF_LOAD(st, n), m = FANBPF_LOAD(st, m), star1;
	int t;

	if (s < n) {
		if (p < m) {
			t = fanbpf_token(st, p);
			if (t == FANBPF_TOK_STAR) {
				st->star1 = FANBPF_LAUNDER(st, p + 1);
				st->mark = FANBPF_LAUNDER(st, s);
				st->p = FANBPF_LAUNDER(st, p + 1);
				return 0;
			}
			if (t == FANBPF_TOK_ANY ||
			    t == (unsigned char)st->name[s & (FANBPF_NAME_MAX - 1)]) {
				st->s = FANBPF_LAUNDER(st, s + 1);
				st->p = FANBPF_LAUNDER(st, p + 1);
				return 0;
			}
		}
		star1 = FANBPF_LOAD(st, star1);
		if (star1) {			/* let the last '*' eat one more */
			st->mark = FANBPF_LAUNDER(st, FANBPF_LOAD(st, mark) + 1);
			st->s = st->mark;
			st->p = FANBPF_LAUNDER(st, star1);
			return 0;
		}
		st->result = 0;
		return 1;
	}
	if (p < m && fanbpf_token(st, p) == FANBPF_TOK_STAR) {
		/* trailing '*'s match nothing */
		st->p = FANBPF_LAUNDER(st, p + 1);
		return 0;
	}
	st->result = p == m;
	return 1;
}

static __always_inline bool fanbpf_pattern_match(const struct fanbpf_pattern *pat,
						 const char *name, __u32 n)
{
	struct fanbpf_match_state st = {};
	__u32 kind = pat->kind, len = pat->len;

	if (kind < FANBPF_PAT_EXACT || kind > FANBPF_PAT_GLOB ||
	    len >= FANBPF_NAME_MAX || n >= FANBPF_NAME_MAX)
		return false;
	if (kind == FANBPF_PAT_EXACT && len != n)
		return false;
	st.name = name;
	st.text = pat->text;
	st.n = n;
	st.len = len;
	st.m = len + (kind == FANBPF_PAT_PREFIX || kind == FANBPF_PAT_SUFFIX);
	st.kind = kind;
	st.zero = fanbpf_unknown_zero;
	st.s = FANBPF_LAUNDER(&st, 0);
	st.p = FANBPF_LAUNDER(&st, 0);
	st.star1 = FANBPF_LAUNDER(&st, 0);
	st.mark = FANBPF_LAUNDER(&st, 0);
	st.result = -1;
	bpf_loop(FANBPF_MATCH_STEPS(n, st.m), fanbpf_match_step, &st, 0);
	return st.result == 1;
}

/* --- the name lists (NAMES, DIRS) ---------------------------------------- */

/*
 * The one key buffer of an event's decision, on the handler's stack: the
 * names map's key (272 bytes, the name buffer too) would leave no room
 * for another key within the 512-byte stack of the whole call chain.  A
 * glob key overlays the name key's set_id, list and len, so the name
 * stays in place while the globs are looked up; a node key overlays the
 * name's first bytes (a node is looked up before its name is copied in).
 */
union fanbpf_rules_key {
	struct fanbpf_name_key name;
	struct fanbpf_glob_key glob;
	struct fanbpf_node_key node;
};

_Static_assert(__builtin_offsetof(struct fanbpf_glob_key, index) ==
	       __builtin_offsetof(struct fanbpf_name_key, len) &&
	       sizeof(struct fanbpf_glob_key) <= __builtin_offsetof(struct fanbpf_name_key, name),
	       "a glob key leaves the name in place");

/*
 * Make @k ready for a name to be copied into it: the lists' names map is
 * keyed by the name zero-filled to the end, so the name buffer is cleared
 * first (a copy writes only the name and its NUL).
 */
static __always_inline void fanbpf_name_key_reset(union fanbpf_rules_key *k, __u64 set_id,
						  __u32 list)
{
	k->name.set_id = set_id;
	k->name.list = list;
	k->name.len = 0;
	__builtin_memset(k->name.name, 0, sizeof(k->name.name));
}

/*
 * Is the name in @k (set_id, list, len and name filled in) on the list?
 * nr_exact and nr_globs are the list's counts from the args.  Leaves @k
 * as it found it.
 *
 * Verifier: a global function, verified once on its own; callers see
 * only its int result.  Static (verified again at every call, for every
 * state of the caller's walk loop, each time through 64 globs and a
 * bpf_loop()), it took the test program past a million instructions.
 */
__noinline int fanbpf_name_listed(union fanbpf_rules_key *k, __u32 nr_exact, __u32 nr_globs)
{
	const struct fanbpf_pattern *pat;
	int i, hit = 0;
	__u32 n;

	if (!k)
		return 0;
	n = k->name.len;
	if (n >= FANBPF_NAME_MAX)
		return 0;
	if (nr_exact && bpf_map_lookup_elem(&fanbpf_rules_names, &k->name))
		return 1;
	if (nr_globs > FANBPF_MAX_GLOBS)	/* fp_init refuses more */
		nr_globs = FANBPF_MAX_GLOBS;
	/*
	 * Verifier: an open-coded iterator, not a bounded loop, which would
	 * be verified 64 times over (each time through a bpf_loop() call).
	 */
	bpf_for(i, 0, nr_globs) {
		k->glob.index = i;	/* overwrites name.len only */
		pat = bpf_map_lookup_elem(&fanbpf_rules_globs, &k->glob);
		if (pat && fanbpf_pattern_match(pat, k->name.name, n)) {
			hit = 1;
			break;
		}
	}
	k->name.len = n;
	return hit;
}

/* Does the NAMES section look at this event? */
static __always_inline bool fanbpf_names_apply(const struct fanbpf_rules_args *a, __u32 mask)
{
	return (a->sections & FANBPF_SEC_NAMES) &&
	       (!a->names.events || ((__u64)mask & a->names.events));
}

/*
 * The NAMES section, for an event it applies to: @key holds the event's
 * name (list FANBPF_LIST_NAMES), or @has_name is false.
 */
static __always_inline bool fanbpf_names_match(const struct fanbpf_rules_args *a,
					       union fanbpf_rules_key *k, bool has_name)
{
	bool hit = has_name && fanbpf_name_listed(k, a->names.nr_exact, a->names.nr_globs);

	return a->names.mode == FANBPF_NAMES_EXCLUDE ? !hit : hit;
}

/* Are directory names looked at on the walks? */
static __always_inline bool fanbpf_dirs_apply(const struct fanbpf_rules_args *a)
{
	return (a->sections & FANBPF_SEC_EXCLUDE) && (a->dirs.nr_exact || a->dirs.nr_globs);
}

/* Is the directory name in @k (list FANBPF_LIST_DIRS) an excluded one? */
static __always_inline bool fanbpf_dir_excluded(const struct fanbpf_rules_args *a,
						union fanbpf_rules_key *k)
{
	return fanbpf_name_listed(k, a->dirs.nr_exact, a->dirs.nr_globs);
}

/* --- the walks ----------------------------------------------------------- */

/* Is (dev, ino) one of the args' roots?  Needs normalized args. */
static __always_inline bool fanbpf_args_root(const struct fanbpf_subtree_args *sa,
					     __u64 dev, __u64 ino)
{
	__u32 i;

#pragma unroll
	for (i = 0; i < FANBPF_MAX_ROOTS; i++) {
		if (sa->roots[i].ino == ino && sa->roots[i].dev == dev)
			return true;
	}
	return false;
}

/*
 * Roots in the init args (an attachment made by a handler's name): the
 * walks compare each ancestor with them, as the node filter knows nothing
 * of them.
 */
static __always_inline bool fanbpf_args_have_roots(const struct fanbpf_rules_args *a)
{
	return (a->sections & FANBPF_SEC_SUBTREE) && a->subtree.nr_roots;
}

/*
 * A node with an identity (a dentry's dev and ino): does it decide by
 * identity?  Returns FANBPF_WALK_INSIDE, _EXCLUDED or _NEXT; for _NEXT
 * the caller looks at the node's name if it is a directory and
 * fanbpf_dirs_apply().  A root decides first: a node that is both a root
 * and excluded is a root.  @k is the key buffer.
 */
static __always_inline int fanbpf_node_decides(const struct fanbpf_rules_args *a,
					       union fanbpf_rules_key *k, __u64 dev, __u64 ino)
{
	const __u32 *kind;
	__u32 bits = 0;

	/*
	 * Rule sets attached by a loaded handler keep every root in the map:
	 * skip the 16-slot compare per ancestor when the args have none.
	 */
	if (fanbpf_args_have_roots(a) && fanbpf_args_root(&a->subtree, dev, ino))
		return FANBPF_WALK_INSIDE;
	if (a->set_id && fanbpf_node_maybe(ino)) {
		k->node.set_id = a->set_id;
		k->node.dev = dev;
		k->node.ino = ino;
		kind = bpf_map_lookup_elem(&fanbpf_rules_nodes, &k->node);
		if (kind)
			bits = *kind;
	}
	if ((a->sections & FANBPF_SEC_SUBTREE) && (bits & FANBPF_NODE_ROOT))
		return FANBPF_WALK_INSIDE;
	if ((a->sections & FANBPF_SEC_EXCLUDE) && (bits & FANBPF_NODE_EXCLUDED))
		return FANBPF_WALK_EXCLUDED;
	return FANBPF_WALK_NEXT;
}

/* Does one walk's result settle the walk sections, whatever the other says? */
static __always_inline bool fanbpf_walk_settles(const struct fanbpf_rules_args *a, int w)
{
	return a->sections & FANBPF_SEC_SUBTREE ? w == FANBPF_WALK_INSIDE
						: w == FANBPF_WALK_OUTSIDE;
}

/*
 * The SUBTREE and EXCLUDE sections together (enum fanbpf_match), from the
 * results of the event's walks (FANBPF_WALK_NONE: not walked).
 */
static __always_inline int fanbpf_walks_match(const struct fanbpf_rules_args *a, int w0, int w1)
{
	/* nothing to start from (FAN_FS_ERROR about a whole file system) */
	if (w0 == FANBPF_WALK_NONE && w1 == FANBPF_WALK_NONE)
		w0 = FANBPF_WALK_OUTSIDE;
	if (fanbpf_walk_settles(a, w0) || fanbpf_walk_settles(a, w1))
		return FANBPF_MATCH_YES;
	if (w0 == FANBPF_WALK_UNDECIDED || w1 == FANBPF_WALK_UNDECIDED)
		return FANBPF_MATCH_UNDECIDED;
	return FANBPF_MATCH_NO;
}

/* --- the decision -------------------------------------------------------- */

/* Both answers together: no if either says no, else undecided if either is. */
static __always_inline int fanbpf_match_and(int m1, int m2)
{
	if (m1 == FANBPF_MATCH_NO || m2 == FANBPF_MATCH_NO)
		return FANBPF_MATCH_NO;
	if (m1 == FANBPF_MATCH_UNDECIDED || m2 == FANBPF_MATCH_UNDECIDED)
		return FANBPF_MATCH_UNDECIDED;
	return FANBPF_MATCH_YES;
}

/* What fp_handler returns once it knows whether the event matched. */
static __always_inline int fanbpf_rules_verdict(const struct fanbpf_rules_args *a,
						__u32 mask, int match)
{
	__s32 err = a->deny_errno;

	if (match == FANBPF_MATCH_NO)
		return FANBPF_RET_SKIP;
	if (match == FANBPF_MATCH_YES && (mask & FANBPF_LOGIC_PERM_EVENTS) &&
	    err > 0 && err <= FANBPF_ERRNO_MAX)
		return -err;
	return FANBPF_RET_SEND;		/* undecided: user space decides */
}

/* --- stats --------------------------------------------------------------- */

/* fp_init: the set id is hook @hook_id's; -EEXIST if another has it. */
static __always_inline int fanbpf_set_claim(__u64 set_id, __u64 hook_id)
{
	if (!set_id)
		return 0;
	return bpf_map_update_elem(&fanbpf_rules_sets, &set_id, &hook_id, BPF_NOEXIST);
}

/* fp_free */
static __always_inline void fanbpf_set_release(__u64 set_id)
{
	if (set_id)
		bpf_map_delete_elem(&fanbpf_rules_sets, &set_id);
}

/* Count what fp_handler decided (atomic: every CPU counts into @s). */
static __always_inline void fanbpf_stats_count(struct fanbpf_rules_stats *s, int match,
					       int verdict)
{
	if (verdict == FANBPF_RET_SEND)
		__sync_fetch_and_add(&s->delivered, 1);
	else if (verdict == FANBPF_RET_SKIP)
		__sync_fetch_and_add(&s->skipped, 1);
	else
		__sync_fetch_and_add(&s->denied, 1);
	if (match == FANBPF_MATCH_UNDECIDED)
		__sync_fetch_and_add(&s->undecided, 1);
}

#endif /* __FANBPF_RULES_LOGIC_H */
