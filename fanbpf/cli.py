# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""``fanbpf`` / ``python -m fanbpf``: watch paths, list handlers, probe the kernel.

``watch`` is a small fsnotifywait: it marks paths in a FID group and prints
one line per event, as text or JSON lines. Its filter options attach a
fastpath handler, so the filtering happens in the kernel. On a kernel
without the fastpath hook they fail with a message saying what is missing,
unless ``--fallback auto`` (or ``always``) runs the same rules in user
space (:class:`fanbpf.fallback.RulesGroup`); either way one line on stderr
says where the filtering runs.  Subtree roots (``--subtree``,
``--roots-from``) need no PATH: on a kernel with subtree marks
(``MarkFlag.SUBTREE``) each root gets one, and the filesystems mounted
below them, and only exclusions and names are left to the handler (none
is attached when there are none); elsewhere, or with ``--fallback
always``, every filesystem they live on is marked, those mounted below
them too.  On exit the handler's counters (delivered,
skipped, undecided) go to stderr.

Exit status: 0 success; 1 an error (message on stderr); 2 ``--timeout``
expired before ``--count`` events arrived, or bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import Any

from . import handler
from .attachment import Attachment
from .demo import run as run_demo
from .errors import KernelSupportError
from .events import Event
from .fallback import RulesFilter, RulesGroup
from .flags import EventMask, InitFlag, MarkFlag
from .group import DEFAULT_FLAGS, Group
from .rules import Rules, mount_points_below, mounts, rules
from .support import available_handlers, kernel_support, subtree_marks as has_subtree_marks
from .trace import Tracer, main_text

__all__ = ["main", "build_parser", "event_to_dict", "format_event", "mask_names", "parse_event_names",
           "read_roots"]

M = EventMask
#: Events ``watch`` asks for by default, per mark type. Mount marks cannot
#: carry directory-entry or inode events, so they get content events only.
DEFAULT_EVENTS = {
    MarkFlag.INODE: M.CREATE | M.DELETE | M.MODIFY | M.CLOSE_WRITE | M.MOVE | M.ATTRIB
    | M.DELETE_SELF | M.MOVE_SELF,
    MarkFlag.FILESYSTEM: M.CREATE | M.DELETE | M.MODIFY | M.CLOSE_WRITE | M.MOVE | M.ATTRIB
    | M.DELETE_SELF | M.MOVE_SELF,
    MarkFlag.MOUNT: M.OPEN | M.MODIFY | M.CLOSE,
}
#: ... and for the filesystems of --subtree roots: not DELETE_SELF, which
#: comes after the object's last name is gone, so no handler can tell where
#: it was: every one on the filesystem would be delivered (undecided).  The
#: DELETE of its name, which can be placed, reports the same deletion.
SUBTREE_EVENTS = DEFAULT_EVENTS[MarkFlag.FILESYSTEM] & ~M.DELETE_SELF
# Never asked for explicitly: modifiers, the overflow marker, permission events
# (watch does not answer them).
_NOT_SELECTABLE = {"ONDIR", "EVENT_ON_CHILD", "Q_OVERFLOW", "OPEN_PERM", "ACCESS_PERM",
                   "OPEN_EXEC_PERM", "PRE_ACCESS"}
_SELECTABLE = {name.lower(): member for name, member in M.__members__.items() if name not in _NOT_SELECTABLE}


def parse_event_names(text: str) -> EventMask:
    """``"create,delete"`` -> ``CREATE|DELETE`` (case-insensitive, ``all`` = the default set)."""
    mask = M(0)
    for word in filter(None, (w.strip().lower() for w in text.split(","))):
        if word == "all":
            mask |= DEFAULT_EVENTS[MarkFlag.INODE]
        elif word in _SELECTABLE:
            mask |= _SELECTABLE[word]
        else:
            raise argparse.ArgumentTypeError(
                f"unknown event {word!r}; choose from: all, {', '.join(sorted(_SELECTABLE))}")
    if not mask:
        raise argparse.ArgumentTypeError("no events given")
    return mask


