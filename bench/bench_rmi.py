"""RMI speed, each figure a ratio to a baseline measured in the same run (the speed targets).

    python bench/bench_rmi.py              # the 1 GiB realm and a 1 GiB touched realm
    python bench/bench_rmi.py --mib 64     # smaller realms, for a quick look

Figures printed, with their targets:
- an RMI_VERSION round trip through ``Machine.smc``, and a GRANULE_DELEGATE + UNDELEGATE
  pair, against an empty two-argument Python method call (targets: 12x and 40x);
- RTT_CREATE calls per second;
- building a realm from distinct NS pages through ``Machine.smc``: delegate every granule,
  create the RTTs, DATA_CREATE each page with its contents measured, REALM_ACTIVATE (the RIM
  is then observable, and checked); against hashlib SHA-256 of the same pages, one thread
  (target: 2.0x); and the peak resident memory against the realm's data plus the host's copy
  (target: 1.3x);
- stage 2 faults served end to end by ``ccasim run`` for a guest touching all of its RAM:
  pages per second, and the share of time in each layer (bench_run's sampler).
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import time
import timeit

import ccasim
from ccasim.rmi import FID, RealmParams, measurement
from ccasim.rmi.types import HashAlgorithm

GRANULE = 4096
DRAM0 = 0x8000_0000
DRAM1 = 0x88_8000_0000
MEASURE = 1


def distinct_pages(count: int) -> list[bytes]:
    """``count`` different pages (a counter in each, the rest a pattern)."""
    pattern = bytes(range(256)) * (GRANULE // 256)
    return [i.to_bytes(8, "little") + pattern[8:] for i in range(count)]


def hashlib_seconds(contents: list[bytes]) -> float:
    sha256 = hashlib.sha256
    start = time.perf_counter()
    for page in contents:
        sha256(page).digest()
    return time.perf_counter() - start


class _Empty:
    def call(self, a: int, b: int) -> None:
        pass


def per_call(fn, number: int = 200_000) -> float:
    """Seconds per call of ``fn`` (the best of five runs)."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def round_trips() -> tuple[float, float, float]:
    """(empty method call, RMI_VERSION round trip, DELEGATE + UNDELEGATE pair), in seconds."""
    m = ccasim.Machine()
    smc = m.smc
    empty = _Empty().call
    version, delegate, undelegate = (
        int(FID.VERSION),
        int(FID.GRANULE_DELEGATE),
        int(FID.GRANULE_UNDELEGATE),
    )
    base = per_call(lambda: empty(version, 0x10000))
    ver = per_call(lambda: smc(version, 0x10000))

    def pair() -> None:
        smc(delegate, DRAM0)
        smc(undelegate, DRAM0)

    return base, ver, per_call(pair, 100_000)


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


def expected_rim(contents: list[bytes], rim0: bytes) -> bytes:
    """The RIM after measuring ``contents`` at IPA 0, 4 KiB, ... from ``rim0`` (the spec's
    functions, one page at a time): the build's RIM must be exactly this."""
    rim = rim0
    for i, page in enumerate(contents):
        rim = measurement.rim_extend_data(HashAlgorithm.SHA_256, rim, i * GRANULE, MEASURE, page)
    return rim[:32]


