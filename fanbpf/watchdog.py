# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A watchdog observer on fanotify: ``FanotifyObserver``.

A drop-in for watchdog's ``Observer`` (``InotifyObserver`` on Linux), in
watchdog's own conventions (an :class:`~watchdog.observers.api.EventEmitter`
per scheduled watch, a :class:`~watchdog.observers.api.BaseObserver`
dispatching to handlers)::

    from fanbpf.watchdog import FanotifyObserver as Observer   # was: watchdog.observers
    observer = Observer()
    observer.schedule(handler, "/srv/src", recursive=True)
    observer.start()

It emits watchdog's event classes with InotifyEmitter's semantics: a
rename inside the watch is one ``FileMovedEvent``/``DirMovedEvent`` (plus
the moved directory's contents as moved, and ``DirModifiedEvent`` of both
parents), a move in is a created event, a move out a deleted one; creations,
deletions and writes-on-close also report the parent's
``DirModifiedEvent``; ``recursive=False`` reports the directory's own
entries only; ``unschedule`` stops the watch's emitter and its marks; the
watched directory's own deletion is a ``DirDeletedEvent``, and its emitter
stops.

The mechanism is picked as for :func:`fanbpf.watch`
(:func:`fanbpf.watching.open_source`): ``emitter.mode`` says which. Where
it differs from InotifyEmitter: nothing made in a new directory before
the watch on it is missed (``subtree-marks`` mode marks a new directory
as it is made, ``kernel`` and ``userspace`` modes have no watch per
directory, and in ``inode-marks`` mode a new directory is scanned after
its mark); and setup does not walk the tree in the privileged modes.

Needs ``watchdog`` (``pip install fanbpf[watchdog]``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Optional, Union

from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirModifiedEvent, DirMovedEvent,
                             FileAttribEvent, DirAttribEvent, FileClosedEvent, FileSystemEvent,
                             FileClosedNoWriteEvent, FileCreatedEvent, FileDeletedEvent,
                             FileModifiedEvent, FileMovedEvent, FileOpenedEvent,
                             generate_sub_moved_events)
from watchdog.observers.api import (DEFAULT_EMITTER_TIMEOUT, DEFAULT_OBSERVER_TIMEOUT, BaseObserver,
                                   EventEmitter, EventQueue, ObservedWatch)

from .watching import KINDS, FsEvent, Source, open_source

__all__ = ["FanotifyEmitter", "FanotifyObserver"]

# watchdog event class -> the Source kinds it needs (watchdog's InotifyEmitter
# computes its inotify mask from an event_filter the same way).
_KINDS_FOR: dict[type[FileSystemEvent], set[str]] = {
    DirMovedEvent: {"moved"}, FileMovedEvent: {"moved"},
    DirCreatedEvent: {"created", "moved"}, FileCreatedEvent: {"created", "moved"},
    DirDeletedEvent: {"deleted", "moved"}, FileDeletedEvent: {"deleted", "moved"},
    DirModifiedEvent: {"created", "deleted", "moved", "attrib", "modified", "closed"},
    FileModifiedEvent: {"modified"},
    FileAttribEvent: {"attrib"}, DirAttribEvent: {"attrib"},
    FileClosedEvent: {"closed"}, FileClosedNoWriteEvent: {"closed_nowrite"},
    FileOpenedEvent: {"opened"},
}

#: kind -> (directory class, file class)
_CLASSES: dict[str, tuple[type[FileSystemEvent], type[FileSystemEvent]]] = {
    "created": (DirCreatedEvent, FileCreatedEvent),
    "deleted": (DirDeletedEvent, FileDeletedEvent),
    "modified": (DirModifiedEvent, FileModifiedEvent),
    "attrib": (DirAttribEvent, FileAttribEvent),
    "moved": (DirMovedEvent, FileMovedEvent),
}


