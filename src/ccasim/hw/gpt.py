"""The Granule Protection Table (Arm RME; RMM spec A2.2.3, B3.20, C1.5, C1.14).

Each 4 KiB granule of physical memory is assigned to one physical address space. An access is
permitted only through the PAS that the GPT entry names (GranuleAccessPermitted, B3.20).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from ccasim.hw.memory import GRANULE_SHIFT


class Pas(enum.Enum):
    """A physical address space (C1.14 RmmPhysicalAddressSpace; GPT entries of C1.5)."""

    NS = "NS"
    SECURE = "Secure"
    REALM = "Realm"
    ROOT = "Root"

    def __str__(self) -> str:
        return self.value


def _mover(old: Pas, new: Pas) -> Callable[[GranuleProtectionTable, int], bool]:
    """The transition of a granule from ``old`` to ``new`` as a method of the GPT (one per
    pair, so that EL3's transition services are each a single call)."""
    mover = _MOVERS.get((old, new))
    if mover is not None:
        return mover

    def move(self: GranuleProtectionTable, pa: int) -> bool:
        gidx = pa >> GRANULE_SHIFT
        changed = self._changed
        current = changed.get(gidx)
        base, top, default = self._last
        if not base <= pa < top:
            base, top, default = self._last = self._boot_region(pa)
        if current is None:  # at its boot PAS
            if default is not old:
                return False
            if new is not default:
                changed[gidx] = new
            return True
        if current is not old:
            return False
        if new is default:
            del changed[gidx]
        else:
            changed[gidx] = new
        return True

    _MOVERS[(old, new)] = move
    return move


_MOVERS: dict[tuple[Pas, Pas], Callable[[GranuleProtectionTable, int], bool]] = {}


class GranuleProtectionTable:
    """A sparse GPT: each granule's PAS is its region's default unless changed by EL3.

    ``boot_region(pa)`` gives ``(base, top, pas)`` from the platform memory map: a range
    around ``pa`` whose granules all boot in ``pas``. Only granules whose PAS has been changed
    (delegated to the Realm world) cost memory here; the boot region of the last lookup is
    kept, since most lookups fall in the same one.
    """

    def __init__(self, boot_region: Callable[[int], tuple[int, int, Pas]]) -> None:
        self._boot_region = boot_region
        self._last = (0, 0, Pas.NS)  # the boot region of the last lookup
        self._changed: dict[int, Pas] = {}

    def boot_pas(self, pa: int) -> Pas:
        """The PAS the granule holding ``pa`` has at boot."""
        base, top, default = self._last
        if not base <= pa < top:
            base, top, default = self._last = self._boot_region(pa)
        return default

    def pas(self, pa: int) -> Pas:
        """The PAS of the granule holding ``pa``."""
        pas = self._changed.get(pa >> GRANULE_SHIFT)
        return pas if pas is not None else self.boot_pas(pa)

    def set_pas(self, pa: int, pas: Pas) -> None:
        """Change the GPT entry of the granule holding ``pa`` (only EL3 does this)."""
        gidx = pa >> GRANULE_SHIFT
        if pas is self.boot_pas(pa):
            self._changed.pop(gidx, None)
        else:
            self._changed[gidx] = pas

    def transition(self, old: Pas, new: Pas, pa: int) -> bool:
        """Change the granule at ``pa`` from ``old`` to ``new``; False if it is not in ``old``."""
        return _mover(old, new)(self, pa)

    #: NS -> Realm and back: the granule transition service EL3 gives the RMM.
    ns_to_realm = _mover(Pas.NS, Pas.REALM)
    realm_to_ns = _mover(Pas.REALM, Pas.NS)

    def changed_granules(self) -> dict[int, Pas]:
        """Granule base addresses whose PAS differs from the boot-time default."""
        return {gidx << GRANULE_SHIFT: pas for gidx, pas in self._changed.items()}
