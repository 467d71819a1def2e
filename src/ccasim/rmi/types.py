"""Encodings of the RMI concrete types (B4.4) shared by the host and the RMM."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, fields

from ccasim.arch.registers import MASK64


class Ripas(enum.IntEnum):
    """RmiRipas (B4.4.23)."""

    EMPTY = 0
    RAM = 1
    DESTROYED = 2


class RttEntryState(enum.IntEnum):
    """RmiRttEntryState (B4.4.24)."""

    UNASSIGNED = 0
    ASSIGNED = 1
    TABLE = 2


class HashAlgorithm(enum.IntEnum):
    """RmiHashAlgorithm (B4.4.7), and RsiHashAlgorithm (B5.4.8), which encodes the same
    values. The RMM keeps a realm's RmmHashAlgorithm (C1.8) in this encoding too."""

    SHA_256 = 0
    SHA_512 = 1

    @property
    def digest_size(self) -> int:
        """Bytes in a digest (a measurement is this long, zero filled to 64 bytes)."""
        return 32 if self is HashAlgorithm.SHA_256 else 64

    @property
    def hashlib_name(self) -> str:
        return "sha256" if self is HashAlgorithm.SHA_256 else "sha512"


class RecExitReason(enum.IntEnum):
    """RmiRecExitReason (B4.4.17)."""

    SYNC = 0
    IRQ = 1
    FIQ = 2
    PSCI = 3
    RIPAS_CHANGE = 4
    HOST_CALL = 5
    SERROR = 6


#: RmiDataFlags.measure (B4.4.2, B4.4.3)
DATA_NO_MEASURE_CONTENT = 0
DATA_MEASURE_CONTENT = 1

#: RmiRecCreateFlags.runnable (B4.4.13, B4.4.21)
REC_NOT_RUNNABLE = 0
REC_RUNNABLE = 1

#: RmiRealmFlags bits (B4.4.11)
REALM_FLAG_LPA2 = 1 << 0
REALM_FLAG_SVE = 1 << 1
REALM_FLAG_PMU = 1 << 2

#: RmiRecEnterFlags bits (B4.4.15)
ENTER_EMUL_MMIO = 1 << 0
ENTER_INJECT_SEA = 1 << 1
ENTER_TRAP_WFI = 1 << 2
ENTER_TRAP_WFE = 1 << 3
ENTER_RIPAS_RESPONSE_REJECT = 1 << 4


def bits(lo: int, width: int):
    """A dataclass field that is the bit field ``[lo + width - 1 : lo]`` of a 64-bit value."""
    return dataclasses.field(default=0, metadata={"lo": lo, "width": width})


class Fieldset:
    """Mixin for dataclasses whose fields are bit fields of one 64-bit register value."""

    def encode(self) -> int:
        value = 0
        for f in fields(self):  # type: ignore[arg-type]
            lo, width = f.metadata["lo"], f.metadata["width"]
            v = int(getattr(self, f.name))
            if not 0 <= v < 1 << width:
                raise ValueError(f"{type(self).__name__}.{f.name}={v} does not fit {width} bits")
            value |= v << lo
        return value

    @classmethod
    def decode(cls, value: int):
        kwargs = {}
        for f in fields(cls):  # type: ignore[arg-type]
            lo, width = f.metadata["lo"], f.metadata["width"]
            kwargs[f.name] = (value >> lo) & ((1 << width) - 1)
        return cls(**kwargs)

    @classmethod
    def reserved_mask(cls) -> int:
        """Bits of the 64-bit value that no field covers (SBZ/MBZ)."""
        used = 0
        for f in fields(cls):  # type: ignore[arg-type]
            used |= ((1 << f.metadata["width"]) - 1) << f.metadata["lo"]
        return MASK64 & ~used


@dataclass
class FeatureRegister0(Fieldset):
    """RmiFeatureRegister0 (B4.4.6): what RMI_FEATURES reports for index 0."""

    s2sz: int = bits(0, 8)
    lpa2: int = bits(8, 1)
    sve_en: int = bits(9, 1)
    sve_vl: int = bits(10, 4)
    num_bps: int = bits(14, 6)
    num_wps: int = bits(20, 6)
    pmu_en: int = bits(26, 1)
    pmu_num_ctrs: int = bits(27, 5)
    hash_sha_256: int = bits(32, 1)
    hash_sha_512: int = bits(33, 1)
    gicv3_num_lrs: int = bits(34, 4)
    max_recs_order: int = bits(38, 4)


@dataclass
class InterfaceVersion(Fieldset):
    """RmiInterfaceVersion (B4.4.9)."""

    minor: int = bits(0, 16)
    major: int = bits(16, 15)


@dataclass
class RecMpidr(Fieldset):
    """RmiRecMpidr (B4.4.18). Aff0[7:4] and bits [63:32] are reserved."""

    aff0: int = bits(0, 4)
    aff1: int = bits(8, 8)
    aff2: int = bits(16, 8)
    aff3: int = bits(24, 8)

    @classmethod
    def from_index(cls, index: int) -> RecMpidr:
        """The MPIDR of the REC with REC index ``index`` (A2.3.3)."""
        return cls(index & 0xF, (index >> 4) & 0xFF, (index >> 12) & 0xFF, (index >> 20) & 0xFF)

    def rec_index(self) -> int:
        """RecIndex (B3.38)."""
        return self.aff0 + 16 * self.aff1 + 16 * 256 * self.aff2 + 16 * 256 * 256 * self.aff3
