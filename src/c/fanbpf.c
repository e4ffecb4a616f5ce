// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* fanbpf shim: fanotify, the fastpath ioctls and libbpf.  See fanbpf.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "fanotify_fastpath_uapi.h"
#include "fanbpf.h"

/*
 * libbpf (1.0+) grows its own verifier log buffer when the kernel says it
 * was too small, then prints the log between these two lines: "prog 'x':
 * -- BEGIN PROG LOAD LOG --\n<log>-- END PROG LOAD LOG --\n", at warning
 * level for a program that failed and at debug level for one that loaded
 * with a log level set.
 */
#define LOG_BEGIN	"-- BEGIN PROG LOAD LOG --\n"
#define LOG_END		"-- END PROG LOAD LOG --\n"

/* libbpf < 1.2 declares the initial value const; it is writable before load */
#define initial_value(map, psize) ((unsigned char *)bpf_map__initial_value(map, psize))

/* libbpf's convention: return -errno and leave errno set too. */
static int fanbpf_err(int err)
{
	if (err < 0)
		errno = -err;
	return err;
}

/*
 * libbpf's own codes (LIBBPF_ERRNO__FORMAT and the rest, from 4000 up) are
 * no errno: the object is what libbpf refused, so say EINVAL.
 */
static int libbpf_errno(int err)
{
	return err <= -__LIBBPF_ERRNO__START ? -EINVAL : err;
}

static void *fanbpf_err_ptr(int err)
{
	errno = -err;
	return NULL;
}

/* ---- fanotify ------------------------------------------------------ */

int fanbpf_fanotify_init(unsigned int flags, unsigned int event_f_flags)
{
	int fd = fanotify_init(flags, event_f_flags);

	return fd < 0 ? fanbpf_err(-errno) : fd;
}

int fanbpf_fanotify_mark(int fan_fd, unsigned int flags, uint64_t mask,
			 int dirfd, const char *path)
{
	if (fanotify_mark(fan_fd, flags, mask, dirfd, path))
		return fanbpf_err(-errno);
	return 0;
}

int fanbpf_set_child_subreaper(void)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		return fanbpf_err(-errno);
	return 0;
}

int fanbpf_inotify_init(int flags)
{
	int fd = inotify_init1(flags);

	return fd < 0 ? fanbpf_err(-errno) : fd;
}

int fanbpf_inotify_add_watch(int fd, const char *path, uint32_t mask)
{
	int wd = inotify_add_watch(fd, path, mask);

	return wd < 0 ? fanbpf_err(-errno) : wd;
}

int fanbpf_open_by_handle_at(int mount_fd, const void *handle, size_t len,
			     int flags)
{
	struct file_handle *fh;
	int fd;

	if (len < sizeof(*fh) || len > sizeof(*fh) + MAX_HANDLE_SZ)
		return fanbpf_err(-EINVAL);
	/* The record's handle is unaligned; the syscall wants a real struct. */
	fh = malloc(len);
	if (!fh)
		return fanbpf_err(-ENOMEM);
	memcpy(fh, handle, len);
	if (fh->handle_bytes != len - sizeof(*fh))
		fd = -EINVAL;
	else if ((fd = open_by_handle_at(mount_fd, fh, flags)) < 0)
		fd = -errno;
	free(fh);
	return fd < 0 ? fanbpf_err(fd) : fd;
}

int fanbpf_name_to_handle_at(int dirfd, const char *path, void *buf, size_t size,
			     int flags)
{
	struct file_handle *fh;
	int mount_id, ret;

	if (!path || !buf)
		return fanbpf_err(-EINVAL);
	fh = calloc(1, sizeof(*fh) + MAX_HANDLE_SZ);
	if (!fh)
		return fanbpf_err(-ENOMEM);
	fh->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(dirfd, path, fh, &mount_id, flags))
		ret = -errno;
	else if (sizeof(*fh) + fh->handle_bytes > size)
		ret = -ENOSPC;
	else {
		ret = sizeof(*fh) + fh->handle_bytes;
		memcpy(buf, fh, ret);
	}
	free(fh);
	return fanbpf_err(ret);
}

