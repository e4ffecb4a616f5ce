# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""``python -m fanbpf``: the command line (see fanbpf.cli)."""

import sys

from .cli import main

sys.exit(main())
