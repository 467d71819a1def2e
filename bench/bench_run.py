"""`ccasim run`'s speed, end to end, with a hashlib baseline measured in the same run.

    python bench/bench_run.py                 # the default realm, and 4 GiB / 8 vCPUs touched
    python bench/bench_run.py --mem 1G        # a smaller touched realm, for a quick look

Figures printed:
- the default realm (256 MiB, 2 vCPUs: boot, SMP, touch, share, attest, power off): wall
  time of the command in a fresh process, and of the run in this one;
- a realm whose guest touches all of its memory (each page a stage 2 fault served by KVM):
  pages per second, against hashlib SHA-256 of pages per second, and where the time went
  (RMM and EL3, the machine's PE and memory, KVM, the VMM, the guest), from a sampling
  profiler that looks at the running thread every millisecond.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

from ccasim.cli import main

PAGE = 4096
LAYERS = {  # package under ccasim -> the layer its time counts for
    "rmm": "RMM and EL3", "el3": "RMM and EL3",
    "hw": "machine (PE, memory, GPT)", "machine.py": "machine (PE, memory, GPT)",
    "kvm": "KVM", "vmm": "VMM", "cli": "VMM", "guest": "guest",
}  # fmt: skip
ROOT = os.path.join(os.path.dirname(os.path.abspath(sys.modules["ccasim"].__file__)), "")


def layer_of(frame) -> str | None:
    """The layer of the innermost frame that belongs to one (shared ABI code, the standard
    library and C calls such as hashlib count for the layer that called them)."""
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(ROOT):
            part = path[len(ROOT) :].split(os.sep, 1)[0]
            if part in LAYERS:
                return LAYERS[part]
        frame = frame.f_back
    return None


class Sampler(threading.Thread):
    """Every ``interval`` seconds, the layer of the thread that is running (the scheduler
    runs one vCPU thread at a time; the others wait in threading)."""

    def __init__(self, interval: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: Counter[str] = Counter()
        self.done = threading.Event()

    def run(self) -> None:
        me = threading.get_ident()
        while not self.done.wait(self.interval):
            for ident, frame in sys._current_frames().items():
                if ident == me or frame.f_code.co_filename.endswith("threading.py"):
                    continue
                layer = layer_of(frame)
                if layer is not None:
                    self.samples[layer] += 1


def ccasim_run(*argv: str) -> tuple[dict, float, Counter[str]]:
    sys.setswitchinterval(0.0002)  # let the sampler in often (the default is 5 ms)
    sampler = Sampler()
    out = io.StringIO()
    sampler.start()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        status = main(["run", "--json", "--challenge", "00" * 64, *argv])
    elapsed = time.perf_counter() - start
    sampler.done.set()
    sampler.join()
    report = json.loads(out.getvalue())
    if status != 0:
        raise SystemExit(f"ccasim run {' '.join(argv)} failed: {report['error']}")
    return report, elapsed, sampler.samples


def hash_pages_per_second(pages: int = 65536) -> float:
    data = [os.urandom(PAGE) for _ in range(256)]
    start = time.perf_counter()
    for i in range(pages):
        hashlib.sha256(data[i % 256]).digest()
    return pages / (time.perf_counter() - start)


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mem", default="4G", help="RAM of the touched realm (default 4G)")
    parser.add_argument("--cpus", default="8", help="vCPUs of the touched realm (default 8)")
    args = parser.parse_args()

    hashed = hash_pages_per_second()
    print(f"baseline: hashlib SHA-256 of 4 KiB pages: {hashed:,.0f} pages/s")

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ccasim", "run", "-q"], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    command = time.perf_counter() - start
    report, elapsed, _ = ccasim_run("-q")
    ram_pages = report["realm"]["ram_size"] // PAGE
    print(f"default realm: `ccasim run` {command:.2f} s as a command (Python start-up and"
          f" imports included), {elapsed:.2f} s in process"
          f" = {elapsed * hashed / ram_pages:.1f}x hashing its {ram_pages * PAGE >> 20} MiB"
          " once")  # fmt: skip

    report, elapsed, samples = ccasim_run("-c", args.cpus, "-m", args.mem,
                                          "--guest-arg", "touch_mib=-1")  # fmt: skip
    faults = report["rec_exits"].get("SYNC (data abort)", 0)
    run_s = report["wall_time"]["run"]
    print(f"touched realm: {args.mem}, {args.cpus} vCPUs, every page touched:"
          f" {elapsed:.1f} s in all (build {report['wall_time']['build']:.2f} s,"
          f" run {run_s:.1f} s, teardown {report['wall_time']['teardown']:.1f} s)")  # fmt: skip
    print(f"  {faults:,} stage 2 faults: {faults / run_s:,.0f} pages/s"
          f" = 1/{hashed / (faults / run_s):.1f} of hashlib's pages/s")  # fmt: skip
    total = sum(samples.values()) or 1
    shares = ", ".join(f"{layer} {n * 100 / total:.0f}%" for layer, n in samples.most_common())
    print(f"  time by layer ({total} samples): {shares}")


if __name__ == "__main__":
    main_()
