"""Realm Translation Tables as the host manages them (``rme.c`` of the series): delegating
pages for RTTs, creating the missing levels the RMM reports, folding tables that became
uniform, and tearing the tree down bottom up.

KVM keeps no copy of a realm's stage 2: every decision here comes from what the RMM answers
(the walk level of RMI_ERROR_RTT, the ``top`` and ``rtt`` outputs).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ccasim.kvm.errors import KvmError
from ccasim.kvm.memory import Owner
from ccasim.rmi import Status
from ccasim.rmi.levels import RTT_PAGE_LEVEL, align_down, level_size

if TYPE_CHECKING:
    from ccasim.kvm.vm import Vm

#: RMM_RTT_BLOCK_LEVEL and RMM_RTT_MAX_LEVEL of the series.
RTT_BLOCK_LEVEL = 2
RTT_MAX_LEVEL = RTT_PAGE_LEVEL


def align_up(addr: int, size: int) -> int:
    return -(-addr // size) * size


# -- delegated granules (alloc_delegated_granule, free_delegated_granule) -------------------


def alloc_delegated_granule(vm: Vm, owner: Owner, memcache: list[int] | None = None) -> int | None:
    """A page from ``memcache`` (or the allocator) delegated to the Realm world for
    ``owner``; None if there is no page or the delegation fails (the page is then freed)."""
    pages = vm.kvm.pages
    if memcache:
        pa = memcache.pop()
    else:
        try:
            pa = pages.alloc(Owner.KERNEL)
        except KvmError:
            return None
    if not vm.kvm.rmi.granule_delegate(pa).ok:
        pages.free(pa)
        return None
    pages.give(pa, owner)
    return pa


def free_delegated_granule(vm: Vm, pa: int, what: str) -> bool:
    """Undelegate ``pa`` and free it; if the RMM keeps it, WARN and leak it (seed 002-17,
    L1: never freed, never reused). Returns whether the page came back."""
    result = vm.kvm.rmi.granule_undelegate(pa)
    if not result.ok:
        vm.kvm.warn(f"RMI_GRANULE_UNDELEGATE({pa:#x}) of the {what} failed: {result}; leaking it")
        vm.kvm.pages.leak(pa)
        return False
    vm.kvm.pages.free(pa)
    return True


def free_rtt(vm: Vm, pa: int) -> None:
    """An RTT the RMM gave back (RTT_DESTROY, RTT_FOLD): undelegate and free it, if it is one
    of this realm's; an address KVM never gave the RMM is not freed (a WARN)."""
    if pa not in vm.rtts:
        vm.kvm.warn(f"the RMM returned {pa:#x} as an RTT of this realm, which it is not")
        return
    vm.rtts.discard(pa)
    free_delegated_granule(vm, pa, "RTT")


# -- creating levels (realm_create_rtt_levels) ----------------------------------------------


def create_rtt_levels(
    vm: Vm, ipa: int, level: int, max_level: int, memcache: list[int] | None = None
) -> int:
    """Create the RTTs from ``level + 1`` down to ``max_level`` that map ``ipa``: 0, or
    -ENOMEM when no page could be delegated, -ENXIO when RMI_RTT_CREATE fails. A table that
    already exists (RMI_ERROR_RTT at the parent level, e.g. another vCPU made it) is fine."""
    rmi, rd = vm.kvm.rmi, vm.rd
    while level < max_level:
        level += 1
        rtt = alloc_delegated_granule(vm, Owner.RTT, memcache)
        if rtt is None:
            return -errno.ENOMEM
        vm.rtts.add(rtt)
        result = rmi.rtt_create(rd, rtt, align_down(ipa, level - 1), level)
        if result.status == Status.ERROR_RTT and result.index == level - 1:
            vm.rtts.discard(rtt)
            free_delegated_granule(vm, rtt, "RTT")
            continue
        if not result.ok:
            vm.kvm.warn(f"Failed to create RTT at level {level}: {result}")
            vm.rtts.discard(rtt)
            free_delegated_granule(vm, rtt, "RTT")
            return -errno.ENXIO
    return 0


# -- folding (realm_fold_rtt_level) ----------------------------------------------------------


def fold_rtt_level(vm: Vm, level: int, start: int, end: int) -> int:
    """Fold every RTT at ``level`` in [start, end) whose entries are uniform into its parent,
    deeper tables first: 0 when all folded, > 0 when some could not be, -ENXIO on an error."""
    if level > RTT_MAX_LEVEL:
        return -errno.EINVAL
    rmi, rd = vm.kvm.rmi, vm.rd
    map_size = level_size(level - 1)
    not_folded = 0
    addr = start
    while addr < end:
        next_addr = align_up(addr + 1, map_size)
        result = rmi.rtt_fold(rd, align_down(addr, level - 1), level)
        if result.ok:
            free_rtt(vm, result.rtt)
        elif result.status == Status.ERROR_RTT:
            if level == RTT_MAX_LEVEL or result.index < level:
                not_folded += 1
            else:
                ret = fold_rtt_level(vm, level + 1, addr, next_addr)
                if ret < 0:
                    return ret
                if ret == 0:
                    next_addr = addr  # the children folded: try this level again
        else:
            vm.kvm.warn(f"RMI_RTT_FOLD({addr:#x}, {level}) failed: {result}")
            return -errno.ENXIO
        addr = next_addr
    return not_folded


def fold_range(vm: Vm, start: int, end: int) -> int:
    return fold_rtt_level(vm, vm.start_level + 1, start, end)


# -- tearing down (realm_tear_down_rtt_level) ------------------------------------------------


def tear_down_rtt_level(vm: Vm, level: int, start: int, end: int) -> int:
    """Destroy the RTTs at ``level`` and below in [start, end), bottom up (after everything
    in the range is unmapped): 0, or -EBUSY / -ENXIO when the RMM refuses."""
    if level > RTT_MAX_LEVEL:
        return -errno.EINVAL
    rmi, rd = vm.kvm.rmi, vm.rd
    map_size = level_size(level - 1)
    addr = start
    while addr < end:
        next_addr = align_up(addr + 1, map_size)
        if next_addr > end or align_up(addr, map_size) != addr:
            ret = tear_down_rtt_level(vm, level + 1, addr, min(next_addr, end))
            if ret:
                return ret
            addr = next_addr
            continue
        result = rmi.rtt_destroy(rd, addr, level)
        if result.ok:
            free_rtt(vm, result.rtt)
            next_addr = result.top
        elif result.status == Status.ERROR_RTT:
            if result.top > addr:  # missing RTT: skip the non-live entries
                next_addr = result.top
            elif result.index != level or level == RTT_MAX_LEVEL:
                vm.kvm.warn(f"RMI_RTT_DESTROY({addr:#x}, {level}): {result}")
                return -errno.EBUSY
            else:  # live entries below: destroy those, then retry this one
                ret = tear_down_rtt_level(vm, level + 1, addr, align_up(addr + 1, map_size))
                if ret:
                    return ret
                next_addr = addr
        else:
            vm.kvm.warn(f"RMI_RTT_DESTROY({addr:#x}, {level}) failed: {result}")
            return -errno.ENXIO
        addr = next_addr
    return 0


def destroy_rtts(vm: Vm) -> int:
    """kvm_realm_destroy_rtts: every RTT below the starting level, over the whole IPA space."""
    ret = tear_down_rtt_level(vm, vm.start_level + 1, 0, 1 << vm.ia_bits)
    if ret:
        vm.kvm.warn(f"tearing down the RTTs failed ({errno.errorcode[-ret]})")
    return ret
