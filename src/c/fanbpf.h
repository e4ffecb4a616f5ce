/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * fanbpf: a small C shim over fanotify, the fastpath ioctls and libbpf.
 *
 * It exists so that Python (through cffi, API mode) gets a flat, typed API
 * with one owner per kernel object.  Conventions follow libbpf's:
 *
 *  - every public name carries the fanbpf_ prefix;
 *  - functions returning int return >= 0 on success and a negative errno
 *    on failure, and also leave that errno in errno;
 *  - functions returning a pointer return NULL and set errno on failure;
 *  - nothing is ever printed: libbpf's messages go to the callback set with
 *    fanbpf_set_print(), and are dropped when there is none;
 *  - struct fanbpf_obj is opaque and owns its libbpf object (with the
 *    object's BTF), its link and its verifier log; nothing of it is freed
 *    or replaced before fanbpf_obj_close(), which releases all of them.
 *
 * Everything between the cffi markers below is also fed to cffi's cdef
 * (see fanbpf/_ffi_build.py), so it is plain declarations only.
 */
#ifndef __FANBPF_H
#define __FANBPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct btf;

/* cffi-cdef-begin */

/* ---- fanotify ------------------------------------------------------ */

/**
 * @brief fanotify_init(2).
 * @return the new fanotify fd, or -errno
 */
int fanbpf_fanotify_init(unsigned int flags, unsigned int event_f_flags);

/**
 * @brief fanotify_mark(2).
 * @param path may be NULL, then @dirfd itself is marked
 * @return 0, or -errno
 */
int fanbpf_fanotify_mark(int fan_fd, unsigned int flags, uint64_t mask,
			 int dirfd, const char *path);

/**
 * @brief prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants of the
 *        caller are re-parented to it, not to init (fanbpf.trace's root).
 * @return 0, or -errno
 */
int fanbpf_set_child_subreaper(void);

/**
 * @brief inotify_init1(2): used only to learn how the kernel names
 *        directories (see fanbpf_inotify_add_watch), never read.
 * @return the new inotify fd, or -errno
 */
int fanbpf_inotify_init(int flags);

/**
 * @brief inotify_add_watch(2).  The watch's line in the fd's fdinfo gives
 *        the inode's i_ino and its superblock's s_dev exactly, which stat()
 *        does not on overlayfs and btrfs.
 * @return the watch descriptor, or -errno
 */
int fanbpf_inotify_add_watch(int fd, const char *path, uint32_t mask);

/**
 * @brief open_by_handle_at(2) on the file handle of a FID info record.
 * @param handle a struct file_handle as the record carries it (handle_bytes,
 *        handle_type, f_handle), @len bytes, any alignment
 * @return the new fd, or -errno (-EINVAL for a malformed handle)
 */
int fanbpf_open_by_handle_at(int mount_fd, const void *handle, size_t len,
			     int flags);

/**
 * @brief name_to_handle_at(2): the file handle of @path, laid out as a FID
 * info record carries it (struct file_handle: handle_bytes, handle_type,
 * f_handle).
 * @return the handle's length in @buf, or -errno (-ENOSPC: @size too small)
 */
int fanbpf_name_to_handle_at(int dirfd, const char *path, void *buf, size_t size,
			     int flags);

/* mount(2) and umount2(2), for tests that make a fresh filesystem per example. */
int fanbpf_mount(const char *source, const char *target, const char *fstype,
		 unsigned long flags, const char *data);
int fanbpf_umount2(const char *target, int flags);

/* ---- fastpath ioctls ------------------------------------------------ */

/**
 * @brief FAN_IOC_ADD_FP by registered handler name.
 * @param args init-args blob handed to the handler's fp_init, may be NULL
 * @param args_len its length; over FAN_FP_ARGS_MAX the kernel says E2BIG
 * @return 0, or -errno (-EINVAL if @name does not fit FAN_FP_NAME_MAX;
 * -ENOTTY on a kernel without fastpath handlers; see kernel/ABI.md)
 */
int fanbpf_fp_attach_name(int fan_fd, const char *name,
			  const void *args, uint32_t args_len);

/**
 * @brief FAN_IOC_ADD_FP with FAN_FP_ADD_BPF_FD: attach the handler behind a
 * struct_ops map or link fd (the only way to attach a FAN_FP_F_PRIVATE one).
 * @return 0, or -errno
 */
int fanbpf_fp_attach_fd(int fan_fd, int bpf_fd,
			const void *args, uint32_t args_len);

/**
 * @brief FAN_IOC_DEL_FP.
 * @param name the attached handler's name (checked against
 * fanbpf_fp_attached() first), or NULL to detach any
 * @return 0, or -errno (-ENOENT: nothing, or another handler, attached)
 */
int fanbpf_fp_detach(int fan_fd, const char *name);

/**
 * @brief Which handler is attached to @fan_fd, from the fd's fdinfo.  The
 * kernel detaches a handler by itself when the handler is unregistered
 * (its link destroyed, its module unloaded); the group then delivers
 * every event, and this says 0.
 * @param name if not NULL, receives the handler's name
 * @param id if not NULL, receives the attachment's id (hook->id)
 * @return 1 attached, 0 nothing attached, or -errno (-ENOSPC: @size too
 * small)
 */
int fanbpf_fp_attached(int fan_fd, char *name, size_t size, uint64_t *id);

/* ---- feature probe -------------------------------------------------- */

struct fanbpf_probe {
	bool vmlinux_btf;	/* /sys/kernel/btf/vmlinux loads */
	bool fastpath_btf;	/* it has struct fanotify_fastpath_ops */
	bool btrfs_inode_btf;	/* it has struct btrfs_inode (btrfs built in) */
	bool struct_ops_maps;	/* BPF_MAP_TYPE_STRUCT_OPS can be created */
	bool fastpath_ioctl;	/* fanotify fds know FAN_IOC_DEL_FP */
	int fanotify_errno;	/* fanotify_init failed with this, so
				 * fastpath_ioctl is unknown; else 0 */
};

/**
 * @brief Report, separately, which parts of fastpath support the running
 * kernel has.  Needs no privilege beyond what fanotify_init with
 * FAN_REPORT_FID needs.
 * @return 0 (the answers are in @out), or -errno if probing itself failed
 */
int fanbpf_probe(struct fanbpf_probe *out);

/* ---- libbpf messages ------------------------------------------------ */

/* @level is enum libbpf_print_level (0 warn, 1 info, 2 debug). */
typedef void (*fanbpf_print_fn_t)(int level, const char *msg);

/**
 * @brief Route libbpf's messages, one formatted message per call, to @fn;
 * NULL drops them.  Process-wide, like libbpf_set_print().
 */
void fanbpf_set_print(fanbpf_print_fn_t fn);

/* ---- BPF objects ---------------------------------------------------- */

struct fanbpf_obj;

/**
 * @brief Open a BPF ELF object file (nothing is loaded yet).
 * @return the object, or NULL with errno set
 */
struct fanbpf_obj *fanbpf_obj_open(const char *path);

/**
 * @brief Open a BPF ELF object from memory, e.g. one a Python package ships
 * as data.  libbpf parses @data during the call; it is not needed after.
 * @param name the object's name in libbpf's messages (NULL: libbpf makes one)
 * @return the object, or NULL with errno set (EINVAL: empty or not BPF ELF)
 */
struct fanbpf_obj *fanbpf_obj_open_mem(const void *data, size_t size,
				       const char *name);

/**
 * @brief Close @obj: destroy its link (unregistering the handler), then the
 * libbpf object with its maps and programs.  NULL is fine.
 */
void fanbpf_obj_close(struct fanbpf_obj *obj);

/**
 * @brief The object's own BTF (valid until fanbpf_obj_close()).
 */
const struct btf *fanbpf_obj_btf(const struct fanbpf_obj *obj);

/**
 * @brief Write global variable @name (in .rodata, .data, .bss or their
 * .rodata.* style variants).  Before load any of them; after load only
 * writable (non-rodata) ones, which then changes the live value.
 * @return 0; -ENOENT no such variable; -EINVAL @len is not its size;
 * -EPERM read-only after load; -EBUSY after a failed load
 */
int fanbpf_obj_set_global(struct fanbpf_obj *obj, const char *name,
			  const void *data, size_t len);

/**
 * @brief Read global variable @name: its initial value before load, its
 * current value after (for mmap-able maps, which all of them are).
 * @return 0, -ENOENT, or -EINVAL if @len is not its size
 */
int fanbpf_obj_get_global(const struct fanbpf_obj *obj, const char *name,
			  void *data, size_t len);

/**
 * @brief Name of a struct_ops map of @obj.
 * @param map a map name, or NULL for the first struct_ops map
 * @return the map's name, or NULL with errno ENOENT
 */
const char *fanbpf_obj_ops_map(const struct fanbpf_obj *obj, const char *map);

/**
 * @brief Set the `name` member of struct_ops map @map (NULL = first) before
 * load, e.g. to load a built-in handler a second time under another name.
 * @return 0; -EINVAL empty, too long or not [A-Za-z0-9_.]; -ENOENT no such
 * map or member; -EBUSY a load was tried
 */
int fanbpf_obj_set_ops_name(struct fanbpf_obj *obj, const char *map,
			    const char *name);

/**
 * @brief Copy the `name` member of struct_ops map @map into @buf.
 * @return 0, -ENOENT, or -ENOSPC if @size is too small
 */
int fanbpf_obj_ops_name(const struct fanbpf_obj *obj, const char *map,
			char *buf, size_t size);

/**
 * @brief Set the `flags` member (FAN_FP_F_*) of struct_ops map @map before
 * load, e.g. to FAN_FP_F_PRIVATE.
 * @return 0, -ENOENT, or -EBUSY if a load was tried
 */
int fanbpf_obj_set_ops_flags(struct fanbpf_obj *obj, const char *map,
			     uint32_t flags);

/**
 * @brief Read the `flags` member of struct_ops map @map.
 * @return 0, or -ENOENT
 */
int fanbpf_obj_ops_flags(const struct fanbpf_obj *obj, const char *map,
			 uint32_t *flags);

/**
 * @brief Load (verify) every program and create every map, once: libbpf
 * does not load an object twice, so after a failed load the object can
 * only be read and closed (open it again to retry).  libbpf sizes the
 * verifier log itself, growing it until the log fits; the shim keeps the
 * log libbpf prints last (fanbpf_obj_log()).
 * Before loading, every 4-byte read-only global named
 * fanbpf_vmlinux_struct__NAME is set to the type id of struct NAME in the
 * running kernel's vmlinux BTF, or 0 when vmlinux has no such struct
 * (also when only a module's BTF has it): CO-RE finds types in module BTF
 * too, but bpf_rdonly_cast() takes vmlinux ids only, so a program guards
 * such a cast with the global (0 makes the cast dead code).
 * @param log_level 0: log only a failing program (libbpf retries it at
 * level 1); otherwise the kernel log level (1, 2, |4 for stats) for all
 * @return 0, or -errno (-EBUSY if a load was already tried)
 */
int fanbpf_obj_load(struct fanbpf_obj *obj, uint32_t log_level);

/**
 * @brief The verifier log of the load: the failing program's on failure,
 * the last program's if @log_level asked for it; "" otherwise.  Valid
 * until fanbpf_obj_close().
 */
const char *fanbpf_obj_log(const struct fanbpf_obj *obj);

/**
 * @brief "Register": attach struct_ops map @map (NULL = first), creating
 * the link.  For a handler without FAN_FP_F_PRIVATE this registers its name
 * with fanotify; a private one becomes attachable by the map or link fd.
 * @return 0; -EALREADY if @obj already has a link; -ENOENT no such map;
 * else the kernel's errno (-EEXIST: the name is taken)
 */
int fanbpf_obj_register(struct fanbpf_obj *obj, const char *map);

/**
 * @brief Destroy the link made by fanbpf_obj_register() (unregistering
 * the name; groups that attached the handler keep it).
 * @return 0, or -ENOENT if there is no link
 */
int fanbpf_obj_unregister(struct fanbpf_obj *obj);

/**
 * @brief fd of map @map of a loaded @obj, owned by @obj.
 * @param map a map name, or NULL for the registered (else the first)
 * struct_ops map
 * @return the fd, or -ENOENT / -EBUSY (not loaded)
 */
int fanbpf_obj_map_fd(const struct fanbpf_obj *obj, const char *map);

/**
 * @brief fd of the link made by fanbpf_obj_register(), owned by @obj.
 * @return the fd, or -ENOENT
 */
int fanbpf_obj_link_fd(const struct fanbpf_obj *obj);

/**
 * @brief BPF_PROG_TEST_RUN program @prog once with context @ctx.
 * For SEC("syscall") programs the kernel writes the context back into
 * @ctx, which is how such programs return data.
 * @param retval the program's return value
 * @return 0, or -errno (-ENOENT no such program, -EBUSY not loaded)
 */
int fanbpf_obj_test_run(struct fanbpf_obj *obj, const char *prog,
			void *ctx, uint32_t ctx_size, int *retval);

/* ---- maps of a loaded object ---------------------------------------- */

/*
 * The map operations take sizes and say EINVAL when they are not the
 * map's: @value_size is the map's value size, except for per-CPU maps,
 * whose lookups and updates carry one value per possible CPU, each
 * rounded up to 8 bytes (fanbpf_map_info.value_stride).  Flags are the
 * BPF_* update/lookup flags (BPF_ANY 0, BPF_NOEXIST 1, BPF_EXIST 2).
 * All return 0 or -errno (-ENOENT: no such map, no such key, or no key
 * after @key; -EBUSY: the object is not loaded).
 */

struct fanbpf_map_info {
	uint32_t type;		/* enum bpf_map_type */
	uint32_t key_size;
	uint32_t value_size;	/* of one CPU's value for a per-CPU map */
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t value_stride;	/* bytes of one element's value in the calls below */
};

/** @brief The layout of map @map of @obj. */
int fanbpf_obj_map_info(const struct fanbpf_obj *obj, const char *map,
			struct fanbpf_map_info *info);

int fanbpf_obj_map_lookup(const struct fanbpf_obj *obj, const char *map,
			  const void *key, size_t key_size,
			  void *value, size_t value_size, uint64_t flags);
int fanbpf_obj_map_update(const struct fanbpf_obj *obj, const char *map,
			  const void *key, size_t key_size,
			  const void *value, size_t value_size, uint64_t flags);
int fanbpf_obj_map_delete(const struct fanbpf_obj *obj, const char *map,
			  const void *key, size_t key_size, uint64_t flags);

/**
 * @brief The key after @key in map @map (@key NULL: the first key).
 * @return 0, or -ENOENT after the last key
 */
int fanbpf_obj_map_next_key(const struct fanbpf_obj *obj, const char *map,
			    const void *key, void *next_key, size_t key_size);

/**
 * @brief Every key of map @map, in the map's order: up to @size bytes of
 * them packed into @buf (key size each), and *@count the number of keys
 * the map has, which may be more than fit (call again with more room).
 * Keys added or deleted during the call may be missed or seen twice.
 * @return 0, or -errno
 */
int fanbpf_obj_map_keys(const struct fanbpf_obj *obj, const char *map,
			void *buf, size_t size, uint64_t *count);

/**
 * @brief BPF_MAP_UPDATE_BATCH: @count elements, keys and values packed
 * (@keys_size = @count x key size, @values_size = @count x value stride).
 * Not atomic: on failure, @count says how many were updated first.
 * @param elem_flags BPF_ANY, BPF_NOEXIST or BPF_EXIST, for every element
 * @return 0, or -errno (-EINVAL: the sizes do not fit the map)
 */
int fanbpf_obj_map_update_batch(const struct fanbpf_obj *obj, const char *map,
				const void *keys, size_t keys_size,
				const void *values, size_t values_size,
				uint32_t *count, uint64_t elem_flags);

/**
 * @brief BPF_MAP_DELETE_BATCH of @count packed keys.  Stops at the first
 * key that is not there (-ENOENT), with @count the number deleted.
 */
int fanbpf_obj_map_delete_batch(const struct fanbpf_obj *obj, const char *map,
				const void *keys, size_t keys_size, uint32_t *count);

/* cffi-cdef-end */

#ifdef __cplusplus
}
#endif

#endif /* __FANBPF_H */
