"""REC_ENTER round trips per second: a realm that makes host calls in a loop.

    python bench/bench_rec_enter.py [--calls N]

Each round trip is one RMI_REC_ENTER: the RMM completes the previous host call (copying the
host's registers into the realm's RsiHostCall), the guest program runs until its next
RSI_HOST_CALL, and the REC exits with RMI_EXIT_HOST_CALL. The baseline, measured in the same
run, is a bare Python generator round trip, the least any guest step can cost here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ccasim import guest
from ccasim.rmi import RecEnter, RecExitReason
from ccasim.rsi import RsiFid
from support import RAM_BASE, Host


@guest.program("bench.host-calls")
def host_calls(cpu, calls):
    for _ in range(calls):
        yield guest.Smc(RsiFid.HOST_CALL, RAM_BASE + 0x8000)


def generator_baseline(n: int) -> float:
    def gen():
        while True:
            yield 1

    g = gen()
    start = time.perf_counter()
    for _ in range(n):
        next(g)
    return n / (time.perf_counter() - start)


def round_trips(calls: int) -> float:
    host = Host()
    launched = host.launch("bench.host-calls", calls=calls + 1)
    rec, run = launched.recs[0], launched.run
    rmi = host.rmi
    enter = RecEnter(gprs=list(range(31)))
    host.m.ns_write(run, enter.pack())
    assert host.enter(rec, run).exit_reason == RecExitReason.HOST_CALL
    start = time.perf_counter()
    for _ in range(calls):
        rmi.rec_enter(rec, run)
    elapsed = time.perf_counter() - start
    assert rmi.rec_exit(run).exit_reason == RecExitReason.HOST_CALL
    return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    base = generator_baseline(1_000_000)
    trips = round_trips(args.calls)
    print(f"baseline: Python generator steps             {base:12,.0f} /s")
    print(f"REC_ENTER round trips (host-call exits)       {trips:12,.0f} /s")
    print(f"ratio baseline / round trip                   {base / trips:12.0f}")


if __name__ == "__main__":
    main()
