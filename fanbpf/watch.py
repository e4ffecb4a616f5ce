# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""``fanbpf.watch()`` and ``fanbpf.awatch()``: watchfiles' API on fanotify.

A drop-in for `watchfiles <https://watchfiles.helpmanual.io>`_'s
``watch``/``awatch``: each iteration yields a set of ``(Change, path)``
with watchfiles' :class:`Change` values, after the same debouncing, with
its filters and keyword arguments::

    from fanbpf import watch          # was: from watchfiles import watch
    for changes in watch("./src", exclude_dirs=[".git", "node_modules"]):
        print(changes)

The mechanism is picked by :func:`fanbpf.watching.open_source` (``.mode``
says which, and a log line): in-kernel rules on a kernel with the fastpath
hook, the same rules in user space on a stock kernel with CAP_SYS_ADMIN,
an inode mark per directory without privilege. Where watchfiles differs:

- ``exclude_dirs`` (new): directory names whose contents are never
  reported, dropped in the kernel where it can be. By default the
  :class:`DefaultFilter`'s ``ignore_dirs`` are used this way too
  (``.git``, ``node_modules``, ...), below the watched directories;
  the filter still runs on every change.
- Renames are a ``deleted`` and an ``added``, as in watchfiles; a rename
  in or out of the watched trees is only the half inside.
- Nothing made in a new directory is missed (watchfiles' inotify watch on
  it comes after the first files).
- On SIGINT the changes the kernel had already queued are yielded first;
  the ``KeyboardInterrupt`` follows on the next iteration (watchfiles drops
  them).
- ``force_polling=True`` is refused (fanbpf does not poll);
  ``poll_delay_ms`` is accepted and unused.
- ``awatch`` waits with ``loop.add_reader``, not a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import select
import time
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Optional, Protocol, Union

from .group import PathArg
from .watching import FsEvent, Source, open_source

__all__ = ["watch", "awatch", "Change", "FileChange", "BaseFilter", "DefaultFilter",
           "PythonFilter", "Notify", "Watch", "AWatch"]

logger = logging.getLogger("fanbpf.watch")


class Change(IntEnum):
    """What happened to a path (watchfiles' values)."""

    added = 1
    modified = 2
    deleted = 3

    def raw_str(self) -> str:
        return self.name


FileChange = tuple[Change, str]

#: What ``watch_filter`` is: ``(change, path) -> keep it``.
WatchFilter = Callable[[Change, str], bool]


class AbstractEvent(Protocol):
    """What ``stop_event`` is (as in watchfiles): a ``threading.Event``, an
    ``asyncio.Event``, an ``anyio.Event``..."""

    def is_set(self) -> bool: ...

# --- filters (watchfiles' semantics) --------------------------------------------


class BaseFilter:
    """A filter configured by class attributes, as watchfiles' ``BaseFilter``:
    drop changes below a directory named in ``ignore_dirs`` (any component
    of the path), whose last component matches a regex of
    ``ignore_entity_patterns``, or that start with one of ``ignore_paths``."""

    __slots__ = "_ignore_dirs", "_ignore_entity_regexes", "_ignore_paths"
    ignore_dirs: Sequence[str] = ()
    ignore_entity_patterns: Sequence[str] = ()
    ignore_paths: Sequence[Union[str, Path]] = ()

    def __init__(self) -> None:
        self._ignore_dirs = set(self.ignore_dirs)
        self._ignore_entity_regexes = tuple(re.compile(r) for r in self.ignore_entity_patterns)
        self._ignore_paths = tuple(map(str, self.ignore_paths))

    def __call__(self, change: Change, path: str) -> bool:
        parts = path.lstrip(os.sep).split(os.sep)
        if any(p in self._ignore_dirs for p in parts):
            return False
        if any(r.search(parts[-1]) for r in self._ignore_entity_regexes):
            return False
        return not (self._ignore_paths and path.startswith(self._ignore_paths))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k, None)!r}" for k in self.__slots__)
        return f"{self.__class__.__name__}({args})"


