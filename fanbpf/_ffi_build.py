# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""cffi build script (API mode, out of line) for the ``fanbpf._fanbpf`` module.

The module wraps the C shim in src/c/fanbpf.c, linked with libbpf >= 1.2;
:func:`find_libbpf` says which one (setup.py asks it when build_ext runs).

The shim's own declarations are read from src/c/fanbpf.h, between its
``cffi-cdef-begin``/``cffi-cdef-end`` markers, so they are written once.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

from cffi import FFI
from cffi.pkgconfig import flags_from_pkgconfig

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
struct btf *btf__parse_split(const char *path, struct btf *base_btf);
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

# libbpf 1.1 (Debian bookworm) links fine and then cannot load a handler
# ("has no a struct_ops map"): refuse it at build time, whatever the path.
PREAMBLE = """
#include <bpf/libbpf_version.h>
#if LIBBPF_MAJOR_VERSION < 1 || (LIBBPF_MAJOR_VERSION == 1 && LIBBPF_MINOR_VERSION < 2)
#error "fanbpf needs libbpf >= 1.2 (struct_ops.link sections)"
#endif
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "fanotify_fastpath_uapi.h"
#include "fanbpf.h"
"""


def shim_cdef() -> str:
    with open(os.path.join(SRC, "fanbpf.h")) as f:
        text = f.read()
    m = re.search(r"/\* cffi-cdef-begin \*/(.*)/\* cffi-cdef-end \*/", text, re.S)
    if not m:
        raise RuntimeError("src/c/fanbpf.h lost its cffi-cdef markers")
    return m.group(1)


# Paths relative to the checkout: setuptools wants relative sources.
SOURCES = [os.path.relpath(os.path.join(SRC, "fanbpf.c"))]

ffibuilder = FFI()
ffibuilder.cdef(BTF_CDEF + UAPI_CDEF + shim_cdef() + CALLBACK_CDEF)
# libbpf's flags are added when build_ext runs (setup.py, find_libbpf()):
# an sdist must not need libbpf, and setuptools runs this file for it too.
ffibuilder.set_source("fanbpf._fanbpf", PREAMBLE, sources=SOURCES, include_dirs=[SRC])


# --- which libbpf ------------------------------------------------------------

MIN_LIBBPF = (1, 2)
TARBALLS = "/usr/src/linux-source-*.tar.xz"
INSTALL_HINT = (
    "Install one of: libbpf-dev >= 1.2 with pkg-config (Debian trixie, Ubuntu 24.04), "
    "or a kernel source tarball to build it from (Debian bookworm: apt install "
    "linux-source-6.12 libelf-dev zlib1g-dev make), or point FANBPF_LIBBPF_SRC at a "
    "kernel source tree (its tools/lib/bpf is built), or FANBPF_LIBBPF_DIR at a "
    "built libbpf (DIR/libbpf.a, DIR/include)")


class Libbpf:
    """The libbpf to build against: its headers (``include_dir/bpf/*.h``,
    BPF-side ones included) and the extension's compiler/linker arguments."""

    # ext_kwargs: the lists setup.py extends the Extension's attributes of the same name with
    def __init__(self, origin: str, include_dir: str, ext_kwargs: dict[str, list[str]]) -> None:
        self.origin = origin
        self.include_dir = include_dir
        self.ext_kwargs = ext_kwargs

    @classmethod
    def static(cls, origin: str, libbpf_dir: str) -> Libbpf:
        archive = os.path.join(libbpf_dir, "libbpf.a")
        if not os.path.exists(archive):
            raise LibbpfNotFound(f"{origin}: no libbpf.a in {libbpf_dir} (give the DESTDIR of "
                                 "a libbpf `make install`: DIR/libbpf.a, DIR/include/bpf/)")
        include = os.path.join(libbpf_dir, "include")
        return cls(origin, include, {"include_dirs": [include], "extra_objects": [archive],
                                     "libraries": ["elf", "z"]})


class LibbpfNotFound(RuntimeError):
    pass


def _pkgconfig_version() -> str | None:
    try:
        out = subprocess.run(["pkg-config", "--modversion", "libbpf"], capture_output=True,
                             text=True)
    except FileNotFoundError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:2])


