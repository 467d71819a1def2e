"""RMI throughput and realm construction time, as ratios to hashlib measured in the same run.

    python bench/bench_rmi.py            # the full 1 GiB realm (about 262,144 DATA_CREATEs)
    python bench/bench_rmi.py --mib 64   # a smaller realm, for a quick look

Figures printed:
- hashlib baseline: SHA-256 of as many 4 KiB pages as the realm has;
- GRANULE_DELEGATE + GRANULE_UNDELEGATE pairs per second;
- RTT_CREATE calls per second;
- the time to build the realm: delegate every granule, create the RTTs, DATA_CREATE each page
  from NS memory with its contents measured; and that time divided by the hashlib baseline.
"""

from __future__ import annotations

import argparse
import hashlib
import time

import ccasim
from ccasim.rmi import FID, RealmParams

GRANULE = 4096
DRAM0 = 0x8000_0000
DRAM1 = 0x88_8000_0000
MEASURE = 1
SOURCES = 64


def pages(count: int) -> list[bytes]:
    return [bytes([i % 251]) * GRANULE for i in range(count)]


def hashlib_baseline(n: int, contents: list[bytes]) -> float:
    start = time.perf_counter()
    for i in range(n):
        hashlib.sha256(contents[i % len(contents)]).digest()
    return time.perf_counter() - start


def delegate_pairs(n: int) -> float:
    m = ccasim.Machine()
    smc = m.smc
    start = time.perf_counter()
    for i in range(n):
        pa = DRAM0 + (i % 4096) * GRANULE
        smc(FID.GRANULE_DELEGATE, pa)
        smc(FID.GRANULE_UNDELEGATE, pa)
    return n / (time.perf_counter() - start)


def new_realm(m: ccasim.Machine, next_pa: int) -> tuple[int, int]:
    """Create a 48-bit realm from granules at next_pa; return (rd, next free pa)."""
    rtt_base, rd, params = next_pa, next_pa + GRANULE, DRAM1
    for pa in (rtt_base, rd):
        m.smc(FID.GRANULE_DELEGATE, pa)
    p = RealmParams.from_counts(
        breakpoints=2, watchpoints=2, s2sz=48, rtt_base=rtt_base, rtt_num_start=1
    )
    m.ns_write(params, p.pack())
    assert m.smc(FID.REALM_CREATE, rd, params)[0] == 0
    return rd, next_pa + 2 * GRANULE


def rtt_creates(n: int) -> float:
    """Level 3 RTTs under one level 2 RTT (up to 512), then more level 2 trees."""
    m = ccasim.Machine()
    rd, pa = new_realm(m, DRAM0)
    smc = m.smc
    tables = [pa + i * GRANULE for i in range(n + 2 * (n // 512 + 1) + 2)]
    for t in tables:
        smc(FID.GRANULE_DELEGATE, t)
    it = iter(tables)
    smc(FID.RTT_CREATE, rd, next(it), 0, 1)
    start = time.perf_counter()
    done = 0
    l2_ipa = 0
    while done < n:
        smc(FID.RTT_CREATE, rd, next(it), l2_ipa, 2)
        for j in range(min(512, n - done)):
            assert smc(FID.RTT_CREATE, rd, next(it), l2_ipa + (j << 21), 3)[0] == 0
            done += 1
        l2_ipa += 1 << 30
    return n / (time.perf_counter() - start)


def build_realm(size: int, contents: list[bytes]) -> float:
    """Seconds to build a realm of ``size`` bytes of measured DATA (all from NS memory)."""
    m = ccasim.Machine()
    for i, page in enumerate(contents):
        m.ns_write(DRAM1 + GRANULE * (1 + i), page)
    start = time.perf_counter()
    smc = m.smc
    rd, pa = new_realm(m, DRAM0)
    n_pages = size // GRANULE
    n_l3 = (n_pages + 511) // 512
    n_l2 = (n_l3 + 511) // 512
    tables = pa
    data = tables + (1 + n_l2 + n_l3) * GRANULE
    for i in range(1 + n_l2 + n_l3 + n_pages):
        smc(FID.GRANULE_DELEGATE, tables + i * GRANULE)
    t = iter(range(tables, data, GRANULE))
    smc(FID.RTT_CREATE, rd, next(t), 0, 1)
    for l2 in range(n_l2):
        smc(FID.RTT_CREATE, rd, next(t), l2 << 30, 2)
    for l3 in range(n_l3):
        smc(FID.RTT_CREATE, rd, next(t), l3 << 21, 3)
    create = FID.DATA_CREATE
    for i in range(n_pages):
        src = DRAM1 + GRANULE * (1 + i % SOURCES)
        x0 = smc(create, rd, data + i * GRANULE, i * GRANULE, src, MEASURE)[0]
        assert x0 == 0, hex(x0)
    elapsed = time.perf_counter() - start
    assert m.smc(FID.REALM_ACTIVATE, rd)[0] == 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="realm size in MiB (default 1024)")
    args = parser.parse_args()
    size = args.mib << 20
    n_pages = size // GRANULE
    contents = pages(SOURCES)

    base = hashlib_baseline(n_pages, contents)
    print(f"hashlib baseline: SHA-256 of {n_pages:,} pages      {base:8.3f} s")
    pairs = delegate_pairs(50_000)
    print(f"GRANULE_DELEGATE+UNDELEGATE pairs             {pairs:10,.0f} /s")
    rtts = rtt_creates(4096)
    print(f"RTT_CREATE                                    {rtts:10,.0f} /s")
    build = build_realm(size, contents)
    print(f"{args.mib} MiB realm built ({n_pages:,} measured DATA_CREATEs) {build:8.3f} s")
    print(f"ratio build / hashlib                         {build / base:8.2f}  (target <= 2.0)")


if __name__ == "__main__":
    main()
