"""The memory system as a requester sees it: every access passes the granule protection check.

A requester accesses physical memory through one PAS (the Normal world through NS, the RMM
through Realm or, for host-provided buffers, NS). The access succeeds only when the GPT entry
of every granule touched permits that PAS (GranuleAccessPermitted, B3.20); otherwise the
hardware raises a granule protection fault. Unpopulated addresses give an external abort.
"""

from __future__ import annotations

from ccasim.hw.faults import ExternalAbort, GranuleProtectionFault
from ccasim.hw.gpt import GranuleProtectionTable, Pas
from ccasim.hw.memory import GRANULE_MASK, GRANULE_SIZE, PhysicalMemory
from ccasim.hw.platform import Platform


class MemorySystem:
    """Physical memory, the GPT and the memory map, joined by the granule protection check."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.memory = PhysicalMemory()
        self.gpt = GranuleProtectionTable(platform.boot_region)

    def check(self, pa: int, size: int, pas: Pas) -> None:
        """Raise unless every granule in ``[pa, pa + size)`` is populated and permits ``pas``."""
        if pa < 0 or size < 0 or pa + size > 1 << self.platform.pa_bits:
            raise ExternalAbort(pa)
        g = pa & ~GRANULE_MASK
        end = pa + max(size, 1)
        while g < end:
            if self.platform.region_at(g) is None:
                raise ExternalAbort(max(g, pa))
            granule_pas = self.gpt.pas(g)
            if granule_pas is not pas:
                raise GranuleProtectionFault(max(g, pa), pas, granule_pas)
            g += GRANULE_SIZE

    def read(self, pa: int, size: int, pas: Pas) -> bytes:
        self.check(pa, size, pas)
        return self.memory.read(pa, size)

    def write(self, pa: int, data: bytes, pas: Pas) -> None:
        self.check(pa, len(data), pas)
        self.memory.write(pa, data)
