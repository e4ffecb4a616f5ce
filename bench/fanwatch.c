/*
 * fanwatch: the fastest user-space subtree filter over fanotify that we
 * know how to write, as the bench's reference for "filter in user space".
 *
 *   fanwatch MOUNT SUBTREE
 *
 * One FILESYSTEM mark on MOUNT in DFID_NAME mode (creates, writes,
 * renames and deletes); each event's directory handle is turned into a
 * path with open_by_handle_at + readlink, cached by handle (the bench
 * never renames directories, so the cache cannot go stale), and the event
 * is printed as "<kind> <path>" if the path is under SUBTREE.  Output is
 * flushed after every read(), as a watcher feeding another program would.
 * "READY" goes to stderr once the mark is in place.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

#define MASK (FAN_CREATE | FAN_MODIFY | FAN_CLOSE_WRITE | FAN_MOVED_FROM | \
	      FAN_MOVED_TO | FAN_DELETE)
#define SLOTS 65536	/* directory cache; power of two */

struct slot {
	unsigned int len;
	unsigned char *handle;	/* struct file_handle bytes */
	char *path;
};

static struct slot cache[SLOTS];
static int mount_fd;
static volatile sig_atomic_t stop;

static unsigned int hash(const unsigned char *p, unsigned int len)
{
	unsigned int h = 2166136261u;

	while (len--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

/* The path of the directory behind a file handle, or NULL if it is gone. */
static const char *dir_path(struct file_handle *fh)
{
	unsigned int len = sizeof(*fh) + fh->handle_bytes;
	unsigned int i = hash((unsigned char *)fh, len) & (SLOTS - 1);
	char link[64], path[PATH_MAX];
	ssize_t n;
	int fd;

	for (; cache[i].handle; i = (i + 1) & (SLOTS - 1))
		if (cache[i].len == len && !memcmp(cache[i].handle, fh, len))
			return cache[i].path;
	fd = open_by_handle_at(mount_fd, fh, O_PATH);
	if (fd < 0)
		return NULL;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	path[n] = 0;
	cache[i].len = len;
	cache[i].handle = malloc(len);
	cache[i].path = strdup(path);
	memcpy(cache[i].handle, fh, len);
	return cache[i].path;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	static const struct { unsigned long long bit; const char *name; } kinds[] = {
		{ FAN_CREATE, "create" }, { FAN_MODIFY, "modify" },
		{ FAN_CLOSE_WRITE, "close_write" }, { FAN_MOVED_FROM, "moved_from" },
		{ FAN_MOVED_TO, "moved_to" }, { FAN_DELETE, "delete" },
	};
	static char buf[65536] __attribute__((aligned(8)));
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	size_t prefix_len;
	int fan;

	if (argc != 3) {
		fprintf(stderr, "usage: fanwatch MOUNT SUBTREE\n");
		return 2;
	}
	prefix_len = strlen(argv[2]);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fan = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_CLOEXEC, O_RDONLY);
	mount_fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fan < 0 || mount_fd < 0 ||
	    fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, MASK, AT_FDCWD, argv[1])) {
		perror("fanwatch: setup");
		return 1;
	}
	fprintf(stderr, "READY\n");
	while (!stop) {
		ssize_t len = read(fan, buf, sizeof(buf));
		struct fanotify_event_metadata *md = (void *)buf;

		if (len < 0) {
			if (errno == EINTR)
				continue;
			perror("fanwatch: read");
			return 1;
		}
		for (; FAN_EVENT_OK(md, len); md = FAN_EVENT_NEXT(md, len)) {
			struct fanotify_event_info_fid *fid = (void *)(md + 1);
			struct file_handle *fh;
			const char *dir, *name;

			if (md->mask & FAN_Q_OVERFLOW) {
				fputs("overflow -\n", stdout);
				continue;
			}
			if ((char *)fid >= (char *)md + md->event_len ||
			    fid->hdr.info_type != FAN_EVENT_INFO_TYPE_DFID_NAME)
				continue;
			fh = (struct file_handle *)fid->handle;
			name = (const char *)fh->f_handle + fh->handle_bytes;
			dir = dir_path(fh);
			if (!dir || strncmp(dir, argv[2], prefix_len) ||
			    (dir[prefix_len] && dir[prefix_len] != '/'))
				continue;
			for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
				if (md->mask & kinds[k].bit)
					printf("%s %s/%s\n", kinds[k].name, dir, name);
		}
		fflush(stdout);
	}
	fflush(stdout);
	return 0;
}