def _key_value(text: str) -> tuple[str, Any]:
    """``--arg key=value``: the value as JSON if it parses (numbers, lists), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _nest(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """``[("names.mode", 1)]`` -> ``{"names": {"mode": 1}}``: dotted keys reach into structs."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        *parents, leaf = key.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--arg {key}: {part!r} is given both as a value and as a struct")
        node[leaf] = value
    return result


# --- output ----------------------------------------------------------------


def mask_names(mask: int) -> list[str]:
    """The names of the bits of ``mask``, lowest first (hex for unknown bits).

    Bit by bit rather than iterating the IntFlag, which Python < 3.11 cannot.
    """
    bits = [1 << i for i in range(64) if mask >> i & 1]
    return [EventMask(bit).name or hex(bit) for bit in bits]


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON form of an event: what a consumer needs, no handles or fds."""
    out: dict[str, Any] = {
        "events": mask_names(event.mask),
        "path": event.path,
        "pid": event.pid,
        "dir": event.is_dir,
    }
    for key in ("name", "old_name", "new_name", "old_path", "new_path"):
        value = getattr(event, key)
        if value is not None:
            out[key] = value
    if event.error is not None:
        out["error"] = event.error.error
        out["error_count"] = event.error.error_count
    return out


def format_event(event: Event) -> str:
    """One text line: ``EVENT,EVENT path`` (``old -> new`` for renames)."""
    kinds = ",".join(mask_names(event.mask))
    if event.is_overflow:
        return f"{kinds} (events were lost)"
    if event.old_name is not None or event.new_name is not None:
        where = f"{event.old_path or event.old_name} -> {event.new_path or event.new_name}"
    else:
        where = event.path or event.name or "?"
    return f"{kinds} {where}"


# --- subcommands ---------------------------------------------------------------


def cmd_watch(args: argparse.Namespace) -> int:
    mark_type = args.mark_type
    mask = args.events or DEFAULT_EVENTS[mark_type]
    mask |= M.ONDIR  # directories too, as fsnotifywait does
    if mark_type == MarkFlag.INODE:
        mask |= M.EVENT_ON_CHILD  # a marked directory reports its files
    if not args.paths and not (args.subtree or args.roots_from):
        raise _UsageError("give PATHs to watch, or roots (--subtree, --roots-from), whose "
                          "filesystems are then watched")
    seen = 0

    def show(events: Iterable[Event]) -> None:
        nonlocal seen
        for event in events:
            if seen == args.count:
                return
            line = json.dumps(event_to_dict(event)) if args.json else format_event(event)
            print(line, flush=True)
            seen += 1

    with ExitStack() as stack:
        subtree_marks = _use_subtree_marks(args)
        # inherited marks must not run into fs.fanotify.max_user_marks
        group = stack.enter_context(Group(DEFAULT_FLAGS | InitFlag.UNLIMITED_MARKS if subtree_marks
                                          else DEFAULT_FLAGS))
        reader, rule_set = _attach_filter(group, args, stack, subtree_marks=subtree_marks)
        for path in args.paths:
            group.mark(path, mask, mark_type)
        if rule_set is not None:
            _mark_filesystems(group, rule_set, args.events)
        stack.callback(signal.signal, signal.SIGTERM, signal.signal(signal.SIGTERM, _terminated))
        try:  # from here on a signal drains the queue (the banner may be what it interrupts)
            print("Watches established.", file=sys.stderr, flush=True)  # as fsnotifywait says it
            # The timeout is for watching: counted from before the setup (loading
            # a handler, reading roots), it could run out before any event.
            deadline = None if args.timeout is None else time.monotonic() + args.timeout
            while args.count is None or seen < args.count:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return 2 if args.count is not None else 0
                show(reader.read_events(timeout=remaining))
        except (KeyboardInterrupt, _Terminated) as stop:
            # Events the kernel queued before the signal are still in the group's
            # queue: exiting now would drop them. Print them first.
            before = seen
            show(reader.drain())
            signum = stop.signum if isinstance(stop, _Terminated) else signal.SIGINT
            print(f"fanbpf watch: stopped by {signal.Signals(signum).name}, after printing the "
                  f"{seen - before} event(s) still queued", file=sys.stderr, flush=True)
            return 128 + signum
    return 0


class _Terminated(Exception):
    """SIGTERM, raised where the watcher waits, so that it can drain its queue."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated(signum)


