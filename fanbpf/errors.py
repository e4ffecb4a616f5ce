# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""fanbpf's errors: one way from an errno to an exception.

A failure that has an errno is a plain :class:`OSError` made by
:func:`os_error` (or :func:`check`, for a shim's ``-errno``), so Python
picks the subclass as it does for any system call, and ``filename`` names
the BPF object or path concerned::

    ENOENT  FileNotFoundError   no such object file, handler, program, map
    EEXIST  FileExistsError     the handler name is taken
    EPERM,  PermissionError     BPF without CAP_BPF, attaching a handler
    EACCES                      that needs CAP_SYS_ADMIN without it
    EBUSY, EINVAL, E2BIG, ...   OSError with that errno

fanbpf's own classes are only for what no errno says::

    FanbpfError(OSError)
    ├── VerifierError        the verifier refused a program; has .log
    ├── KernelSupportError   the kernel lacks the fastpath hook; has .missing
    └── ArgsError (+ValueError)   values that do not fit (init args, globals,
        │                         names), raised before any system call, or
        │                         init args a handler's fp_init refused,
        │                         naming the field (fanbpf_refuse())
        └── RulesError            bad fanbpf.rules() input
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any

__all__ = ["FanbpfError", "ArgsError", "VerifierError", "KernelSupportError",
           "os_error", "check", "ARGS_MAX", "SERIES"]

#: The kernel's limit on an init-args blob (FAN_FP_ARGS_MAX).
ARGS_MAX = 1024


class FanbpfError(OSError):
    """Base of fanbpf's own errors (an :class:`OSError` with ``errno``)."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(errno, message)

    def __str__(self) -> str:
        code = _errno.errorcode.get(self.errno) if self.errno is not None else None
        return f"{self.strerror} [{code}]" if code else str(self.strerror)


class ArgsError(FanbpfError, ValueError):
    """A value that does not fit: init args or a global for its BTF type, a
    handler name, a type or variable the object does not have.

    Raised before any system call, except for init args that a handler's
    fp_init refused with ``fanbpf_refuse()`` (fanotify_fastpath.bpf.h).
    ``path`` names the offending field, e.g. ``"names.patterns[2].text"``
    (empty for the whole value).
    """

    def __init__(self, message: str, path: str = "", errno: int = _errno.EINVAL):
        self.path = path
        super().__init__(errno, f"{path}: {message}" if path else message)


class VerifierError(FanbpfError):
    """The BPF verifier (or the kernel's BTF checks) refused the object.

    ``log`` is the complete verifier log of the failing program; the message
    quotes its last lines, which usually say what was wrong.
    """

    def __init__(self, errno: int, message: str, log: str):
        self.log = log
        tail = "\n".join(log.rstrip("\n").splitlines()[-4:])
        if tail:
            message = f"{message}\nverifier log (last lines; the full log is in .log):\n{tail}"
        super().__init__(errno, message)


#: The revision of the kernel's fastpath series (kernel/patches) this fanbpf is built for.
SERIES = 4


class KernelSupportError(FanbpfError):
    """The running kernel cannot run fastpath handlers (it lacks the hook).

    ``missing`` lists what the feature probe found missing, in words.  The
    message is one line: what is missing, and how to get it or do without.
    """

    def __init__(self, missing: list[str], errno: int = _errno.ENOTSUP, context: str = "",
                 series: int = 0):
        self.missing = list(missing)
        #: The revision of the fastpath series the kernel has (0: none, or not known).
        self.series = series
        what = "; ".join(self.missing) or "fanotify fastpath support"
        lacks = ("lacks the fanotify fastpath hook" if not series else
                 f"has v{series} of the fanotify fastpath series, fanbpf needs v{SERIES}"
                 if series < SERIES else "lacks what the handler calls")
        message = (
            f"{context + ': ' if context else ''}this kernel ({os.uname().release}) {lacks} "
            f"(missing: {what}); boot a kernel built with the fastpath "
            "patch series (kernel/patches in fanbpf's source), or filter in user space "
            "(fanbpf.fallback.RulesGroup, `fanbpf watch --fallback auto`)"
        )
        super().__init__(errno, message)


def os_error(err: int, message: str, filename: str | bytes | os.PathLike[str] | None = None
             ) -> OSError:
    """The :class:`OSError` for errno ``err``: Python picks its subclass.

    The one place fanbpf turns an errno into an exception; ``filename``
    (a path, or the name of an object opened from bytes) is set when given.
    """
    if filename is None:
        return OSError(err, message)
    return OSError(err, message, os.fsdecode(filename) if isinstance(filename, bytes) else
                   os.fspath(filename) if isinstance(filename, os.PathLike) else filename)


# (operation, errno) -> message; formatted with check()'s keyword context.
_MESSAGES = {
    ("attach", _errno.ENOENT):
        "no fastpath handler named {name!r} is registered (registered now: {registered}); "
        "load one with fanbpf.Handler.load(), or attach one of those",
    ("attach", _errno.EBUSY):
        "this fanotify group already has a fastpath handler attached; "
        "detach the current handler first (fanbpf.detach(fd))",
    ("attach", _errno.E2BIG):
        "init args of {args_len} bytes for {name!r}: the kernel accepts at most "
        f"FAN_FP_ARGS_MAX = {ARGS_MAX} bytes; shrink the args struct",
    ("attach", _errno.EINVAL):
        "the kernel refused to attach {name!r}: its fp_init rejected the init args, "
        "or the fd is not a fastpath struct_ops map or link; check the args against "
        "the handler's args struct",
    ("attach", _errno.EBADF):
        "{name!r}: the BPF fd is not open (was the Handler closed?); keep the Handler "
        "open while attaching it",
    ("attach", _errno.EPERM):
        "handler {name!r} is not marked UNPRIV: attaching it needs CAP_SYS_ADMIN and a group "
        "made with it; run as root, or load the handler with unpriv=True",
    ("attach", _errno.EFAULT):
        "the kernel could not read the attach request for {name!r} (a bad buffer)",
    ("detach", _errno.ENOENT):
        "{detach_what} is attached to this fanotify group; nothing was detached",
    ("open", _errno.ENOENT):
        "no BPF object file there; check the path",
    ("open", _errno.EINVAL):
        "not a BPF object libbpf can open; compile it with clang -target bpf -g{detail}",
    ("load", _errno.EPERM):
        "loading BPF needs CAP_BPF and CAP_PERFMON (or root)",
    ("load", _errno.EINVAL):
        "libbpf or the kernel refused the object{detail}",
    ("load", _errno.EBUSY):
        "the object was loaded already (libbpf loads an object once; open it again to retry)",
    ("register", _errno.EEXIST):
        "a fastpath handler named {name!r} is already registered; load this one under "
        "another name (Handler.load(..., name='other')) or as private (private=True)",
    ("register", _errno.EINVAL):
        "the kernel refused handler {name!r}: the name must be [A-Za-z0-9_.], not '.' or "
        "'..', and shorter than 64 bytes, desc one NUL-terminated line and flags only "
        "FAN_FP_F_*{detail}",
    ("register", _errno.EPERM):
        "registering handler {name!r} needs CAP_BPF and CAP_PERFMON, and CAP_SYS_ADMIN "
        "unless it is private (or root)",
    ("global", _errno.ENOENT):
        "{path} has no global variable {name!r}",
    ("global", _errno.EPERM):
        "global {name!r} is read-only (const) once the object is loaded; set it in "
        "Handler.load(globals=...)",
    ("global", _errno.EBUSY):
        "cannot change global {name!r}: a load was tried (libbpf loads an object once)",
    ("ops", _errno.EBUSY):
        "cannot change the handler's name or flags: a load was tried (libbpf loads an "
        "object once)",
    ("test_run", _errno.ENOENT):
        "no program named {name!r}",
    ("test_run", _errno.EINVAL):
        "cannot test-run {name!r}: the object is not loaded, or the context does not fit",
    ("test_run", _errno.ENOTSUP):
        "program {name!r} cannot be test-run: BPF_PROG_TEST_RUN supports only some "
        "program types (e.g. SEC(\"syscall\"))",
}


def check(ret: int, op: str, *, filename: str | bytes | os.PathLike[str] | None = None,
          **ctx: Any) -> int:
    """Return ``ret`` if it is >= 0; otherwise raise the error for ``-ret``.

    ``op`` names what was being done ("attach", "detach", "open", "load",
    "register", "global", "ops", "test_run", ...), ``filename`` the object
    or path concerned, and ``ctx`` the details the messages mention
    (``name``, ``args_len``, ``detail``).  ENOTTY from the fastpath ioctls
    means the kernel lacks the hook: :class:`KernelSupportError`; anything
    else is :func:`os_error`'s.
    """
    if ret >= 0:
        return ret
    err = -ret
    if err == _errno.ENOTTY and op in ("attach", "detach"):
        raise kernel_support_error(f"{op} failed", _errno.ENOTTY)

    ctx.setdefault("name", None)
    ctx.setdefault("detail", "")
    ctx.setdefault("args_len", "?")
    if (op, err) == ("attach", _errno.ENOENT):
        ctx["registered"] = _registered_names()
    if op == "detach":
        ctx["detach_what"] = (f"no handler named {ctx['name']!r}" if ctx["name"]
                              else "no fastpath handler")

    template = _MESSAGES.get((op, err), "{op} failed: {strerror}{detail}")
    message = template.format(op=op, strerror=os.strerror(err), **ctx)
    raise os_error(err, message, filename)


def _registered_names() -> str:
    from fanbpf.support import available_handlers

    names = [h.name for h in available_handlers()]
    return ", ".join(names) if names else "none"


def kernel_support_error(context: str, err: int = _errno.ENOTSUP) -> KernelSupportError:
    """:class:`KernelSupportError` naming what the feature probe finds missing."""
    from fanbpf.support import kernel_support

    support = kernel_support()
    missing = list(support.missing) or ["the FAN_IOC_ADD_FP/FAN_IOC_DEL_FP ioctls"]
    return KernelSupportError(missing, err, context=context, series=support.series)
