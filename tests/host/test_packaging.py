"""fanbpf as a package: what the wheel holds, the build's choices and errors,
and embedding (compiling a handler with fanbpf.get_include() and the
setuptools hook).  `make test` runs these against the installed wheel."""
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import fanbpf
from fanbpf import BpfObject
from fanbpf._bpfcc import write_vmlinux_h
from fanbpf.build import BpfBuildError, compile_bpf

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(fanbpf.__file__).resolve().parent
INSTALLED = os.environ.get("FANBPF_TEST_INSTALLED") == "1"
installed_only = pytest.mark.skipif(not INSTALLED, reason="make test: the installed wheel")


def load_build_script():
    """The checkout's fanbpf/_ffi_build.py (what `pip install <checkout>` runs)."""
    spec = importlib.util.spec_from_file_location("ffi_build", ROOT / "fanbpf/_ffi_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_package_data():
    include = Path(fanbpf.get_include())
    for header in ("fanotify_fastpath.bpf.h", "vmlinux.h", "bpf/bpf_helpers.h",
                   "bpf/bpf_helper_defs.h", "bpf/bpf_tracing.h", "bpf/bpf_core_read.h"):
        assert (include / header).is_file(), header
    assert include.parent == PACKAGE
    for obj in ("fanbpf_rules.bpf.o", "fanbpf_rules_test.bpf.o"):
        assert (PACKAGE / "bpf" / obj).read_bytes()[:4] == b"\x7fELF", obj
    assert (PACKAGE / "py.typed").is_file()


def elf_sections(data: bytes) -> set[str]:
    """Section names of a 64-bit little-endian ELF object."""
    assert data[:6] == b"\x7fELF\x02\x01", "not a 64-bit little-endian ELF file"
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = headers[shstrndx][4]
    return {data[strtab + h[0]:data.index(b"\0", strtab + h[0])].decode() for h in headers}


def test_shipped_objects_are_stripped_but_keep_btf():
    """llvm-strip -g: no DWARF, the BTF that args encoding and CO-RE need kept."""
    for name in ("fanbpf_rules.bpf.o", "fanbpf_rules_test.bpf.o"):
        path = PACKAGE / "bpf" / name
        sections = elf_sections(path.read_bytes())
        assert {".BTF", ".BTF.ext"} <= sections and not {".debug_info", ".debug_line"} & sections, \
            (name, sorted(sections))
        with BpfObject(path) as obj:
            assert obj.btf.find_struct("fanbpf_rules_args") is not None
    # ...and still loads: the syscall test program runs on any kernel
    # (the VM tests load the stripped handler itself).
    with BpfObject(PACKAGE / "bpf/fanbpf_rules_test.bpf.o") as obj:
        obj.load()


# The kernel-style SPDX ids the sources use -> the license files that hold their text.
_LICENSE_FILES = {"GPL-2.0": "GPL-2.0-only.txt", "LGPL-2.1": "LGPL-2.1-only.txt",
                  "BSD-2-Clause": "BSD-2-Clause.txt"}


def test_every_spdx_license_has_its_text():
    used = set()
    for path in [*ROOT.glob("fanbpf/**/*.py"), *ROOT.glob("src/**/*.[ch]"),
                 *ROOT.glob("examples/**/*.[ch]"), *ROOT.glob("examples/**/*.py")]:
        for line in path.read_text().splitlines()[:2]:
            if "SPDX-License-Identifier:" in line:
                expr = line.split("SPDX-License-Identifier:")[1].strip(" */")
                used.update(re.findall(r"[A-Za-z0-9.-]+", expr.replace(" OR ", " ")))
    assert used == set(_LICENSE_FILES), used
    for name in _LICENSE_FILES.values():
        assert "Redistribution" in (ROOT / "LICENSES" / name).read_text() or \
            "GNU" in (ROOT / "LICENSES" / name).read_text()


@installed_only
def test_installed_distribution():
    dist = metadata.distribution("fanbpf")
    assert dist.version == fanbpf.__version__
    assert dist.metadata["Requires-Python"] == ">=3.11"
    assert {ep.name for ep in dist.entry_points} == {"fanbpf"}  # no auto-loaded pytest plugin
    files = {str(f) for f in dist.files}
    assert "fanbpf/bpf/fanbpf_rules.bpf.o" in files and "fanbpf/include/vmlinux.h" in files
    # the license texts (PEP 639), and one abi3 wheel for every CPython >= 3.11
    licenses = {f.rsplit("/", 1)[1] for f in files if "/licenses/LICENSES/" in f}
    assert licenses == set(_LICENSE_FILES.values())
    assert dist.metadata.get_all("License-File") == \
        [f"LICENSES/{n}" for n in sorted(_LICENSE_FILES.values())]
    assert dist.read_text("WHEEL").count("Tag: cp311-abi3-linux_") == 1


@installed_only
def test_subprocesses_import_the_installed_package():
    # tests start `python -m fanbpf` with cwd=checkout; PYTHONSAFEPATH keeps
    # the checkout's fanbpf/ out of their sys.path too.
    out = subprocess.run([sys.executable, "-c", "import fanbpf; print(fanbpf.__file__)"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()).resolve().parent == PACKAGE != ROOT / "fanbpf"


def test_compile_a_handler_with_get_include_only(tmp_path):
    obj = compile_bpf(ROOT / "tests/host/bpf/handler.bpf.c", tmp_path / "h.bpf.o")
    with BpfObject(obj) as bpf:  # libbpf opens it: ELF with BTF
        assert bpf.btf is not None


def test_compile_errors_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("FANBPF_CLANG", str(tmp_path / "no-clang"))
    with pytest.raises(BpfBuildError, match="no-clang' not found. Install clang"):
        compile_bpf(ROOT / "tests/host/bpf/handler.bpf.c", tmp_path / "h.bpf.o")
    monkeypatch.delenv("FANBPF_CLANG")
    with pytest.raises(BpfBuildError, match="no vmlinux.h in"):
        compile_bpf(ROOT / "tests/host/bpf/handler.bpf.c", tmp_path / "h.bpf.o",
                    include_dirs=[tmp_path])
    bad = tmp_path / "bad.bpf.c"
    bad.write_text('#include "fanotify_fastpath.bpf.h"\nint f(void) { return undeclared; }\n')
    with pytest.raises(BpfBuildError, match="(?s)clang failed on .*undeclared"):
        compile_bpf(bad, tmp_path / "bad.bpf.o")


def test_vmlinux_h_errors_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("FANBPF_VMLINUX_H", str(tmp_path / "missing.h"))
    with pytest.raises(BpfBuildError, match="FANBPF_VMLINUX_H=.*missing.h: no such file"):
        write_vmlinux_h(tmp_path / "vmlinux.h")
    monkeypatch.delenv("FANBPF_VMLINUX_H")
    monkeypatch.setenv("FANBPF_BPFTOOL", str(tmp_path / "no-bpftool"))
    with pytest.raises(BpfBuildError, match="no-bpftool' not found. Install bpftool"):
        write_vmlinux_h(tmp_path / "vmlinux.h")
    assert not (tmp_path / "vmlinux.h").exists()


def test_fanbpf_build_without_clang_says_so(tmp_path):
    """fanbpf's own build (setup.py build_py: the built-in handlers)."""
    env = {**os.environ, "FANBPF_CLANG": "/nonexistent/clang"}
    proc = subprocess.run([sys.executable, "setup.py", "build_py", "-d", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "error: cannot compile BPF handlers: '/nonexistent/clang' not found. Install clang" \
        in proc.stderr, proc.stderr
    assert not (tmp_path / "fanbpf" / "bpf").exists()


def copy_example(tmp_path):
    src = tmp_path / "suffixwatch"
    shutil.copytree(ROOT / "examples/suffixwatch", src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "*.o"))
    return src


def build_env(**env):
    # In the checkout (make test-host) fanbpf is not installed: point at it.
    return {**os.environ, "PYTHONPATH": str(PACKAGE.parent), **env}


def pip_wheel_example(tmp_path, **env):
    """Build the example package's wheel against this fanbpf, as its users would."""
    src = copy_example(tmp_path)
    return subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                          env=build_env(**env), capture_output=True, text=True)


def python_m_build(src, outdir):
    """``python -m build``: an sdist, then a wheel built from the unpacked sdist alone."""
    return subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(outdir), str(src)], env=build_env(), capture_output=True, text=True)