def find_libbpf(work_dir: str, tarballs: str = TARBALLS) -> Libbpf:
    """The first of: ``$FANBPF_LIBBPF_DIR`` (built), ``$FANBPF_LIBBPF_SRC``
    (a kernel tree, built into work_dir), pkg-config's libbpf if >= 1.2, the
    newest ``/usr/src/linux-source-*.tar.xz`` (built into work_dir).  Never an
    older libbpf: 1.1 cannot load ``SEC(".struct_ops.link")`` handlers."""
    if os.environ.get("FANBPF_LIBBPF_DIR"):
        return Libbpf.static("FANBPF_LIBBPF_DIR", os.environ["FANBPF_LIBBPF_DIR"])
    if os.environ.get("FANBPF_LIBBPF_SRC"):
        tree = os.environ["FANBPF_LIBBPF_SRC"]
        return Libbpf.static(f"FANBPF_LIBBPF_SRC={tree}", build_libbpf(tree, work_dir))
    version = _pkgconfig_version()
    if version and _version_tuple(version) >= MIN_LIBBPF:
        includedir = subprocess.run(["pkg-config", "--variable=includedir", "libbpf"],
                                    capture_output=True, text=True, check=True).stdout.strip()
        return Libbpf(f"pkg-config libbpf {version}", includedir,
                      flags_from_pkgconfig(["libbpf"]))
    tarball = newest_tarball(tarballs)
    if tarball:
        return Libbpf.static(tarball, build_libbpf(tarball, work_dir))
    seen = f"pkg-config has libbpf {version}, too old" if version else "pkg-config has no libbpf"
    raise LibbpfNotFound(f"fanbpf needs libbpf >= {'.'.join(map(str, MIN_LIBBPF))} "
                         f"({seen}; no {tarballs}). {INSTALL_HINT}.")


def newest_tarball(pattern: str = TARBALLS) -> str | None:
    found = sorted(glob.glob(pattern), key=lambda p: _version_tuple(os.path.basename(p)))
    return found[-1] if found else None


def build_libbpf(source: str, out_dir: str, tree: str | None = None) -> str:
    """Build libbpf from a kernel tree or a ``linux-source-*.tar.xz`` into
    out_dir (static, -fPIC: it is linked into the extension); return out_dir.
    A tarball's tools/, include/uapi/ and scripts/ are extracted into tree
    (default out_dir/linux-tools).  Kept across builds: rebuilt only when
    the source changes."""
    out_dir = os.path.abspath(out_dir)
    stamp = os.path.join(out_dir, ".source")
    if os.path.exists(os.path.join(out_dir, "libbpf.a")) and os.path.exists(stamp):
        with open(stamp) as f:
            if f.read() == source:
                return out_dir
    os.makedirs(out_dir, exist_ok=True)
    if source.endswith(".tar.xz"):
        tree = os.path.abspath(tree or os.path.join(out_dir, "linux-tools"))
        top = os.path.basename(source)[: -len(".tar.xz")]
        shutil.rmtree(tree, ignore_errors=True)
        os.makedirs(tree)
        print(f"fanbpf: extracting libbpf's sources from {source}")
        subprocess.run(["tar", "-xf", source, "-C", tree, "--strip-components=1",
                        f"{top}/tools", f"{top}/include/uapi", f"{top}/scripts"], check=True)
    else:
        tree = source
    makefile_dir = os.path.join(tree, "tools", "lib", "bpf")
    if not os.path.exists(os.path.join(makefile_dir, "Makefile")):
        raise LibbpfNotFound(f"{source}: not a kernel source tree (no tools/lib/bpf/Makefile)")
    print(f"fanbpf: building libbpf from {makefile_dir}")
    os.makedirs(os.path.join(out_dir, "obj"), exist_ok=True)
    # Our own -j: pip may run us inside a make whose jobserver we cannot use.
    proc = subprocess.run(["make", "-s", f"-j{os.cpu_count() or 1}", "-C", makefile_dir,
                           f"OUTPUT={out_dir}/obj/", f"DESTDIR={out_dir}", "prefix=",
                           "libdir=/", "EXTRA_CFLAGS=-fPIC -O2", "install"],
                          stdout=subprocess.DEVNULL)
    if proc.returncode != 0 or not os.path.exists(os.path.join(out_dir, "libbpf.a")):
        raise LibbpfNotFound(f"building libbpf from {makefile_dir} failed (make exit "
                             f"{proc.returncode}); libbpf needs libelf-dev and zlib1g-dev")
    with open(stamp, "w") as f:
        f.write(source)
    return out_dir


if __name__ == "__main__":
    # make build: python fanbpf/_ffi_build.py libbpf OUT_DIR [TREE_DIR]
    import sys
    if sys.argv[1:2] != ["libbpf"] or len(sys.argv) not in (3, 4):
        sys.exit("usage: _ffi_build.py libbpf OUT_DIR [TREE_DIR]")
    try:
        source = os.environ.get("FANBPF_LIBBPF_SRC") or newest_tarball()
        if not source:
            raise LibbpfNotFound(f"no FANBPF_LIBBPF_SRC and no {TARBALLS}. {INSTALL_HINT}.")
        build_libbpf(source, *sys.argv[2:])
    except LibbpfNotFound as err:
        sys.exit(str(err))
