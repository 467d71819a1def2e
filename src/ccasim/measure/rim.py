"""The RIM that building a realm produces (A7.1.1), without building it."""

from __future__ import annotations

from dataclasses import dataclass

from ccasim.rmi import levels, measurement
from ccasim.rmi.structs import RecParams
from ccasim.rmi.types import REC_RUNNABLE, HashAlgorithm
from ccasim.vmm.launch import Launch

HASHES = {a.hashlib_name: a for a in HashAlgorithm}


@dataclass(frozen=True)
class Step:
    """One construction step and the RIM after it."""

    what: str
    rim: bytes


class RimCalculator:
    """Replays a realm's construction with the RMM's measurement functions."""

    def __init__(self, image: Launch) -> None:
        self.image = image
        self.steps: list[Step] = []

    def compute(self) -> list[bytes]:
        """[RIM, REM0..REM3] (64 bytes each) of the realm after activation."""
        image = self.image
        params = image.realm_params()
        algo = HASHES[image.caps.hash_algo or "sha256"]
        rim = measurement.rim_init(algo, params)
        image.check_layout(params.s2sz)
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