def _mark_filesystems(group: Group, rule_set: Rules, events: int | None) -> None:
    """Mark each filesystem a root lives on (nested mounts included).

    One that cannot be marked (a pseudo filesystem below ``/``, say) is
    named on stderr: its events are not seen.
    """
    mask = (events or SUBTREE_EVENTS) | M.ONDIR
    for path in rule_set.filesystems:
        try:
            group.mark(path, mask, MarkFlag.FILESYSTEM)
        except OSError as err:
            print(f"fanbpf watch: not watching the filesystem of {os.fsdecode(path)}: {err}",
                  file=sys.stderr, flush=True)


def read_roots(path: str) -> list[str]:
    """``--roots-from FILE``: one directory per line; blank lines and lines starting
    with ``#`` are skipped; ``-`` reads standard input."""
    with (open(sys.stdin.fileno(), closefd=False) if path == "-" else open(path)) as f:
        lines = [line.rstrip("\n") for line in f]
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


#: --fallback -> RulesGroup mode
_FALLBACK_MODES = {"never": "kernel", "auto": "auto", "always": "userspace"}


def _use_subtree_marks(args: argparse.Namespace) -> bool:
    """Roots alone (no PATH to mark) are watched with subtree marks where the
    kernel has them, unless the rules are to run in user space."""
    if args.paths or not (args.subtree or args.roots_from) or args.fallback == "always" \
            or args.handler or args.handler_object:
        return False
    return has_subtree_marks()


def _attach_filter(group: Group, args: argparse.Namespace, stack: ExitStack, *,
                   subtree_marks: bool = False) -> tuple[Group | RulesGroup, Rules | None]:
    """Attach what the filter options ask for: what to read events from, and
    the rule set whose filesystems are to be marked (None without the rules
    options, and with ``subtree_marks``, which marks the roots here).

    Handlers live as long as the group.  The rules options run through
    :class:`~fanbpf.fallback.RulesGroup`, in the kernel or (``--fallback``)
    in user space, and say on stderr which; their counters are printed
    there on exit.
    """
    roots = [*args.subtree, *(r for f in args.roots_from for r in read_roots(f))]
    has_roots = bool(args.subtree or args.roots_from)
    rule_options = (has_roots or args.name or args.exclude_name or args.exclude_self
                    or args.exclude_dir or args.exclude_subtree)
    if args.arg and not (args.handler or args.handler_object):
        raise _UsageError("--arg is for --handler/--handler-object")
    if args.fallback != "never" and not rule_options:
        raise _UsageError("--fallback is for the rules options (--subtree, --roots-from, --name, "
                          "--exclude-name, --exclude-dir, --exclude-subtree, --exclude-self): "
                          "other handlers run in the kernel only")
    if rule_options:
        if args.handler or args.handler_object:
            raise _UsageError("the rules options use the built-in rules handler; they cannot "
                              "be combined with --handler")
        if subtree_marks:
            return _watch_subtrees(group, args, roots, stack), None
        rule_set = rules(  # checked here, before anything is loaded
            subtree=roots if has_roots else None,
            exclude_dirs=args.exclude_dir or None,
            exclude_subtrees=args.exclude_subtree or None,
            names=args.name or None,
            exclude_names=args.exclude_name or None,
            exclude_pid=True if args.exclude_self else None,
        )
        filtered = stack.enter_context(RulesGroup(group, rule_set, mode=_FALLBACK_MODES[args.fallback]))
        if filtered.mode == "kernel":
            print("fanbpf watch: filtering in the kernel (fastpath handler fanbpf_rules)",
                  file=sys.stderr, flush=True)
            stack.callback(_report_stats, group.attachment)
        else:
            print(f"fanbpf watch: filtering in user space ({_why(filtered.fallback_reason)})",
                  file=sys.stderr, flush=True)
            stack.callback(_report_undecided, filtered.filter)
        return filtered, (rule_set if has_roots else None)
    elif args.handler_object:
        loaded = stack.enter_context(handler.Handler.load(os.path.abspath(args.handler_object), private=True))
        group.attach(loaded, _nest(args.arg))
    elif args.handler:
        if any(h.name == args.handler for h in available_handlers()):
            if args.arg:
                raise _UsageError(f"--arg needs the handler's BTF, which a registered handler "
                                  f"({args.handler!r}) does not give; use --handler-object FILE")
            group.attach(args.handler)
        else:  # a built-in handler: load a private copy
            loaded = stack.enter_context(handler.Handler.load(args.handler, private=True))
            group.attach(loaded, _nest(args.arg))
    return group, None