int fanbpf_mount(const char *source, const char *target, const char *fstype,
		 unsigned long flags, const char *data)
{
	return mount(source, target, fstype, flags, data) ? fanbpf_err(-errno) : 0;
}

int fanbpf_umount2(const char *target, int flags)
{
	return umount2(target, flags) ? fanbpf_err(-errno) : 0;
}

/* ---- fastpath ioctls ------------------------------------------------ */

static int fp_add(int fan_fd, struct fanotify_fastpath_args *fp,
		  const void *args, uint32_t args_len)
{
	/* the kernel would copy from NULL and say EFAULT; be clearer */
	if (!args && args_len)
		return fanbpf_err(-EINVAL);

	/* the kernel wants the pointer 0 when there is nothing to copy */
	fp->init_args = args_len ? (uintptr_t)args : 0;
	fp->init_args_len = args_len;
	if (ioctl(fan_fd, FAN_IOC_ADD_FP, fp))
		return fanbpf_err(-errno);
	return 0;
}

int fanbpf_fp_attach_name(int fan_fd, const char *name,
			  const void *args, uint32_t args_len)
{
	struct fanotify_fastpath_args fp = {};

	if (!name || strlen(name) >= sizeof(fp.name))
		return fanbpf_err(-EINVAL);
	strcpy(fp.name, name);
	return fp_add(fan_fd, &fp, args, args_len);
}

int fanbpf_fp_attach_fd(int fan_fd, int bpf_fd,
			const void *args, uint32_t args_len)
{
	struct fanotify_fastpath_args fp = {
		.flags = FAN_FP_ADD_BPF_FD,
		.bpf_fd = bpf_fd,
	};

	return fp_add(fan_fd, &fp, args, args_len);
}

int fanbpf_fp_attached(int fan_fd, char *name, size_t size, uint64_t *id)
{
	char path[64], line[256], found[FAN_FP_NAME_MAX];
	unsigned long long found_id;
	int ret = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fan_fd);
	f = fopen(path, "re");
	if (!f)
		return fanbpf_err(-errno);
	/* the kernel prints this line while a handler is attached */
	while (!ret && fgets(line, sizeof(line), f))
		if (sscanf(line, "fanotify fastpath name:%63s id:%llu",
			   found, &found_id) == 2)
			ret = 1;
	fclose(f);
	if (!ret)
		return 0;
	if (name) {
		if (strlen(found) >= size)
			return fanbpf_err(-ENOSPC);
		strcpy(name, found);
	}
	if (id)
		*id = found_id;
	return 1;
}

int fanbpf_fp_detach(int fan_fd, const char *name)
{
	char attached[FAN_FP_NAME_MAX];
	int ret;

	if (name && strlen(name) >= sizeof(attached))
		return fanbpf_err(-EINVAL);
	if (name) {
		/* the ioctl detaches whatever is attached: check the name first */
		ret = fanbpf_fp_attached(fan_fd, attached, sizeof(attached), NULL);
		if (ret < 0)
			return ret;
		/* nothing attached: the ioctl says ENOENT (ENOTTY on old kernels) */
		if (ret == 1 && strcmp(name, attached))
			return fanbpf_err(-ENOENT);
	}
	if (ioctl(fan_fd, FAN_IOC_DEL_FP, 0))
		return fanbpf_err(-errno);
	return 0;
}

/* ---- libbpf messages ------------------------------------------------ */

static fanbpf_print_fn_t print_fn;
static bool print_installed;

/* The object this thread is loading: libbpf prints its verifier logs. */
static __thread struct fanbpf_obj *loading;
static void obj_keep_log(struct fanbpf_obj *obj, const char *msg);

static int print_cb(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	fanbpf_print_fn_t fn = print_fn;
	char *msg;

	if ((!fn && !loading) || vasprintf(&msg, fmt, ap) < 0)
		return 0;
	/* a verifier log goes to its object (fanbpf_obj_log), not to the log stream */
	if (loading && strstr(msg, LOG_BEGIN))
		obj_keep_log(loading, msg);
	else if (fn)
		fn(level, msg);
	free(msg);
	return 0;
}

