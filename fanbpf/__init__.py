"""fanbpf: filter fanotify events inside the kernel, from Python.

A BPF struct_ops "fastpath handler" runs for every event a fanotify group's
marks match and decides, in the kernel, whether user space sees it::

    import fanbpf
    from fanbpf import EventMask, MarkFlag

    with fanbpf.Group() as group, fanbpf.Handler.load("rules", private=True) as rules:
        group.mark("/srv", EventMask.CREATE | EventMask.ONDIR, MarkFlag.FILESYSTEM)
        att = group.attach(rules, fanbpf.rules(subtree=["/srv/www"], exclude_dirs=[".git"]))
        att.add_root("/srv/api")  # live: effective for the next event
        for event in group:
            print(event)

The hook comes from a kernel patch series that fanbpf carries (see
kernel/); `kernel_support()` says what the running kernel lacks.
"""
__version__ = "0.1.0"  # the one place: pyproject.toml reads it

from ._bpfcc import get_include
from .errors import ArgsError, FanbpfError, KernelSupportError, VerifierError
from .events import Event, parse_events
from .flags import EventMask, InitFlag, MarkFlag, Response
from .group import Group
from .rules import Rules, rules
from .support import available_handlers, kernel_support
from .trace import trace  # binds fanbpf.trace to the function, not the module
from .watch import awatch, watch  # likewise fanbpf.watch (the module: fanbpf.watch in sys.modules)

__all__ = [
    "ArgsError", "Attachment", "BpfObject", "Event", "EventMask", "FanbpfError", "Group", "Handler",
    "InitFlag", "KernelSupportError",
    "MarkFlag", "Response", "VerifierError", "available_handlers", "kernel_support",
    "get_include", "parse_events", "Rules", "rules", "trace", "watch", "awatch",
]


def __getattr__(name: str):
    # BPF objects need the C extension: imported when first used, so that
    # `import fanbpf` (and fanbpf.testing, fanbpf.model, ...) stays light.
    if name in ("BpfObject", "Handler"):
        from . import handler

        return getattr(handler, name)
    if name == "Attachment":
        from .attachment import Attachment

        return Attachment
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
