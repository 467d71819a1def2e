"""The Granule Protection Table (Arm RME; RMM spec A2.2.3, B3.20, C1.5, C1.14).

Each 4 KiB granule of physical memory is assigned to one physical address space. An access is
permitted only through the PAS that the GPT entry names (GranuleAccessPermitted, B3.20).
"""

from __future__ import annotations

import enum

from ccasim.hw.memory import GRANULE_SHIFT


class Pas(enum.Enum):
    """A physical address space (C1.14 RmmPhysicalAddressSpace; GPT entries of C1.5)."""

    NS = "NS"
    SECURE = "Secure"
    REALM = "Realm"
    ROOT = "Root"

    def __str__(self) -> str:
        return self.value


class GranuleProtectionTable:
    """A sparse GPT: each granule's PAS is its region's default unless changed by EL3.

    ``default_pas`` gives the PAS a granule has at boot (from the platform memory map); only
    granules whose PAS has been changed (delegated to the Realm world) cost memory here.
    """

    def __init__(self, default_pas) -> None:
        self._default_pas = default_pas
        self._changed: dict[int, Pas] = {}

    def pas(self, pa: int) -> Pas:
        """The PAS of the granule holding ``pa``."""
        gidx = pa >> GRANULE_SHIFT
        pas = self._changed.get(gidx)
        return pas if pas is not None else self._default_pas(pa)

    def set_pas(self, pa: int, pas: Pas) -> None:
        """Change the GPT entry of the granule holding ``pa`` (only EL3 does this)."""
        gidx = pa >> GRANULE_SHIFT
        if pas is self._default_pas(pa):
            self._changed.pop(gidx, None)
        else:
            self._changed[gidx] = pas

    def transition(self, pa: int, old: Pas, new: Pas) -> bool:
        """Change the granule at ``pa`` from ``old`` to ``new``; False if it is not in ``old``."""
        gidx = pa >> GRANULE_SHIFT
        current = self._changed.get(gidx)
        if (current if current is not None else self._default_pas(pa)) is not old:
            return False
        if new is self._default_pas(pa):
            del self._changed[gidx]
        else:
            self._changed[gidx] = new
        return True

    def changed_granules(self) -> dict[int, Pas]:
        """Granule base addresses whose PAS differs from the boot-time default."""
        return {gidx << GRANULE_SHIFT: pas for gidx, pas in self._changed.items()}
