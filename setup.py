# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The cffi extension fanbpf._fanbpf; see fanbpf/_ffi_build.py for where
# libbpf comes from (FANBPF_LIBBPF_DIR, else pkg-config).
from setuptools import setup

setup(
    name="fanbpf",
    version="0.1.0",
    description="In-kernel fanotify event filters (BPF fastpath handlers) from Python",
    packages=["fanbpf"],
    package_data={"fanbpf": ["bpf/*.bpf.o"]},
    python_requires=">=3.9",
    setup_requires=["cffi>=1.16"],
    install_requires=["cffi>=1.16"],
    cffi_modules=["fanbpf/_ffi_build.py:ffibuilder"],
    entry_points={"console_scripts": ["fanbpf = fanbpf.cli:main"],
                  "pytest11": ["fanbpf = fanbpf.testing"]},
    zip_safe=False,
)
