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

from typing import TYPE_CHECKING, Any

from ._bpfcc import get_include
from ._spelling import CallableModule
from .errors import ArgsError, FanbpfError, KernelSupportError, VerifierError
from .events import Event, parse_events
from .flags import EventMask, InitFlag, MarkFlag, Response
from .group import Group
from .rules import Rules
from .support import available_handlers, kernel_support
from . import rules as _rules_module, trace as _trace_module, watch as _watch_module
# Light: it reaches the C extension only through fanbpf.handler, imported
# in the methods that need it (an attachment exists only once one is loaded).
from .attachment import Attachment

if TYPE_CHECKING:  # what __getattr__ below imports when first used
    from .handler import BpfObject, Handler

# fanbpf.rules(...) builds a rule set and fanbpf.rules.exact(...) is the
# module's: both spellings are documented (fanbpf.trace likewise).
rules = CallableModule(_rules_module, _rules_module.rules)
trace = CallableModule(_trace_module, _trace_module.trace)
# fanbpf.watch(...) is watchfiles' watch(); fanbpf.watch.Change its Change.
watch = CallableModule(_watch_module, _watch_module.watch)
awatch = _watch_module.awatch

__all__ = [
    "ArgsError", "Attachment", "BpfObject", "Event", "EventMask", "FanbpfError", "Group", "Handler",
    "InitFlag", "KernelSupportError",
    "MarkFlag", "Response", "VerifierError", "available_handlers", "kernel_support",
    "get_include", "parse_events", "Rules", "rules", "trace", "watch", "awatch",
]


def __getattr__(name: str) -> Any:
    # BPF objects need the C extension: imported when first used, so that
    # `import fanbpf` (and fanbpf.testing, fanbpf.model, ...) stays light.
    if name in ("BpfObject", "Handler"):
        from . import handler

        return getattr(handler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
