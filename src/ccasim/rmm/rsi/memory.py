"""RSI_IPA_STATE_SET and RSI_IPA_STATE_GET (B5.3.6, B5.3.5; A5.4 RIPAS change)."""

from __future__ import annotations

from ccasim.hw.memory import GRANULE_MASK
from ccasim.rmi import levels
from ccasim.rmi.levels import RTT_PAGE_LEVEL
from ccasim.rmi.types import RecExitReason
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.exits import ExitToHost, RecExitInfo
from ccasim.rmm.realm import Realm
from ccasim.rmm.realm_call import RealmCall
from ccasim.rmm.rec import LastExit
from ccasim.rmm.s2tt import TABLE
from ccasim.rmm.types import Ripas
from ccasim.rsi import RIPAS_CHANGE_DESTROYED, RsiRipas, RsiStatus

RSI_RIPAS = {
    Ripas.EMPTY: RsiRipas.EMPTY,
    Ripas.RAM: RsiRipas.RAM,
    Ripas.DESTROYED: RsiRipas.DESTROYED,
}


def range_is_protected(base: int, top: int, realm: Realm) -> bool:
    """AddrRangeIsProtected (B3.6)."""
    size = top - base
    return (
        realm.is_protected(base) and 0 < size < 1 << realm.ipa_width and realm.is_protected(top - 1)
    )


def check_range(base: int, top: int, realm: Realm, top_id: str) -> None:
    """base_align, top_align (end_align), size_valid, rgn_bound."""
    if base & GRANULE_MASK:
        raise CommandFailure("base_align", RsiStatus.ERROR_INPUT)
    if top & GRANULE_MASK:
        raise CommandFailure(top_id, RsiStatus.ERROR_INPUT)
    if top <= base:
        raise CommandFailure("size_valid", RsiStatus.ERROR_INPUT)
    if not range_is_protected(base, top, realm):
        raise CommandFailure("rgn_bound", RsiStatus.ERROR_INPUT)


def ipa_state_get(call: RealmCall, base: int, top: int) -> tuple[int, ...]:
    """B5.3.5: the RIPAS at ``base`` and how far from base it stays the same (out_top)."""
    realm = call.realm
    check_range(base, top, realm, "end_align")
    walk = call.rmm.rtt_walk(realm, base, RTT_PAGE_LEVEL)
    rtt = call.rmm.rtts[walk.rtt_addr]
    ripas = walk.rtte.ripas
    size = levels.level_size(walk.level)
    out_top = (base & ~(size - 1)) + size
    for entry in rtt[walk.entry_idx + 1 :]:
        if out_top >= top or entry.state is TABLE or entry.ripas is not ripas:
            break
        out_top += size
    return (RsiStatus.SUCCESS, min(out_top, top), RSI_RIPAS[ripas])


def ipa_state_set(call: RealmCall, base: int, top: int, ripas: int, flags: int) -> tuple[int, ...]:
    """B5.3.6: request a RIPAS change of [base, top); the host applies it (A5.4).

    The REC exits with RMI_EXIT_RIPAS_CHANGE; on the next entry X1 is how far the change went
    and X2 whether the host rejected it.
    """
    realm, rec = call.realm, call.rec
    check_range(base, top, realm, "top_align")
    ripas &= 0xFF
    if ripas not in (RsiRipas.EMPTY, RsiRipas.RAM):
        raise CommandFailure("ripas_valid", RsiStatus.ERROR_INPUT)
    rec.ripas_addr, rec.ripas_top = base, top
    rec.ripas_value = Ripas.RAM if ripas == RsiRipas.RAM else Ripas.EMPTY
    rec.ripas_destroyed = bool(flags & RIPAS_CHANGE_DESTROYED)
    rec.last_exit = LastExit.RIPAS_CHANGE
    raise ExitToHost(
        RecExitInfo(RecExitReason.RIPAS_CHANGE, ripas_base=base, ripas_top=top, ripas_value=ripas)
    )
