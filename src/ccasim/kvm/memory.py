"""The host kernel's memory: a page allocator over the platform's Non-secure DRAM that knows
who owns every page, user memory a VMM maps, and guest_memfd files.

Every page is accounted: free, or owned by the kernel, user memory, or the RMM in one of the
roles KVM gives it (RD, root RTT, RTT, REC, REC aux, data); a page the RMM would not give back
is leaked: counted, and never reused (the series' leak rule, seed 002 L283-293).
"""

from __future__ import annotations

import enum
import errno
from collections import Counter
from typing import TYPE_CHECKING

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.kvm.errors import fail, integer

if TYPE_CHECKING:
    from ccasim.machine import Machine

ZERO_PAGE = bytes(GRANULE_SIZE)


class Owner(enum.Enum):
    """Who a host page belongs to."""

    KERNEL = "kernel"  # KVM's own: params, REC run pages, page caches
    USER = "user"  # a VMM's memory (memslots' backing)
    GUEST_MEMFD = "guest_memfd"  # private memory not (or no longer) given to the RMM
    RD = "rd"
    ROOT_RTT = "root rtt"  # KVM's stage 2 PGD, delegated as the starting-level RTTs
    RTT = "rtt"
    REC = "rec"
    REC_AUX = "rec aux"
    DATA = "data"
    LEAKED = "leaked"  # the RMM kept it: never freed, never reused


#: Owners whose pages are delegated to the Realm world.
DELEGATED = frozenset({Owner.RD, Owner.ROOT_RTT, Owner.RTT, Owner.REC, Owner.REC_AUX, Owner.DATA})


