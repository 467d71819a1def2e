"""RMI_DATA_CREATE, RMI_DATA_CREATE_UNKNOWN, RMI_DATA_DESTROY (B4.3.1, B4.3.2, B4.3.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccasim.arch.vmsa import GRANULE_MASK, GRANULE_SHIFT, PA_LIMIT_WITHOUT_LPA2
from ccasim.rmi.levels import RTT_PAGE_LEVEL
from ccasim.rmi.status import Status
from ccasim.rmi.types import DATA_MEASURE_CONTENT
from ccasim.rmm import rim
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.realm import Realm
from ccasim.rmm.s2tt import ASSIGNED, DESTROYED, RAM, UNASSIGNED, Rtte, Walk, rtte, skip_non_live
from ccasim.rmm.types import GranuleState, RealmState

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

DELEGATED, DATA, NEW = GranuleState.DELEGATED, GranuleState.DATA, RealmState.NEW


def find_page_entry(rmm: Rmm, realm: Realm, data: int, ipa: int) -> Walk:
    """The shared tail of DATA_CREATE[_UNKNOWN]: ipa_align, ipa_bound, data_bound2, rtt_walk,
    rtte_state. Returns the walk to the UNASSIGNED level 3 entry for ``ipa``."""
    if ipa & GRANULE_MASK:
        raise CommandFailure("ipa_align")
    if not realm.is_protected(ipa):
        raise CommandFailure("ipa_bound")
    if not realm.feat_lpa2 and data >= PA_LIMIT_WITHOUT_LPA2:
        raise CommandFailure("data_bound2")
    walk = rmm.rtt_walk(realm, ipa, RTT_PAGE_LEVEL)
    if walk.level < RTT_PAGE_LEVEL:
        raise CommandFailure("rtt_walk", Status.ERROR_RTT, walk.level)
    if walk.rtte.state is not UNASSIGNED:
        raise CommandFailure("rtte_state", Status.ERROR_RTT, walk.level)
    return walk


def data_create(rmm: Rmm, rd: int, data: int, ipa: int, src: int, flags: int) -> tuple[int, ...]:
    """B4.3.1: copy an NS granule into a new DATA granule of a NEW realm and measure it.

    Orderings [rd_bound, rd_state] < [realm_state, rtt_walk, rtte_state] and [ipa_bound] <
    [rtt_walk, rtte_state] hold; like the reference RMM, realm_state is checked before the
    IPA. Reserved bits of flags are rejected as an invalid encoding (B4.2).
    """
    if flags > DATA_MEASURE_CONTENT:
        raise CommandFailure("flags_valid")
    rmm.expect_ns_granule(src, "src")
    rmm.expect_granule(data, DELEGATED, "data")
    realm = rmm.find_realm(rd)
    if realm.state is not NEW:
        raise CommandFailure("realm_state", Status.ERROR_REALM)
    walk = find_page_entry(rmm, realm, data, ipa)

    content = rmm.memory.copy_granule(data, src)
    rim.extend_data(realm, ipa, flags, content if flags == DATA_MEASURE_CONTENT else None)
    rmm.rtts[walk.rtt_addr][walk.entry_idx] = rtte(ASSIGNED, RAM, data)
    rmm.granules[data >> GRANULE_SHIFT] = DATA
    return ()


def data_create_unknown(rmm: Rmm, rd: int, data: int, ipa: int) -> tuple[int, ...]:
    """B4.3.2: map a wiped DATA granule at ``ipa``; the RIPAS is unchanged (A5.3.5)."""
    rmm.expect_granule(data, DELEGATED, "data")
    realm = rmm.find_realm(rd)
    walk = find_page_entry(rmm, realm, data, ipa)
    rmm.memory.wipe_granule(data)
    rmm.rtts[walk.rtt_addr][walk.entry_idx] = rtte(ASSIGNED, walk.rtte.ripas, data)
    rmm.granules[data >> GRANULE_SHIFT] = DATA
    return ()


def data_destroy(rmm: Rmm, rd: int, ipa: int) -> tuple[int, ...]:
    """B4.3.3: unmap and wipe the DATA granule at ``ipa``; X1 = its PA, X2 = top.

    A RAM entry becomes DESTROYED; EMPTY and DESTROYED stay as they are. On an RTT failure X2
    still reports the next live IPA (the table in B4.3.3.1.3).
    """
    realm = rmm.find_realm(rd)
    if ipa & GRANULE_MASK:
        raise CommandFailure("ipa_align")
    if not realm.is_protected(ipa):
        raise CommandFailure("ipa_bound")
    walk = rmm.rtt_walk(realm, ipa, RTT_PAGE_LEVEL)
    rtt = rmm.rtts[walk.rtt_addr]
    if walk.level < RTT_PAGE_LEVEL:
        top = skip_non_live(rtt, walk.level, ipa)
        raise CommandFailure("rtt_walk", Status.ERROR_RTT, walk.level, (0, top))
    entry = walk.rtte
    if entry.state is not ASSIGNED:
        top = skip_non_live(rtt, walk.level, ipa)
        raise CommandFailure("rtte_state", Status.ERROR_RTT, walk.level, (0, top))

    rtt[walk.entry_idx] = Rtte(UNASSIGNED, DESTROYED if entry.ripas is RAM else entry.ripas)
    rmm.mem.memory.wipe_granule(entry.addr)
    rmm.granules[entry.addr >> GRANULE_SHIFT] = GranuleState.DELEGATED
    return (entry.addr, skip_non_live(rtt, walk.level, ipa))