void fanbpf_set_print(fanbpf_print_fn_t fn)
{
	print_fn = fn;
	libbpf_set_print(print_cb);
	print_installed = true;
}

/* libbpf prints to stderr until told otherwise; a library must not. */
static void quiet_libbpf(void)
{
	if (!print_installed)
		fanbpf_set_print(NULL);
}

/* ---- feature probe -------------------------------------------------- */

int fanbpf_probe(struct fanbpf_probe *out)
{
	struct btf *vmlinux;
	int fd;

	if (!out)
		return fanbpf_err(-EINVAL);
	memset(out, 0, sizeof(*out));
	quiet_libbpf();

	vmlinux = btf__load_vmlinux_btf();
	if (vmlinux) {
		out->vmlinux_btf = true;
		out->fastpath_btf = btf__find_by_name_kind(vmlinux, "fanotify_fastpath_ops",
							   BTF_KIND_STRUCT) >= 0;
		out->btrfs_inode_btf = btf__find_by_name_kind(vmlinux, "btrfs_inode",
							      BTF_KIND_STRUCT) >= 0;
		btf__free(vmlinux);
	}

	out->struct_ops_maps = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_STRUCT_OPS, NULL) == 1;

	/* FAN_REPORT_FID: the one kind of group an unprivileged user may make */
	fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_REPORT_FID, O_RDONLY);
	if (fd < 0) {
		out->fanotify_errno = errno;
		return 0;
	}
	/* nothing is attached, so the real ioctl says ENOENT; old kernels ENOTTY */
	if (ioctl(fd, FAN_IOC_DEL_FP, 0) == 0 || errno == ENOENT)
		out->fastpath_ioctl = true;
	close(fd);
	return 0;
}

/* ---- BPF objects ---------------------------------------------------- */

struct fanbpf_obj {
	struct bpf_object *bpf;
	struct bpf_link *link;
	struct bpf_map *link_map;
	char *log;		/* the last verifier log libbpf printed */
	bool load_tried;	/* libbpf loads an object at most once */
	bool loaded;
};

static struct fanbpf_obj *obj_new(struct bpf_object *bpf)
{
	struct fanbpf_obj *obj;
	int err;

	if (!bpf)
		return fanbpf_err_ptr(libbpf_errno(-errno));
	obj = calloc(1, sizeof(*obj));
	if (!obj) {
		err = -errno;
		bpf_object__close(bpf);
		return fanbpf_err_ptr(err);
	}
	obj->bpf = bpf;
	return obj;
}

struct fanbpf_obj *fanbpf_obj_open(const char *path)
{
	if (!path)
		return fanbpf_err_ptr(-EINVAL);
	quiet_libbpf();
	return obj_new(bpf_object__open_file(path, NULL));
}

struct fanbpf_obj *fanbpf_obj_open_mem(const void *data, size_t size,
				       const char *name)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name);

	if (!data || !size)
		return fanbpf_err_ptr(-EINVAL);
	quiet_libbpf();
	return obj_new(bpf_object__open_mem(data, size, &opts));
}

void fanbpf_obj_close(struct fanbpf_obj *obj)
{
	if (!obj)
		return;
	/* the link holds the map: it goes first */
	bpf_link__destroy(obj->link);
	bpf_object__close(obj->bpf);
	free(obj->log);
	free(obj);
}

const struct btf *fanbpf_obj_btf(const struct fanbpf_obj *obj)
{
	const struct btf *btf = obj ? bpf_object__btf(obj->bpf) : NULL;

	return btf ? btf : fanbpf_err_ptr(-ENOENT);
}

/*
 * Pre-load edits go into libbpf's copy of the initial values, which a load
 * (failed too) hands to the kernel: libbpf loads an object once.
 */
static int obj_editable(const struct fanbpf_obj *obj)
{
	return obj->load_tried ? -EBUSY : 0;
}