class DefaultFilter(BaseFilter):
    """What you would not want to hear about: VCS and tool directories, byte
    code, editor swap and backup files (watchfiles' list)."""

    ignore_dirs: Sequence[str] = ("__pycache__", ".git", ".hg", ".svn", ".tox", ".venv", ".idea",
                                  "node_modules", ".mypy_cache", ".pytest_cache", ".hypothesis")
    ignore_entity_patterns: Sequence[str] = (r"\.py[cod]$", r"\.___jb_...___$", r"\.sw.$", "~$",
                                             r"^\.\#", r"^\.DS_Store$", r"^flycheck_")

    def __init__(self, *, ignore_dirs: Optional[Sequence[str]] = None,
                 ignore_entity_patterns: Optional[Sequence[str]] = None,
                 ignore_paths: Optional[Sequence[Union[str, Path]]] = None) -> None:
        if ignore_dirs is not None:
            self.ignore_dirs = ignore_dirs
        if ignore_entity_patterns is not None:
            self.ignore_entity_patterns = ignore_entity_patterns
        if ignore_paths is not None:
            self.ignore_paths = ignore_paths
        super().__init__()


class PythonFilter(DefaultFilter):
    """:class:`DefaultFilter`, and only Python files (``.py``, ``.pyx``, ``.pyd``
    and ``extra_extensions``)."""

    def __init__(self, *, ignore_paths: Optional[Sequence[Union[str, Path]]] = None,
                 extra_extensions: Sequence[str] = ()) -> None:
        self.extensions = (".py", ".pyx", ".pyd") + tuple(extra_extensions)
        super().__init__(ignore_paths=ignore_paths)

    def __call__(self, change: Change, path: str) -> bool:
        return path.endswith(self.extensions) and super().__call__(change, path)


# --- the notifier ---------------------------------------------------------------

Raw = Union[set[tuple[int, str]], str]


