/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The decision of the fanbpf_rules handler, as pure functions over plain
 * data: the facts the handler gathers about an event (struct
 * fanbpf_event_facts, plus the (dev, ino) of the directories above the
 * object) and the attachment's struct fanbpf_rules_args.  No kernel
 * pointer is touched here.
 *
 * Two programs run this same code:
 *   fanbpf_rules.bpf.c       the struct_ops handler, which gathers the facts
 *                            from the event's inode/dentry/dir/name and the
 *                            current task;
 *   fanbpf_rules_test.bpf.c  a SEC("syscall") program that takes the facts
 *                            from user space (BPF_PROG_TEST_RUN), so the
 *                            compiled logic can be compared with the Python
 *                            model (fanbpf/model.py) on any kernel.
 *
 * The semantics, which fanbpf/model.py restates in Python:
 *
 *  An event MATCHES when every section enabled in args->sections matches:
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
 *           cgroup_tree_level is cgroup_tree_id).
 *           When the ancestry walk looks at FANBPF_MAX_ANCESTRY leaders
 *           without meeting ancestor_tgid or the top of the tree (a task
 *           that is its own parent), the handler cannot decide: the
 *           condition counts as met but the event is delivered UNDECIDED
 *           (sent to user space, never denied) and counted in the
 *           handler's fanbpf_rules_undecided.
 *
 *  NAMES    only for events with a bit in names.events (0 = all events;
 *           other events pass the section).  The name is the event's name
 *           argument if it has one, else the name of its dentry; events
 *           with neither (*_SELF, link-count attrib) have no name, and a
 *           missing name matches no pattern.  INCLUDE mode: the section
 *           matches when some pattern matches; EXCLUDE: when none does.
 *           Patterns are byte strings compared case-sensitively:
 *             EXACT  name == text          PREFIX  name starts with text
 *             SUFFIX name ends with text   GLOB    '*' any run of bytes,
 *                                                  '?' any one byte
 *           (no escapes, no classes; '*' and '?' are literal outside GLOB).
 *
 *  SUBTREE  the object lies under a root, i.e. one of the (dev, ino) roots
 *           is the object's dentry itself or one of the FANBPF_MAX_DEPTH
 *           dentries above it -- on the chain walked from the event's
 *           dentry, or on the chain walked from the dentry of its dir, or
 *           (events with neither dentry nor dir) on the chain walked from
 *           a dentry of its inode.  dev is the superblock's s_dev (the
 *           kernel's dev_t, major << 20 | minor).  See fanbpf_rules.bpf.c
 *           for the walk, which is exactly fanbpf_subtree_kmod's.
 *
 *  A matching event is delivered, except that a matching permission event
 *  is denied with -deny_errno when deny_errno is set.  An event that does
 *  not match is skipped (a permission event is then allowed in the kernel,
 *  without asking user space).
 */
#ifndef __FANBPF_RULES_LOGIC_H
#define __FANBPF_RULES_LOGIC_H

#include "fanbpf_rules.h"

/* fp_handler's return values (== FAN_FP_RET_*) */
#define FANBPF_RET_SEND		0
#define FANBPF_RET_SKIP		1

#define FANBPF_ERRNO_MAX	4095
#define FANBPF_LOGIC_EINVAL	22
#define FANBPF_LOGIC_PERM_EVENTS	(0x00010000 | 0x00020000 | 0x00040000)

#define FANBPF_SEC_ALL	(FANBPF_SEC_SUBTREE | FANBPF_SEC_NAMES | FANBPF_SEC_PROCESS)
#define FANBPF_PROC_ALL	(FANBPF_PROC_TGID | FANBPF_PROC_NOT_TGID | FANBPF_PROC_UID | \
			 FANBPF_PROC_CGROUP | FANBPF_PROC_COMM | FANBPF_PROC_ANCESTOR | \
			 FANBPF_PROC_CGROUP_TREE)

/* Whether an event matched: no, yes, or cannot tell (delivered, counted). */
enum fanbpf_match {
	FANBPF_MATCH_NO		= 0,
	FANBPF_MATCH_YES	= 1,
	FANBPF_MATCH_UNDECIDED	= 2,
};

/* Dentries a subtree walk looks at: the start and FANBPF_MAX_DEPTH above. */
#define FANBPF_CHAIN_MAX	(FANBPF_MAX_DEPTH + 1)

/* What the handler knows about an event, apart from its ancestry. */
struct fanbpf_event_facts {
	__u32 mask;			/* fp_handler's mask */
	__s32 name_len;			/* -1: the event has no name */
	__u32 tgid;			/* of the task that caused the event */
	__u32 uid;			/* its real uid */
	__u64 cgroup_id;		/* its cgroup v2 id */
	char comm[FANBPF_COMM_LEN];
	/*
	 * Gathered only for the process-tree rule, which needs the args:
	 * ancestry is the ancestry walk's answer for process.ancestor_tgid
	 * (enum fanbpf_match), cgroup_ancestor the id of the task's cgroup's
	 * ancestor at process.cgroup_tree_level (0 if its cgroup is higher).
	 */
	__u32 ancestry;
	__u32 reserved;
	__u64 cgroup_ancestor;
	char name[FANBPF_NAME_MAX];	/* name_len bytes */
};