static void obj_keep_log(struct fanbpf_obj *obj, const char *msg)
{
	const char *begin = strstr(msg, LOG_BEGIN) + strlen(LOG_BEGIN);
	const char *end = strstr(begin, LOG_END);
	char *log = strndup(begin, end ? (size_t)(end - begin) : strlen(begin));

	if (!log)
		return;	/* the previous log, or none: the load still reports its errno */
	free(obj->log);
	obj->log = log;
}

/* Find global @name in the object's data sections: its map and location. */
static void *find_global(const struct fanbpf_obj *obj, const char *name,
			 struct bpf_map **pmap, size_t *psize)
{
	const struct btf *btf = bpf_object__btf(obj->bpf);
	const struct btf_var_secinfo *vsi;
	const struct btf_type *sec, *var;
	struct bpf_map *map;
	unsigned char *base;
	size_t map_size;
	int i;

	if (!btf)
		return fanbpf_err_ptr(-ENOENT);
	bpf_object__for_each_map(map, obj->bpf) {
		if (!bpf_map__is_internal(map))
			continue;
		sec = btf__type_by_id(btf, bpf_map__btf_value_type_id(map));
		base = initial_value(map, &map_size);
		if (!sec || !btf_is_datasec(sec) || !base)
			continue;
		/* .kconfig is filled in by libbpf from the kernel config */
		if (!strcmp(btf__name_by_offset(btf, sec->name_off), ".kconfig"))
			continue;
		vsi = btf_var_secinfos(sec);
		for (i = 0; i < btf_vlen(sec); i++, vsi++) {
			var = btf__type_by_id(btf, vsi->type);
			if (strcmp(btf__name_by_offset(btf, var->name_off), name))
				continue;
			if (vsi->offset + vsi->size > map_size)
				return fanbpf_err_ptr(-EINVAL);
			*pmap = map;
			*psize = vsi->size;
			return base + vsi->offset;
		}
	}
	return fanbpf_err_ptr(-ENOENT);
}

int fanbpf_obj_set_global(struct fanbpf_obj *obj, const char *name,
			  const void *data, size_t len)
{
	struct bpf_map *map;
	size_t size;
	void *dst;
	int err;

	if (!obj || !name || !data)
		return fanbpf_err(-EINVAL);
	if (!obj->loaded) {
		err = obj_editable(obj);
		if (err)
			return fanbpf_err(err);
	}
	dst = find_global(obj, name, &map, &size);
	if (!dst)
		return fanbpf_err(-errno);
	if (len != size)
		return fanbpf_err(-EINVAL);
	/* after load the initial value is the live mmap: rodata is mapped read-only */
	if (obj->loaded && (bpf_map__map_flags(map) & BPF_F_RDONLY_PROG))
		return fanbpf_err(-EPERM);
	memcpy(dst, data, len);
	return 0;
}

int fanbpf_obj_get_global(const struct fanbpf_obj *obj, const char *name,
			  void *data, size_t len)
{
	struct bpf_map *map;
	size_t size;
	void *src;

	if (!obj || !name || !data)
		return fanbpf_err(-EINVAL);
	src = find_global(obj, name, &map, &size);
	if (!src)
		return fanbpf_err(-errno);
	if (len != size)
		return fanbpf_err(-EINVAL);
	memcpy(data, src, len);
	return 0;
}

static struct bpf_map *find_ops_map(const struct fanbpf_obj *obj, const char *name)
{
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj->bpf) {
		if (bpf_map__type(map) != BPF_MAP_TYPE_STRUCT_OPS)
			continue;
		if (!name || !strcmp(bpf_map__name(map), name))
			return map;
	}
	return fanbpf_err_ptr(-ENOENT);
}

const char *fanbpf_obj_ops_map(const struct fanbpf_obj *obj, const char *map)
{
	struct bpf_map *m;

	if (!obj)
		return fanbpf_err_ptr(-EINVAL);
	m = find_ops_map(obj, map);
	return m ? bpf_map__name(m) : NULL;
}

