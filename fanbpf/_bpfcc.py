# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Compiling fastpath handlers (``.bpf.c``) with clang: one function for all.

Used by fanbpf's own build (setup.py loads this file by path, before the
package can be imported) and by packages that ship their own handlers
(:mod:`fanbpf.build`).  Standard library only, and nothing is imported from
fanbpf, for that reason.
"""
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

# libbpf's BPF-side headers: all that a handler includes besides
# fanotify_fastpath.bpf.h and vmlinux.h.
LIBBPF_BPF_HEADERS = ("bpf_helpers.h", "bpf_helper_defs.h", "bpf_tracing.h",
                      "bpf_core_read.h", "bpf_endian.h")

# uname -m -> the __TARGET_ARCH_* that bpf_tracing.h wants (as libbpf-bootstrap maps it).
_ARCH = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "powerpc",
         "s390x": "s390", "riscv64": "riscv", "loongarch64": "loongarch"}

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"


class BpfBuildError(RuntimeError):
    """A handler could not be compiled; the message says what to install or set."""


def get_include() -> str:
    """The directory to pass to clang with ``-I`` to compile a handler.

    It holds ``fanotify_fastpath.bpf.h`` (the one header a handler includes),
    the ``vmlinux.h`` generated from the BTF of the kernel fanbpf was built on
    (CO-RE relocates against the running kernel at load time), and libbpf's
    BPF headers (``bpf/bpf_helpers.h``, ...) of the libbpf fanbpf links.
    """
    return str(Path(__file__).resolve().with_name("include"))


def find_clang() -> str:
    """``$FANBPF_CLANG``, else ``clang`` on PATH."""
    clang = os.environ.get("FANBPF_CLANG", "clang")
    path = shutil.which(clang)
    if path is None:
        raise BpfBuildError(
            f"cannot compile BPF handlers: {clang!r} not found. Install clang "
            "(Debian/Ubuntu: apt install clang; Fedora: dnf install clang) "
            "or set FANBPF_CLANG to a clang that has the bpf target")
    return path


def target_arch() -> str:
    machine = platform.machine()
    try:
        return _ARCH[machine]
    except KeyError:
        raise BpfBuildError(f"cannot compile BPF handlers for {machine!r}: "
                            f"fanbpf knows {', '.join(sorted(_ARCH))}") from None


def find_llvm_strip(clang: str) -> str | None:
    """``$FANBPF_LLVM_STRIP``, else the llvm-strip of ``clang``'s LLVM, else
    ``llvm-strip`` on PATH; None if there is none."""
    given = os.environ.get("FANBPF_LLVM_STRIP")
    if given:
        return shutil.which(given)
    clang_path = Path(clang).resolve()  # /usr/bin/clang -> /usr/lib/llvm-14/bin/clang
    beside = clang_path.with_name("llvm-strip")
    if beside.is_file():
        return str(beside)
    suffix = clang_path.name[len("clang"):]  # clang-14 -> llvm-strip-14
    return shutil.which(f"llvm-strip{suffix}") or shutil.which("llvm-strip")


def compile_bpf(source: str | os.PathLike[str], output: str | os.PathLike[str],
                include_dirs: Sequence[str | os.PathLike[str]] | None = None,
                cflags: Sequence[str] = (), werror: bool = False) -> Path:
    """Compile one ``.bpf.c`` into a CO-RE object and return the object's path.

    clang's ``-g`` makes the BTF (which Handler.load encodes init args
    with) and DWARF; ``llvm-strip -g`` then drops the DWARF, keeping
    ``.BTF`` and ``.BTF.ext`` (a 77-line handler: 640 KB -> 20 KB).  Without
    llvm-strip the object stays whole, with a note saying so.

    ``include_dirs`` defaults to ``[get_include()]``; fanbpf's own build
    passes the headers it is about to install instead."""
    source, output = Path(source), Path(output)
    if not source.is_file():
        raise BpfBuildError(f"{source}: no such BPF source file")
    dirs = [str(d) for d in (include_dirs if include_dirs is not None else [get_include()])]
    if not any(Path(d, "vmlinux.h").is_file() for d in dirs):
        raise BpfBuildError(
            f"cannot compile {source}: no vmlinux.h in {', '.join(dirs)}. "
            "fanbpf's build generates it from the build host's kernel BTF; "
            "reinstall fanbpf on a machine with /sys/kernel/btf/vmlinux, or "
            "set FANBPF_VMLINUX_H when building it")
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [find_clang(), "-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{target_arch()}",
           "-Wall", *(["-Werror"] if werror else []), *(f"-I{d}" for d in dirs),
           *cflags, "-c", str(source), "-o", str(output)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BpfBuildError(f"clang failed on {source} (exit {proc.returncode}):\n"
                            f"{' '.join(cmd)}\n{proc.stderr.strip()}")
    if proc.stderr.strip():
        print(proc.stderr.rstrip())  # warnings: shown by pip -v, as compilers' are
    strip = find_llvm_strip(cmd[0])
    if strip is None:
        print(f"note: {output} keeps its DWARF debug info: no llvm-strip found (install llvm, "
              "or set FANBPF_LLVM_STRIP)")
        return output
    proc = subprocess.run([strip, "-g", str(output)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BpfBuildError(f"{strip} -g {output} failed (exit {proc.returncode}): "
                            f"{proc.stderr.strip()}")
    return output


def write_vmlinux_h(dest: str | os.PathLike[str]) -> Path:
    """Write ``vmlinux.h`` to ``dest``: ``$FANBPF_VMLINUX_H`` if set (a file
    to copy), else generated with bpftool from this machine's kernel BTF."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    given = os.environ.get("FANBPF_VMLINUX_H")
    if given:
        if not Path(given).is_file():
            raise BpfBuildError(f"FANBPF_VMLINUX_H={given}: no such file")
        shutil.copyfile(given, dest)
        return dest
    if not Path(VMLINUX_BTF).is_file():
        raise BpfBuildError(
            f"cannot generate vmlinux.h: this kernel has no BTF ({VMLINUX_BTF} is "
            "missing; it needs CONFIG_DEBUG_INFO_BTF=y). Set FANBPF_VMLINUX_H to a "
            "vmlinux.h made elsewhere (bpftool btf dump file /sys/kernel/btf/vmlinux "
            "format c > vmlinux.h)")
    bpftool = os.environ.get("FANBPF_BPFTOOL", "bpftool")
    if shutil.which(bpftool) is None:
        raise BpfBuildError(
            f"cannot generate vmlinux.h: {bpftool!r} not found. Install bpftool "
            "(Debian/Ubuntu: apt install bpftool), set FANBPF_BPFTOOL, or set "
            "FANBPF_VMLINUX_H to an existing vmlinux.h")
    tmp = dest.with_suffix(".tmp")
    with open(tmp, "w") as out:
        proc = subprocess.run([bpftool, "btf", "dump", "file", VMLINUX_BTF, "format", "c"],
                              stdout=out, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        tmp.unlink()
        raise BpfBuildError(f"bpftool btf dump {VMLINUX_BTF} failed: {proc.stderr.strip()}")
    tmp.replace(dest)
    return dest


if __name__ == "__main__":
    # make build: python fanbpf/_bpfcc.py SRC.bpf.c OUT.bpf.o [INCLUDE_DIR...]
    import sys
    if len(sys.argv) < 3:
        sys.exit("usage: _bpfcc.py SRC.bpf.c OUT.bpf.o [INCLUDE_DIR...]")
    try:
        compile_bpf(sys.argv[1], sys.argv[2], include_dirs=sys.argv[3:] or None)
    except BpfBuildError as err:
        sys.exit(str(err))