class FanotifyEmitter(EventEmitter):
    """Emits the events of one :class:`~watchdog.observers.api.ObservedWatch`
    from a :class:`fanbpf.watching.Source`.

    ``mode`` forces a mechanism (see :data:`fanbpf.watching.MODES`);
    ``exclude_dirs``: directory names below the watch whose events are
    dropped before they reach user space where the mechanism can.
    """

    def __init__(self, event_queue: EventQueue, watch: ObservedWatch, *,
                 timeout: float = DEFAULT_EMITTER_TIMEOUT,
                 event_filter: Optional[list[type[FileSystemEvent]]] = None,
                 mode: Optional[str] = None, exclude_dirs: Iterable[str] = ()) -> None:
        super().__init__(event_queue, watch, timeout=timeout, event_filter=event_filter)
        self._lock = threading.Lock()
        self._source: Optional[Source] = None
        self._mode = mode
        self._exclude_dirs = tuple(exclude_dirs)
        self.mode: Optional[str] = None

    def _kinds(self) -> set[str]:
        if self._event_filter is None:
            return set(KINDS)
        kinds = {"created", "moved"} if self.watch.is_recursive else set()  # to follow new dirs
        for cls in self._event_filter:
            kinds |= _KINDS_FOR.get(cls, set())
        return kinds

    def on_thread_start(self) -> None:
        path = os.fsdecode(self.watch.path)
        self._source = open_source([path], recursive=self.watch.is_recursive, kinds=self._kinds(),
                                   exclude_dirs=self._exclude_dirs, mode=self._mode)
        self.mode = self._source.mode

    def on_thread_stop(self) -> None:
        with self._lock:
            source, self._source = self._source, None
        if source is not None:
            source.close()  # wakes a queue_events blocked in read

    def queue_events(self, timeout: float) -> None:
        with self._lock:
            source = self._source
        if source is None:
            return
        for event in source.read(timeout):
            if event.root:  # the watched directory was deleted: as InotifyEmitter, stop
                self.queue_event(DirDeletedEvent(self._path(event.path)))
                self.stop()
                return
            self._queue(event)

    def _path(self, path: str) -> Union[str, bytes]:
        return os.fsencode(path) if isinstance(self.watch.path, bytes) else path

    def _queue(self, event: FsEvent) -> None:
        src = self._path(event.path)
        kind = event.kind
        if kind in ("opened", "closed", "closed_nowrite"):
            if event.is_dir:
                return  # watchdog has no directory open/close events
            self.queue_event({"opened": FileOpenedEvent, "closed": FileClosedEvent,
                              "closed_nowrite": FileClosedNoWriteEvent}[kind](src))
            if kind == "closed":
                self.queue_event(DirModifiedEvent(os.path.dirname(src)))
            return
        cls = _CLASSES[kind][0 if event.is_dir else 1]
        if kind == "moved":
            assert event.dest is not None, "a moved event has a dest"
            dest = self._path(event.dest)
            self.queue_event(cls(src, dest))
            self.queue_event(DirModifiedEvent(os.path.dirname(src)))
            self.queue_event(DirModifiedEvent(os.path.dirname(dest)))
            if event.is_dir and self.watch.is_recursive:
                for sub in generate_sub_moved_events(src, dest):
                    self.queue_event(sub)
            return
        self.queue_event(cls(src))
        if kind in ("created", "deleted") and not event.scanned:
            self.queue_event(DirModifiedEvent(os.path.dirname(src)))


class FanotifyObserver(BaseObserver):
    """watchdog's observer with :class:`FanotifyEmitter` emitters.

    ``mode`` and ``exclude_dirs`` go to every emitter (see there).
    """

    def __init__(self, *, timeout: float = DEFAULT_OBSERVER_TIMEOUT, mode: Optional[str] = None,
                 exclude_dirs: Iterable[str] = ()) -> None:
        super().__init__(FanotifyEmitter, timeout=timeout, mode=mode, exclude_dirs=exclude_dirs)


#: ``from fanbpf.watchdog import Observer`` as ``from watchdog.observers import Observer``.
Observer = FanotifyObserver