class Notify:
    """watchfiles' ``RustNotify``, on a :class:`fanbpf.watching.Source`.

    :meth:`watch` waits for changes and returns them as a set of
    ``(change, path)`` ints and strings, or ``"timeout"``, ``"stop"``
    (``stop_event`` was set) or ``"signal"`` (SIGINT), as RustNotify does;
    the positional arguments are RustNotify's. ``mode``/``description``
    say which mechanism watches (:data:`fanbpf.watching.MODES`).
    """

    def __init__(self, watch_paths: Sequence[PathArg], debug: bool = False, force_polling: bool = False,
                 poll_delay_ms: int = 300, recursive: bool = True,
                 ignore_permission_denied: bool = False, *, exclude_dirs: Sequence[str] = (),
                 mode: Optional[str] = None) -> None:
        if force_polling:
            raise ValueError("fanbpf does not poll: force_polling=True needs watchfiles itself")
        self.debug = debug
        self.source = open_source(list(watch_paths), recursive=recursive,
                                  kinds=("created", "deleted", "moved", "modified", "attrib"),
                                  exclude_dirs=exclude_dirs, mode=mode,
                                  ignore_permission_denied=ignore_permission_denied)
        self.mode = self.source.mode
        self.description = self.source.description
        self.changes: set[tuple[int, str]] = set()
        self._signalled = False

    def _add(self, events: list[FsEvent]) -> None:
        """Fold events into the batch as watchfiles does: a modification of a
        path added or deleted in this batch is not reported."""
        changes = self.changes
        for event in events:
            if self.debug:
                print(f"raw-event={event!r}", flush=True)
            if event.kind == "moved":
                changes.add((Change.deleted, event.path))
                assert event.dest is not None, "a moved event has a dest"
                changes.add((Change.added, event.dest))
            elif event.kind == "created":
                changes.add((Change.added, event.path))
            elif event.kind == "deleted":
                changes.add((Change.deleted, event.path))
            elif (Change.added, event.path) not in changes and \
                    (Change.deleted, event.path) not in changes:
                changes.add((Change.modified, event.path))

    def _batches(self, debounce_ms: int, step_ms: int, timeout_ms: Optional[int],
                 stop_event: Optional[AbstractEvent]) -> Generator[float, Optional[bool], Raw]:
        """The batching of RustNotify.watch, without the waiting: yields how long
        to wait (seconds) for the fanotify fd, is sent whether it became
        readable, and returns what :meth:`watch` returns."""
        if self._signalled:
            self._signalled = False
            return "signal"
        step = step_ms / 1000
        is_set = getattr(stop_event, "is_set", None) if stop_event is not None else None
        if stop_event is not None and not callable(is_set):
            raise TypeError(f"stop_event must have an is_set() method, not {type(stop_event).__name__}")
        deadline = time.monotonic() + timeout_ms / 1000 if timeout_ms else None
        max_debounce: Optional[float] = None
        last_size = 0
        while True:
            if (yield step):
                # Read no longer than the batch may last: while events come
                # in as fast as they are read, the queue never empties.
                now = time.monotonic()
                self._add(self.source.drain(max_debounce or now + debounce_ms / 1000))
                if self.changes and max_debounce is None:
                    max_debounce = now + debounce_ms / 1000
            if self.source.closed:
                raise RuntimeError("fanbpf watcher closed")
            if is_set is not None and is_set():
                self.changes.clear()
                return "stop"
            size = len(self.changes)
            if size:
                if size == last_size:
                    break
                last_size = size
                now = time.monotonic()
                if max_debounce is None:
                    max_debounce = now + debounce_ms / 1000
                elif now > max_debounce:
                    break
            elif deadline is not None and time.monotonic() > deadline:
                return "timeout"
        changes, self.changes = self.changes, set()
        return changes

    def watch(self, debounce_ms: int, step_ms: int, timeout_ms: Optional[int],
              stop_event: Optional[AbstractEvent]) -> Raw:
        """Wait for a batch of changes (see the class docstring); ``timeout_ms``
        0 or None: no timeout."""
        batches = self._batches(debounce_ms, step_ms, timeout_ms, stop_event)
        ready: Optional[bool] = None
        poller = select.poll()
        poller.register(self.source.fileno(), select.POLLIN)
        try:
            while True:
                wait = batches.send(ready)
                # The whole step is waited (as RustNotify sleeps it), so that a
                # batch closes only after a quiet step.
                end = time.monotonic() + wait
                ready = bool(poller.poll(wait * 1000))
                if ready and (left := end - time.monotonic()) > 0:
                    time.sleep(left)
        except StopIteration as done:
            result: Raw = done.value  # what _batches returned
            return result
        except KeyboardInterrupt:
            return self._interrupted()

    async def awatch(self, debounce_ms: int, step_ms: int, timeout_ms: Optional[int],
                     stop_event: Optional[AbstractEvent]) -> Raw:
        """:meth:`watch` for asyncio: waits with ``loop.add_reader``."""
        loop = asyncio.get_running_loop()
        batches = self._batches(debounce_ms, step_ms, timeout_ms, stop_event)
        ready: Optional[bool] = None
        fd = self.source.fileno()
        readable = asyncio.Event()
        loop.add_reader(fd, readable.set)
        try:
            while True:
                wait = batches.send(ready)
                await asyncio.sleep(wait)
                ready = readable.is_set()
                readable.clear()
        except StopIteration as done:
            result: Raw = done.value  # what _batches returned
            return result
        finally:
            if not self.source.closed:
                loop.remove_reader(fd)

    def _interrupted(self) -> Raw:
        """SIGINT: what the kernel had queued is returned first, then "signal"."""
        self._add(self.source.drain())
        changes, self.changes = self.changes, set()
        if not changes:
            return "signal"
        self._signalled = True
        return changes

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> Notify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Notify({self.mode}: {self.description})"


# --- watch() and awatch() ------------------------------------------------------------


def _kernel_excludes(exclude_dirs: Optional[Sequence[str]],
                     watch_filter: Optional[WatchFilter]) -> tuple[str, ...]:
    """The directory names to drop in the kernel: those given, else the
    filter's ``ignore_dirs`` (a subset of what the filter drops: the kernel
    drops only below the watched directories)."""
    if exclude_dirs is not None:
        return tuple(exclude_dirs)
    ignore_dirs = getattr(watch_filter, "ignore_dirs", None)  # BaseFilter's, or any filter's
    if isinstance(ignore_dirs, (tuple, list)):
        return tuple(ignore_dirs)
    return ()


def _default_ignore_permission_denied(ignore_permission_denied: Optional[bool]) -> bool:
    """As watchfiles: the argument, else the WATCHFILES_IGNORE_PERMISSION_DENIED variable."""
    if ignore_permission_denied is not None:
        return ignore_permission_denied
    return bool(os.getenv("WATCHFILES_IGNORE_PERMISSION_DENIED"))


def _calc_async_timeout(timeout: Optional[int]) -> int:
    """awatch's ``rust_timeout``: None is 5 s, as in watchfiles on POSIX."""
    return 5_000 if timeout is None else timeout


