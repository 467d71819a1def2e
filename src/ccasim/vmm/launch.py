"""A realm launch as a VMM performs it: the realm's configuration, its RAM, what the VMM
places where, and the vCPUs. ``ccasim measure`` predicts its measurements; a VMM executes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.rmi import levels
from ccasim.rmi.structs import RealmParams
from ccasim.rmi.types import REALM_FLAG_LPA2, REALM_FLAG_PMU
from ccasim.vmm.capabilities import Capabilities, CapabilityError
from ccasim.vmm.errors import LaunchError

LPA2_MIN_IPA_BITS = 49  # A5.2.1: 49 to 52 bits need FEAT_LPA2


class GuestSpan:
    """The granules that ``size`` bytes at ``ipa`` touch."""

    ipa: int
    size: int

    @property
    def first_granule(self) -> int:
        return self.ipa & ~(GRANULE_SIZE - 1)

    @property
    def end(self) -> int:
        """The end of the last granule touched."""
        return (self.ipa + self.size + GRANULE_SIZE - 1) & ~(GRANULE_SIZE - 1)

    def addresses(self) -> range:
        return range(self.first_granule, self.end, GRANULE_SIZE)


@dataclass(frozen=True)
class Blob(GuestSpan):
    """Bytes a VMM places in guest memory at ``ipa`` (zero padded to whole granules);
    ``source`` is the file they came from, if any."""

    name: str
    ipa: int
    data: bytes
    source: str = ""

    @property
    def size(self) -> int:  # type: ignore[override]
        return len(self.data)

    def granules(self) -> Iterator[tuple[int, bytes | memoryview]]:
        """(IPA, 4 KiB contents) of every granule the blob touches, zero filled around it.
        Whole granules are views into ``data``, not copies."""
        ipa, rest = self.first_granule, memoryview(self.data)
        head = self.ipa - ipa
        if head:
            yield ipa, (bytes(head) + rest[: GRANULE_SIZE - head]).ljust(GRANULE_SIZE, b"\0")
            ipa, rest = ipa + GRANULE_SIZE, rest[GRANULE_SIZE - head :]
        while len(rest) >= GRANULE_SIZE:
            yield ipa, rest[:GRANULE_SIZE]
            ipa, rest = ipa + GRANULE_SIZE, rest[GRANULE_SIZE:]
        if rest:
            yield ipa, bytes(rest).ljust(GRANULE_SIZE, b"\0")


@dataclass(frozen=True)
class Region(GuestSpan):
    """Granules a VMM populates without measuring their contents (RMI_NO_MEASURE_CONTENT),
    e.g. a measurement log: only their IPAs reach the RIM."""

    name: str
    ipa: int
    size: int


@dataclass
class Launch:
    """Everything a VMM does to build a realm: the host capabilities its realm is configured
    with, the RAM ranges (RIPAS RAM), the images it places (measured), the pages it populates
    unmeasured, the boot vCPU's entry state, and how many vCPUs."""

    caps: Capabilities
    ram: list[tuple[int, int]]  # (base, size)
    blobs: list[Blob]
    pc: int
    x0: int
    rpv: bytes = bytes(64)
    unmeasured: list[Region] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the VMM would not load, and why
    vcpus: int = 1

    def realm_params(self) -> RealmParams:
        """RmiRealmParams as the VMM fills it (only the measured fields matter)."""
        caps = self.caps.validate()
        pmu = bool(caps.pmu)
        needed = ("ipa_bits", "num_bps", "num_wps", "sve_vl", "hash_algo")
        caps.require(*needed, *(("pmu_num_ctrs",) if pmu else ()))
        assert caps.ipa_bits and caps.num_bps and caps.num_wps and caps.hash_algo
        if caps.ipa_bits > LPA2_MIN_IPA_BITS - 1 and not caps.lpa2:
            raise CapabilityError(
                f"ipa_bits={caps.ipa_bits}: an IPA space over 48 bits needs LPA2 (--lpa2 true)"
            )
        flags = (REALM_FLAG_LPA2 if caps.lpa2 else 0) | (REALM_FLAG_PMU if pmu else 0)
        return RealmParams.from_counts(
            breakpoints=caps.num_bps,
            watchpoints=caps.num_wps,
            sve_vector_length=caps.sve_vl or 0,
            flags=flags,
            s2sz=caps.ipa_bits,
            pmu_num_ctrs=(caps.pmu_num_ctrs or 0) if pmu else 0,
            hash_algo=0 if caps.hash_algo == "sha256" else 1,
            rpv=self.rpv,
        )

    def check_layout(self, ipa_bits: int) -> None:
        """Refuse what the RMM would refuse: memory outside the protected IPA space (A5.2.1)
        and pages populated twice."""
        image = self
        for name, value in (("pc", image.pc), ("x0", image.x0)):
            if not 0 <= value < 1 << 64:
                raise LaunchError(f"{name}={value:#x} does not fit in a 64-bit register")
        protected = levels.protected_limit(ipa_bits)
        ranges = [(f"RAM at {b:#x}", b, b + n) for b, n in image.ram]
        spans: list[Blob | Region] = [*image.blobs, *image.unmeasured]
        ranges += [(span.name, span.first_granule, span.end) for span in spans]
        for name, start, end in ranges:
            if start < 0 or end > protected:
                raise LaunchError(
                    f"{name} [{start:#x}, {end:#x}) is outside the protected IPA space"
                    f" of a {ipa_bits}-bit realm (below {protected:#x})"
                )
        for kind in (ranges[: len(image.ram)], ranges[len(image.ram) :]):
            ordered = sorted(kind, key=lambda r: r[1])
            for (a, _, a_end), (b, b_start, _) in pairwise(ordered):
                if b_start < a_end:
                    raise LaunchError(f"{a} and {b} overlap in guest memory")
