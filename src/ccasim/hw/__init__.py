"""The machine: physical memory, the Granule Protection Table and the platform memory map.

This layer knows nothing of realms. It models what the Arm Realm Management Extension (RME)
hardware provides: a physical address space split into 4 KiB granules, each assigned to one
physical address space (PAS) by the Granule Protection Table (GPT), and a memory map that says
which addresses are populated and which of them firmware may delegate to the Realm world.
"""

from ccasim.hw.bus import MemorySystem
from ccasim.hw.faults import ExternalAbort, GranuleProtectionFault, MemoryFault
from ccasim.hw.gpt import GranuleProtectionTable, Pas
from ccasim.hw.memory import GRANULE_SHIFT, GRANULE_SIZE, PhysicalMemory
from ccasim.hw.platform import GiB, MemoryRegion, Platform, RegionKind, fvp_base

__all__ = [
    "GRANULE_SHIFT",
    "GRANULE_SIZE",
    "ExternalAbort",
    "GiB",
    "GranuleProtectionFault",
    "GranuleProtectionTable",
    "MemoryFault",
    "MemoryRegion",
    "MemorySystem",
    "Pas",
    "PhysicalMemory",
    "Platform",
    "RegionKind",
    "fvp_base",
]
