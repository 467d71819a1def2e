"""The realm's stage 2 translation, as the PE walks it, and RMM accesses to realm memory.

An RTT entry maps a Protected IPA only when it is ASSIGNED with RIPAS RAM (A5.3.1); it maps an
Unprotected IPA when it is ASSIGNED_NS, with the host's S2AP permissions (A5.5.11).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccasim.arch.vmsa import DESC_S2AP, GRANULE_MASK
from ccasim.hw.gpt import Pas
from ccasim.rmi import levels
from ccasim.rmi.levels import RTT_PAGE_LEVEL
from ccasim.rmm import s2tt
from ccasim.rmm.realm import Realm
from ccasim.rmm.s2tt import ASSIGNED, ASSIGNED_NS, RAM

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm


class RealmStage2:
    """Stage 2 translation of one realm (what VTTBR_EL2 points to while its REC runs)."""

    def __init__(self, rmm: Rmm, realm: Realm) -> None:
        self.rmm = rmm
        self.realm = realm

    def translate(self, ipa: int) -> tuple[int, Pas, int] | None:
        """(PA, PAS, S2AP bits) of the mapping of ``ipa``, or None for a stage 2 fault."""
        realm = self.realm
        if not 0 <= ipa < 1 << realm.ipa_width:
            return None
        walk = self.rmm.rtt_walk(realm, ipa, RTT_PAGE_LEVEL)
        entry = walk.rtte
        offset = ipa & (levels.level_size(walk.level) - 1)
        if entry.state is ASSIGNED and entry.ripas is RAM:
            return entry.addr + offset, Pas.REALM, DESC_S2AP
        if entry.state is ASSIGNED_NS:
            return entry.addr + offset, Pas.NS, entry.attrs & DESC_S2AP
        return None


def protected_granule(walk: s2tt.Walk, ipa: int) -> int | None:
    """The PA of the granule holding Protected ``ipa`` if ``walk`` (to it) reached an entry
    that maps it (ASSIGNED with RIPAS RAM, A5.3.1), else None."""
    entry = walk.rtte
    if entry.state is ASSIGNED and entry.ripas is RAM:
        return entry.addr + (ipa & (levels.level_size(walk.level) - 1) & ~GRANULE_MASK)
    return None