/*
 * Locate @member of a struct_ops map's value in the map's shadow copy
 * (what bpf_map__initial_value returns for struct_ops maps), using the
 * object's BTF for the struct as the BPF program declared it.
 */
static void *ops_member(const struct fanbpf_obj *obj, const char *map_name,
			const char *member, struct bpf_map **pmap, size_t *psize)
{
	const struct btf *btf = bpf_object__btf(obj->bpf);
	const struct btf_member *m;
	const struct btf_type *t;
	struct bpf_map *map;
	unsigned char *base;
	size_t size, off;
	__s64 msize;
	int i;

	map = find_ops_map(obj, map_name);
	if (!map || !btf)
		return fanbpf_err_ptr(-ENOENT);
	t = btf__type_by_id(btf, bpf_map__btf_value_type_id(map));
	base = initial_value(map, &size);
	if (!t || !btf_is_struct(t) || !base)
		return fanbpf_err_ptr(-ENOENT);

	m = btf_members(t);
	for (i = 0; i < btf_vlen(t); i++, m++) {
		if (strcmp(btf__name_by_offset(btf, m->name_off), member))
			continue;
		msize = btf__resolve_size(btf, m->type);
		off = btf_member_bit_offset(t, i) / 8;
		if (btf_member_bitfield_size(t, i) || msize <= 0 || off + msize > size)
			return fanbpf_err_ptr(-EINVAL);
		*pmap = map;
		*psize = msize;
		return base + off;
	}
	return fanbpf_err_ptr(-ENOENT);
}

/* The kernel's bpf_obj_name_cpy() rule for handler names. */
static bool valid_ops_name(const char *name, size_t size)
{
	size_t len = strlen(name);

	if (!len || len >= size)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") == len;
}

int fanbpf_obj_set_ops_name(struct fanbpf_obj *obj, const char *map,
			    const char *name)
{
	struct bpf_map *m;
	size_t size;
	char *dst;
	int err;

	if (!obj || !name)
		return fanbpf_err(-EINVAL);
	err = obj_editable(obj);
	if (err)
		return fanbpf_err(err);
	dst = ops_member(obj, map, "name", &m, &size);
	if (!dst)
		return fanbpf_err(-errno);
	if (!valid_ops_name(name, size))
		return fanbpf_err(-EINVAL);

	/* the whole member, so no byte of the compiled name survives */
	memset(dst, 0, size);
	strcpy(dst, name);
	return 0;
}

int fanbpf_obj_ops_name(const struct fanbpf_obj *obj, const char *map,
			char *buf, size_t size)
{
	struct bpf_map *m;
	size_t msize;
	const char *src;

	if (!obj || !buf)
		return fanbpf_err(-EINVAL);
	src = ops_member(obj, map, "name", &m, &msize);
	if (!src)
		return fanbpf_err(-errno);
	if (strnlen(src, msize) >= size)
		return fanbpf_err(-ENOSPC);
	memset(buf, 0, size);
	memcpy(buf, src, strnlen(src, msize));
	return 0;
}

int fanbpf_obj_set_ops_flags(struct fanbpf_obj *obj, const char *map,
			     uint32_t flags)
{
	struct bpf_map *m;
	size_t size;
	void *dst;
	int err;

	if (!obj)
		return fanbpf_err(-EINVAL);
	err = obj_editable(obj);
	if (err)
		return fanbpf_err(err);
	dst = ops_member(obj, map, "flags", &m, &size);
	if (!dst)
		return fanbpf_err(-errno);
	if (size != sizeof(flags))
		return fanbpf_err(-EINVAL);
	memcpy(dst, &flags, sizeof(flags));
	return 0;
}

int fanbpf_obj_ops_flags(const struct fanbpf_obj *obj, const char *map,
			 uint32_t *flags)
{
	struct bpf_map *m;
	size_t size;
	const void *src;

	if (!obj || !flags)
		return fanbpf_err(-EINVAL);
	src = ops_member(obj, map, "flags", &m, &size);
	if (!src)
		return fanbpf_err(-errno);
	if (size != sizeof(*flags))
		return fanbpf_err(-EINVAL);
	memcpy(flags, src, sizeof(*flags));
	return 0;
}

