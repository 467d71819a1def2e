"""Realm Translation Tables (A5.5): entries, the RTT walk and the scans of chapter B3.

The level arithmetic both the RMM and the host use is :mod:`ccasim.rmi.levels`. An RTT is one
granule holding 512 RTT entries (RTTEs). The model keeps each RTT as a Python list
of 512 immutable :class:`Rtte` values, indexed by the PA of its granule in ``Rmm.rtts``. The
starting level may be made of up to 16 physically contiguous RTTs (concatenated tables).
"""

from __future__ import annotations

from typing import NamedTuple

from ccasim.rmi.levels import RTT_ENTRIES, align_down, entry_index, level_size
from ccasim.rmm.types import Ripas, RttEntryState

UNASSIGNED = RttEntryState.UNASSIGNED
ASSIGNED = RttEntryState.ASSIGNED
TABLE = RttEntryState.TABLE
UNASSIGNED_NS = RttEntryState.UNASSIGNED_NS
ASSIGNED_NS = RttEntryState.ASSIGNED_NS

EMPTY, RAM, DESTROYED = Ripas.EMPTY, Ripas.RAM, Ripas.DESTROYED


class Rtte(NamedTuple):
    """RmmRttEntry (C1.29).

    ``attrs`` holds the host-controlled attribute bits of an ASSIGNED_NS entry (MemAttr[2:0] at
    bits [4:2] and S2AP at bits [7:6] of the stage 2 descriptor) in their descriptor positions.
    ``ripas`` is meaningful only for entries at Protected IPAs.
    """

    state: RttEntryState
    ripas: Ripas = EMPTY
    addr: int = 0
    attrs: int = 0


_tuple_new = tuple.__new__


def rtte(state: RttEntryState, ripas: Ripas, addr: int, attrs: int = 0) -> Rtte:
    """``Rtte(state, ripas, addr, attrs)``, made as the tuple it is (the hot paths' way: a
    NamedTuple's own constructor is a Python function)."""
    return _tuple_new(Rtte, (state, ripas, addr, attrs))


#: The entries a new realm's starting-level RTTs hold (RMI_REALM_CREATE rtte_p_states, rtte_ripas).
RTTE_UNASSIGNED_EMPTY = Rtte(UNASSIGNED, EMPTY)
RTTE_UNASSIGNED_NS = Rtte(UNASSIGNED_NS)


class Walk(NamedTuple):
    """RmmRttWalkResult (C1.31), plus the index of the entry in its RTT (``entry_idx`` as the
    command contexts of B4.3 call it)."""

    level: int
    rtt_addr: int
    entry_idx: int
    rtte: Rtte


def is_live(rtt: list[Rtte]) -> bool:
    """RttIsLive (B3.64, A5.5.8): some entry is ASSIGNED or TABLE."""
    return any(e.state is ASSIGNED or e.state is TABLE for e in rtt)


def is_live_entry(rtte: Rtte) -> bool:
    """RTTE liveness (A5.5.8): the entry holds a PA (ASSIGNED, ASSIGNED_NS or TABLE)."""
    return rtte.state is ASSIGNED or rtte.state is ASSIGNED_NS or rtte.state is TABLE


def skip_non_live(rtt: list[Rtte], level: int, ipa: int) -> int:
    """RttSkipNonLiveEntries (B3.76): IPA of the first live entry from ``ipa``, or the RTT's end.

    If the entry holding ``ipa`` is itself live the result is ``ipa`` (not aligned down), which
    gives the ``top == ipa`` outcome the command tables of B4.3.3 and B4.3.16 state for a block
    mapping, as the reference RMM does.
    """
    index = entry_index(ipa, level)
    if is_live_entry(rtt[index]):
        return ipa
    size = level_size(level)
    base = ipa & ~(size * RTT_ENTRIES - 1)
    for i in range(index + 1, len(rtt)):
        if is_live_entry(rtt[i]):
            return base + i * size
    return base + len(rtt) * size


def skip_entries_with_ripas(
    rtt: list[Rtte], level: int, base: int, top: int, stop_at_destroyed: bool
) -> int:
    """RttSkipEntriesWithRipas (B3.75): end of the run of entries from ``base`` that have RIPAS.

    The scan stops at the first TABLE entry (and, if ``stop_at_destroyed``, at the first entry
    whose RIPAS is DESTROYED), at the end of the RTT, or at ``top``; the result is aligned down
    to the size of an entry at ``level``.
    """
    size = level_size(level)
    rtt_base = base & ~(size * RTT_ENTRIES - 1)
    result = rtt_base + len(rtt) * size
    for i in range(entry_index(base, level), len(rtt)):
        e = rtt[i]
        if e.state is TABLE or (stop_at_destroyed and e.ripas is DESTROYED):
            result = rtt_base + i * size
            break
    return align_down(min(result, top), level)


def skip_unassigned_living(rtt: list[Rtte], level: int, base: int, top: int) -> int:
    """TF-RMM's RTT_INIT_RIPAS scan (Quirk.INIT_RIPAS_STOPS_EARLY): the end of the run of
    entries from ``base`` (the first one taken as it is) before ``top`` that are UNASSIGNED
    with RIPAS EMPTY or RAM; it stops at an ASSIGNED entry or a DESTROYED one."""
    size = level_size(level)
    first = entry_index(base, level)
    for i in range(first + 1, first + (top - base) // size):
        e = rtt[i]
        if e.state is not UNASSIGNED or e.ripas is DESTROYED:
            return base + (i - first) * size
    return top


def fold(rtt: list[Rtte], level: int) -> Rtte | None:
    """RttIsHomogeneous and RttFold (B3.62, B3.63, A5.5.6) for an RTT at ``level``.

    Returns the entry the parent gets when the RTT is folded, or None if it is not homogeneous.
    """
    first = rtt[0]
    state = first.state
    if state is UNASSIGNED or state is UNASSIGNED_NS:
        return first if all(e == first for e in rtt) else None
    if state is TABLE or level < 2:
        return None
    # ASSIGNED or ASSIGNED_NS: a block of contiguous output addresses, aligned to the parent
    # entry's size, with identical RIPAS (protected) or attributes (unprotected).
    size = level_size(level)
    if first.addr & (size * RTT_ENTRIES - 1):
        return None
    addr = first.addr
    for e in rtt:
        if e.state is not state or e.addr != addr or e.ripas is not first.ripas:
            return None
        if e.attrs != first.attrs:
            return None
        addr += size
    return first


def unfold(parent: Rtte, level: int) -> list[Rtte]:
    """The entries of a new level ``level`` RTT that replaces ``parent`` (A5.5.7)."""
    if parent.state is ASSIGNED or parent.state is ASSIGNED_NS:
        size = level_size(level)
        return [parent._replace(addr=parent.addr + i * size) for i in range(RTT_ENTRIES)]
    return [parent] * RTT_ENTRIES
