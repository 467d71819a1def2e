"""The EL3 monitor: routes Normal-world SMCs and owns the GPT.

Only EL3 may change a GPT entry. The RMM asks for it through the RMM-EL3 interface's
granule transition service (GTSI delegate/undelegate), as TF-RMM does with TF-A.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccasim.hw.bus import MemorySystem
from ccasim.hw.gpt import Pas
from ccasim.rmi.fid import (
    RMI_FID_FIRST,
    RMI_FID_LAST,
    SMCCC_NOT_SUPPORTED,
    SMCCC_VERSION,
)

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

#: SMCCC 1.3: the version that lets callers mark SVE state as not live (B1.1).
SMCCC_VERSION_1_3 = 0x1_0003
#: SMCCC 1.3 FID bit 16: "SVE state need not be preserved" hint, ignored for dispatch.
SMCCC_SVE_HINT = 1 << 16


class Monitor:
    """EL3: dispatches SMCs from the Normal world and performs GPT transitions for the RMM."""

    def __init__(self, memory: MemorySystem) -> None:
        self.memory = memory
        self.rmm: Rmm | None = None

    def smc_from_ns(self, x0: int, args: tuple[int, ...]) -> tuple[int, int, int, int, int]:
        """An SMC from the Normal world: X0 = ``x0``, X1.. = ``args``. Returns X0..X4."""
        fid = x0 & 0xFFFF_FFFF & ~SMCCC_SVE_HINT
        if RMI_FID_FIRST <= fid <= RMI_FID_LAST and self.rmm is not None:
            return self.rmm.handle_rmi(fid, args)
        if fid == SMCCC_VERSION:
            return (SMCCC_VERSION_1_3, 0, 0, 0, 0)
        return (SMCCC_NOT_SUPPORTED, 0, 0, 0, 0)

    # -- RMM-EL3 interface: granule transition service -------------------------------------

    def gtsi_delegate(self, pa: int) -> bool:
        """Move the granule at ``pa`` from the NS PAS to the Realm PAS."""
        gpt = self.memory.gpt
        if gpt.pas(pa) is not Pas.NS:
            return False
        gpt.set_pas(pa, Pas.REALM)
        return True

    def gtsi_undelegate(self, pa: int) -> bool:
        """Move the granule at ``pa`` from the Realm PAS back to the NS PAS."""
        gpt = self.memory.gpt
        if gpt.pas(pa) is not Pas.REALM:
            return False
        gpt.set_pas(pa, Pas.NS)
        return True
