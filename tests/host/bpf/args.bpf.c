// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test object for the host tests: argument structs covering every kind the
 * BTF encoder handles, globals in .rodata/.data/.bss, and a SEC("syscall")
 * program for BPF_PROG_TEST_RUN.  Loads on any kernel with BPF.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum test_color {
	TEST_RED	= 1,
	TEST_GREEN	= 2,
	TEST_BLUE	= -3,	/* negative: the enum is signed */
};

enum test_wide {
	TEST_WIDE	= 0x100000000ULL,	/* needs BTF_KIND_ENUM64 */
};

struct test_point {
	__s16 x;
	__u8 y;
	/* padding */
	__u32 z;
};

union test_u {
	__u32 a;
	__u16 b;
};

struct test_args {
	__u8 u8v;
	__s8 s8v;
	__u16 u16v;
	__s32 s32v;
	__u64 u64v;
	__s64 s64v;
	bool flag;
	char name[16];
	__u8 blob[8];
	enum test_color color;
	struct test_point points[3];
	__u32 counts[4];
	union {				/* anonymous: its members are fields */
		__u32 word;
		__u8 bytes[4];
	};
	union test_u u;
	struct {
		__u32 inner;
	} nested;
	void *ptr;
	double ratio;
	enum test_wide wide;
	__u32 bits : 3;
};

/* over FAN_FP_ARGS_MAX */
struct test_big_args {
	__u8 data[2000];
};

/* the context of the syscall program */
struct run_ctx {
	__u64 in;
	__u64 out;
};

const volatile __u64 bias = 0;
__u32 runs_data = 5;
__u64 runs;
struct test_args args_global;
struct test_big_args big_global;

SEC("syscall")
int echo(struct run_ctx *ctx)
{
	ctx->out = ctx->in * 2 + bias;
	runs++;
	return 7 + runs_data;
}