/* One positive dentry on a walk up the tree. */
struct fanbpf_node {
	__u64 ino;			/* d_inode->i_ino */
	__u32 dev;			/* d_sb->s_dev (a dev_t is 32 bits) */
	__u32 reserved;
};

/* A dev no dentry has: dev_t is 32 bits, roots' dev fields 64. */
#define FANBPF_NO_DEV		(~0ULL)

/* --- validation (fp_init) ---------------------------------------------- */

/* 0 if fp_init accepts @a, -EINVAL otherwise. */
static __always_inline int fanbpf_rules_check(const struct fanbpf_rules_args *a)
{
	__u32 i, nr;

	if (a->sections & ~FANBPF_SEC_ALL)
		return -FANBPF_LOGIC_EINVAL;
	if (a->deny_errno < 0 || a->deny_errno > FANBPF_ERRNO_MAX)
		return -FANBPF_LOGIC_EINVAL;
	if (a->subtree.nr_roots > FANBPF_MAX_ROOTS || a->subtree.reserved)
		return -FANBPF_LOGIC_EINVAL;
	if (a->names.mode > FANBPF_NAMES_EXCLUDE ||
	    a->names.nr_patterns > FANBPF_MAX_PATTERNS)
		return -FANBPF_LOGIC_EINVAL;
	nr = a->names.nr_patterns;
	for (i = 0; i < FANBPF_MAX_PATTERNS; i++) {
		if (i >= nr)
			break;
		if (a->names.patterns[i].kind < FANBPF_PAT_EXACT ||
		    a->names.patterns[i].kind > FANBPF_PAT_GLOB ||
		    a->names.patterns[i].len >= FANBPF_PATTERN_MAX)
			return -FANBPF_LOGIC_EINVAL;
	}
	if (a->process.flags & ~FANBPF_PROC_ALL)
		return -FANBPF_LOGIC_EINVAL;
	/* 0 would match the idle task at the top of every walk / no cgroup */
	if ((a->process.flags & FANBPF_PROC_ANCESTOR) && !a->process.ancestor_tgid)
		return -FANBPF_LOGIC_EINVAL;
	if ((a->process.flags & FANBPF_PROC_CGROUP_TREE) && !a->process.cgroup_tree_id)
		return -FANBPF_LOGIC_EINVAL;
	return 0;
}

/*
 * After a successful check, fp_init points the unused root slots at
 * FANBPF_NO_DEV so that matching can compare all FANBPF_MAX_ROOTS slots
 * without looking at nr_roots.
 *
 * Verifier: a root loop bounded by nr_roots, nested in the walk's loop,
 * keeps nr_roots' range live and different on every path and the
 * verifier gives up after a million instructions; an unrolled loop over
 * all slots adds no states.
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

/* --- NAMES: one matcher for all four pattern kinds ---------------------- */

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
 * FANBPF_MATCH_STEPS(n, m) = (n + 1) * (m + 1) + m + 1 suffices (8481 for
 * n = 255, m = 32).
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
 *    OR nor the mask changes a value (s, mark <= 255 < 511;
 *    p, star1 <= 33 < 63).  Fields are also loaded OR-ed with st->zero:
 *    a plain load stays linked to its stack slot, and a test on it
 *    (p == 0, s < n) would narrow the slot's range on that path.
 *  - star is kept as star1 = star + 1 (0: none) so it is never negative.
 *  - Indices are masked to the buffer sizes at each access, so every
 *    access is provably in bounds.
 */
#define FANBPF_TOK_STAR		(-1)
#define FANBPF_TOK_ANY		(-2)
#define FANBPF_MATCH_STEPS(n, m)	(((n) + 1) * ((m) + 1) + (m) + 1)
#define FANBPF_POS_MASK		511	/* > FANBPF_NAME_MAX */
#define FANBPF_TOKEN_MASK	63	/* > FANBPF_PATTERN_MAX + 1 */

/* Always 0; a load from a writable global, so the verifier cannot know. */
static volatile __u32 fanbpf_unknown_zero;

