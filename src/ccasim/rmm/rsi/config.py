"""RSI_REALM_CONFIG (B5.3.9)."""

from __future__ import annotations

from ccasim.hw.memory import GRANULE_MASK
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.realm_call import RealmCall
from ccasim.rmm.rsi.realm_memory import access_granule
from ccasim.rsi import RealmConfig, RsiStatus


def realm_config(call: RealmCall, addr: int) -> tuple[int, ...]:
    """B5.3.9: write RsiRealmConfig (IPA width, hash algorithm, RPV) to the granule at ``addr``."""
    realm = call.realm
    if addr & GRANULE_MASK:
        raise CommandFailure("addr_align", RsiStatus.ERROR_INPUT)
    if not realm.is_protected(addr):
        raise CommandFailure("addr_bound", RsiStatus.ERROR_INPUT)
    pa = access_granule(call, addr)
    cfg = RealmConfig(realm.ipa_width, realm.hash_algo, realm.rpv)
    call.rmm.mem.memory.write(pa, cfg.pack())
    return (RsiStatus.SUCCESS,)
