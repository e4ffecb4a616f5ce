# SPDX-License-Identifier: GPL-2.0
# fanbpf's build_py also compiles suffixwatch/*.bpf.c into the wheel.
from setuptools import setup

from fanbpf.build import build_py

setup(cmdclass={"build_py": build_py})
