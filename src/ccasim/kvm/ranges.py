"""An interval map: values over [start, end) ranges of integers, as KVM keeps a VM's memory
attributes per GFN in an xarray (``kvm->mem_attr_array``), without a Python object per page."""

from __future__ import annotations

import bisect


class RangeMap:
    """Non-overlapping half-open ranges with a value each; unset addresses read ``default``."""

    def __init__(self, default: int = 0) -> None:
        self.default = default
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._values: list[int] = []

    def get(self, addr: int) -> int:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self._ends[i]:
            return self._values[i]
        return self.default

    def set(self, start: int, end: int, value: int) -> None:
        """Give [start, end) ``value`` (the default value clears the range)."""
        if end <= start:
            return
        pieces: list[tuple[int, int, int]] = []
        for s, e, v in zip(self._starts, self._ends, self._values, strict=True):
            if e <= start or s >= end:
                pieces.append((s, e, v))
                continue
            if s < start:
                pieces.append((s, start, v))
            if e > end:
                pieces.append((end, e, v))
        if value != self.default:
            pieces.append((start, end, value))
        pieces.sort()
        self._starts, self._ends, self._values = [], [], []
        for s, e, v in pieces:  # merge neighbours with equal values
            if self._ends and self._ends[-1] == s and self._values[-1] == v:
                self._ends[-1] = e
            else:
                self._starts.append(s)
                self._ends.append(e)
                self._values.append(v)

    def ranges(self) -> list[tuple[int, int, int]]:
        """The set ranges as (start, end, value), in order."""
        return list(zip(self._starts, self._ends, self._values, strict=True))