#define VMLINUX_STRUCT_PREFIX	"fanbpf_vmlinux_struct__"

/*
 * Set the fanbpf_vmlinux_struct__NAME globals (see fanbpf_obj_load()).  A
 * kernel without vmlinux BTF leaves them 0, as does a struct it lacks.
 */
static void fill_vmlinux_struct_ids(struct fanbpf_obj *obj)
{
	const size_t plen = strlen(VMLINUX_STRUCT_PREFIX);
	const struct btf *btf = bpf_object__btf(obj->bpf);
	const struct btf_var_secinfo *vsi;
	const struct btf_type *sec;
	struct btf *vmlinux = NULL;
	bool tried = false;
	struct bpf_map *map;
	unsigned char *base;
	const char *name;
	size_t map_size;
	__s32 id;
	__u32 val;
	int i;

	if (!btf)
		return;
	bpf_object__for_each_map(map, obj->bpf) {
		if (!bpf_map__is_internal(map) || !(bpf_map__map_flags(map) & BPF_F_RDONLY_PROG))
			continue;
		sec = btf__type_by_id(btf, bpf_map__btf_value_type_id(map));
		base = initial_value(map, &map_size);
		if (!sec || !btf_is_datasec(sec) || !base)
			continue;
		vsi = btf_var_secinfos(sec);
		for (i = 0; i < btf_vlen(sec); i++, vsi++) {
			name = btf__name_by_offset(btf, btf__type_by_id(btf, vsi->type)->name_off);
			if (strncmp(name, VMLINUX_STRUCT_PREFIX, plen) || vsi->size != sizeof(val) ||
			    vsi->offset + sizeof(val) > map_size)
				continue;
			if (!tried) {
				vmlinux = btf__load_vmlinux_btf();
				tried = true;
			}
			id = vmlinux ? btf__find_by_name_kind(vmlinux, name + plen, BTF_KIND_STRUCT) : -1;
			val = id > 0 ? (__u32)id : 0;
			memcpy(base + vsi->offset, &val, sizeof(val));
		}
	}
	btf__free(vmlinux);
}

int fanbpf_obj_load(struct fanbpf_obj *obj, uint32_t log_level)
{
	struct bpf_program *prog;
	int err;

	if (!obj)
		return fanbpf_err(-EINVAL);
	if (obj->load_tried)
		return fanbpf_err(-EBUSY);

	/* no log buffer of ours: libbpf then grows its own until the log fits */
	if (log_level) {
		bpf_object__for_each_program(prog, obj->bpf)
			bpf_program__set_log_level(prog, log_level);
	}
	free(obj->log);
	obj->log = NULL;
	fill_vmlinux_struct_ids(obj);
	obj->load_tried = true;
	loading = obj;
	err = bpf_object__load(obj->bpf);
	loading = NULL;
	if (err)
		return fanbpf_err(libbpf_errno(err));
	obj->loaded = true;
	return 0;
}

const char *fanbpf_obj_log(const struct fanbpf_obj *obj)
{
	return obj && obj->log ? obj->log : "";
}

int fanbpf_obj_register(struct fanbpf_obj *obj, const char *map)
{
	struct bpf_link *link;
	struct bpf_map *m;

	if (!obj || !obj->loaded)
		return fanbpf_err(-EINVAL);
	if (obj->link)
		return fanbpf_err(-EALREADY);
	m = find_ops_map(obj, map);
	if (!m)
		return fanbpf_err(-ENOENT);
	link = bpf_map__attach_struct_ops(m);
	if (!link)
		return fanbpf_err(-errno);
	obj->link = link;
	obj->link_map = m;
	return 0;
}

int fanbpf_obj_unregister(struct fanbpf_obj *obj)
{
	int err;

	if (!obj || !obj->link)
		return fanbpf_err(-ENOENT);
	err = bpf_link__destroy(obj->link);
	obj->link = NULL;
	obj->link_map = NULL;
	return fanbpf_err(err);
}