def _watch_subtrees(group: Group, args: argparse.Namespace, roots: list[str], stack: ExitStack
                    ) -> Group | RulesGroup:
    """Roots as subtree marks: events outside them never reach the group, so
    the handler keeps only the other rules (and is not attached without any)."""
    options: dict[str, Any] = dict(
        exclude_dirs=args.exclude_dir or None, exclude_subtrees=args.exclude_subtree or None,
        names=args.name or None, exclude_names=args.exclude_name or None,
        exclude_pid=True if args.exclude_self else None)
    rule_set = rules(**options)  # checked here, before anything is loaded
    real = list(dict.fromkeys(os.path.realpath(r) for r in roots))
    cut = tuple(os.path.realpath(d).rstrip("/") + "/" for d in args.exclude_subtree)
    table = mounts()

    listed = rule_set.dir_listed()

    def excluded(path: str, names: Iterable[str]) -> bool:
        return (path + "/").startswith(cut) or any(map(listed, names))

    # Without a subtree rule the handler walks up to the filesystem's root:
    # a root inside an excluded subtree, or below a directory with an excluded
    # name, would be excluded whole.  Then the walk must stop at the roots.
    if any((r + "/").startswith(cut) for r in real) or rule_set.walk_excludes(real, table):
        rule_set = rules(subtree=roots, **options)
    # Marks do not cross mounts: filesystems mounted below a root get their own
    # (not those below an exclusion: the handler's walk stops at their root).
    below = [p for p in mount_points_below(real, table)
             if not any(p.startswith(r.rstrip("/") + "/") and
                        excluded(p, filter(None, p[len(r):].split("/"))) for r in real)]
    filters = [what for what, on in (("exclusions", args.exclude_dir or args.exclude_subtree),
                                     ("names", args.name or args.exclude_name),
                                     ("this process's events", args.exclude_self)) if on]
    note = f"fanbpf watch: watching {len(real)} subtree(s) with subtree marks"
    reader: Group | RulesGroup = group
    if rule_set.args.sections:
        reader = stack.enter_context(RulesGroup(group, rule_set, mode=_FALLBACK_MODES[args.fallback]))
        if reader.mode == "kernel":
            where = "in the kernel (fastpath handler fanbpf_rules)"
            stack.callback(_report_stats, group.attachment)
        else:
            where = f"in user space ({_why(reader.fallback_reason)})"
            stack.callback(_report_undecided, reader.filter)
        note += f"; filtering {', '.join(filters)} {where}"
    else:
        note += "; nothing else to filter: no handler attached"
    mask = (args.events or SUBTREE_EVENTS) | M.ONDIR
    for root in dict.fromkeys(roots):
        group.mark(root, mask, MarkFlag.SUBTREE)
    print(note, file=sys.stderr, flush=True)
    for point in below:
        try:
            group.mark(point, mask, MarkFlag.SUBTREE)
        except OSError as err:
            print(f"fanbpf watch: not watching what is mounted on {point}: {err}",
                  file=sys.stderr, flush=True)
    return reader


def _report_stats(attachment: Attachment | None) -> None:
    """What the handler decided, from its counters (kept when the group closes)."""
    if attachment is None:
        print("fanbpf watch: no counters: no handler was attached", file=sys.stderr, flush=True)
        return
    try:
        s = attachment.stats
    except (OSError, ValueError) as err:
        print(f"fanbpf watch: no counters: {err}", file=sys.stderr, flush=True)
        return
    print(f"fanbpf watch: delivered {s.delivered}, skipped {s.skipped}, undecided {s.undecided}"
          + (" (delivered: the handler could not decide them)" if s.undecided else ""),
          file=sys.stderr, flush=True)


