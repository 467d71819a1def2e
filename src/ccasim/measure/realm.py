"""The realm a VMM builds, and the RIM that building it produces (A7.1.1)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.measure.capabilities import Capabilities, CapabilityError
from ccasim.rmi import levels, measurement
from ccasim.rmi.structs import RealmParams, RecParams
from ccasim.rmi.types import REALM_FLAG_LPA2, REALM_FLAG_PMU, REC_RUNNABLE, HashAlgorithm

LPA2_MIN_IPA_BITS = 49  # A5.2.1: 49 to 52 bits need FEAT_LPA2
HASHES = {"sha256": HashAlgorithm.SHA_256, "sha512": HashAlgorithm.SHA_512}


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
    """Bytes a VMM places in guest memory at ``ipa`` (zero padded to whole granules)."""

    name: str
    ipa: int
    data: bytes

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
class RealmImage:
    """Everything that determines a realm's RIM: its parameters, its RAM, the images placed in
    it, and the boot vCPU's entry state."""

    caps: Capabilities
    ram: list[tuple[int, int]]  # (base, size)
    blobs: list[Blob]
    pc: int
    x0: int
    rpv: bytes = bytes(64)
    unmeasured: list[Region] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the VMM would not load, and why

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


@dataclass(frozen=True)
class Step:
    """One construction step and the RIM after it."""

    what: str
    rim: bytes


class RimCalculator:
    """Replays a realm's construction with the RMM's measurement functions."""

    def __init__(self, image: RealmImage) -> None:
        self.image = image
        self.steps: list[Step] = []

    def check_layout(self, ipa_bits: int) -> None:
        """Refuse what the RMM would refuse: memory outside the protected IPA space (A5.2.1)
        and pages populated twice."""
        image = self.image
        for name, value in (("pc", image.pc), ("x0", image.x0)):
            if not 0 <= value < 1 << 64:
                raise CapabilityError(f"{name}={value:#x} does not fit in a 64-bit register")
        protected = 1 << (ipa_bits - 1)
        ranges = [(f"RAM at {b:#x}", b, b + n) for b, n in image.ram]
        spans: list[Blob | Region] = [*image.blobs, *image.unmeasured]
        ranges += [(span.name, span.first_granule, span.end) for span in spans]
        for name, start, end in ranges:
            if start < 0 or end > protected:
                raise CapabilityError(
                    f"{name} [{start:#x}, {end:#x}) is outside the protected IPA space"
                    f" of a {ipa_bits}-bit realm (below {protected:#x})"
                )
        for kind in (ranges[: len(image.ram)], ranges[len(image.ram) :]):
            ordered = sorted(kind, key=lambda r: r[1])
            for (a, _, a_end), (b, b_start, _) in pairwise(ordered):
                if b_start < a_end:
                    raise CapabilityError(f"{a} and {b} overlap in guest memory")

    def compute(self) -> list[bytes]:
        """[RIM, REM0..REM3] (64 bytes each) of the realm after activation."""
        image = self.image
        params = image.realm_params()
        algo = HASHES[image.caps.hash_algo or "sha256"]
        rim = measurement.rim_init(algo, params)
        self.check_layout(params.s2sz)
        self.steps = [Step(f"REALM_CREATE s2sz={params.s2sz} flags={params.flags:#x}", rim)]
        for base, size in image.ram:
            # KVM creates tables down to the block level it picks for each address before
            # RMI_RTT_INIT_RIPAS, and the RMM measures one descriptor per entry (B4.3.18.4).
            blocks = levels.blocks(base, base + size, levels.start_level(params.s2sz))
            for start, top in blocks:
                rim = measurement.rim_extend_ripas_entry(algo, rim, start, top)
            what = f"RTT_INIT_RIPAS [{base:#x}, {base + size:#x}): {len(blocks)} RTT entries"
            self.steps.append(Step(what, rim))
        for blob in sorted(image.blobs, key=lambda b: b.ipa):
            granules = 0
            for ipa, page in blob.granules():
                rim = measurement.rim_extend_data(algo, rim, ipa, 1, page)
                granules += 1
            what = f"DATA_CREATE {blob.name} [{blob.first_granule:#x}, {blob.end:#x}): {granules}"
            self.steps.append(Step(what + (" granule" if granules == 1 else " granules"), rim))
        rec = RecParams(flags=REC_RUNNABLE, pc=image.pc, gprs=[image.x0] + [0] * 7)
        rim = measurement.rim_extend_rec(algo, rim, rec)
        self.steps.append(Step(f"REC_CREATE pc={image.pc:#x} x0={image.x0:#x}", rim))
        for region in image.unmeasured:
            for ipa in region.addresses():
                rim = measurement.rim_extend_data(algo, rim, ipa, 0, None)
            self.steps.append(
                Step(f"DATA_CREATE {region.name} [{region.first_granule:#x}, {region.end:#x})"
                     " unmeasured", rim)
            )  # fmt: skip
        return [rim] + [bytes(64)] * 4
