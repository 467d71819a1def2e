"""The platform memory map: which physical addresses are populated, and by what.

The default map follows the Arm FVP Base RevC platform as TF-A configures it for RME:

=====================  ===========  ==========  ======  =========  ===========================
region                 base         size        kind    boot PAS   delegable to the Realm world
=====================  ===========  ==========  ======  =========  ===========================
secure-sram            0x0600_0000  32 MiB      RAM     Secure     no
device                 0x1C00_0000  64 MiB      device  NS         no (UART0 at 0x1C0B_0000)
dram0                  0x8000_0000  2 GiB       RAM     NS         yes
dram1                  0x88_8000_0000  2 GiB    RAM     NS         yes
=====================  ===========  ==========  ======  =========  ===========================

Everything else is unpopulated: an access there is an external abort, and the RMM treats such
an address as not delegable (PaIsDelegable, B3.25).
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from ccasim.hw.gpt import Pas
from ccasim.hw.memory import GRANULE_MASK

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

UART0_BASE = 0x1C0B_0000


class RegionKind(enum.Enum):
    RAM = "RAM"
    DEVICE = "device"


@dataclass(frozen=True)
class MemoryRegion:
    """A populated, granule-aligned range of the physical address space."""

    name: str
    base: int
    size: int
    kind: RegionKind = RegionKind.RAM
    pas: Pas = Pas.NS
    delegable: bool = True

    @property
    def top(self) -> int:
        return self.base + self.size

    def __post_init__(self) -> None:
        if self.size <= 0 or (self.base | self.size) & GRANULE_MASK:
            raise ValueError(
                f"region {self.name!r}: base {self.base:#x} and size {self.size:#x} must be "
                "positive multiples of 4 KiB"
            )
        if self.delegable and (self.kind is not RegionKind.RAM or self.pas is not Pas.NS):
            raise ValueError(f"region {self.name!r}: only Non-secure RAM can be delegable")


class Platform:
    """A physical address space of ``pa_bits`` bits populated by ``regions``."""

    def __init__(self, regions: Iterable[MemoryRegion], pa_bits: int = 48) -> None:
        if pa_bits not in (32, 36, 40, 42, 44, 48, 52):
            raise ValueError(f"pa_bits must be an Arm PARange value (32..52), not {pa_bits}")
        self.pa_bits = pa_bits
        self.regions = sorted(regions, key=lambda r: r.base)
        for prev, cur in zip(self.regions, self.regions[1:], strict=False):
            if cur.base < prev.top:
                raise ValueError(f"regions {prev.name!r} and {cur.name!r} overlap")
        for r in self.regions:
            if r.top > 1 << pa_bits:
                raise ValueError(f"region {r.name!r} ends above the {pa_bits}-bit PA space")
        self._bases = [r.base for r in self.regions]
        self._tops = [r.top for r in self.regions]
        delegable = [r for r in self.regions if r.delegable]
        #: Bases and tops of the delegable regions, in order (for PaIsDelegable).
        self.delegable_bases = [r.base for r in delegable]
        self.delegable_tops = [r.top for r in delegable]

    def region_at(self, pa: int) -> MemoryRegion | None:
        """The region containing ``pa``, or None where nothing is populated."""
        i = bisect.bisect_right(self._bases, pa) - 1
        if i >= 0 and pa < self._tops[i]:
            return self.regions[i]
        return None

    def is_delegable(self, pa: int) -> bool:
        """PaIsDelegable (B3.25): firmware lets the granule at ``pa`` move to the Realm PAS."""
        i = bisect.bisect_right(self.delegable_bases, pa) - 1
        return i >= 0 and pa < self.delegable_tops[i]

    def boot_pas(self, pa: int) -> Pas:
        """The PAS the GPT gives ``pa`` at boot (unpopulated addresses are Non-secure)."""
        return self.boot_region(pa)[2]

    def boot_region(self, pa: int) -> tuple[int, int, Pas]:
        """``(base, top, pas)``: the populated region holding ``pa`` and its boot PAS, or the
        unpopulated gap around ``pa`` (Non-secure)."""
        i = bisect.bisect_right(self._bases, pa) - 1
        if i >= 0 and pa < self._tops[i]:
            region = self.regions[i]
            return region.base, region.top, region.pas
        low = self._tops[i] if i >= 0 else 0
        high = self._bases[i + 1] if i + 1 < len(self._bases) else 1 << 64
        return low, high, Pas.NS

    def describe(self) -> str:
        lines = [f"PA space: {self.pa_bits} bits"]
        for r in self.regions:
            lines.append(
                f"  {r.name:<12} {r.base:#014x}-{r.top - 1:#014x} {r.kind.value:<6} "
                f"{r.pas!s:<6} {'delegable' if r.delegable else 'not delegable'}"
            )
        return "\n".join(lines)


def fvp_base(pa_bits: int = 48, dram0_size: int = 2 * GiB, dram1_size: int = 2 * GiB) -> Platform:
    """The Arm FVP Base RevC memory map (see the module docstring)."""
    regions = [
        MemoryRegion("secure-sram", 0x0600_0000, 32 * MiB, RegionKind.RAM, Pas.SECURE, False),
        MemoryRegion("device", 0x1C00_0000, 64 * MiB, RegionKind.DEVICE, Pas.NS, False),
        MemoryRegion("dram0", 0x8000_0000, dram0_size),
    ]
    if dram1_size:
        regions.append(MemoryRegion("dram1", 0x88_8000_0000, dram1_size))
    return Platform(regions, pa_bits)