def _prep_changes(raw: set[tuple[int, str]], watch_filter: Optional[WatchFilter]) -> set[FileChange]:
    changes = {(Change(change), path) for change, path in raw}
    if watch_filter:
        changes = {c for c in changes if watch_filter(c[0], c[1])}
    return changes


def _log_changes(changes: set[FileChange]) -> None:
    if logger.isEnabledFor(logging.INFO):
        count = len(changes)
        plural = "" if count == 1 else "s"
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%d change%s detected: %s", count, plural, changes)
        else:
            logger.info("%d change%s detected", count, plural)


class _WatchBase:
    def __init__(self, paths: Sequence[Union[Path, str]], watch_filter: Optional[WatchFilter],
                 debounce: int, step: int, stop_event: Optional[AbstractEvent],
                 rust_timeout: Optional[int], yield_on_timeout: bool, debug: Optional[bool],
                 force_polling: Optional[bool], recursive: bool,
                 ignore_permission_denied: Optional[bool], exclude_dirs: Optional[Sequence[str]],
                 mode: Optional[str]) -> None:
        self.watch_filter = watch_filter
        self.debounce, self.step = debounce, step
        self.stop_event, self.rust_timeout = stop_event, rust_timeout
        self.yield_on_timeout = yield_on_timeout
        self._notify = Notify([str(p) for p in paths], bool(debug or os.getenv("WATCHFILES_DEBUG")),
                              bool(force_polling), 300, recursive,
                              _default_ignore_permission_denied(ignore_permission_denied),
                              exclude_dirs=_kernel_excludes(exclude_dirs, watch_filter), mode=mode)
        self._done = False

    @property
    def mode(self) -> str:
        """The mechanism watching: ``kernel``, ``userspace`` or ``inode-marks``."""
        return self._notify.mode

    @property
    def description(self) -> str:
        return self._notify.description

    @property
    def source(self) -> Source:
        """The :class:`fanbpf.watching.Source` (``overflows``, ``unresolved``)."""
        return self._notify.source

    def _result(self, raw: Raw) -> Optional[set[FileChange]]:
        """The set to yield for RustNotify-style ``raw``, None for none (then the
        iteration goes on unless "stop" ended it); "signal" is the caller's."""
        if raw == "stop":
            self._finish()
            return None
        if raw == "timeout":
            if self.yield_on_timeout:
                return set()
            logger.debug("rust notify timeout, continuing")
            return None
        assert not isinstance(raw, str), f"unexpected {raw!r}"  # "signal" is the caller's
        changes = _prep_changes(raw, self.watch_filter)
        if changes:
            _log_changes(changes)
            return changes
        logger.debug("all changes filtered out, raw_changes=%s", raw)
        return None

    def _finish(self) -> None:
        self._done = True
        self._notify.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.mode}: {self.description}>"

    def __del__(self) -> None:
        notify = getattr(self, "_notify", None)
        if notify is not None:
            notify.close()


class Watch(_WatchBase):
    """What :func:`watch` returns: an iterator of change sets, with ``mode``."""

    def __init__(self, paths: Sequence[Union[Path, str]], watch_filter: Optional[WatchFilter],
                 debounce: int, step: int, stop_event: Optional[AbstractEvent],
                 rust_timeout: Optional[int], yield_on_timeout: bool, debug: Optional[bool],
                 force_polling: Optional[bool], recursive: bool,
                 ignore_permission_denied: Optional[bool], exclude_dirs: Optional[Sequence[str]],
                 mode: Optional[str], *, raise_interrupt: bool = True) -> None:
        super().__init__(paths, watch_filter, debounce, step, stop_event, rust_timeout,
                         yield_on_timeout, debug, force_polling, recursive,
                         ignore_permission_denied, exclude_dirs, mode)
        self.raise_interrupt = raise_interrupt

    def __iter__(self) -> Iterator[set[FileChange]]:
        return self

    def __next__(self) -> set[FileChange]:
        while not self._done:
            raw = self._notify.watch(self.debounce, self.step, self.rust_timeout, self.stop_event)
            if raw == "signal":
                self._finish()
                if self.raise_interrupt:
                    raise KeyboardInterrupt
                logger.warning("KeyboardInterrupt caught, stopping watch")
                break
            changes = self._result(raw)
            if changes is not None:
                return changes
        raise StopIteration

    def close(self) -> None:
        """Stop watching (generator-style; also what ``with`` does)."""
        self._finish()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



