# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Loading BPF fastpath handlers and attaching them to fanotify groups.

:class:`Handler` is the usual entry point: it opens a handler's BPF object,
adjusts it (globals, registered name, private flag), loads it and registers
it with fanotify.  :func:`attach` and :func:`detach` then connect a
registered handler to a fanotify group's fd (the Group class uses them).
:class:`BpfObject` is the layer below, also good for plain BPF objects
(tests run SEC("syscall") programs with :meth:`BpfObject.test_run`).

Ownership: a :class:`BpfObject` owns the libbpf object, its maps, programs,
BTF and struct_ops link; a :class:`Handler` owns its BpfObject.  fds they
hand out (``map_fd``, ``link_fd``) are borrowed and close with them.  Close
them (or use ``with``): one that is dropped unclosed is closed when its
last reference goes, with a :class:`ResourceWarning`, which unregisters
its handler name right then (there are no reference cycles to wait for).

Threads: a BpfObject or Handler may be used from any thread, but not from
two at once; closing one while another thread uses it is an error of the
caller.  Groups a handler is attached to are independent of it.
"""

from __future__ import annotations

import errno
import os
import re
import threading
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import replace
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Union

from fanbpf import _log
from fanbpf._binding import ffi, lib
from fanbpf.attachment import Attachment, pin_overlay
from fanbpf.btfargs import Btf, CType, encode_args
from fanbpf.errors import (ARGS_MAX, ArgsError, KernelSupportError, VerifierError, check,
                           kernel_support_error, os_error)
from fanbpf.maps import Globals, Maps
from fanbpf.model import RulesArgs
from fanbpf.rules import Rules, close_pins
from fanbpf.rulesmaps import RulesMaps
from fanbpf.support import kernel_support, missing_kfuncs

if TYPE_CHECKING:
    from fanbpf.group import Group


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


#: What a BPF object is loaded from: a path, its bytes, or a package's resource.
ObjectSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Traversable]
#: A fanotify group's fd: the number, or anything with fileno() (a Group).
FanFd = Union[int, _HasFileno]
#: Init args: a dict encoded by the handler's args struct, the bytes, or a rules set.
InitArgs = Union[Mapping[str, Any], bytes, bytearray, memoryview, "Rules", "RulesArgs", None]

__all__ = ["BpfObject", "Handler", "TestRun", "attach", "detach", "builtin_path", "BPF_DIR"]

#: Where the built-in handlers' BPF objects are installed.
BPF_DIR = Path(__file__).resolve().with_name("bpf")

FAN_FP_F_PRIVATE = lib.FAN_FP_F_PRIVATE
FAN_FP_F_UNPRIV = lib.FAN_FP_F_UNPRIV
#: The global fanbpf_refuse() records fp_init's refusals in (fanotify_fastpath.bpf.h).
REFUSAL_GLOBAL = "fanbpf_init_refusal"
#: Its offset when fp_init refused the args' length (FANBPF_REFUSED_LEN).
REFUSED_LEN = 0xFFFFFFFF
_NAME_RE = re.compile(r"[A-Za-z0-9_.]{1,%d}" % (lib.FAN_FP_NAME_MAX - 1))


class TestRun(NamedTuple):
    """Result of :meth:`BpfObject.test_run`."""

    retval: int
    #: The context after the run (SEC("syscall") programs write it back).
    ctx: bytes


TestRun.__test__ = False  # type: ignore[attr-defined]  # not a pytest class


def _cstr(value: str | None) -> Any:
    return ffi.NULL if value is None else value.encode()


class BpfObject:
    """A BPF ELF object: opened, adjusted, then loaded (once).

    ``source`` is the object's path (``str`` or ``os.PathLike``), its bytes
    (``bytes``, ``bytearray``, ``memoryview``), or a resource a Python
    package ships, as :func:`importlib.resources.files` gives it
    (``files("mylib") / "filter.bpf.o"``, read even from a zip).  ``name``
    names an object opened from bytes in messages (default ``"<bytes>"``).
    """

    def __init__(self, source: ObjectSource, *, name: str | None = None) -> None:
        self._ptr = None
        data, self.path = _source(source, name)
        with _log.capture_warnings() as printed:
            if isinstance(data, str):  # a path
                ptr = lib.fanbpf_obj_open(os.fsencode(data))
            else:
                ptr = lib.fanbpf_obj_open_mem(ffi.from_buffer(data), len(data), _cstr(self.path))
        if ptr == ffi.NULL:
            check(-(ffi.errno or errno.EINVAL), "open", filename=self.path,
                  detail=_detail(printed))
        self._ptr = ptr
        self._source = None if isinstance(data, str) else data  # the ELF, for _called_kfuncs
        self.btf = Btf(lib.fanbpf_obj_btf(ptr))  # borrowed: close() invalidates it
        self.loaded = False
        self._maps: Maps | None = None

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else "loaded" if self.loaded else "open"
        return f"<BpfObject {self.path} ({state})>"

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def _obj(self) -> Any:
        if self._ptr is None:
            raise ValueError(f"{self.path}: the BPF object is closed")
        return self._ptr

    def close(self) -> None:
        """Unregister (destroy the link), then free the object; idempotent."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            self.btf.close()
            lib.fanbpf_obj_close(ptr)

    def __del__(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
            self.close()

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- globals --------------------------------------------------------

    def set_global(self, name: str, value: Any) -> None:
        """Set global ``name``; bytes are taken as is, other values encoded by its BTF type.

        Before load, any global (``const volatile`` ones included); after load,
        only writable ones, which changes the value the programs see.
        """
        obj = self._obj()
        data = value if isinstance(value, (bytes, bytearray)) else \
            self.btf.global_type(name).encode(value)
        check(lib.fanbpf_obj_set_global(obj, name.encode(), ffi.from_buffer(data), len(data)),
              "global", name=name, filename=self.path)

    def get_global(self, name: str, raw: bool = False) -> Any:
        """The value of global ``name`` (the live one after load), decoded unless ``raw``."""
        ctype = self.btf.global_type(name)
        buf = ffi.new("char[]", ctype.size)
        check(lib.fanbpf_obj_get_global(self._obj(), name.encode(), buf, ctype.size),
              "global", name=name, filename=self.path)
        data = ffi.unpack(buf, ctype.size)
        return data if raw else ctype.decode(data)

    # -- maps -----------------------------------------------------------------

    @property
    def maps(self) -> Maps:
        """The object's maps by name, keys and values as Python values (:mod:`fanbpf.maps`)."""
        if self._maps is None:
            self._maps = Maps(self)
        return self._maps

    @property
    def globals(self) -> Globals:
        """The object's globals by name, decoded (the live values once loaded); read-only."""
        return Globals(self)

    # -- what fp_init refused (fanbpf_refuse() in fanotify_fastpath.bpf.h) --

    def init_refusal(self) -> tuple[int, int] | None:
        """``(offset, size)`` of the init-args field that the handler's fp_init
        refused last in this thread (``offset`` :data:`REFUSED_LEN`: the
        length), or None if it recorded none (or the object has no record)."""
        if REFUSAL_GLOBAL not in self.btf.globals():
            return None
        record = self.get_global(REFUSAL_GLOBAL)
        if record["pid_tgid"] != os.getpid() << 32 | threading.get_native_id():
            return None
        return record["offset"], record["size"]

    def clear_init_refusal(self) -> None:
        """Forget this thread's refusal record, so that it cannot name a later one's field."""
        if self.init_refusal() is not None:
            self.set_global(REFUSAL_GLOBAL, bytes(self.btf.global_type(REFUSAL_GLOBAL).size))

    # -- the struct_ops map ------------------------------------------------

    def ops_map(self, map: str | None = None) -> str:
        """Name of struct_ops map ``map`` (default: the first one)."""
        name = lib.fanbpf_obj_ops_map(self._obj(), _cstr(map))
        if name == ffi.NULL:
            which = f"a struct_ops map named {map!r}" if map else "a struct_ops map"
            raise os_error(errno.ENOENT, f"no {which}: a fastpath handler publishes its "
                           "struct fanotify_fastpath_ops in SEC(\".struct_ops.link\")", self.path)
        return str(ffi.string(name).decode())

    def ops_name(self, map: str | None = None) -> str:
        """The struct_ops map's ``name`` member: the handler's name."""
        buf = ffi.new("char[]", lib.FAN_FP_NAME_MAX)
        check(lib.fanbpf_obj_ops_name(self._obj(), _cstr(map), buf, len(buf)),
              "ops", filename=self.path)
        return str(ffi.string(buf).decode())

    def set_ops_name(self, name: str, map: str | None = None) -> None:
        check_name(name)
        check(lib.fanbpf_obj_set_ops_name(self._obj(), _cstr(map), name.encode()),
              "ops", filename=self.path)

    def ops_flags(self, map: str | None = None) -> int:
        """The struct_ops map's ``flags`` member (FAN_FP_F_*)."""
        flags = ffi.new("uint32_t *")
        check(lib.fanbpf_obj_ops_flags(self._obj(), _cstr(map), flags), "ops", filename=self.path)
        return int(flags[0])

    def set_ops_flags(self, flags: int, map: str | None = None) -> None:
        check(lib.fanbpf_obj_set_ops_flags(self._obj(), _cstr(map), flags),
              "ops", filename=self.path)

    # -- load, register ----------------------------------------------------

    def load(self, log_level: int = 0) -> None:
        """Verify and load every program, create every map.

        ``log_level`` 0 keeps the verifier log of a failing program only;
        1 or 2 (optionally ``| 4`` for statistics) log every program.
        Once only: libbpf does not load an object twice, so after a failure
        open it again.  Raises :class:`VerifierError` (with the full log),
        :class:`KernelSupportError` for a fastpath handler on a kernel
        without the hook, or the OSError of the errno.
        """
        obj = self._obj()
        fastpath = self.fastpath_handler
        if fastpath and not kernel_support().fastpath_btf:  # say so, not what libbpf trips over
            raise kernel_support_error(f"cannot load {self.path}")
        with _log.capture_warnings() as printed:
            ret = lib.fanbpf_obj_load(obj, log_level)
        if ret >= 0:
            self.loaded = True
            return
        log = self.log
        if log:
            raise VerifierError(-ret, f"the kernel refused to load {self.path}"
                                f"{_detail(printed)}", log)
        if fastpath:  # an older series (or a module not loaded) lacks a kfunc it calls?
            absent, series = missing_kfuncs(self._called_kfuncs())
            if absent:
                raise KernelSupportError([f"kfunc {name}" for name in absent], -ret,
                                         context=f"cannot load {self.path}", series=series)
        check(ret, "load", filename=self.path, detail=_detail(printed))

    def _called_kfuncs(self) -> list[str]:
        """The kfuncs the object calls, from its ELF file's BTF: libbpf's
        open rewrites them in :attr:`btf`.  Asked only after a failed load,
        when an absent one is the likely cause (a ``__weak`` one that is
        absent would not have failed it)."""
        if self._source is None:
            with Btf.from_file(self.path) as btf:
                return btf.extern_funcs()
        with os.fdopen(os.memfd_create("fanbpf-object", os.MFD_CLOEXEC), "w+b") as elf:
            elf.write(self._source)
            elf.flush()
            with Btf.from_file(f"/proc/self/fd/{elf.fileno()}") as btf:
                return btf.extern_funcs()

    @property
    def fastpath_handler(self) -> bool:
        """Has a struct_ops map of ``struct fanotify_fastpath_ops`` (needs the hook)."""
        variables = self.btf.globals()
        for which in self._ops_maps():
            type_id = variables.get(which)
            if type_id is not None and self.btf.type(type_id).name == "fanotify_fastpath_ops":
                return True
        return False

    def _ops_maps(self) -> list[str]:
        first = lib.fanbpf_obj_ops_map(self._obj(), ffi.NULL)
        return [] if first == ffi.NULL else [ffi.string(first).decode()]

    @property
    def log(self) -> str:
        """The verifier log of the last load (see :meth:`load`)."""
        return str(ffi.string(lib.fanbpf_obj_log(self._obj())).decode(errors="replace"))

    def register(self, map: str | None = None) -> None:
        """Attach struct_ops map ``map`` (default: the first), creating the link."""
        name = self.ops_name(map)
        with _log.capture_warnings() as printed:
            ret = lib.fanbpf_obj_register(self._obj(), _cstr(map))
        check(ret, "register", name=name, filename=self.path, detail=_detail(printed))

    def unregister(self) -> None:
        """Destroy the link made by :meth:`register`."""
        check(lib.fanbpf_obj_unregister(self._obj()), "unregister", filename=self.path)

    def map_fd(self, map: str | None = None) -> int:
        """fd of map ``map`` (default: the registered struct_ops map); borrowed."""
        return check(lib.fanbpf_obj_map_fd(self._obj(), _cstr(map)), "map_fd", filename=self.path)

    @property
    def link_fd(self) -> int:
        """fd of the struct_ops link (after :meth:`register`); borrowed."""
        return check(lib.fanbpf_obj_link_fd(self._obj()), "link_fd", filename=self.path)

    def test_run(self, prog: str, ctx: bytes = b"") -> TestRun:
        """BPF_PROG_TEST_RUN program ``prog`` once with context ``ctx``."""
        size = len(ctx)
        buf = ffi.new("char[]", bytes(ctx)) if size else ffi.NULL
        retval = ffi.new("int *")
        check(lib.fanbpf_obj_test_run(self._obj(), prog.encode(), buf, size, retval),
              "test_run", name=prog, filename=self.path)
        return TestRun(int(retval[0]), ffi.unpack(buf, size) if size else b"")


def _detail(warnings: list[str]) -> str:
    """libbpf's first warnings, to end an error message with."""
    if not warnings:
        return ""
    return " (libbpf: " + "; ".join(w.strip() for w in warnings[:2]) + ")"


def refusal_error(name: str, args_type: CType | None, blob: bytes,
                  offset: int, size: int) -> ArgsError:
    """The ArgsError for handler ``name``'s fp_init refusing bytes ``offset``
    to ``offset + size`` of init args ``blob`` (see
    :meth:`BpfObject.init_refusal`): the field's path and value when the
    args struct ``args_type`` has such a field."""
    if offset == REFUSED_LEN:
        return ArgsError(f"handler {name!r} (fp_init) refused init args of {len(blob)} "
                         f"bytes: it takes {size} bytes" + (" (none were given)" if not blob else ""))
    found = args_type.field_at(offset, size) if args_type is not None else None
    if found is None or offset + size > len(blob):
        return ArgsError(f"handler {name!r} (fp_init) refused init-args bytes "
                         f"{offset}..{offset + size - 1}")
    path, ctype = found
    value = ctype.decode(blob[offset:offset + size])
    return ArgsError(f"refused by handler {name!r} (fp_init): {value!r}",
                     path or "(the whole args struct)")


def builtin_path(name: str) -> Path:
    """The BPF object of built-in handler ``name`` (e.g. "rules")."""
    path = BPF_DIR / f"fanbpf_{name}.bpf.o"
    if not path.exists():
        found = sorted(p.name[len("fanbpf_"):-len(".bpf.o")] for p in BPF_DIR.glob("fanbpf_*.bpf.o"))
        raise os_error(errno.ENOENT, f"no built-in handler {name!r}; built-ins: "
                       f"{', '.join(found) or 'none (this fanbpf was installed without them)'}",
                       path)
    return path


def _source(source: ObjectSource, name: str | None) -> tuple[str | bytes, str]:
    """``(path, path)`` for a file, ``(data, display name)`` for bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return path, os.fsdecode(path)
    if callable(getattr(source, "read_bytes", None)):  # importlib.resources.abc.Traversable
        try:
            data = source.read_bytes()
        except FileNotFoundError:
            check(-errno.ENOENT, "open", path=str(source))
        return data, name or str(source)
    raise TypeError("a BPF object is a path, bytes or an importlib.resources file, "
                    f"not {type(source).__name__}")


class Handler:
    """A loaded and registered fastpath handler.

    Create one with :meth:`load`; close it (or use it as a context manager)
    to unregister it and free the BPF object.  Unregistering detaches it
    from every group it is attached to (the kernel revokes it); those groups
    then deliver every event (see :attr:`fanbpf.Group.handler`).
    """

    def __init__(self, obj: BpfObject, ops_map: str, args_type: CType | None):
        self.obj = obj
        self.ops_map = ops_map
        self.args_type = args_type
        self.name = obj.ops_name(ops_map)
        self.flags = obj.ops_flags(ops_map)
        self._attachments: weakref.WeakSet[Attachment] = weakref.WeakSet()  # released on close
        self._rules_maps: RulesMaps | None = None

    @classmethod
    def load(cls, source: ObjectSource, *, name: str | None = None, private: bool | None = None,
             unpriv: bool | None = None, globals: Mapping[str, Any] | None = None,
             args_type: str | None = None,
             ops_map: str | None = None, log_level: int = 0) -> Handler:
        """Load and register a handler.

        ``source`` is a built-in's short name ("rules": fanbpf/bpf/fanbpf_rules.bpf.o),
        the path of a BPF object, its bytes, or a file a package ships
        (``importlib.resources.files("mylib") / "filter.bpf.o"``).  A ``str``
        is a path if it contains a ``/`` or ends in ``.o``.  ``name`` registers it under another name;
        ``private`` True sets FAN_FP_F_PRIVATE (never listed, attached by fd),
        False clears it, None keeps what was compiled; ``unpriv`` does the
        same for FAN_FP_F_UNPRIV (groups without CAP_SYS_ADMIN may attach
        it; without it attaching needs CAP_SYS_ADMIN).  ``globals`` sets global
        variables before load (values encoded by their BTF types).  The
        init-args struct is ``struct <compiled name>_args`` unless ``args_type``
        names another.  ``ops_map`` picks a struct_ops map if there are several.
        """
        if isinstance(source, str) and os.sep not in source and not source.endswith(".o"):
            source = builtin_path(source)
        obj = BpfObject(source)
        try:
            ops_map = obj.ops_map(ops_map)
            compiled = obj.ops_name(ops_map)
            ctype: CType | None
            if args_type is not None:
                ctype = obj.btf.struct(args_type)
            else:  # None: a handler without init args
                ctype = obj.btf.find_struct(f"{compiled}_args")
            for key, value in (globals or {}).items():
                obj.set_global(key, value)
            if name is not None:
                obj.set_ops_name(name, ops_map)
            flags = obj.ops_flags(ops_map)
            for bit, wanted in ((FAN_FP_F_PRIVATE, private),
                                (FAN_FP_F_UNPRIV, unpriv)):
                if wanted is not None:
                    flags = flags | bit if wanted else flags & ~bit
            obj.set_ops_flags(flags, ops_map)
            obj.load(log_level)
            obj.register(ops_map)
            return cls(obj, ops_map, ctype)
        except BaseException:
            obj.close()
            raise

    def __repr__(self) -> str:
        kind = "private " if self.private else ""
        state = " (closed)" if self.closed else ""
        return f"<Handler {kind}{self.name!r} from {self.obj.path}{state}>"

    @property
    def private(self) -> bool:
        """Attached by fd only (FAN_FP_F_PRIVATE), never listed in sysfs."""
        return bool(self.flags & FAN_FP_F_PRIVATE)

    @property
    def map_fd(self) -> int:
        return self.obj.map_fd(self.ops_map)

    @property
    def maps(self) -> Maps:
        """The handler's maps by name (:mod:`fanbpf.maps`): ``handler.maps["counts"][key]``."""
        return self.obj.maps

    @property
    def globals(self) -> Globals:
        """The handler's global variables, decoded, live: ``handler.globals["nr_events"]``."""
        return self.obj.globals

    @property
    def link_fd(self) -> int:
        return self.obj.link_fd

    def encode_args(self, args: Mapping[str, Any] | Rules) -> bytes:
        """Init args from a dict, laid out as this handler's args struct.

        A :class:`fanbpf.rules.Rules` gives its init args (one without map
        entries: see :meth:`~fanbpf.rules.Rules.init_args`).
        """
        if isinstance(args, Rules):
            args = args.init_args()
        if self.args_type is None:
            raise ArgsError(f"handler {self.name!r} has no init-args struct (by convention "
                            "struct <compiled ops name>_args in its BTF); pass args_type= "
                            "to Handler.load, or give the args as bytes")
        return encode_args(self.args_type, args)

    @property
    def rules_maps(self) -> RulesMaps | None:
        """The ``fanbpf_rules`` maps of this object (:class:`fanbpf.rulesmaps.RulesMaps`),
        or None if it has none."""
        if self._rules_maps is None and not self.closed:
            self._rules_maps = RulesMaps.of(self.obj)
        return self._rules_maps

    @property
    def closed(self) -> bool:
        return self.obj.closed

    def close(self) -> None:
        """Unregister and free; idempotent.

        The kernel revokes the handler from every group it is attached
        to; their :class:`~fanbpf.Attachment` objects close (their maps
        go with the object), keeping the counts they had.
        """
        attachments = list(self._attachments)
        for att in attachments:
            att._snapshot()
        self.obj.close()
        for att in attachments:
            att._release("revoked: its handler was closed", maps_alive=False)

    def __del__(self) -> None:
        obj = getattr(self, "obj", None)
        if obj is not None and not obj.closed:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
            obj.close()

    def __enter__(self) -> Handler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fileno(fan_fd: FanFd) -> int:
    return fan_fd if isinstance(fan_fd, int) else fan_fd.fileno()


def check_name(name: str) -> None:
    """A handler name as the kernel accepts it (bpf_obj_name_cpy's rule), else ArgsError."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ArgsError(f"handler name {name!r} is invalid: use 1 to "
                        f"{lib.FAN_FP_NAME_MAX - 1} characters from A-Z a-z 0-9 _ .")


def attach(fan_fd: FanFd, target: Handler | str, args: InitArgs = None, *,
           group: Group | None = None) -> Attachment:
    """Attach a handler to the fanotify group behind ``fan_fd`` (an fd or has fileno()).

    ``target`` is a :class:`Handler` (attached by link fd if private, else by
    name; a dict ``args`` is encoded with its BTF) or a registered handler's
    name (then ``args`` must be bytes or None).  ``args`` may also be a
    :class:`fanbpf.rules.Rules` (what :func:`fanbpf.rules` returns): attached
    as a loaded ``fanbpf_rules`` Handler, its roots, names and exclusions go
    into the handler's maps; by name only a rule set that fits the init args
    (at most 16 roots, no names or exclusions) can be attached.

    Returns the :class:`~fanbpf.Attachment` (``group``: the
    :class:`~fanbpf.Group` that owns the hook, if any).
    """
    fd = _fileno(fan_fd)
    if isinstance(args, RulesArgs):
        args = Rules(args)
    if isinstance(args, Rules):
        maps = target.rules_maps if isinstance(target, Handler) else None
        if isinstance(target, Handler) and maps is not None:
            return _attach_rule_set(fd, target, maps, args, group)
        args = args.init_args()
    name = _attach_blob(fd, target, args)
    return Attachment(fd, name, group=group, handler=target if isinstance(target, Handler) else None)


def _attach_rule_set(fd: int, handler: Handler, maps: RulesMaps, rules: Rules,
                     group: Group | None) -> Attachment:
    """A rule set in the handler's maps under a new set id, then the hook."""
    rules, pins = pin_overlay(rules)
    set_id = maps.new_set_id()
    try:
        maps.write_set(set_id, rules.args)
        try:
            _attach_blob(fd, handler, replace(rules.args, set_id=set_id).to_dict())
        except BaseException:
            maps.delete_set(set_id)
            raise
    except BaseException:
        close_pins(pins)
        raise
    return Attachment(fd, handler.name, group=group, handler=handler, set_id=set_id,
                      rules=rules, pins=pins)


def _attach_blob(fd: int, target: Handler | str, args: Any) -> str:
    """The attach ioctl; the handler's name."""
    if isinstance(target, Handler):
        name = target.name
        blob = target.encode_args(args) if isinstance(args, Mapping) else args
    elif isinstance(target, str):
        name = target
        check_name(name)
        if isinstance(args, Mapping):
            raise TypeError(f"dict args for {name!r} need the handler's BTF: attach the "
                            "Handler object, or encode the args with Handler.encode_args()")
        blob = args
    else:
        raise TypeError(f"attach a Handler or a handler name, not {type(target).__name__}")
    if blob is None:
        blob = b""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise TypeError(f"init args must be a dict or bytes, not {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) > ARGS_MAX:
        raise ArgsError(f"init args of {len(blob)} bytes for {name!r}: the kernel accepts "
                        f"at most FAN_FP_ARGS_MAX = {ARGS_MAX} bytes", errno=errno.E2BIG)
    handler = target if isinstance(target, Handler) else None
    args_type = handler.args_type if handler is not None else None
    if blob and args_type is not None and len(blob) != args_type.size:
        raise ArgsError(f"init args of {len(blob)} bytes for {name!r}: its {args_type.c_name} "
                        f"is {args_type.size} bytes; pass a dict (encoded to fit) or exactly "
                        f"{args_type.size} bytes")

    buf = ffi.from_buffer(blob) if blob else ffi.NULL
    if handler is not None:
        handler.obj.clear_init_refusal()
    if handler is not None and handler.private:
        ret = lib.fanbpf_fp_attach_fd(fd, handler.link_fd, buf, len(blob))
    else:
        ret = lib.fanbpf_fp_attach_name(fd, name.encode(), buf, len(blob))
    refused = handler.obj.init_refusal() if ret == -errno.EINVAL and handler is not None else None
    if refused is not None:
        raise refusal_error(name, args_type, blob, *refused)
    check(ret, "attach", name=name, args_len=len(blob))
    return name


def attached(fan_fd: FanFd) -> str | None:
    """Name of the handler attached to the group behind ``fan_fd``, or None.

    Read from the fd's fdinfo.  The kernel detaches a handler from every
    group when it is unregistered (its link destroyed, its module unloaded);
    this then says None and the group receives every event again.
    """
    buf = ffi.new("char[]", lib.FAN_FP_NAME_MAX)
    ret = lib.fanbpf_fp_attached(_fileno(fan_fd), buf, lib.FAN_FP_NAME_MAX, ffi.NULL)
    check(ret, "attached")
    return ffi.string(buf).decode() if ret == 1 else None


def detach(fan_fd: FanFd, name: str | Handler | None = None) -> None:
    """Detach the handler of the group behind ``fan_fd``; only if it is ``name``, if given."""
    if isinstance(name, Handler):
        name = name.name
    if name is not None:
        check_name(name)
    check(lib.fanbpf_fp_detach(_fileno(fan_fd), _cstr(name)), "detach", name=name)