int fanbpf_obj_map_fd(const struct fanbpf_obj *obj, const char *map)
{
	struct bpf_map *m;
	int fd;

	if (!obj)
		return fanbpf_err(-EINVAL);
	if (map)
		m = bpf_object__find_map_by_name(obj->bpf, map);
	else
		m = obj->link_map ? obj->link_map : find_ops_map(obj, NULL);
	if (!m)
		return fanbpf_err(-ENOENT);
	fd = bpf_map__fd(m);
	return fd < 0 ? fanbpf_err(-EINVAL) : fd;
}

int fanbpf_obj_link_fd(const struct fanbpf_obj *obj)
{
	if (!obj || !obj->link)
		return fanbpf_err(-ENOENT);
	return bpf_link__fd(obj->link);
}

int fanbpf_obj_test_run(struct fanbpf_obj *obj, const char *prog,
			void *ctx, uint32_t ctx_size, int *retval)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		.ctx_in = ctx,
		.ctx_size_in = ctx_size,
	);
	struct bpf_program *p;
	int fd, err;

	if (!obj || !prog || !retval || (!ctx && ctx_size))
		return fanbpf_err(-EINVAL);
	p = bpf_object__find_program_by_name(obj->bpf, prog);
	if (!p)
		return fanbpf_err(-ENOENT);
	fd = bpf_program__fd(p);
	if (fd < 0)
		return fanbpf_err(-EINVAL);
	err = bpf_prog_test_run_opts(fd, &opts);
	if (err)
		return fanbpf_err(err);
	*retval = (int)opts.retval;
	return 0;
}

/* ---- maps of a loaded object ---------------------------------------- */

/* Map @name of a loaded @obj; NULL with errno ENOENT / EBUSY. */
static struct bpf_map *loaded_map(const struct fanbpf_obj *obj, const char *name)
{
	struct bpf_map *map;

	if (!obj || !name)
		return fanbpf_err_ptr(-EINVAL);
	if (!obj->loaded)
		return fanbpf_err_ptr(-EBUSY);
	map = bpf_object__find_map_by_name(obj->bpf, name);
	return map ? map : fanbpf_err_ptr(-ENOENT);
}

