// SPDX-License-Identifier: GPL-2.0
/*
 * uring_read PATH: read PATH once through io_uring and print the
 * completion's result ("res=N", N < 0 an errno), or "timeout" if none came
 * within 30 s.  An ACCESS_PERM handler that "denies" with a kernel-internal
 * code such as -EIOCBQUEUED makes io_uring wait for a completion that never
 * comes; the timeout turns that hang into a test failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct __kernel_timespec ts = { .tv_sec = 30 };
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	char buf[64];
	int fd, ret;

	if (argc != 2) {
		fprintf(stderr, "usage: uring_read PATH\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 2;
	}
	ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return 2;
	}
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read(sqe, fd, buf, sizeof(buf), 0);
	io_uring_submit(&ring);
	ret = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
	if (ret == -ETIME) {
		printf("timeout\n");
		fflush(stdout);
		_exit(1);	/* the ring cannot be torn down cleanly */
	}
	if (ret < 0) {
		fprintf(stderr, "io_uring_wait_cqe: %s\n", strerror(-ret));
		return 2;
	}
	printf("res=%d\n", cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	io_uring_queue_exit(&ring);
	return 0;
}
