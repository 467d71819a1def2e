"""What this RMM implementation supports (RmmFeatures, C1.4; reported by RMI_FEATURES, B4.3.4).

The defaults advertise what a kvmtool or QEMU realm may ask for, on a platform like the Arm FVP
with TF-RMM: 48-bit IPAs, SHA-256 and SHA-512, SVE up to the largest vector length, a PMU with
31 counters, 16 breakpoints and watchpoints and 16 GICv3 list registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ccasim.rmi.types import FeatureRegister0


@dataclass(frozen=True)
class RmmFeatures:
    """RmmFeatures (C1.4) plus the IMPLEMENTATION DEFINED choices RMI makes visible.

    Counts are real counts (``num_bps=16`` means 16 breakpoints); RMI_FEATURES encodes the
    breakpoint, watchpoint and list register counts minus one, as B4.4.6 defines.
    """

    max_ipa_width: int = 48
    lpa2: bool = False
    sve: bool = True
    max_sve_vl: int = 15
    num_bps: int = 16
    num_wps: int = 16
    pmu: bool = True
    pmu_num_ctrs: int = 31
    sha_256: bool = True
    sha_512: bool = True
    gicv3_num_lrs: int = 16
    max_recs_order: int = 10
    rec_aux_count: int = 16
    vmid_bits: int = 16
    min_ipa_width: int = 32
    #: The platform has FEAT_HPMN0: a realm's PMU may have 0 event counters. Without it
    #: MDCR_EL2.HPMN = 0 is CONSTRAINED UNPREDICTABLE, and the RMM refuses such a realm
    #: (RealmParamsSupported, B3.34), as TF-RMM does on such a platform.
    hpmn0: bool = True

    def __post_init__(self) -> None:
        ranges = {
            "max_ipa_width": (32, 52 if self.lpa2 else 48),
            "max_sve_vl": (0, 15),
            "num_bps": (2, 64),
            "num_wps": (2, 64),
            "pmu_num_ctrs": (0, 31),
            "gicv3_num_lrs": (1, 16),
            "max_recs_order": (1, 15),
            "rec_aux_count": (0, 16),
            "vmid_bits": (8, 16),
        }
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"RMM feature {name}={value} is outside {low}..{high}")
        if not (self.sha_256 or self.sha_512):
            raise ValueError("the RMM must support SHA-256 or SHA-512")

    @property
    def max_recs(self) -> int:
        return (1 << self.max_recs_order) - 1

    @cached_property
    def register0(self) -> int:
        """RmiFeatureRegister0 (B4.4.6) as RMI_FEATURES returns it for index 0."""
        return FeatureRegister0(
            s2sz=self.max_ipa_width,
            lpa2=int(self.lpa2),
            sve_en=int(self.sve),
            sve_vl=self.max_sve_vl if self.sve else 0,
            num_bps=self.num_bps - 1,
            num_wps=self.num_wps - 1,
            pmu_en=int(self.pmu),
            pmu_num_ctrs=self.pmu_num_ctrs if self.pmu else 0,
            hash_sha_256=int(self.sha_256),
            hash_sha_512=int(self.sha_512),
            gicv3_num_lrs=self.gicv3_num_lrs - 1,
            max_recs_order=self.max_recs_order,
        ).encode()
