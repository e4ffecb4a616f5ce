# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""fanbpf's exceptions, and :func:`check`, which maps a shim return code to one.

Every exception is a :class:`FanbpfError`, itself an :class:`OSError` whose
``errno`` is the kernel's (or libbpf's) and whose message says what went
wrong and what to do about it::

    FanbpfError(OSError)
    ├── HandlerNotFoundError      ENOENT   no such handler / object / program
    ├── HandlerBusyError          EBUSY    the group already has a handler
    ├── HandlerExistsError        EEXIST   the handler name is taken
    ├── InvalidArgumentsError     EINVAL, E2BIG
    │   └── ArgsError (+ValueError)        init args that do not fit the struct
    ├── HandlerPermissionError (+PermissionError)   EPERM, EACCES
    ├── VerifierError             the verifier refused a program; has .log
    └── KernelSupportError        the kernel lacks fastpath handlers; has .missing
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = [
    "FanbpfError",
    "HandlerNotFoundError",
    "HandlerBusyError",
    "HandlerExistsError",
    "InvalidArgumentsError",
    "ArgsError",
    "HandlerPermissionError",
    "VerifierError",
    "KernelSupportError",
    "check",
]

#: The kernel's limit on an init-args blob (FAN_FP_ARGS_MAX).
ARGS_MAX = 1024


class FanbpfError(OSError):
    """Base class of every fanbpf error (an :class:`OSError` with ``errno``)."""

    def __init__(self, errno: int, message: str):
        super().__init__(errno, message)

    def __str__(self) -> str:
        code = _errno.errorcode.get(self.errno)
        return f"{self.strerror} [{code}]" if code else self.strerror


class HandlerNotFoundError(FanbpfError):
    """No handler (or BPF object, map, program) of that name (ENOENT)."""


class HandlerBusyError(FanbpfError):
    """The fanotify group already has a fastpath handler attached (EBUSY)."""


class HandlerExistsError(FanbpfError):
    """A handler of that name is already registered (EEXIST)."""


class InvalidArgumentsError(FanbpfError):
    """The kernel or the handler refused the request or its args (EINVAL, E2BIG)."""


class ArgsError(InvalidArgumentsError, ValueError):
    """Init args (or a global's value) that do not fit the BTF type.

    Raised before any syscall.  ``path`` names the offending field, e.g.
    ``"names.patterns[2].text"`` (empty for the whole value).
    """

    def __init__(self, message: str, path: str = "", errno: int = _errno.EINVAL):
        self.path = path
        super().__init__(errno, f"{path}: {message}" if path else message)


class HandlerPermissionError(FanbpfError, PermissionError):
    """Not allowed: a handler without UNPRIV and no CAP_SYS_ADMIN, or BPF without CAP_BPF (EPERM, EACCES)."""


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


class KernelSupportError(FanbpfError):
    """The running kernel cannot do fastpath handlers.

    ``missing`` lists what the feature probe found missing, in words.
    """

    def __init__(self, missing: list[str], errno: int = _errno.ENOTTY, context: str = ""):
        self.missing = list(missing)
        what = "; ".join(self.missing) or "fanotify fastpath support"
        message = (
            f"{context + ': ' if context else ''}this kernel cannot run fanotify "
            f"fastpath handlers (missing: {what}). They need a kernel with the "
            "series in kernel/patches; `make run` runs fanbpf on the bundled test kernel."
        )
        super().__init__(errno, message)


_CLASSES = {
    _errno.ENOENT: HandlerNotFoundError,
    _errno.EBUSY: HandlerBusyError,
    _errno.EEXIST: HandlerExistsError,
    _errno.EINVAL: InvalidArgumentsError,
    _errno.E2BIG: InvalidArgumentsError,
    _errno.EPERM: HandlerPermissionError,
    _errno.EACCES: HandlerPermissionError,
}

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
        "no BPF object file at {path}: build it (make build) or check the path",
    ("open", _errno.EINVAL):
        "{path} is not a BPF object libbpf can open; compile it with clang -target bpf -g",
    ("load", _errno.EPERM):
        "loading {path} needs CAP_BPF and CAP_PERFMON (or root)",
    ("load", _errno.EINVAL):
        "libbpf or the kernel refused {path}{detail}",
    ("register", _errno.EEXIST):
        "a fastpath handler named {name!r} is already registered; load this one under "
        "another name (Handler.load(..., name='other')) or as private (private=True)",
    ("register", _errno.EINVAL):
        "the kernel refused handler {name!r}: the name must be [A-Za-z0-9_.] and shorter "
        "than 64 bytes, desc NUL-terminated and flags only FAN_FP_F_*{detail}",
    ("register", _errno.EPERM):
        "registering handler {name!r} needs CAP_BPF and CAP_PERFMON, and CAP_SYS_ADMIN "
        "unless it is private (or root)",
    ("global", _errno.ENOENT):
        "{path} has no global variable {name!r}",
    ("global", _errno.EPERM):
        "global {name!r} is read-only (const) once the object is loaded; set it in "
        "Handler.load(globals=...)",
    ("test_run", _errno.ENOENT):
        "{path} has no program named {name!r}",
    ("test_run", _errno.ENOTSUP):
        "program {name!r} cannot be test-run: BPF_PROG_TEST_RUN supports only some "
        "program types (e.g. SEC(\"syscall\"))",
}


def check(ret: int, op: str, **ctx) -> int:
    """Return ``ret`` if it is >= 0; otherwise raise the error for ``-ret``.

    ``op`` names what was being done ("attach", "detach", "open", "load",
    "register", "global", "test_run", ...) and ``ctx`` gives the details the
    messages mention (``name``, ``path``, ``args_len``, ``detail``).  The one
    place where errno values turn into exceptions, as pygit2's check_error.
    """
    if ret >= 0:
        return ret
    err = -ret
    if err == _errno.ENOTTY and op in ("attach", "detach"):
        raise _kernel_support_error(op)

    ctx.setdefault("name", None)
    ctx.setdefault("path", "the BPF object")
    ctx.setdefault("detail", "")
    ctx.setdefault("args_len", "?")
    if (op, err) == ("attach", _errno.ENOENT):
        ctx["registered"] = _registered_names()
    if op == "detach":
        ctx["detach_what"] = (f"no handler named {ctx['name']!r}" if ctx["name"]
                              else "no fastpath handler")

    template = _MESSAGES.get((op, err))
    if template is None:
        template = "{op} failed: {strerror}{detail}"
    message = template.format(op=op, strerror=os.strerror(err), **ctx)
    raise _CLASSES.get(err, FanbpfError)(err, message)


def _registered_names() -> str:
    from fanbpf.support import available_handlers

    names = [h.name for h in available_handlers()]
    return ", ".join(names) if names else "none"


def _kernel_support_error(op: str) -> KernelSupportError:
    from fanbpf.support import kernel_support

    missing = kernel_support().missing or ["the FAN_IOC_ADD_FP/FAN_IOC_DEL_FP ioctls"]
    return KernelSupportError(missing, _errno.ENOTTY, context=f"{op} failed")