#define FANBPF_LAUNDER(st, v, mask)	(((v) | (st)->zero) & (mask))
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
	c = st->text[i & (FANBPF_PATTERN_MAX - 1)];
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
				st->star1 = FANBPF_LAUNDER(st, p + 1, FANBPF_TOKEN_MASK);
				st->mark = FANBPF_LAUNDER(st, s, FANBPF_POS_MASK);
				st->p = FANBPF_LAUNDER(st, p + 1, FANBPF_TOKEN_MASK);
				return 0;
			}
			if (t == FANBPF_TOK_ANY ||
			    t == (unsigned char)st->name[s & (FANBPF_NAME_MAX - 1)]) {
				st->s = FANBPF_LAUNDER(st, s + 1, FANBPF_POS_MASK);
				st->p = FANBPF_LAUNDER(st, p + 1, FANBPF_TOKEN_MASK);
				return 0;
			}
		}
		star1 = FANBPF_LOAD(st, star1);
		if (star1) {			/* let the last '*' eat one more */
			st->mark = FANBPF_LAUNDER(st, FANBPF_LOAD(st, mark) + 1, FANBPF_POS_MASK);
			st->s = st->mark;
			st->p = FANBPF_LAUNDER(st, star1, FANBPF_TOKEN_MASK);
			return 0;
		}
		st->result = 0;
		return 1;
	}
	if (p < m && fanbpf_token(st, p) == FANBPF_TOK_STAR) {
		/* trailing '*'s match nothing */
		st->p = FANBPF_LAUNDER(st, p + 1, FANBPF_TOKEN_MASK);
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
	    len >= FANBPF_PATTERN_MAX || n >= FANBPF_NAME_MAX)
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
	st.s = FANBPF_LAUNDER(&st, 0, FANBPF_POS_MASK);
	st.p = FANBPF_LAUNDER(&st, 0, FANBPF_TOKEN_MASK);
	st.star1 = FANBPF_LAUNDER(&st, 0, FANBPF_TOKEN_MASK);
	st.mark = FANBPF_LAUNDER(&st, 0, FANBPF_POS_MASK);
	st.result = -1;
	bpf_loop(FANBPF_MATCH_STEPS(n, st.m), fanbpf_match_step, &st, 0);
	return st.result == 1;
}

static __always_inline bool fanbpf_names_match(const struct fanbpf_names_args *na,
					       __u32 mask, const char *name,
					       __s32 name_len)
{
	__u32 i, nr = na->nr_patterns;
	bool hit = false;

	if (na->events && !((__u64)mask & na->events))
		return true;			/* the section does not apply */
	if (name_len >= 0 && name_len < FANBPF_NAME_MAX) {
		for (i = 0; i < FANBPF_MAX_PATTERNS; i++) {
			if (i >= nr)
				break;
			if (fanbpf_pattern_match(&na->patterns[i], name, name_len)) {
				hit = true;
				break;
			}
		}
	}
	return na->mode == FANBPF_NAMES_EXCLUDE ? !hit : hit;
}

/* --- SUBTREE ------------------------------------------------------------- */

/* Is the dentry (dev, ino) one of the roots?  Needs normalized args. */
static __always_inline bool fanbpf_subtree_is_root(const struct fanbpf_subtree_args *sa,
						   __u32 dev, __u64 ino)
{
	__u32 i;

#pragma unroll
	for (i = 0; i < FANBPF_MAX_ROOTS; i++) {
		if (sa->roots[i].ino == ino && sa->roots[i].dev == (__u64)dev)
			return true;
	}
	return false;
}

/* Is a root on a chain of positive dentries collected by a walk? */
static __always_inline bool fanbpf_chain_inside(const struct fanbpf_subtree_args *sa,
						const struct fanbpf_node *nodes, __u32 len)
{
	__u32 i;

	for (i = 0; i < FANBPF_CHAIN_MAX; i++) {
		if (i >= len)
			break;
		if (fanbpf_subtree_is_root(sa, nodes[i].dev, nodes[i].ino))
			return true;
	}
	return false;
}

/* --- the decision -------------------------------------------------------- */

/* The sections that need no dentry walk: PROCESS, then NAMES. */
static __always_inline int fanbpf_rules_prefilter(const struct fanbpf_rules_args *a,
						  const struct fanbpf_event_facts *f)
{
	int match = FANBPF_MATCH_YES;

	if (a->sections & FANBPF_SEC_PROCESS) {
		match = fanbpf_process_match(&a->process, f);
		if (match == FANBPF_MATCH_NO)
			return FANBPF_MATCH_NO;
	}
	if ((a->sections & FANBPF_SEC_NAMES) &&
	    !fanbpf_names_match(&a->names, f->mask, f->name, f->name_len))
		return FANBPF_MATCH_NO;
	return match;
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

/*
 * Whether the event matches (enum fanbpf_match).  inside_expr says whether
 * the object is under a root; it is evaluated only when the SUBTREE section
 * is on and the cheaper sections did not say no, so the handler walks the
 * tree only when it must.  fp_handler returns fanbpf_rules_verdict() of it.
 */
#define fanbpf_rules_match(a, f, inside_expr) ({				\
	int __m = fanbpf_rules_prefilter((a), (f));				\
										\
	if (__m != FANBPF_MATCH_NO && ((a)->sections & FANBPF_SEC_SUBTREE) &&	\
	    !(inside_expr))							\
		__m = FANBPF_MATCH_NO;						\
	__m;									\
})

#endif /* __FANBPF_RULES_LOGIC_H */
