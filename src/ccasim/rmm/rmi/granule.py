"""RMI_GRANULE_DELEGATE and RMI_GRANULE_UNDELEGATE (B4.3.5, B4.3.6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccasim.arch.vmsa import GRANULE_SHIFT
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.types import GranuleState

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

UNDELEGATED, DELEGATED = GranuleState.UNDELEGATED, GranuleState.DELEGATED


def granule_delegate(rmm: Rmm, addr: int) -> tuple[int, ...]:
    """B4.3.5: UNDELEGATED -> DELEGATED; EL3 moves the granule to the Realm PAS.

    Failure conditions gran_align, gran_bound, gran_state, gran_gpt (no ordering).
    The granule is scrubbed so that nothing the Normal world left there reaches a realm.
    """
    rmm.expect_granule(addr, UNDELEGATED, "gran")
    if not rmm.monitor.gtsi_delegate(addr):  # EL3 refuses unless the granule is NS
        raise CommandFailure("gran_gpt")
    rmm.memory.wipe_granule(addr)
    rmm.granules[addr >> GRANULE_SHIFT] = DELEGATED
    return ()


def granule_undelegate(rmm: Rmm, addr: int) -> tuple[int, ...]:
    """B4.3.6: DELEGATED -> UNDELEGATED; the contents are wiped, then EL3 returns it to NS.

    Failure conditions gran_align, gran_bound, gran_state (no ordering).
    """
    rmm.expect_granule(addr, DELEGATED, "gran")
    rmm.memory.wipe_granule(addr)
    rmm.monitor.gtsi_undelegate(addr)
    del rmm.granules[addr >> GRANULE_SHIFT]
    return ()
