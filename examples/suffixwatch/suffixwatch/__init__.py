# SPDX-License-Identifier: GPL-2.0
"""Watch a filesystem for names with one suffix, filtered in the kernel.

An example of a library built on fanbpf that ships its own handler,
``suffix_filter.bpf.c``, compiled into package data when it is installed::

    import suffixwatch

    with suffixwatch.watch("/var/log", ".log", ignore_uid=997) as watch:
        for event in watch:
            print(event.mask, event.path)

Only events about names ending in the suffix reach user space; with
``ignore_uid``, none caused by that user.  Needs a kernel with the fanotify
fastpath hook (``python -m fanbpf probe``).
"""
from importlib.resources import files

import fanbpf
from fanbpf import EventMask, MarkFlag

__all__ = ["SuffixWatch", "load_filter", "watch"]

DEFAULT_MASK = EventMask.CREATE | EventMask.CLOSE_WRITE | EventMask.MOVED_TO


def load_filter() -> fanbpf.Handler:
    """Load the package's handler, private: attached by fd, never listed."""
    return fanbpf.Handler.load(files(__name__) / "suffix_filter.bpf.o", private=True)


class SuffixWatch:
    """A fanotify group on the filesystem of ``path`` with the filter attached.

    Iterate it (or call :meth:`read_events`) for the events; close it (or use
    it as a context manager) to detach and unload the filter.
    """

    def __init__(self, path, suffix: str, *, ignore_uid: int | None = None,
                 mask: int = DEFAULT_MASK):
        self.handler = load_filter()
        try:
            self.group = fanbpf.Group()
            try:
                self.group.mark(path, mask, MarkFlag.FILESYSTEM)
                self.group.attach(self.handler, {
                    "suffix": suffix,
                    "ignore_uid": int(ignore_uid is not None),
                    "uid": ignore_uid or 0,
                })
            except BaseException:
                self.group.close()
                raise
        except BaseException:
            self.handler.close()
            raise

    def read_events(self, timeout: float | None = None) -> list[fanbpf.Event]:
        return self.group.read_events(timeout)

    def __iter__(self):
        return iter(self.group)

    def close(self) -> None:
        self.group.close()
        self.handler.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def watch(path, suffix: str, *, ignore_uid: int | None = None,
          mask: int = DEFAULT_MASK) -> SuffixWatch:
    """Watch the filesystem that holds ``path`` for names ending in ``suffix``."""
    return SuffixWatch(path, suffix, ignore_uid=ignore_uid, mask=mask)
