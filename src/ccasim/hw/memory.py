"""Sparse physical memory: only granules that have been written cost host memory.

Reads of a granule that was never written (or was wiped) return zeros, so a platform with a
terabyte of DRAM starts instantly. Each granule's contents are an immutable ``bytes`` object,
so copying a granule shares it instead of duplicating 4 KiB. Access control (the GPT) is not
applied here: that is the job of the requester's path through the memory system
(:mod:`ccasim.hw.bus`).
"""

from __future__ import annotations

from ccasim.arch.vmsa import GRANULE_MASK, GRANULE_SHIFT, GRANULE_SIZE

__all__ = ["GRANULE_MASK", "GRANULE_SHIFT", "GRANULE_SIZE", "ZERO_GRANULE", "PhysicalMemory"]

ZERO_GRANULE = bytes(GRANULE_SIZE)


class PhysicalMemory:
    """The contents of physical memory, stored per 4 KiB granule."""

    def __init__(self) -> None:
        self._granules: dict[int, bytes] = {}

    def read(self, pa: int, size: int) -> bytes:
        """Read ``size`` bytes starting at ``pa`` (may span granules)."""
        out = bytearray()
        while size > 0:
            gidx, off = pa >> GRANULE_SHIFT, pa & GRANULE_MASK
            n = min(size, GRANULE_SIZE - off)
            out += self._granules.get(gidx, ZERO_GRANULE)[off : off + n]
            pa, size = pa + n, size - n
        return bytes(out)

    def write(self, pa: int, data: bytes) -> None:
        """Write ``data`` starting at ``pa`` (may span granules)."""
        data = bytes(data)
        while data:
            gidx, off = pa >> GRANULE_SHIFT, pa & GRANULE_MASK
            n = min(len(data), GRANULE_SIZE - off)
            if n == GRANULE_SIZE:
                self._granules[gidx] = data[:n]
            else:
                page = self._granules.get(gidx, ZERO_GRANULE)
                self._granules[gidx] = page[:off] + data[:n] + page[off + n :]
            pa, data = pa + n, data[n:]

    def granule(self, pa: int) -> bytes:
        """The whole granule at granule-aligned ``pa``."""
        return self._granules.get(pa >> GRANULE_SHIFT, ZERO_GRANULE)

    def copy_granule(self, dst: int, src: int) -> bytes:
        """Copy the granule at ``src`` to ``dst`` (both granule-aligned); return the contents."""
        page = self._granules.get(src >> GRANULE_SHIFT, ZERO_GRANULE)
        self._granules[dst >> GRANULE_SHIFT] = page
        return page

    def wipe_granule(self, pa: int) -> None:
        """Scrub the granule at ``pa``: afterwards it reads as zeros."""
        self._granules.pop(pa >> GRANULE_SHIFT, None)

    def contents(self) -> dict[int, bytes]:
        """Base address -> contents of every granule that is not all zeros (a copy)."""
        return {gidx << GRANULE_SHIFT: page for gidx, page in self._granules.items()}

    def populated(self) -> int:
        """Number of granules currently holding contents that are not all zero."""
        return len(self._granules)