class PageAllocator:
    """Pages of the platform's Non-secure DRAM (the regions EL3 lets the RMM have)."""

    def __init__(self, machine: Machine) -> None:
        self._machine = machine
        self._regions = [(r.base, r.top) for r in machine.platform.regions if r.delegable]
        if not self._regions:
            raise fail(errno.ENOMEM, "the platform has no delegable DRAM")
        self._region = 0
        self._next = self._regions[0][0]
        self._free: list[int] = []  # pages given back (reused first)
        self._dirty: set[int] = set()  # freed pages that may hold old contents
        self.owners: dict[int, Owner] = {}
        self.total = sum(top - base for base, top in self._regions) // GRANULE_SIZE
        self.allocations = 0
        self._fail_at: set[int] = set()

    def inject_failure(self, nth: int = 1) -> None:
        """Make the ``nth`` next allocation fail with ENOMEM (Linux's fail_page_alloc)."""
        if nth < 1:
            raise ValueError("nth counts from 1 (the next allocation)")
        self._fail_at.add(self.allocations + nth)

    def _count(self) -> None:
        self.allocations += 1
        if self.allocations in self._fail_at:
            self._fail_at.discard(self.allocations)
            raise fail(errno.ENOMEM, "page allocation failed (injected)")

    # -- allocation ------------------------------------------------------------------------

    def alloc(self, owner: Owner, zero: bool = False) -> int:
        """One page for ``owner`` (ENOMEM when none is left); ``zero`` clears old contents."""
        self._count()
        pa = self._free.pop() if self._free else self._bump(1, GRANULE_SIZE)
        self.owners[pa] = owner
        if zero and pa in self._dirty:
            self._machine.ns_write(pa, ZERO_PAGE)
        self._dirty.discard(pa)
        return pa

    def alloc_contiguous(self, count: int, owner: Owner) -> int:
        """``count`` physically contiguous pages, aligned to their total size (as the stage 2
        PGD is); the first page's address."""
        if count == 1:
            return self.alloc(owner, zero=True)
        self._count()
        base = self._bump(count, count * GRANULE_SIZE)  # fresh memory: already zero
        for i in range(count):
            self.owners[base + i * GRANULE_SIZE] = owner
        return base

    def _bump(self, count: int, align: int) -> int:
        size = count * GRANULE_SIZE
        while self._region < len(self._regions):
            _, top = self._regions[self._region]
            base = -(-self._next // align) * align
            if base + size <= top:
                for skipped in range(self._next, base, GRANULE_SIZE):
                    self._free.append(skipped)
                self._next = base + size
                return base
            self._region += 1
            if self._region < len(self._regions):
                self._next = self._regions[self._region][0]
        raise fail(errno.ENOMEM, f"out of host memory ({count} pages wanted)")

    def free(self, pa: int) -> None:
        """Give a page back (it must not be delegated: free it only after an undelegate)."""
        owner = self.owners.pop(pa)
        if owner is Owner.LEAKED:
            raise AssertionError(f"a leaked page is never freed: {pa:#x}")
        self._free.append(pa)
        self._dirty.add(pa)

    def give(self, pa: int, owner: Owner) -> None:
        """The page now belongs to ``owner`` (e.g. a guest_memfd page delegated as data)."""
        if pa not in self.owners:
            raise AssertionError(f"{pa:#x} is not allocated")
        self.owners[pa] = owner

    def leak(self, pa: int) -> None:
        """The RMM would not give ``pa`` back: keep it out of circulation for ever."""
        self.owners[pa] = Owner.LEAKED

    # -- accounting ------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Pages per owner, "free" included; they add up to the DRAM's page count."""
        used = Counter(owner.value for owner in self.owners.values())
        out = {owner.value: used.get(owner.value, 0) for owner in Owner}
        out["free"] = self.total - len(self.owners)
        return out

    def pages(self, owner: Owner) -> list[int]:
        return sorted(pa for pa, o in self.owners.items() if o is owner)


class UserMemory:
    """A VMM's anonymous mapping (``mmap``): user virtual addresses backed by host pages,
    allocated when first touched."""

    def __init__(self, allocator: PageAllocator, machine: Machine, addr: int, size: int):
        if size <= 0 or size % GRANULE_SIZE:
            raise fail(errno.EINVAL, f"mmap of {size:#x} bytes: not a positive page multiple")
        self._allocator = allocator
        self._machine = machine
        self.addr = addr
        self.size = size
        self._pages: dict[int, int] = {}  # page index -> PA

    @property
    def end(self) -> int:
        return self.addr + self.size

    def page(self, offset: int) -> int:
        """The PA backing the page at ``offset`` (faulting it in, zeroed)."""
        index = offset // GRANULE_SIZE
        pa = self._pages.get(index)
        if pa is None:
            if not 0 <= offset < self.size:
                raise fail(errno.EFAULT, f"offset {offset:#x} is outside the mapping")
            pa = self._pages[index] = self._allocator.alloc(Owner.USER, zero=True)
        return pa

    def write(self, offset: int, data: bytes) -> None:
        """The VMM writes ``data`` at ``offset`` of the mapping."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise fail(errno.EFAULT, "data is not bytes")
        offset = integer(offset, "offset", code=errno.EFAULT)
        if offset + len(data) > self.size:
            raise fail(errno.EFAULT, f"write of {len(data)} bytes at {offset:#x}: outside")
        view = memoryview(data)
        while view:
            within = offset % GRANULE_SIZE
            n = min(len(view), GRANULE_SIZE - within)
            self._machine.ns_write(self.page(offset) + within, bytes(view[:n]))
            offset, view = offset + n, view[n:]

    def read(self, offset: int, size: int) -> bytes:
        offset = integer(offset, "offset", code=errno.EFAULT)
        size = integer(size, "size", code=errno.EFAULT)
        if offset + size > self.size:
            raise fail(errno.EFAULT, f"read of {size} bytes at {offset:#x}: outside")
        out = bytearray()
        while size:
            within = offset % GRANULE_SIZE
            n = min(size, GRANULE_SIZE - within)
            pa = self._pages.get(offset // GRANULE_SIZE)
            out += ZERO_PAGE[:n] if pa is None else self._machine.ns_read(pa + within, n)
            offset, size = offset + n, size - n
        return bytes(out)

    def touched(self) -> int:
        """How many pages are backed."""
        return len(self._pages)

    def release(self) -> None:
        """munmap: give every page back; a page the RMM still holds (delegated as a realm's
        data) cannot be, and is leaked."""
        for pa in self._pages.values():
            owner = self._allocator.owners.get(pa)
            if owner is Owner.USER:
                self._allocator.free(pa)
            elif owner in DELEGATED:
                self._allocator.leak(pa)
        self._pages.clear()


class GuestMemfd:
    """A guest_memfd file: the private memory of a VM. Its pages are host pages that the
    kernel gives the RMM (delegated as data) when the realm uses them, and takes back when
    the realm lets them go."""

    def __init__(self, allocator: PageAllocator, size: int) -> None:
        if size <= 0 or size % GRANULE_SIZE:
            raise fail(errno.EINVAL, f"guest_memfd of {size:#x} bytes: not a page multiple")
        self._allocator = allocator
        self.size = size
        self._pages: dict[int, int] = {}  # offset -> PA

    def get(self, offset: int) -> int:
        """The page at ``offset``, allocated if there is none (kvm_gmem_get_pfn)."""
        if not 0 <= offset < self.size or offset % GRANULE_SIZE:
            raise fail(errno.EINVAL, f"guest_memfd offset {offset:#x}")
        pa = self._pages.get(offset)
        if pa is None:
            pa = self._pages[offset] = self._allocator.alloc(Owner.GUEST_MEMFD, zero=True)
        return pa

    def lookup(self, offset: int) -> int | None:
        return self._pages.get(offset)

    def drop(self, offset: int) -> int | None:
        """Remove the page at ``offset`` from the file (the caller frees or leaks it)."""
        return self._pages.pop(offset, None)

    def offsets(self) -> list[int]:
        """The offsets that have a page, in order."""
        return sorted(self._pages)
