/*
 * The benchmark workload: runs a plan of file operations, one per line,
 * as fast as it can, and prints its wall and CPU time as JSON.
 *
 *   M path       mkdir
 *   D path       rmdir
 *   C path       create (O_EXCL), write 100 bytes, close
 *   R old new    rename
 *   U path       unlink
 *   O path       open read-only, read, close
 *
 * The plan is written by bench/run.py, which also derives from it the
 * events every watcher should report; here it is read whole before the
 * clock starts, so parsing costs nothing that is measured.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct op {
	char kind;
	char *a, *b;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double tv(struct timeval t)
{
	return t.tv_sec + t.tv_usec / 1e6;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "workload: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

int main(int argc, char **argv)
{
	static const char data[100] = "0123456789";
	char buf[128];
	struct op *ops = NULL;
	size_t n = 0, cap = 0, len = 0;
	char *line = NULL;
	struct rusage r0, r1;
	double t0, t1;
	FILE *plan;

	if (argc != 2) {
		fprintf(stderr, "usage: workload PLAN\n");
		return 2;
	}
	plan = fopen(argv[1], "r");
	if (!plan)
		die("open", argv[1]);
	while (getline(&line, &len, plan) > 0) {
		char *sp;

		line[strcspn(line, "\n")] = 0;
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			ops = realloc(ops, cap * sizeof(*ops));
			if (!ops)
				die("realloc", "");
		}
		ops[n].kind = line[0];
		ops[n].a = strdup(line + 2);
		sp = strchr(ops[n].a, ' ');
		ops[n].b = NULL;
		if (sp) {
			*sp = 0;
			ops[n].b = sp + 1;
		}
		n++;
	}
	fclose(plan);

	getrusage(RUSAGE_SELF, &r0);
	t0 = now();
	for (size_t i = 0; i < n; i++) {
		struct op *op = &ops[i];
		int fd;

		switch (op->kind) {
		case 'M':
			if (mkdir(op->a, 0755))
				die("mkdir", op->a);
			break;
		case 'D':
			if (rmdir(op->a))
				die("rmdir", op->a);
			break;
		case 'C':
			fd = open(op->a, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
			if (fd < 0 || write(fd, data, sizeof(data)) != sizeof(data))
				die("create", op->a);
			close(fd);
			break;
		case 'R':
			if (rename(op->a, op->b))
				die("rename", op->a);
			break;
		case 'U':
			if (unlink(op->a))
				die("unlink", op->a);
			break;
		case 'O':
			fd = open(op->a, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || read(fd, buf, sizeof(buf)) < 0)
				die("open", op->a);
			close(fd);
			break;
		default:
			fprintf(stderr, "workload: bad plan line %zu: %c\n", i + 1, op->kind);
			return 2;
		}
	}
	t1 = now();
	getrusage(RUSAGE_SELF, &r1);
	printf("{\"t0\": %.6f, \"t1\": %.6f, \"user\": %.6f, \"sys\": %.6f, \"lines\": %zu}\n",
	       t0, t1, tv(r1.ru_utime) - tv(r0.ru_utime), tv(r1.ru_stime) - tv(r0.ru_stime), n);
	return 0;
}