static bool percpu_map(enum bpf_map_type type)
{
	return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

/* Bytes of one element's value in lookups and updates from user space. */
static int value_stride(const struct bpf_map *map)
{
	__u32 size = bpf_map__value_size(map);
	int cpus;

	if (!percpu_map(bpf_map__type(map)))
		return (int)size;
	cpus = libbpf_num_possible_cpus();
	if (cpus < 0)
		return cpus;
	return (int)(((size + 7) & ~7U) * (__u32)cpus);
}

int fanbpf_obj_map_info(const struct fanbpf_obj *obj, const char *map,
			struct fanbpf_map_info *info)
{
	struct bpf_map *m = loaded_map(obj, map);
	int stride;

	if (!m)
		return fanbpf_err(-errno);
	if (!info)
		return fanbpf_err(-EINVAL);
	stride = value_stride(m);
	if (stride < 0)
		return fanbpf_err(stride);
	info->type = bpf_map__type(m);
	info->key_size = bpf_map__key_size(m);
	info->value_size = bpf_map__value_size(m);
	info->max_entries = bpf_map__max_entries(m);
	info->map_flags = bpf_map__map_flags(m);
	info->value_stride = (uint32_t)stride;
	return 0;
}

/* libbpf's bpf_map__*_elem() check the sizes (per-CPU ones included). */
int fanbpf_obj_map_lookup(const struct fanbpf_obj *obj, const char *map,
			  const void *key, size_t key_size,
			  void *value, size_t value_size, uint64_t flags)
{
	struct bpf_map *m = loaded_map(obj, map);

	if (!m)
		return fanbpf_err(-errno);
	return fanbpf_err(libbpf_errno(bpf_map__lookup_elem(m, key, key_size, value,
							    value_size, flags)));
}

int fanbpf_obj_map_update(const struct fanbpf_obj *obj, const char *map,
			  const void *key, size_t key_size,
			  const void *value, size_t value_size, uint64_t flags)
{
	struct bpf_map *m = loaded_map(obj, map);

	if (!m)
		return fanbpf_err(-errno);
	return fanbpf_err(libbpf_errno(bpf_map__update_elem(m, key, key_size, value,
							    value_size, flags)));
}

int fanbpf_obj_map_delete(const struct fanbpf_obj *obj, const char *map,
			  const void *key, size_t key_size, uint64_t flags)
{
	struct bpf_map *m = loaded_map(obj, map);

	if (!m)
		return fanbpf_err(-errno);
	return fanbpf_err(libbpf_errno(bpf_map__delete_elem(m, key, key_size, flags)));
}

int fanbpf_obj_map_next_key(const struct fanbpf_obj *obj, const char *map,
			    const void *key, void *next_key, size_t key_size)
{
	struct bpf_map *m = loaded_map(obj, map);

	if (!m)
		return fanbpf_err(-errno);
	return fanbpf_err(libbpf_errno(bpf_map__get_next_key(m, key, next_key, key_size)));
}

int fanbpf_obj_map_keys(const struct fanbpf_obj *obj, const char *map,
			void *buf, size_t size, uint64_t *count)
{
	struct bpf_map *m = loaded_map(obj, map);
	size_t key_size;
	char *prev = NULL, *next, *tmp = NULL;
	uint64_t n = 0;
	int err;

	if (!m)
		return fanbpf_err(-errno);
	if (!count || (!buf && size))
		return fanbpf_err(-EINVAL);
	key_size = bpf_map__key_size(m);
	/* keys that do not fit buf still need a place to go */
	tmp = malloc(2 * key_size);
	if (!tmp)
		return fanbpf_err(-ENOMEM);
	for (;;) {
		next = (n + 1) * key_size <= size ? (char *)buf + n * key_size
						  : tmp + (n % 2) * key_size;
		err = bpf_map__get_next_key(m, prev, next, key_size);
		if (err)
			break;
		prev = next;
		n++;
	}
	free(tmp);
	if (err != -ENOENT)
		return fanbpf_err(libbpf_errno(err));
	*count = n;
	return 0;
}

/* The batch calls have no size checks of their own in libbpf. */
static int batch_sizes(const struct bpf_map *m, size_t keys_size, size_t values_size,
		       const uint32_t *count, bool with_values)
{
	int stride = value_stride(m);

	if (stride < 0)
		return stride;
	if (!count || keys_size != (size_t)*count * bpf_map__key_size(m))
		return -EINVAL;
	if (with_values && values_size != (size_t)*count * (size_t)stride)
		return -EINVAL;
	return 0;
}

int fanbpf_obj_map_update_batch(const struct fanbpf_obj *obj, const char *map,
				const void *keys, size_t keys_size,
				const void *values, size_t values_size,
				uint32_t *count, uint64_t elem_flags)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = elem_flags);
	struct bpf_map *m = loaded_map(obj, map);
	int err;

	if (!m)
		return fanbpf_err(-errno);
	err = batch_sizes(m, keys_size, values_size, count, true);
	if (err)
		return fanbpf_err(err);
	if (!*count)
		return 0;
	err = bpf_map_update_batch(bpf_map__fd(m), keys, values, count, &opts);
	return fanbpf_err(err < 0 ? libbpf_errno(err) : 0);
}

int fanbpf_obj_map_delete_batch(const struct fanbpf_obj *obj, const char *map,
				const void *keys, size_t keys_size, uint32_t *count)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	struct bpf_map *m = loaded_map(obj, map);
	int err;

	if (!m)
		return fanbpf_err(-errno);
	err = batch_sizes(m, keys_size, 0, count, false);
	if (err)
		return fanbpf_err(err);
	if (!*count)
		return 0;
	err = bpf_map_delete_batch(bpf_map__fd(m), keys, count, &opts);
	return fanbpf_err(err < 0 ? libbpf_errno(err) : 0);
}
