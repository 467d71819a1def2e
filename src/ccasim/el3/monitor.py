"""The EL3 monitor: routes Normal-world SMCs and owns the GPT.

Only EL3 may change a GPT entry. The RMM asks for it through the RMM-EL3 interface's
granule transition service (GTSI delegate/undelegate), as TF-RMM does with TF-A.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

from ccasim.el3.attestation import PlatformAttestation
from ccasim.hw.bus import MemorySystem
from ccasim.hw.gpt import Pas
from ccasim.rmi.fid import (
    RMI_FID_FIRST,
    RMI_FID_LAST,
    SMCCC_NOT_SUPPORTED,
    SMCCC_VERSION,
)
from ccasim.rmi.types import MASK64

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

#: SMCCC 1.2 passes arguments in X1..X17.
MAX_SMC_ARGS = 17
_MASKS = (MASK64,) * MAX_SMC_ARGS
_and = operator.and_

#: SMCCC 1.3: the version that lets callers mark SVE state as not live (B1.1).
SMCCC_VERSION_1_3 = 0x1_0003
#: SMCCC 1.3 FID bit 16: "SVE state need not be preserved" hint, ignored for dispatch.
SMCCC_SVE_HINT = 1 << 16


class Monitor:
    """EL3: dispatches SMCs from the Normal world and performs GPT transitions for the RMM."""

    def __init__(
        self, memory: MemorySystem, attestation: PlatformAttestation | None = None
    ) -> None:
        self.memory = memory
        self.attestation = attestation if attestation is not None else PlatformAttestation()
        self.rmm: Rmm | None = None

    def smc_from_ns(self, x0: int, *args: int) -> tuple[int, int, int, int, int]:
        """An SMC from the Normal world: X0 = ``x0``, X1.. = ``args``. Returns X0..X4.

        Register values are taken modulo 2^64, as a 64-bit register holds them. An SMC FID
        is the low 32 bits of X0, without the SMCCC 1.3 SVE hint (bit 16).
        """
        if len(args) > MAX_SMC_ARGS:
            raise TypeError(f"an SMC has at most {MAX_SMC_ARGS} argument registers")
        args = tuple(map(_and, args, _MASKS))
        fid = x0 & 0xFFFF_FFFF & ~SMCCC_SVE_HINT
        if RMI_FID_FIRST <= fid <= RMI_FID_LAST and self.rmm is not None:
            return self.rmm.handle_rmi(fid, args)
        if fid == SMCCC_VERSION:
            return (SMCCC_VERSION_1_3, 0, 0, 0, 0)
        return (SMCCC_NOT_SUPPORTED, 0, 0, 0, 0)

    # -- RMM-EL3 interface: granule transition service -------------------------------------

    def gtsi_delegate(self, pa: int) -> bool:
        """Move the granule at ``pa`` from the NS PAS to the Realm PAS."""
        return self.memory.gpt.transition(pa, Pas.NS, Pas.REALM)

    def gtsi_undelegate(self, pa: int) -> bool:
        """Move the granule at ``pa`` from the Realm PAS back to the NS PAS."""
        return self.memory.gpt.transition(pa, Pas.REALM, Pas.NS)
