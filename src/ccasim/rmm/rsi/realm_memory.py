"""RMM accesses to realm memory on behalf of an RSI command.

The RMM can use a Protected IPA whose RTT entry is ASSIGNED with RIPAS RAM. If the IPA has
RIPAS EMPTY the command fails with RSI_ERROR_INPUT; if it is not mapped yet (RIPAS RAM but
UNASSIGNED) or DESTROYED, the RMM makes a REC exit due to Data Abort at that IPA so that the
host can map it, and the realm's SMC runs again on the next entry (as the reference RMM does).
"""

from __future__ import annotations

from ccasim.rmi.levels import RTT_PAGE_LEVEL
from ccasim.rmm import exits
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.exits import ExitToHost
from ccasim.rmm.realm_call import RealmCall
from ccasim.rmm.rec import LastExit
from ccasim.rmm.s2tt import EMPTY
from ccasim.rmm.stage2 import protected_granule
from ccasim.rsi import RsiStatus


def access_granule(call: RealmCall, ipa: int) -> int:
    """The PA of the realm granule holding Protected ``ipa``. Raises the ``buffer_ripas``
    failure (RSI_ERROR_INPUT) at RIPAS EMPTY, and ExitToHost (a REC exit due to Data Abort)
    where the host must map the granule first."""
    walk = call.rmm.rtt_walk(call.realm, ipa, RTT_PAGE_LEVEL)
    pa = protected_granule(walk, ipa)
    if pa is not None:
        return pa
    if walk.rtte.ripas is EMPTY:
        raise CommandFailure("buffer_ripas", RsiStatus.ERROR_INPUT)
    call.rec.last_exit = LastExit.OTHER
    raise ExitToHost(exits.data_abort(ipa, walk.level))