def build_realm(contents: list[bytes]) -> tuple[float, int]:
    """Seconds to build and activate a realm measuring ``contents`` (each page from its own
    NS granule), and the process's peak resident memory in KiB; the RIM is checked after."""
    n_pages = len(contents)
    size = n_pages * GRANULE
    m = ccasim.Machine()
    for i, page in enumerate(contents):
        m.ns_write(DRAM1 + GRANULE * (1 + i), page)
    start = time.perf_counter()
    smc = m.smc
    rd, pa = new_realm(m, DRAM0)
    n_l3 = (n_pages + 511) // 512
    n_l2 = (n_l3 + 511) // 512
    tables = pa
    data = tables + (1 + n_l2 + n_l3) * GRANULE
    delegate, rtt_create, create = (
        int(FID.GRANULE_DELEGATE),
        int(FID.RTT_CREATE),
        int(FID.DATA_CREATE),
    )
    for pa in range(tables, data + n_pages * GRANULE, GRANULE):
        smc(delegate, pa)
    t = iter(range(tables, data, GRANULE))
    smc(rtt_create, rd, next(t), 0, 1)
    for l2 in range(n_l2):
        smc(rtt_create, rd, next(t), l2 << 30, 2)
    for l3 in range(n_l3):
        smc(rtt_create, rd, next(t), l3 << 21, 3)
    sources = range(DRAM1 + GRANULE, DRAM1 + GRANULE * (1 + n_pages), GRANULE)
    granules = range(data, data + n_pages * GRANULE, GRANULE)
    for granule, ipa, src in zip(granules, range(0, size, GRANULE), sources, strict=True):
        if smc(create, rd, granule, ipa, src, MEASURE)[0]:
            raise AssertionError(f"DATA_CREATE at {ipa:#x} failed")
    assert smc(FID.REALM_ACTIVATE, rd)[0] == 0
    rim = m.realm_measurements(rd)[0]  # observed: complete and exact from here on
    elapsed = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fresh = ccasim.Machine()
    rd2, _ = new_realm(fresh, DRAM0)
    rim0 = fresh.realm_measurements(rd2)[0].ljust(64, b"\0")
    assert rim == expected_rim(contents, rim0), "the RIM is not the spec's"
    return elapsed, rss


def touched_realm(mib: int) -> None:
    from bench_run import ccasim_run

    report, _, samples = ccasim_run("-c", "1", "-m", f"{mib}M",
                                          "--guest-arg", "touch_mib=-1")  # fmt: skip
    faults = report["rec_exits"].get("SYNC (data abort)", 0)
    run_s = report["wall_time"]["run"]
    total = sum(samples.values()) or 1
    shares = ", ".join(f"{layer} {n * 100 / total:.0f}%" for layer, n in samples.most_common())
    print(f"stage 2 faults, {mib} MiB touched on 1 vCPU   {faults / run_s:10,.0f} pages/s"
          f"  ({faults:,} in {run_s:.1f} s)")  # fmt: skip
    print(f"  time by layer: {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="realm size in MiB (default 1024)")
    parser.add_argument("--no-faults", action="store_true", help="skip the touched realm")
    args = parser.parse_args()
    size = args.mib << 20
    n_pages = size // GRANULE

    empty, version, pair = round_trips()
    print(f"empty two-argument method call (baseline)     {empty * 1e9:8.0f} ns")
    print(f"RMI_VERSION round trip                        {version * 1e9:8.0f} ns"
          f"  = {version / empty:5.1f}x  (target <= 12)")  # fmt: skip
    print(f"GRANULE_DELEGATE + UNDELEGATE pair            {pair * 1e9:8.0f} ns"
          f"  = {pair / empty:5.1f}x  (target <= 40)")  # fmt: skip
    print(f"RTT_CREATE                                    {rtt_creates(4096):8,.0f} /s")

    contents = distinct_pages(n_pages)
    base = hashlib_seconds(contents)
    print(f"hashlib SHA-256 of {n_pages:,} distinct pages (baseline) {base:8.3f} s")
    build, peak_kib = build_realm(contents)
    print(f"{args.mib} MiB realm built and activated, RIM checked {build:8.3f} s"
          f"  = {build / base:5.2f}x  (target <= 2.0)")  # fmt: skip
    data = 2 * size  # the realm's data and the host's copy of it
    print(f"peak resident memory of the process            {peak_kib / 1024:8.0f} MiB"
          f"  = {peak_kib * 1024 / data:5.2f}x the realm's data + the host's copy"
          "  (target <= 1.3)")  # fmt: skip
    if not args.no_faults:
        touched_realm(args.mib)


if __name__ == "__main__":
    main()
