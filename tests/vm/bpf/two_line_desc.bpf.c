// SPDX-License-Identifier: GPL-2.0
/* Must not register: sysfs shows a description as one line. */
#define NO_INIT_NAME "t_two_lines"
#define NO_INIT_DESC "two\nlines"
#include "no_init.bpf.c"