def test_example_wheel_ships_its_compiled_filter(tmp_path):
    proc = pip_wheel_example(tmp_path)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("suffixwatch-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("suffixwatch/suffix_filter.bpf.o")[:4] == b"\x7fELF"


def test_example_sdist_carries_its_handler_and_local_headers(tmp_path):
    """python -m build, as PyPI users' pip does: the wheel is built from the sdist
    alone, so the handler's source and the header it includes must be in it."""
    src = copy_example(tmp_path)
    source = src / "suffixwatch/suffix_filter.bpf.c"
    text = source.read_text()
    assert "#define SUFFIX_MAX\t32\n" in text
    (src / "suffixwatch/limits.h").write_text("#define SUFFIX_MAX\t32\n")
    source.write_text(text.replace("#define SUFFIX_MAX\t32\n", '#include "limits.h"\n'))
    proc = python_m_build(src, tmp_path / "dist")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sdist,) = (tmp_path / "dist").glob("suffixwatch-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"suffixwatch/suffix_filter.bpf.c", "suffixwatch/limits.h"} <= names
    (wheel,) = (tmp_path / "dist").glob("suffixwatch-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        sections = elf_sections(zf.read("suffixwatch/suffix_filter.bpf.o"))
    assert ".BTF" in sections and ".debug_info" not in sections


def test_undeclared_handlers_go_into_the_sdist_too(tmp_path):
    """Without [tool.fanbpf] handlers, every *.bpf.c of the packages is a
    handler: build_py lists it for the sdist all the same."""
    src = copy_example(tmp_path)
    config = (src / "pyproject.toml").read_text()
    table = config.index("[tool.fanbpf]")
    (src / "pyproject.toml").write_text(config[:table])
    proc = python_m_build(src, tmp_path / "dist")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sdist,) = (tmp_path / "dist").glob("suffixwatch-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert "suffixwatch/suffix_filter.bpf.c" in names
    assert "[tool.fanbpf]" not in tf_text(sdist, "pyproject.toml")
    (wheel,) = (tmp_path / "dist").glob("suffixwatch-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("suffixwatch/suffix_filter.bpf.o")[:4] == b"\x7fELF"


def tf_text(sdist: Path, name: str) -> str:
    """A file of the sdist's top directory, as text."""
    with tarfile.open(sdist) as tf:
        (member,) = [m for m in tf.getmembers() if m.name.split("/", 1)[-1] == name]
        data = tf.extractfile(member)
        assert data is not None
        return data.read().decode()


def test_example_missing_its_declared_handler_fails_the_build(tmp_path):
    src = copy_example(tmp_path)
    (src / "suffixwatch/suffix_filter.bpf.c").unlink()
    proc = python_m_build(src, tmp_path / "dist")
    assert proc.returncode != 0
    assert ("suffixwatch/suffix_filter.bpf.c: declared in pyproject.toml [tool.fanbpf] "
            "handlers, but there is no such file") in proc.stdout + proc.stderr
    assert not list((tmp_path / "dist").glob("*.whl"))


def test_a_header_neither_local_nor_fanbpfs_fails_the_sdist(tmp_path):
    src = copy_example(tmp_path)
    source = src / "suffixwatch/suffix_filter.bpf.c"
    source.write_text('#include "nowhere.h"\n' + source.read_text())
    proc = python_m_build(src, tmp_path / "dist")
    assert proc.returncode != 0
    assert 'suffixwatch/suffix_filter.bpf.c includes "nowhere.h", which is neither in the ' \
        "project beside it nor in fanbpf.get_include()" in proc.stdout + proc.stderr


def test_example_build_without_clang_says_so(tmp_path):
    proc = pip_wheel_example(tmp_path, FANBPF_CLANG="/nonexistent/clang")
    assert proc.returncode != 0
    assert "'/nonexistent/clang' not found. Install clang" in proc.stdout + proc.stderr


def fake_pkgconfig(tmp_path, monkeypatch, version):
    """pkg-config that sees only a libbpf.pc of ``version`` (and no tarball)."""
    pc = tmp_path / "pc"
    pc.mkdir()
    (pc / "libbpf.pc").write_text(
        f"prefix=/usr\nincludedir=/usr/include\nlibdir=/usr/lib\n"
        f"Name: libbpf\nDescription: test\nVersion: {version}\n"
        f"Cflags: -I${{includedir}}\nLibs: -L${{libdir}} -lbpf\n")
    monkeypatch.setenv("PKG_CONFIG_LIBDIR", str(pc))
    monkeypatch.setenv("PKG_CONFIG_PATH", str(pc))
    for var in ("FANBPF_LIBBPF_DIR", "FANBPF_LIBBPF_SRC"):
        monkeypatch.delenv(var, raising=False)


def test_build_refuses_an_old_libbpf(tmp_path, monkeypatch):
    ffi_build = load_build_script()
    fake_pkgconfig(tmp_path, monkeypatch, "1.1.2")
    with pytest.raises(ffi_build.LibbpfNotFound) as err:
        ffi_build.find_libbpf(tmp_path / "work", tarballs=str(tmp_path / "linux-source-*.tar.xz"))
    assert "needs libbpf >= 1.2 (pkg-config has libbpf 1.1.2, too old" in str(err.value)
    assert "apt install linux-source-6.12" in str(err.value)


def test_build_takes_pkgconfig_libbpf_from_1_2(tmp_path, monkeypatch):
    ffi_build = load_build_script()
    fake_pkgconfig(tmp_path, monkeypatch, "1.2.0")
    libbpf = ffi_build.find_libbpf(tmp_path / "work", tarballs=str(tmp_path / "none-*.tar.xz"))
    assert libbpf.origin == "pkg-config libbpf 1.2.0"
    assert libbpf.ext_kwargs["libraries"] == ["bpf"]


def test_build_rejects_a_tree_without_libbpf(tmp_path, monkeypatch):
    ffi_build = load_build_script()
    monkeypatch.delenv("FANBPF_LIBBPF_DIR", raising=False)
    monkeypatch.setenv("FANBPF_LIBBPF_SRC", str(tmp_path))
    with pytest.raises(ffi_build.LibbpfNotFound, match="not a kernel source tree"):
        ffi_build.find_libbpf(tmp_path / "work")


def test_extension_refuses_old_libbpf_headers(tmp_path):
    """The preamble's #error: even an explicit old libbpf cannot slip through."""
    ffi_build = load_build_script()
    check = ffi_build.PREAMBLE.split("#include <bpf/btf.h>")[0]
    src = tmp_path / "check.c"
    src.write_text(check)
    for version, ok in (((1, 1), False), ((1, 2), True), ((2, 0), True)):
        inc = tmp_path / f"v{version}" / "bpf"
        inc.mkdir(parents=True)
        (inc / "libbpf_version.h").write_text(
            f"#define LIBBPF_MAJOR_VERSION {version[0]}\n#define LIBBPF_MINOR_VERSION {version[1]}\n")
        proc = subprocess.run(["cc", "-fsyntax-only", f"-I{inc.parent}", str(src)],
                              capture_output=True, text=True)
        assert (proc.returncode == 0) == ok, (version, proc.stderr)
        if not ok:
            assert "fanbpf needs libbpf >= 1.2" in proc.stderr