def _report_undecided(rules_filter: RulesFilter | None) -> None:
    """In user space a rule can need a file that is gone by the time the event is
    read; such events are delivered (never lost silently), and said so here."""
    if rules_filter is not None and rules_filter.uncertain:
        print(f"fanbpf watch: {rules_filter.uncertain} event(s) delivered undecided: what the "
              "rules needed was gone before user space could look (the kernel handler "
              "looks when the event happens)", file=sys.stderr, flush=True)


def _why(reason: OSError | None) -> str:
    if reason is None:
        return "--fallback always"
    if isinstance(reason, KernelSupportError):
        return f"this kernel lacks the fastpath hook; missing: {'; '.join(reason.missing)}"
    return str(reason)


def cmd_handlers(args: argparse.Namespace) -> int:
    handlers = available_handlers()
    for info in handlers:
        if args.json:
            print(json.dumps({"name": info.name, "owner": info.owner, "flags": sorted(info.flags),
                              "description": info.description}))
        else:
            flags = f" [{','.join(sorted(info.flags))}]" if info.flags else ""
            print(f"{info.name}\t{info.owner}{flags}\t{info.description}")
    if not handlers and not args.json:
        print("no handlers registered", file=sys.stderr)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    support = kernel_support()
    report = {
        "kernel": os.uname().release,
        "fastpath": support.fastpath,
        "vmlinux_btf": support.vmlinux_btf,
        "fastpath_btf": support.fastpath_btf,
        "struct_ops_maps": support.struct_ops_maps,
        "fastpath_ioctl": support.fastpath_ioctl,
        "series": support.series,
        "fanotify_error": os.strerror(support.fanotify_errno) if support.fanotify_errno else None,
        "missing": list(support.missing),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"kernel {report['kernel']}: fastpath handlers "
              f"{'supported' if support.fastpath else 'NOT supported'}")
        for key in ("vmlinux_btf", "fastpath_btf", "struct_ops_maps", "fastpath_ioctl"):
            print(f"  {key:16} {'yes' if report[key] else 'no'}")
        print(f"  {'series':16} {f'v{support.series}' if support.series else 'none'}")
        for what in support.missing:
            print(f"  missing: {what}")
    return 0 if support.fastpath else 1


# --- argument parsing ---------------------------------------------------------


