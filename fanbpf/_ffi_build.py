# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""cffi build script (API mode, out of line) for the ``fanbpf._fanbpf`` module.

The module wraps the C shim in src/c/fanbpf.c, linked with libbpf:

- ``FANBPF_LIBBPF_DIR=DIR``: static ``DIR/libbpf.a`` and ``DIR/include``
  (what ``make build`` produces: libbpf 1.5 built with -fPIC);
- otherwise the system libbpf found by pkg-config.

The shim's own declarations are read from src/c/fanbpf.h, between its
``cffi-cdef-begin``/``cffi-cdef-end`` markers, so they are written once.
"""

import os
import re

from cffi import FFI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src", "c")

# The part of libbpf's BTF API the Python argument encoder reads types
# with.  The btf_* helpers are static inline in <bpf/btf.h>; API mode
# compiles a wrapper for each.
BTF_CDEF = """
#define BTF_KIND_INT ...
#define BTF_KIND_PTR ...
#define BTF_KIND_ARRAY ...
#define BTF_KIND_STRUCT ...
#define BTF_KIND_UNION ...
#define BTF_KIND_ENUM ...
#define BTF_KIND_FWD ...
#define BTF_KIND_TYPEDEF ...
#define BTF_KIND_VOLATILE ...
#define BTF_KIND_CONST ...
#define BTF_KIND_RESTRICT ...
#define BTF_KIND_FUNC ...
#define BTF_KIND_FUNC_PROTO ...
#define BTF_KIND_VAR ...
#define BTF_KIND_DATASEC ...
#define BTF_KIND_FLOAT ...
#define BTF_KIND_DECL_TAG ...
#define BTF_KIND_TYPE_TAG ...
#define BTF_KIND_ENUM64 ...
#define BTF_INT_SIGNED ...
#define BTF_INT_CHAR ...
#define BTF_INT_BOOL ...

struct btf;
struct btf_ext;
struct btf_type {
    uint32_t name_off;
    uint32_t info;
    union { uint32_t size; uint32_t type; };
};
struct btf_member { uint32_t name_off; uint32_t type; uint32_t offset; };
struct btf_array { uint32_t type; uint32_t index_type; uint32_t nelems; };
struct btf_enum { uint32_t name_off; int32_t val; };
struct btf_enum64 { uint32_t name_off; uint32_t val_lo32; uint32_t val_hi32; };
struct btf_var { uint32_t linkage; };
struct btf_var_secinfo { uint32_t type; uint32_t offset; uint32_t size; };

struct btf *btf__parse(const char *path, struct btf_ext **btf_ext);
void btf__free(struct btf *btf);
uint32_t btf__type_cnt(const struct btf *btf);
int32_t btf__find_by_name_kind(const struct btf *btf, const char *type_name,
                               uint32_t kind);
const struct btf_type *btf__type_by_id(const struct btf *btf, uint32_t id);
const char *btf__name_by_offset(const struct btf *btf, uint32_t offset);
int64_t btf__resolve_size(const struct btf *btf, uint32_t type_id);
int btf__resolve_type(const struct btf *btf, uint32_t type_id);
int btf__align_of(const struct btf *btf, uint32_t id);

uint16_t btf_kind(const struct btf_type *t);
uint16_t btf_vlen(const struct btf_type *t);
bool btf_kflag(const struct btf_type *t);
uint8_t btf_int_encoding(const struct btf_type *t);
uint8_t btf_int_offset(const struct btf_type *t);
uint8_t btf_int_bits(const struct btf_type *t);
struct btf_array *btf_array(const struct btf_type *t);
struct btf_enum *btf_enum(const struct btf_type *t);
struct btf_enum64 *btf_enum64(const struct btf_type *t);
uint64_t btf_enum64_value(const struct btf_enum64 *e);
struct btf_member *btf_members(const struct btf_type *t);
uint32_t btf_member_bit_offset(const struct btf_type *t, uint32_t member_idx);
uint32_t btf_member_bitfield_size(const struct btf_type *t, uint32_t member_idx);
struct btf_var *btf_var(const struct btf_type *t);
struct btf_var_secinfo *btf_var_secinfos(const struct btf_type *t);
"""

# The fastpath uapi (src/c/fanotify_fastpath_uapi.h); values come from C.
UAPI_CDEF = """
#define FAN_FP_NAME_MAX ...
#define FAN_FP_DESC_MAX ...
#define FAN_FP_ARGS_MAX ...
#define FAN_FP_ARGS_SIZE_VER0 ...
#define FAN_FP_ADD_BPF_FD ...
#define FAN_FP_F_UNPRIV ...
#define FAN_FP_F_PRIVATE ...
#define FAN_FP_RET_SEND_TO_USERSPACE ...
#define FAN_FP_RET_SKIP_EVENT ...
#define FAN_IOC_ADD_FP ...
#define FAN_IOC_DEL_FP ...
"""

# Implemented in Python (fanbpf/_log.py) and handed to fanbpf_set_print().
CALLBACK_CDEF = """
extern "Python" void _fanbpf_print(int level, const char *msg);
"""

PREAMBLE = """
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "fanotify_fastpath_uapi.h"
#include "fanbpf.h"
"""


def shim_cdef():
    with open(os.path.join(SRC, "fanbpf.h")) as f:
        text = f.read()
    m = re.search(r"/\* cffi-cdef-begin \*/(.*)/\* cffi-cdef-end \*/", text, re.S)
    if not m:
        raise RuntimeError("src/c/fanbpf.h lost its cffi-cdef markers")
    return m.group(1)


def libbpf_kwargs():
    """Compiler and linker arguments for the chosen libbpf."""
    libbpf_dir = os.environ.get("FANBPF_LIBBPF_DIR")
    if not libbpf_dir:
        return None
    archive = os.path.join(libbpf_dir, "libbpf.a")
    if not os.path.exists(archive):
        raise RuntimeError(f"FANBPF_LIBBPF_DIR={libbpf_dir}: no libbpf.a there (run make build)")
    return {
        "include_dirs": [os.path.join(libbpf_dir, "include"), SRC],
        "extra_objects": [archive],
        "libraries": ["elf", "z"],
    }


# Paths relative to the checkout: setuptools wants relative sources.
SOURCES = [os.path.relpath(os.path.join(SRC, "fanbpf.c"))]

ffibuilder = FFI()
ffibuilder.cdef(BTF_CDEF + UAPI_CDEF + shim_cdef() + CALLBACK_CDEF)

_kwargs = libbpf_kwargs()
if _kwargs is not None:
    ffibuilder.set_source("fanbpf._fanbpf", PREAMBLE, sources=SOURCES, **_kwargs)
else:
    ffibuilder.set_source_pkgconfig(
        "fanbpf._fanbpf", ["libbpf"], PREAMBLE, sources=SOURCES,
        include_dirs=[SRC], libraries=["elf", "z"],
    )

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
