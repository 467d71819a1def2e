"""Memslots: the guest-physical ranges a VMM backs with its own memory
(KVM_SET_USER_MEMORY_REGION2), optionally with a guest_memfd for the private half of a
realm's memory."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.kvm.memory import GuestMemfd, UserMemory


@dataclass(eq=False)
class Memslot:
    """One memslot: guest-physical [gpa, gpa + size) backed by ``user`` from ``user_offset``
    (the memslot's userspace_addr) and, for private memory, by ``gmem`` from ``gmem_offset``."""

    slot: int
    flags: int
    gpa: int
    size: int
    userspace_addr: int
    user: UserMemory
    user_offset: int
    gmem: GuestMemfd | None = None
    gmem_offset: int = 0

    @property
    def end(self) -> int:
        return self.gpa + self.size

    @property
    def can_be_private(self) -> bool:
        """kvm_slot_can_be_private: the slot has a guest_memfd."""
        return self.gmem is not None

    def user_page(self, gpa: int) -> int:
        """The host page behind ``gpa`` in the VMM's mapping (gfn_to_pfn_memslot)."""
        return self.user.page(self.user_offset + (gpa - self.gpa) // GRANULE_SIZE * GRANULE_SIZE)

    def gmem_index(self, gpa: int) -> int:
        """The offset in the guest_memfd of the page at ``gpa``."""
        return self.gmem_offset + (gpa - self.gpa) // GRANULE_SIZE * GRANULE_SIZE


class Memslots:
    """A VM's memslots, found by guest-physical address."""

    def __init__(self) -> None:
        self._by_id: dict[int, Memslot] = {}
        self._starts: list[int] = []
        self._slots: list[Memslot] = []

    def __iter__(self):
        return iter(list(self._slots))

    def __len__(self) -> int:
        return len(self._slots)

    def get(self, slot: int) -> Memslot | None:
        return self._by_id.get(slot)

    def find(self, gpa: int) -> Memslot | None:
        """The memslot holding ``gpa`` (gfn_to_memslot)."""
        i = bisect.bisect_right(self._starts, gpa) - 1
        if i >= 0 and gpa < self._slots[i].end:
            return self._slots[i]
        return None

    def overlaps(self, gpa: int, size: int) -> Memslot | None:
        for s in self._slots:
            if s.gpa < gpa + size and gpa < s.end:
                return s
        return None

    def add(self, memslot: Memslot) -> None:
        self._by_id[memslot.slot] = memslot
        i = bisect.bisect_right(self._starts, memslot.gpa)
        self._starts.insert(i, memslot.gpa)
        self._slots.insert(i, memslot)

    def remove(self, memslot: Memslot) -> None:
        del self._by_id[memslot.slot]
        i = self._slots.index(memslot)
        del self._starts[i]
        del self._slots[i]