class _UsageError(Exception):
    """A combination of options argparse cannot express; reported like its errors."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fanbpf", description="In-kernel fanotify filters (BPF fastpath handlers).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    watch = sub.add_parser("watch", help="print filesystem events under PATHs",
                           description="Print filesystem events (like fsnotifywait). Filter options "
                           "attach a fastpath handler: the filtering runs in the kernel.")
    watch.add_argument("paths", nargs="*", metavar="PATH",
                       help="what to mark (default with roots: every filesystem they live on)")
    watch.add_argument("-e", "--events", type=parse_event_names, metavar="LIST",
                       help="comma-separated events (create,delete,modify,close_write,moved_from,"
                       "moved_to,attrib,open,access,...; default: all changes, and with --subtree "
                       "all but delete_self, which no filter can place)")
    kind = watch.add_mutually_exclusive_group()
    kind.add_argument("--inode", dest="mark_type", action="store_const", const=MarkFlag.INODE,
                      help="mark the PATHs themselves (default; a directory reports its entries)")
    kind.add_argument("--mount", dest="mark_type", action="store_const", const=MarkFlag.MOUNT,
                      help="mark the mounts of the PATHs (content events only)")
    kind.add_argument("--filesystem", dest="mark_type", action="store_const", const=MarkFlag.FILESYSTEM,
                      help="mark the whole filesystems of the PATHs")
    watch.set_defaults(mark_type=MarkFlag.INODE)
    watch.add_argument("--json", action="store_true", help="print JSON lines")
    watch.add_argument("-c", "--count", type=_positive_int, metavar="N", help="exit after N events")
    watch.add_argument("-t", "--timeout", type=float, metavar="SECONDS",
                       help="exit SECONDS after the watches are established (status 2 if "
                       "--count events had not arrived)")
    rules = watch.add_argument_group("in-kernel filters (built-in rules handler)")
    rules.add_argument("--subtree", action="append", default=[], metavar="DIR",
                       help="only events under DIR (repeatable); the filesystems of the roots "
                       "(and of mounts below them) are marked")
    rules.add_argument("--roots-from", action="append", default=[], metavar="FILE",
                       help="more roots, one directory per line ('#' comments; - for stdin)")
    rules.add_argument("--exclude-dir", action="append", default=[], metavar="PATTERN",
                       help="drop events below directories named PATTERN at any depth, e.g. "
                       ".git, node_modules, '*.egg-info' (repeatable)")
    rules.add_argument("--exclude-subtree", action="append", default=[], metavar="DIR",
                       help="drop events below DIR (repeatable)")
    rules.add_argument("--name", action="append", default=[], metavar="PATTERN",
                       help="only entries whose name matches PATTERN (* and ?; repeatable)")
    rules.add_argument("--exclude-name", action="append", default=[], metavar="PATTERN",
                       help="drop entries whose name matches PATTERN (repeatable)")
    rules.add_argument("--exclude-self", action="store_true", help="drop events caused by this process")
    rules.add_argument("--fallback", choices=tuple(_FALLBACK_MODES), default="never",
                       help="where the rules run on a kernel without the fastpath hook: never "
                       "(fail, the default), auto (in the kernel if it can, else in user space), "
                       "always (in user space)")
    other = watch.add_argument_group("other handlers")
    other.add_argument("--handler", metavar="NAME", help="attach a registered or built-in handler")
    other.add_argument("--handler-object", metavar="FILE", help="load and attach the handler in FILE.bpf.o")
    other.add_argument("--arg", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                       help="an init-args field (dotted keys reach into structs; JSON values)")
    watch.set_defaults(func=cmd_watch)

    handlers = sub.add_parser("handlers", help="list the registered fastpath handlers")
    handlers.add_argument("--json", action="store_true", help="print JSON lines")
    handlers.set_defaults(func=cmd_handlers)

    probe = sub.add_parser("probe", help="report the kernel's fastpath support (status 1 if missing)")
    probe.add_argument("--json", action="store_true", help="print one JSON object")
    probe.set_defaults(func=cmd_probe)

    tr = sub.add_parser("trace", help="run a command and report the files it and its "
                        "descendants used (filtered in the kernel)",
                        description="Run CMD and report what it and every process it starts "
                        "read, wrote, created, deleted, renamed and executed, filtered in the "
                        "kernel by a fastpath handler.")
    tr.add_argument("--json", action="store_true",
                    help="print JSON Lines (one per event, one per file, a summary)")
    mode = tr.add_mutually_exclusive_group()
    mode.add_argument("--cgroup", dest="cgroup", action="store_const", const=True,
                      help="require a fresh cgroup v2 for the command (default: when possible)")
    mode.add_argument("--no-cgroup", dest="cgroup", action="store_const", const=False,
                      help="follow the process tree by ancestry only")
    tr.add_argument("--fs", action="append", metavar="PATH",
                    help="watch the file system of PATH (repeatable; default: every file "
                    "system the command can reach)")
    tr.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    tr.set_defaults(func=cmd_trace)

    demo = sub.add_parser("demo", help="subtree monitoring with the filter in the kernel "
                          "(in user space on a kernel without the hook)")
    demo.add_argument("--ops", type=_positive_int, default=400,
                      help="workload operations (default 400)")
    demo.add_argument("--seed", type=int, default=1, help="workload seed")
    demo.add_argument("--quiet", action="store_true", help="print only the summary")
    demo.set_defaults(func=cmd_demo)
    return parser


def cmd_trace(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise _UsageError("trace: give the command after --")
    tracer = Tracer(cmd, fs=args.fs, cgroup=args.cgroup)
    result = tracer.run()
    main_text(result, args.json)
    if result.overflows:
        print(f"fanbpf trace: {result.overflows} queue overflows: the trace is incomplete",
              file=sys.stderr)
        return 3
    return result.returncode


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(args.ops, args.seed, args.quiet)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except _UsageError as err:
        parser.error(str(err))  # exits with status 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fanbpf watch ... | head`: the reader is gone, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        os.close(devnull)
        return 0
    except (OSError, ValueError) as err:
        print(f"fanbpf {args.command}: {err}", file=sys.stderr)
        return 1
    return 0
