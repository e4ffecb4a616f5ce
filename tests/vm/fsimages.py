"""Real file systems for VM tests, and events named by the test's own record.

:class:`Mounts` makes fresh file systems in the guest and takes them down
again, in reverse order, also when a test fails: a tmpfs; ext4, xfs or
btrfs made by mkfs on an image file in a tmpfs and mounted from a loop
device set up with ``losetup``; btrfs subvolumes mounted with
``-o subvol=``; overlayfs with lower/upper/work on a tmpfs; bind mounts.

Images live in a tmpfs of their own: the guest's /tmp is an overlay of the
host's /tmp (virtme-ng), and a loop device over 9p would be slow.

:class:`Paths` names the objects a test made by their file handles, so
that an event is read as ``("CREATE", "in/a")`` without asking the file
system again (open_by_handle_at cannot decode overlayfs handles, and
cannot name an object outside the mount it is given).
"""

import contextlib
import os
import shutil
import subprocess
import tempfile

import pytest

from fanbpf import EventMask, Group, MarkFlag
from fanbpf.testing.fs import FsOp, apply_op

#: The kinds ``Mounts.fs`` makes; the ``fs_kind`` fixture runs a test on each.
KINDS = ("tmpfs", "ext4", "xfs", "btrfs")

# kind -> mkfs command, the Debian package that has it, image size (sparse).
# xfsprogs 6.x refuses file systems below 300 MiB; mkfs.btrfs below ~110 MiB.
_MKFS = {
    "ext4": (["mkfs.ext4", "-q", "-F"], "e2fsprogs", 64 << 20),
    "xfs": (["mkfs.xfs", "-q", "-f"], "xfsprogs", 300 << 20),
    "btrfs": (["mkfs.btrfs", "-q", "-f"], "btrfs-progs", 128 << 20),
}
# kind -> the test kernel's option (kernel/config) that provides it
_CONFIG = {"ext4": "CONFIG_EXT4_FS", "xfs": "CONFIG_XFS_FS", "btrfs": "CONFIG_BTRFS_FS",
           "overlay": "CONFIG_OVERLAY_FS"}


