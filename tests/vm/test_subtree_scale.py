"""100 000 subtree roots (issue 9): added in bulk, then changed while another
process makes events, and the events exact after each change.

One test, run once (it is not parametrized): building the tree and the
map is most of its time under TCG.
"""

import os
import subprocess
import sys

from fanbpf import EventMask, rules
from fanbpf.rules import root_of
from fanbpf.testing.fs import FsOp
from fsimages import Run, inside

N = 100_000
SHARD = 1000  # directories per parent directory
MASK = EventMask.CREATE | EventMask.DELETE | EventMask.CLOSE_WRITE | EventMask.ONDIR

NOISE = """
import os, sys, time
d = sys.argv[1]
for i in range(int(sys.argv[2])):  # paced and bounded: the queues (16384) never overflow
    p = f"{d}/n{i}"
    open(p, "w").close()
    os.unlink(p)
    if i == 0:
        print("flowing", flush=True)
    if sys.stdin in __import__("select").select([sys.stdin], [], [], 0.01)[0]:
        break
"""


def make_dirs(base):
    """``roots/sNN/dNNNNN`` for N directories, and each one's (dev, ino) from
    the directory listing (no stat per directory)."""
    keys = {}
    os.mkdir(f"{base}/roots")
    for s in range(N // SHARD):
        shard = f"roots/s{s:03}"
        os.mkdir(f"{base}/{shard}")
        for i in range(s * SHARD, (s + 1) * SHARD):
            os.mkdir(f"{base}/{shard}/d{i:06}")
        dev = root_of(f"{base}/{shard}")[0]  # one file system: one dev
        with os.scandir(f"{base}/{shard}") as it:
            for entry in it:
                keys[f"{shard}/{entry.name}"] = (dev, entry.inode())
    return keys


def test_100k_roots_added_and_changed_live(mounts, fanbpf_rules_handler):
    base = mounts.tmpfs()
    keys = make_dirs(base)
    names = sorted(keys)
    os.mkdir(f"{base}/noise")
    spare = [f"spare/d{i}" for i in range(1000)]  # added as roots later, while events flow
    os.makedirs(f"{base}/spare")
    for rel in spare:
        os.mkdir(f"{base}/{rel}")
    # the listing's inode numbers are the ones the handler names directories by
    for rel in names[::9973] + spare[::97]:
        assert root_of(f"{base}/{rel}") == keys.get(rel, root_of(f"{base}/{rel}"))

    r = Run(fanbpf_rules_handler, base, rules(subtree=[f"{base}/noise"]), mask=MASK, walk=False)
    try:
        r.att.add_roots([keys[n] for n in names])
        current = {"noise", *names}
        assert len(r.att.roots) == N + 1
        probes = names[::997] + names[-3:] + spare[::101]
        for rel in ["roots", "spare", "noise", *{os.path.dirname(p) for p in probes}, *probes]:
            r.paths.add(rel)

        def ops():
            out = []
            for rel in probes:
                out += [FsOp("create", f"{rel}/f"), FsOp("unlink", f"{rel}/f")]
            return out + [FsOp("create", "roots/outside"), FsOp("unlink", "roots/outside")]

        r.apply(ops())
        want = r.check(lambda ev, rel: inside(rel, current))
        assert ("CREATE", f"{names[-1]}/f") in want

        # change them while another process makes events under a root
        noise = subprocess.Popen([sys.executable, "-c", NOISE, f"{base}/noise", "4000"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert noise.stdout.readline() == "flowing\n"
            removed = names[::2]
            r.att.remove_roots([keys[n] for n in removed])
            r.att.add_roots([f"{base}/{rel}" for rel in spare])
        finally:
            noise.communicate("stop\n")
        assert noise.returncode == 0
        current = ({"noise", *names} - set(removed)) | set(spare)
        assert len(r.att.roots) == len(current)
        r.apply(ops())
        want = r.check(lambda ev, rel: inside(rel, current))
        # each kind of directory took part: removed, kept, added; and the noise arrived
        assert {("CREATE", f"{names[0]}/f"), ("CREATE", f"{spare[0]}/f")} & want == \
            {("CREATE", f"{spare[0]}/f")}
        assert ("CREATE", f"{names[997]}/f") in want  # odd: kept
        assert any(rel.startswith("noise/") for _, rel in want)
    finally:
        r.close()
