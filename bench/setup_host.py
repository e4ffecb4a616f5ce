"""Setup time against tree size on the host, no VM: how long each watcher
takes before it watches D directories (a fresh tree per size, on /dev/shm).

    python bench/setup_host.py [D,D,...]

fanbpf.watch and the fanbpf watchdog observer in the mode the host allows
(root on a stock kernel: "userspace"; forced "inode-marks", what runs
without privilege), watchdog's InotifyObserver, and watchfiles (which
starts watching at its first next(); timed until a file made then is seen).
"""
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tree(top: str, count: int) -> None:
    dirs = [top]
    for k in range(1, count + 1):
        d = os.path.join(dirs[(k - 1) // 10], f"d{k}")
        os.mkdir(d)
        dirs.append(d)


def timed_fanbpf(top, mode):
    import fanbpf
    t0 = time.monotonic()
    w = fanbpf.watch(top, mode=mode)
    took = time.monotonic() - t0
    w.close()
    return took


def timed_observer(top, cls):
    from watchdog.events import FileSystemEventHandler
    t0 = time.monotonic()
    o = cls()
    o.schedule(FileSystemEventHandler(), top, recursive=True)
    o.start()
    for emitter in o.emitters:
        while getattr(emitter, "mode", "") is None:
            time.sleep(0.001)
    took = time.monotonic() - t0
    o.stop()
    o.join()
    return took


def timed_watchfiles(top):
    import watchfiles
    stop = threading.Event()
    probe = os.path.join(top, "probe")
    t0 = time.monotonic()

    def poke():
        while not stop.is_set():
            open(probe, "w").close()
            time.sleep(0.01)
    t = threading.Thread(target=poke)
    t.start()
    for _ in watchfiles.watch(top, stop_event=stop, debounce=10, step=5, watch_filter=None):
        break
    took = time.monotonic() - t0
    stop.set()
    t.join()
    return took


def main():
    sizes = [int(x) for x in (sys.argv[1] if len(sys.argv) > 1 else "1000,10000,100000").split(",")]
    from watchdog.observers.inotify import InotifyObserver
    from fanbpf.watchdog import FanotifyObserver
    print("| D | fanbpf.watch (userspace) | fanbpf.watch (inode-marks) | watchdog + fanbpf observer | watchdog (inotify) | watchfiles |")
    print("| --- | --- | --- | --- | --- | --- |")
    for d in sizes:
        top = tempfile.mkdtemp(dir="/dev/shm")
        tree(top, d)
        row = [timed_fanbpf(top, "userspace"), timed_fanbpf(top, "inode-marks"),
               timed_observer(top, FanotifyObserver), timed_observer(top, InotifyObserver),
               timed_watchfiles(top)]
        print(f"| {d} | " + " | ".join(f"{x:.2f} s" for x in row) + " |", flush=True)
        shutil.rmtree(top)


if __name__ == "__main__":
    main()