def _run(*argv):
    """Run a command; a failure raises with its stderr, which says why."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def kernel_has(fstype):
    with open("/proc/filesystems") as f:
        return any(line.split()[-1] == fstype for line in f if line.strip())


def require(kind):
    """Fail (never skip: make test must run these) when ``kind`` cannot be made here."""
    if kind != "tmpfs" and not kernel_has(kind):
        pytest.fail(f"the test kernel has no {kind} file system: set {_CONFIG[kind]}=y in "
                    "kernel/config")
    if kind in _MKFS:
        tool, package = _MKFS[kind][0][0], _MKFS[kind][1]
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: install Debian's {package} (make deps does)")


class Mounts:
    """File systems made for one test; :meth:`close` (or ``with``) takes all of them down."""

    def __init__(self):
        self._stack = contextlib.ExitStack()
        self._images = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._stack.close()

    # -- building blocks --------------------------------------------------

    def _dir(self, prefix, parent=None):
        path = tempfile.mkdtemp(prefix=f"fanbpf-{prefix}-", dir=parent)
        self._stack.callback(_rmdir_quiet, path)
        return path

    def mount(self, *args, at=None, prefix="mnt"):
        """``mount ARGS DIR`` on ``at`` or a fresh directory, unmounted at close."""
        path = at if at is not None else self._dir(prefix)
        _run("mount", *args, path)
        self._stack.callback(_umount, path)
        return path

    def tmpfs(self, at=None):
        return self.mount("-t", "tmpfs", "fanbpf-test", at=at, prefix="tmpfs")

    def image(self, kind):
        """A fresh image file of ``kind`` made by mkfs, in the images tmpfs."""
        require(kind)
        if self._images is None:
            self._images = self.tmpfs()
        argv, _, size = _MKFS[kind]
        fd, img = tempfile.mkstemp(prefix=f"{kind}-", suffix=".img", dir=self._images)
        os.ftruncate(fd, size)
        os.close(fd)
        _run(*argv, img)
        return img

    def loop(self, img):
        """A loop device over ``img`` (``losetup``), detached at close."""
        dev = _run("losetup", "--find", "--show", img)
        self._stack.callback(_run, "losetup", "--detach", dev)
        return dev

    def disk(self, kind, at=None, options=None):
        """A fresh ``kind`` file system on a loop device: ``(mount point, device)``."""
        dev = self.loop(self.image(kind))
        extra = ["-o", options] if options else []
        return self.mount("-t", kind, *extra, dev, at=at, prefix=kind), dev

    def fs(self, kind, at=None):
        """The root of a fresh file system of ``kind`` (one of :data:`KINDS`)."""
        if kind == "tmpfs":
            return self.tmpfs(at)
        if kind not in _MKFS:
            raise ValueError(f"no file system kind {kind!r}; one of {KINDS}")
        return self.disk(kind, at)[0]

    def subvolume(self, top, name):
        """Create btrfs subvolume ``name`` in the top-level mount ``top``."""
        path = os.path.join(top, name)
        _run("btrfs", "subvolume", "create", path)
        return path

    def subvol_mount(self, dev, name):
        """Mount subvolume ``name`` of the btrfs on ``dev`` (``-o subvol=``)."""
        return self.mount("-t", "btrfs", "-o", f"subvol={name}", dev, prefix="subvol")

    def overlay(self):
        """An overlayfs: ``(merged, lower, upper)``, the lower layer on a tmpfs, upper
        and work dirs on another.  ``index=on,nfs_export=on``: fanotify allows a
        filesystem mark only where file handles can be decoded, and overlayfs
        decodes them only with both options."""
        require("overlay")
        lower = self.tmpfs()
        rw = self.tmpfs()
        upper, work = os.path.join(rw, "upper"), os.path.join(rw, "work")
        for d in (upper, work):
            os.mkdir(d)
        merged = self.mount("-t", "overlay", "fanbpf-ovl", "-o",
                            f"lowerdir={lower},upperdir={upper},workdir={work},"
                            "index=on,nfs_export=on", prefix="ovl")
        return merged, lower, upper

    def bind(self, src, at=None):
        return self.mount("--bind", src, at=at, prefix="bind")


def _umount(path):
    try:
        _run("umount", path)
    except RuntimeError:
        _run("umount", "--lazy", path)  # still busy (a failing test's open fd): detach it


def _rmdir_quiet(path):
    with contextlib.suppress(OSError):
        os.rmdir(path)


# --- naming events -------------------------------------------------------------

_AT_FDCWD = -100
_AT_HANDLE_FID = 0x200  # overlayfs encodes handles for fanotify that it cannot decode
_HANDLE_HEADER = 8


def handle_of(path):
    """The file handle fanotify reports for ``path`` (final symlink not followed)."""
    from fanbpf._binding import ffi, lib

    buf = ffi.new("char[]", 256)
    size = lib.fanbpf_name_to_handle_at(_AT_FDCWD, os.fsencode(path), buf, len(buf),
                                        _AT_HANDLE_FID)
    if size < 0:
        raise OSError(-size, f"name_to_handle_at: {os.strerror(-size)}", path)
    return ffi.unpack(buf, size)[_HANDLE_HEADER:]


def event_names(mask):
    """``"CREATE|ONDIR"``... for each event bit of ``mask``."""
    flags = mask & EventMask.ONDIR
    for bit in EventMask:
        if bit.value & (bit.value - 1) or not bit & mask or bit & EventMask.ONDIR:
            continue
        yield (bit | flags).name


class Paths:
    """The objects under ``base`` by file handle, kept up to date by :meth:`apply`.

    :meth:`keys` turns events into ``{(event, path relative to base)}``:
    the path of the entry (directory record + name) when the event names
    one, else of the object.  Objects the test did not record read ``"?"``.
    """

    def __init__(self, base, walk=True):
        self.base = base
        self.by_handle = {}
        if walk:
            self.add_tree("")
        else:
            self.add("")

    def add(self, rel):
        path = os.path.join(self.base, rel)
        names = self.by_handle.setdefault(handle_of(path), {})
        # Handles are unique per file system only (two ext4 roots share one);
        # statvfs's fsid is the events' except in a btrfs subvolume, whose
        # handles are unique anyway: the fsid only tells apart equal handles.
        known = names.setdefault(os.statvfs(path).f_fsid, rel)
        if known != rel and os.path.isdir(path):  # a file's other names are hard links
            raise AssertionError(f"{rel!r} has the handle of {known!r}")

    def _name(self, record):
        names = self.by_handle.get(record.handle, {})
        if len(names) == 1:
            return next(iter(names.values()))
        return names.get(record.fsid, "?")

    def add_tree(self, rel):
        """``rel`` and everything below it (no recursion: trees here go deep)."""
        todo = [rel]
        while todo:
            rel = todo.pop()
            self.add(rel)
            if os.path.isdir(os.path.join(self.base, rel)):
                with os.scandir(os.path.join(self.base, rel)) as it:
                    todo += [os.path.join(rel, e.name) for e in it]

    def apply(self, op: FsOp, via=None):
        """Perform ``op`` (paths relative to base) and record its effect.
        ``via=(path, rel)``: perform it in ``path``, another view (a bind or
        subvolume mount) of directory ``rel``."""
        at, prefix = via if via else (self.base, "")
        apply_op(at, op)
        op = FsOp(op.kind, os.path.normpath(os.path.join(prefix, op.path)),
                  op.dest and os.path.normpath(os.path.join(prefix, op.dest)), op.proc)
        if op.kind in ("create", "mkdir"):
            self.add(op.path)
        elif op.kind == "rename":
            for names in self.by_handle.values():
                for fsid, rel in names.items():
                    if rel == op.path or rel.startswith(op.path + "/"):
                        names[fsid] = op.dest + rel[len(op.path):]
        return op

    def primary(self, op: FsOp):
        """The events ``op`` (as :meth:`apply` returned it) causes for sure, on any
        file system: a test checks the reference group saw them, so that its
        expected set is not empty by accident."""
        kinds = {"create": [("CREATE", op.path)], "mkdir": [("CREATE|ONDIR", op.path)],
                 "write": [("MODIFY", op.path)], "open": [("OPEN", op.path)],
                 "chmod": [("ATTRIB", op.path)], "unlink": [("DELETE", op.path)],
                 "rmdir": [("DELETE|ONDIR", op.path)],
                 "rename": [("MOVED_FROM", op.path), ("MOVED_TO", op.dest)]}
        return kinds[op.kind]

    def _where(self, event):
        from fanbpf.events import DirFidNameInfo, FidInfo

        for record in event.info:
            if isinstance(record, DirFidNameInfo):
                parent = self._name(record)
                return parent if record.name == "." else os.path.join(parent, record.name)
        for record in event.info:
            if isinstance(record, FidInfo):
                return self._name(record)
        return None

    def keys(self, events):
        out = set()
        for event in events:
            where = self._where(event)
            for name in event_names(event.mask):
                out.add((name, where))
        return out


def inside(rel, roots):
    """Whether ``rel`` is one of ``roots`` (a set of relative paths) or below one."""
    while True:
        if rel in roots:
            return True
        if not rel or rel == "?":
            return False
        rel = os.path.dirname(rel)


# --- two groups, one with the handler ----------------------------------------------

# The events the operations cause, without the *_SELF events: those carry
# no dentry, so the rules never place them in a subtree (test_rules_properties).
MASK = (EventMask.CREATE | EventMask.MODIFY | EventMask.ATTRIB | EventMask.OPEN
        | EventMask.ACCESS | EventMask.CLOSE_WRITE | EventMask.CLOSE_NOWRITE
        | EventMask.DELETE | EventMask.MOVED_FROM | EventMask.MOVED_TO | EventMask.ONDIR)


class Run:
    """Two groups on the same marks (with and without the handler) and the paths under ``base``."""

    def __init__(self, handler, base, rules, marks=None, mask=MASK, walk=True):
        self.paths = Paths(base, walk)
        self.ref = Group(resolve_paths=False)
        self.sut = Group(resolve_paths=False)
        try:
            for path in marks or [base]:
                for g in (self.sut, self.ref):
                    g.mark(path, mask, MarkFlag.FILESYSTEM)
            self.att = self.sut.attach(handler, rules)
        except BaseException:
            self.close()
            raise
        self.done = []

    def apply(self, ops, via=None):
        for op in ops:
            self.done.append(self.paths.apply(op, via))

    def check(self, keep):
        """Compare what the handler delivered with the reference's events that
        ``keep(event, rel)`` keeps; return the expected set."""
        ref = self.paths.keys(self.ref.drain())
        got = self.paths.keys(self.sut.drain())
        missing = {k for op in self.done for k in self.paths.primary(op)} - ref
        assert not missing, f"the reference group missed events of the operations: {missing}"
        want = {(ev, rel) for ev, rel in ref if keep(ev, rel)}
        assert ref - want, "nothing outside the rules happened: the test cannot tell"
        assert got == want, f"missing: {sorted(want - got)}\nunexpected: {sorted(got - want)}"
        assert self.ref.overflows == 0 and self.sut.overflows == 0
        self.done = []
        return want

    def close(self):
        self.sut.close()
        self.ref.close()


def reuse_inode_numbers(top, numbers, want=3, tries=200):
    """Make directories in ``top`` until ``want`` of them have an inode number
    in ``numbers`` (ext4 reuses freed ones), each with a file in it and in a
    subdirectory; return those directories (fails the test if none)."""
    reused = []
    for i in range(tries):
        new = f"{top}/new{i}"
        os.mkdir(new)
        if os.stat(new).st_ino in numbers:
            reused.append(new)
            os.makedirs(f"{new}/sub")
            for f in (f"{new}/sub/f", f"{new}/f"):
                with open(f, "w") as out:
                    out.write("x")
        if len(reused) >= want:
            break
    assert reused, f"no inode number of the {len(numbers)} removed directories was reused"
    return reused