class AWatch(_WatchBase):
    """What :func:`awatch` returns: an async iterator of change sets, with ``mode``."""

    def __aiter__(self) -> AsyncIterator[set[FileChange]]:
        return self

    async def __anext__(self) -> set[FileChange]:
        timeout = _calc_async_timeout(self.rust_timeout)
        while not self._done:
            try:
                raw = await self._notify.awatch(self.debounce, self.step, timeout, self.stop_event)
            except BaseException:
                self._finish()
                raise
            changes = self._result(raw)
            if changes is not None:
                return changes
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._finish()



def watch(*paths: Union[Path, str], watch_filter: Optional[WatchFilter] = DefaultFilter(),
          debounce: int = 1_600, step: int = 50, stop_event: Optional[AbstractEvent] = None, rust_timeout: int = 5_000,
          yield_on_timeout: bool = False, debug: Optional[bool] = None, raise_interrupt: bool = True,
          force_polling: Optional[bool] = None, poll_delay_ms: int = 300, recursive: bool = True,
          ignore_permission_denied: Optional[bool] = None,
          exclude_dirs: Optional[Sequence[str]] = None, mode: Optional[str] = None) -> Watch:
    """Watch ``paths`` and yield a set of ``(Change, path)`` whenever files change.

    The arguments are watchfiles' ``watch()``'s (``debounce``: longest
    time, in ms, to group changes over; ``step``: a batch is yielded after
    ``step`` ms without new changes; ``stop_event``: anything with
    ``is_set()``; ``rust_timeout``: yield ``set()`` (``yield_on_timeout``)
    or go on waiting after that many ms without changes, 0 = never;
    ``raise_interrupt``: re-raise SIGINT's ``KeyboardInterrupt`` or stop;
    ``recursive``; ``watch_filter``: a callable ``(Change, path) -> bool``
    or None for every change), plus:

    ``exclude_dirs``
        directory names (``*``/``?`` patterns) below the watched
        directories whose contents are never reported: dropped in the kernel
        in ``subtree-marks`` and ``kernel`` modes, not marked in
        ``inode-marks`` mode. Default: the
        filter's ``ignore_dirs``, if it has them (:class:`DefaultFilter`).
    ``mode``
        force a mechanism (see :data:`fanbpf.watching.MODES`); default: the
        best this process may use.

    Returns an iterator with ``mode`` (and ``close()``); watching starts
    here, so errors are raised here: FileNotFoundError for a missing path,
    :class:`fanbpf.watching.WatchError` for what fanotify cannot watch.
    """
    return Watch(paths, watch_filter, debounce, step, stop_event, rust_timeout, yield_on_timeout,
                 debug, force_polling, recursive, ignore_permission_denied, exclude_dirs, mode,
                 raise_interrupt=raise_interrupt)


def awatch(*paths: Union[Path, str], watch_filter: Optional[WatchFilter] = DefaultFilter(),
           debounce: int = 1_600, step: int = 50, stop_event: Optional[AbstractEvent] = None,
           rust_timeout: Optional[int] = None, yield_on_timeout: bool = False,
           debug: Optional[bool] = None, raise_interrupt: Optional[bool] = None,
           force_polling: Optional[bool] = None, poll_delay_ms: int = 300, recursive: bool = True,
           ignore_permission_denied: Optional[bool] = None,
           exclude_dirs: Optional[Sequence[str]] = None, mode: Optional[str] = None) -> AWatch:
    """:func:`watch` for ``async for``; ``stop_event`` is anything with ``is_set()``
    (an ``asyncio.Event``, an ``anyio.Event``); ``raise_interrupt`` is
    deprecated as in watchfiles (cancel the task instead)."""
    if raise_interrupt is not None:
        warnings.warn("raise_interrupt is deprecated, KeyboardInterrupt will cause this coroutine to be "
                      "cancelled and then be raised by the top level asyncio.run call or equivalent, "
                      "and should be caught there. See #136.", DeprecationWarning, stacklevel=2)
    return AWatch(paths, watch_filter, debounce, step, stop_event, rust_timeout, yield_on_timeout,
                  debug, force_polling, recursive, ignore_permission_denied, exclude_dirs, mode)
