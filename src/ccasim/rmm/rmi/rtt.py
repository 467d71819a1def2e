"""RTT commands (B4.3.15-B4.3.22): create, destroy, fold, read, (un)map unprotected, RIPAS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccasim.arch.registers import MASK64, signed64
from ccasim.arch.vmsa import (
    DESC_HOST_ATTRS,
    DESC_MEMATTR,
    DESC_MEMATTR_SHIFT,
    GRANULE_MASK,
    GRANULE_SHIFT,
    GRANULE_SIZE,
    MEMATTR_RESERVED,
    PA_LIMIT_WITHOUT_LPA2,
    decode_oa,
    encode_oa,
    oa_field_mask,
)
from ccasim.el3.monitor import RmmPanic
from ccasim.rmi import levels, measurement
from ccasim.rmi.levels import RTT_PAGE_LEVEL
from ccasim.rmi.status import Status
from ccasim.rmi.types import Ripas as RmiRipas
from ccasim.rmi.types import RttEntryState as RmiRttEntryState
from ccasim.rmm import s2tt
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.profile import Quirk
from ccasim.rmm.realm import Realm
from ccasim.rmm.s2tt import (
    ASSIGNED,
    ASSIGNED_NS,
    DESTROYED,
    RAM,
    TABLE,
    UNASSIGNED,
    UNASSIGNED_NS,
    Rtte,
    Walk,
)
from ccasim.rmm.types import GranuleState, RealmState, RecState, Ripas

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

MIN_BLOCK_LEVEL = 1

RMI_RIPAS = {
    Ripas.EMPTY: RmiRipas.EMPTY,
    Ripas.RAM: RmiRipas.RAM,
    Ripas.DESTROYED: RmiRipas.DESTROYED,
}


def desc_is_valid_for_unprotected(desc: int, lpa2: bool) -> bool:
    """RttDescriptorIsValidForUnprotected (B3.56): only host-controlled fields, validly set.

    Allowed: the output address, MemAttr[2:0] and S2AP. Everything else, including the valid
    and AF bits, must be zero; MemAttr 0b100 is reserved under FEAT_S2FWB.
    """
    if desc & ~(oa_field_mask(lpa2) | DESC_HOST_ATTRS):
        return False
    return (desc & DESC_MEMATTR) >> DESC_MEMATTR_SHIFT != MEMATTR_RESERVED


def check_structure_args(realm: Realm, ipa: int, level: int) -> None:
    """level_bound, ipa_align, ipa_bound of RTT_CREATE, RTT_DESTROY and RTT_FOLD.

    The level must be valid and not the starting level (RttLevelIsValid, RttLevelIsStarting);
    ``ipa`` must be aligned to the range the target RTT maps (a level - 1 entry).
    """
    if not realm.rtt_level_start < level <= RTT_PAGE_LEVEL:
        raise CommandFailure("level_bound")
    if not levels.addr_is_level_aligned(ipa, level - 1):
        raise CommandFailure("ipa_align")
    if ipa >> realm.ipa_width:
        raise CommandFailure("ipa_bound")


def lowest_unprotected_level(rmm: Rmm, realm: Realm) -> int:
    """The lowest level RTT_MAP_UNPROTECTED and RTT_UNMAP_UNPROTECTED accept: the starting
    level or the lowest block level (level_bound); just the latter with
    Quirk.UNPROTECTED_LEVEL_CRASH."""
    if Quirk.UNPROTECTED_LEVEL_CRASH in rmm.quirks:
        return MIN_BLOCK_LEVEL
    return max(realm.rtt_level_start, MIN_BLOCK_LEVEL)


def walk_unprotected(rmm: Rmm, realm: Realm, ipa: int, level: int) -> Walk:
    """The RTT walk of RTT_MAP_UNPROTECTED and RTT_UNMAP_UNPROTECTED, once every check has
    passed. A level below the starting level (Quirk.UNPROTECTED_LEVEL_CRASH) leaves the walk
    with no table to read: the RMM crashes."""
    if level < realm.rtt_level_start:
        raise RmmPanic(
            f"the RTT walk to level {level} of a realm starting at level "
            f"{realm.rtt_level_start} reads a table that does not exist (a NULL pointer)"
        )
    return rmm.rtt_walk(realm, ipa, level)


def check_unprotected_args(rmm: Rmm, realm: Realm, ipa: int, level: int) -> None:
    """level_bound, ipa_align, ipa_bound of RTT_MAP_UNPROTECTED and RTT_UNMAP_UNPROTECTED."""
    if not lowest_unprotected_level(rmm, realm) <= level <= RTT_PAGE_LEVEL:
        raise CommandFailure("level_bound")
    if not levels.addr_is_level_aligned(ipa, level):
        raise CommandFailure("ipa_align")
    if ipa >> realm.ipa_width or realm.is_protected(ipa):
        raise CommandFailure("ipa_bound")


def rtt_create(rmm: Rmm, rd: int, rtt: int, ipa: int, level: int) -> tuple[int, ...]:
    """B4.3.15: create a level ``level`` RTT below the entry for ``ipa``, unfolding it (A5.5.7).

    [rd_bound, rd_state] and [level_bound, ipa_bound] precede [rtt_walk, rtte_state].
    """
    level = signed64(level)  # an Int64 argument (B4.4)
    realm = rmm.find_realm(rd)
    check_structure_args(realm, ipa, level)
    rmm.expect_granule(rtt, GranuleState.DELEGATED, "rtt")
    if not realm.feat_lpa2 and rtt >= PA_LIMIT_WITHOUT_LPA2:
        raise CommandFailure("rtt_bound2")
    walk = rmm.rtt_walk(realm, ipa, level - 1)
    if walk.level < level - 1:
        raise CommandFailure("rtt_walk", Status.ERROR_RTT, walk.level)
    if walk.rtte.state is TABLE:
        raise CommandFailure("rtte_state", Status.ERROR_RTT, walk.level)

    rmm.rtts[rtt] = s2tt.unfold(walk.rtte, level)
    rmm.rtts[walk.rtt_addr][walk.entry_idx] = Rtte(TABLE, addr=rtt)
    rmm.granules[rtt >> GRANULE_SHIFT] = GranuleState.RTT
    return ()


def rtt_destroy(rmm: Rmm, rd: int, ipa: int, level: int) -> tuple[int, ...]:
    """B4.3.16: destroy a non-live RTT; X1 = its PA, X2 = top (next live IPA, A5.5.8).

    The parent entry becomes UNASSIGNED with RIPAS DESTROYED (A5.5.9), or UNASSIGNED_NS at an
    Unprotected IPA.
    """
    level = signed64(level)  # an Int64 argument (B4.4)
    realm = rmm.find_realm(rd)
    check_structure_args(realm, ipa, level)
    walk = rmm.rtt_walk(realm, ipa, level - 1)
    parent = rmm.rtts[walk.rtt_addr]
    if walk.level < level - 1:
        top = s2tt.skip_non_live(parent, walk.level, ipa)
        raise CommandFailure("rtt_walk", Status.ERROR_RTT, walk.level, (0, top))
    if walk.rtte.state is not TABLE:
        top = s2tt.skip_non_live(parent, walk.level, ipa)
        raise CommandFailure("rtte_state", Status.ERROR_RTT, walk.level, (0, top))
    child = walk.rtte.addr
    if s2tt.is_live(rmm.rtts[child]):
        raise CommandFailure("rtt_live", Status.ERROR_RTT, level, (0, ipa))

    unassigned = s2tt.RTTE_UNASSIGNED_NS
    if realm.is_protected(ipa):
        unassigned = Rtte(UNASSIGNED, DESTROYED)
    parent[walk.entry_idx] = unassigned
    del rmm.rtts[child]
    rmm.granules[child >> GRANULE_SHIFT] = GranuleState.DELEGATED
    return (child, s2tt.skip_non_live(parent, walk.level, ipa))


def rtt_fold(rmm: Rmm, rd: int, ipa: int, level: int) -> tuple[int, ...]:
    """B4.3.17: destroy a homogeneous RTT, moving its contents into the parent (A5.5.6)."""
    level = signed64(level)  # an Int64 argument (B4.4)
    realm = rmm.find_realm(rd)
    check_structure_args(realm, ipa, level)
    walk = rmm.rtt_walk(realm, ipa, level - 1)
    if walk.level < level - 1:
        raise CommandFailure("rtt_walk", Status.ERROR_RTT, walk.level)
    if walk.rtte.state is not TABLE:
        raise CommandFailure("rtte_state", Status.ERROR_RTT, walk.level)
    child = walk.rtte.addr
    folded = s2tt.fold(rmm.rtts[child], level)
    if folded is None:
        raise CommandFailure("rtt_homo", Status.ERROR_RTT, level)

    rmm.rtts[walk.rtt_addr][walk.entry_idx] = folded
    del rmm.rtts[child]
    rmm.granules[child >> GRANULE_SHIFT] = GranuleState.DELEGATED
    return (child,)


def rtt_read_entry(rmm: Rmm, rd: int, ipa: int, level: int) -> tuple[int, ...]:
    """B4.3.20: X1 = walk level, X2 = state, X3 = descriptor, X4 = RIPAS of the entry reached.

    TABLE and Unprotected entries report RIPAS EMPTY, as the reference RMM does.
    """
    level = signed64(level)  # an Int64 argument (B4.4)
    realm = rmm.find_realm(rd)
    if not realm.rtt_level_start <= level <= RTT_PAGE_LEVEL:
        raise CommandFailure("level_bound")
    if not levels.addr_is_level_aligned(ipa, level):
        raise CommandFailure("ipa_align")
    if ipa >> realm.ipa_width:
        raise CommandFailure("ipa_bound")
    walk = rmm.rtt_walk(realm, ipa, level)
    entry = walk.rtte
    state = entry.state
    if state is UNASSIGNED:
        return (walk.level, RmiRttEntryState.UNASSIGNED, 0, RMI_RIPAS[entry.ripas])
    if state is ASSIGNED:
        desc = encode_oa(entry.addr, realm.feat_lpa2)
        if entry.ripas is DESTROYED and Quirk.READ_ENTRY_DESTROYED_NO_DESC in rmm.quirks:
            desc = 0
        return (walk.level, RmiRttEntryState.ASSIGNED, desc, RMI_RIPAS[entry.ripas])
    if state is TABLE:
        desc = encode_oa(entry.addr, realm.feat_lpa2)
        return (walk.level, RmiRttEntryState.TABLE, desc, RmiRipas.EMPTY)
    if state is ASSIGNED_NS:
        desc = encode_oa(entry.addr, realm.feat_lpa2) | entry.attrs
        return (walk.level, RmiRttEntryState.ASSIGNED, desc, RmiRipas.EMPTY)
    return (walk.level, RmiRttEntryState.UNASSIGNED, 0, RmiRipas.EMPTY)


def rtt_map_unprotected(rmm: Rmm, rd: int, ipa: int, level: int, desc: int) -> tuple[int, ...]:
    """B4.3.19: map the NS granule (or block) that ``desc`` names at Unprotected ``ipa``."""
    level = signed64(level)  # an Int64 argument (B4.4)
    realm = rmm.find_realm(rd)
    if not lowest_unprotected_level(rmm, realm) <= level <= RTT_PAGE_LEVEL:
        raise CommandFailure("level_bound")
    if not desc_is_valid_for_unprotected(desc, realm.feat_lpa2):
        raise CommandFailure("attr_valid")
    addr = decode_oa(desc, realm.feat_lpa2)
    if not levels.addr_is_level_aligned(addr, level):
        raise CommandFailure("addr_align")
    # addr_bound (a PA at or above 2^48 without LPA2) cannot hold: without LPA2 the descriptor
    # has no field for those address bits, and setting them fails attr_valid above.
    check_unprotected_args(rmm, realm, ipa, level)
    walk = walk_unprotected(rmm, realm, ipa, level)
    if walk.level < level:
        raise CommandFailure("rtt_walk", Status.ERROR_RTT, walk.level)
    if walk.rtte.state is not UNASSIGNED_NS:
        raise CommandFailure("rtte_state", Status.ERROR_RTT, walk.level)
    rmm.rtts[walk.rtt_addr][walk.entry_idx] = Rtte(
        ASSIGNED_NS, addr=addr, attrs=desc & DESC_HOST_ATTRS
    )
    return ()


def rtt_unmap_unprotected(rmm: Rmm, rd: int, ipa: int, level: int) -> tuple[int, ...]:
    """B4.3.22: remove the mapping at Unprotected ``ipa``; X1 = top (next live IPA)."""
    level = signed64(level)  # an Int64 argument (B4.4)
    realm = rmm.find_realm(rd)
    check_unprotected_args(rmm, realm, ipa, level)
    walk = walk_unprotected(rmm, realm, ipa, level)
    rtt = rmm.rtts[walk.rtt_addr]
    if walk.level < level:
        top = s2tt.skip_non_live(rtt, walk.level, ipa)
        raise CommandFailure("rtt_walk", Status.ERROR_RTT, walk.level, (top,))
    if walk.rtte.state is not ASSIGNED_NS:
        top = s2tt.skip_non_live(rtt, walk.level, ipa)
        raise CommandFailure("rtte_state", Status.ERROR_RTT, walk.level, (top,))
    rtt[walk.entry_idx] = s2tt.RTTE_UNASSIGNED_NS
    return (s2tt.skip_non_live(rtt, walk.level, ipa),)


def assign_ripas(rtt: list[Rtte], level: int, base: int, top: int, ripas: Ripas) -> None:
    """RttEntriesInRangeRipas (B3.57) made true: give entries in [base, top) RIPAS ``ripas``."""
    size = levels.level_size(level)
    first = levels.entry_index(base, level)
    for i in range(first, first + (top - base) // size):
        rtt[i] = rtt[i]._replace(ripas=ripas)


def rtt_init_ripas(rmm: Rmm, rd: int, base: int, top: int) -> tuple[int, ...]:
    """B4.3.18: set RIPAS RAM over [base, out_top) of a NEW realm and measure each entry.

    The range ends at the first TABLE entry, at the end of the RTT the walk reached, or at the
    last whole entry below ``top`` (RttSkipEntriesWithRipas, B3.75). X1 = out_top.
    """
    if top <= base:
        raise CommandFailure("size_valid")
    realm = rmm.find_realm(rd)
    if not realm.is_protected((top - GRANULE_SIZE) & MASK64):
        raise CommandFailure("top_bound")
    if top & GRANULE_MASK:
        raise CommandFailure("top_gran_align")
    quirks = rmm.quirks
    if base & GRANULE_MASK and Quirk.INIT_RIPAS_BASE_INPUT in quirks:
        raise CommandFailure("base_align [init-ripas-base-input]")
    if realm.state is not RealmState.NEW:
        raise CommandFailure("realm_state", Status.ERROR_REALM)
    walk = rmm.rtt_walk(realm, base, RTT_PAGE_LEVEL)
    if not levels.addr_is_level_aligned(base, walk.level):
        raise CommandFailure("base_align", Status.ERROR_RTT, walk.level)
    if walk.rtte.state is not UNASSIGNED:
        raise CommandFailure("rtte_state", Status.ERROR_RTT, walk.level)
    if walk.rtte.ripas is DESTROYED and Quirk.INIT_RIPAS_REFUSES_DESTROYED in quirks:
        raise CommandFailure(
            "rtte_state [init-ripas-refuses-destroyed]", Status.ERROR_RTT, walk.level
        )
    rtt = rmm.rtts[walk.rtt_addr]
    walk_top = s2tt.skip_entries_with_ripas(rtt, walk.level, base, top, False)
    if Quirk.INIT_RIPAS_STOPS_EARLY in quirks:
        walk_top = s2tt.skip_unassigned_living(rtt, walk.level, base, walk_top)
    if walk_top == base:
        raise CommandFailure("no_progress", Status.ERROR_RTT, walk.level)

    assign_ripas(rtt, walk.level, base, walk_top, RAM)
    realm.measurements[0] = measurement.rim_extend_ripas(
        realm.hash_algo, realm.measured()[0], base, walk_top, levels.level_size(walk.level)
    )
    return (walk_top,)


def rtt_set_ripas(rmm: Rmm, rd: int, rec_ptr: int, base: int, top: int) -> tuple[int, ...]:
    """B4.3.21: apply part of the RIPAS change a REC requested; X1 = out_top (success only).

    Orderings [rd_*] < [base_align, no_progress], [rec_bound, rec_gran_state] < [rec_state,
    rec_owner], [base_bound] < [base_align], [top_gran_align] < [no_progress] hold. As in the
    reference RMM, base_align and no_progress apply whatever the entry's current RIPAS (see
    docs/decisions.md).
    """
    if top <= base:
        raise CommandFailure("size_valid")
    realm = rmm.find_realm(rd)
    rec = rmm.find_rec(rec_ptr)
    if rec.state is RecState.RUNNING:
        raise CommandFailure("rec_state", Status.ERROR_REC)
    if rec.owner != rd:
        raise CommandFailure("rec_owner", Status.ERROR_REC)
    if base != rec.ripas_addr:
        raise CommandFailure("base_bound")
    if top > rec.ripas_top:
        raise CommandFailure("top_bound")
    if top & GRANULE_MASK:
        raise CommandFailure("top_gran_align")
    walk = rmm.rtt_walk(realm, base, RTT_PAGE_LEVEL)
    if not levels.addr_is_level_aligned(base, walk.level):
        raise CommandFailure("base_align", Status.ERROR_RTT, walk.level)
    rtt = rmm.rtts[walk.rtt_addr]
    walk_top = s2tt.skip_entries_with_ripas(rtt, walk.level, base, top, not rec.ripas_destroyed)
    if walk_top == base:
        raise CommandFailure("no_progress", Status.ERROR_RTT, walk.level)

    assign_ripas(rtt, walk.level, base, walk_top, rec.ripas_value)
    rec.ripas_addr = walk_top
    return (walk_top,)
