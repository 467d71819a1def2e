"""Sparse physical memory: only granules that have been written cost host memory.

Reads of a granule that was never written (or was wiped) return zeros, so a platform with a
terabyte of DRAM starts instantly. Access control (the GPT) is not applied here: that is the
job of the requester's path through the memory system (see ``ccasim.machine``).
"""

from __future__ import annotations

GRANULE_SHIFT = 12
GRANULE_SIZE = 1 << GRANULE_SHIFT
GRANULE_MASK = GRANULE_SIZE - 1
ZERO_GRANULE = bytes(GRANULE_SIZE)


class PhysicalMemory:
    """The contents of physical memory, stored per 4 KiB granule."""

    def __init__(self) -> None:
        self._granules: dict[int, bytearray] = {}

    def read(self, pa: int, size: int) -> bytes:
        """Read ``size`` bytes starting at ``pa`` (may span granules)."""
        out = bytearray()
        while size > 0:
            gidx, off = pa >> GRANULE_SHIFT, pa & GRANULE_MASK
            n = min(size, GRANULE_SIZE - off)
            page = self._granules.get(gidx)
            out += page[off : off + n] if page is not None else bytes(n)
            pa, size = pa + n, size - n
        return bytes(out)

    def write(self, pa: int, data: bytes) -> None:
        """Write ``data`` starting at ``pa`` (may span granules)."""
        view = memoryview(data).cast("B")
        while view:
            gidx, off = pa >> GRANULE_SHIFT, pa & GRANULE_MASK
            n = min(len(view), GRANULE_SIZE - off)
            page = self._granules.get(gidx)
            if page is None:
                page = self._granules[gidx] = bytearray(GRANULE_SIZE)
            page[off : off + n] = view[:n]
            pa, view = pa + n, view[n:]

    def granule(self, pa: int) -> bytes | bytearray:
        """The whole granule at granule-aligned ``pa`` (do not modify the result)."""
        page = self._granules.get(pa >> GRANULE_SHIFT)
        return page if page is not None else ZERO_GRANULE

    def copy_granule(self, dst: int, src: int) -> None:
        """Copy the granule at ``src`` to ``dst`` (both granule-aligned)."""
        page = self._granules.get(src >> GRANULE_SHIFT)
        if page is None:
            self._granules.pop(dst >> GRANULE_SHIFT, None)
        else:
            self._granules[dst >> GRANULE_SHIFT] = bytearray(page)

    def wipe_granule(self, pa: int) -> None:
        """Scrub the granule at ``pa``: afterwards it reads as zeros."""
        self._granules.pop(pa >> GRANULE_SHIFT, None)

    def populated(self) -> int:
        """Number of granules currently holding non-default contents."""
        return len(self._granules)
