"""A realm's stage 2 as KVM fills and empties it (``mmu.c`` and ``rme.c`` of the series):
stage 2 faults, MMIO, and unmapping ranges.

A fault on a protected IPA backed by private memory gets a guest_memfd page delegated and
mapped with RMI_DATA_CREATE_UNKNOWN; a fault on the shared alias maps the memslot's page with
RMI_RTT_MAP_UNPROTECTED; a fault whose alias disagrees with the memory attributes exits to
the VMM as a memory fault; a fault outside every memslot is MMIO. The shared alias is
stripped before memslots are looked up (seed 001-12), and every fault counts as a write, so
nothing is mapped read-only (001-10, 001-11).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ccasim.arch.vmsa import DESC_NORMAL_RW, GRANULE_MASK, GRANULE_SIZE
from ccasim.kvm.errors import KvmError
from ccasim.kvm.memory import Owner
from ccasim.kvm.rtt import (
    RTT_BLOCK_LEVEL,
    RTT_MAX_LEVEL,
    align_up,
    alloc_delegated_granule,
    create_rtt_levels,
    fold_range,
    free_delegated_granule,
)
from ccasim.rmi import Status
from ccasim.rmi.levels import block_level, level_size

if TYPE_CHECKING:
    from ccasim.kvm.memslots import Memslot
    from ccasim.kvm.vcpu import Vcpu
    from ccasim.kvm.vm import Vm

# ESR_ELx fields of a data abort
ESR_EC_SHIFT = 26
ESR_ISV = 1 << 24
ESR_SAS_SHIFT = 22
ESR_WNR = 1 << 6
EC_DABT_LOW = 0x24
EC_IABT_LOW = 0x20


def fault_ipa(hpfar: int) -> int:
    """The faulting IPA's page from HPFAR_EL2.FIPA."""
    return (hpfar >> 4) << 12


# -- faults (kvm_handle_guest_abort) ----------------------------------------------------------


def handle_guest_abort(vcpu: Vcpu) -> int:
    """A REC exit due to Data Abort: > 0 to re-enter the realm, 0 to exit to user space with
    ``vcpu.run_state`` filled in, < 0 an error (and -EFAULT with a memory fault exit)."""
    vm = vcpu.vm
    ipa = fault_ipa(vcpu.fault_hpfar)
    gpa = vm.gpa_from_fault(ipa)
    memslot = vm.memslots.find(gpa)
    if memslot is not None and memslot.can_be_private:
        ret = private_memslot_fault(vcpu, ipa, memslot)
        if ret != -errno.EINVAL:
            return ret
    if memslot is None:
        # Not memory: emulated MMIO, at the address without the shared bit (001-13).
        return io_mem_abort(vcpu, vm.gpa_from_fault(ipa | (vcpu.fault_far & GRANULE_MASK)))
    ret = user_mem_abort(vcpu, ipa, memslot)
    return 1 if ret == 0 else ret


def private_memslot_fault(vcpu: Vcpu, ipa: int, memslot: Memslot) -> int:
    """A fault in a memslot with a guest_memfd: the private alias gets a guest_memfd page;
    the alias that disagrees with the memory attributes exits to the VMM; the shared alias
    of shared memory is handled as ordinary memory (-EINVAL)."""
    vm = vcpu.vm
    gpa = vm.gpa_from_fault(ipa)
    private_alias = gpa == ipa
    if vm.is_private(gpa) != private_alias:
        vcpu.prepare_memory_fault_exit(gpa, GRANULE_SIZE, private=private_alias)
        return -errno.EFAULT
    if not private_alias:
        return -errno.EINVAL
    vcpu.topup_memcache()
    assert memslot.gmem is not None
    try:
        pa = memslot.gmem.get(memslot.gmem_index(gpa))
    except KvmError as e:
        return -e.code
    ret = map_ipa(vm, ipa, pa, vcpu.memcache)
    return 1 if ret == 0 else ret


def user_mem_abort(vcpu: Vcpu, ipa: int, memslot: Memslot) -> int:
    """Map the memslot's page (always writable for a REC: 001-10) at ``ipa``."""
    vm = vcpu.vm
    vcpu.topup_memcache()
    try:
        pa = memslot.user_page(vm.gpa_from_fault(ipa))
    except KvmError as e:
        return -e.code
    return map_ipa(vm, ipa, pa, vcpu.memcache)


def map_ipa(vm: Vm, ipa: int, pa: int, memcache: list[int], writable: bool = True) -> int:
    """realm_map_ipa (001-09): a realm is never mapped read-only."""
    if not writable:
        vm.kvm.warn("realm_map_ipa: realms cannot map pages read-only")
        return -errno.EFAULT
    if vm.is_private_address(ipa):
        return map_protected(vm, ipa, pa, memcache)
    return map_non_secure(vm, ipa, pa, memcache)


def map_protected(vm: Vm, ipa: int, pa: int, memcache: list[int]) -> int:
    """realm_map_protected for one 4 KiB page: delegate it, then RMI_DATA_CREATE_UNKNOWN,
    creating missing RTTs down to level 3 on RMI_ERROR_RTT. A delegation that fails is taken
    for another vCPU racing on the same fault: return and let the realm fault again."""
    kvm, rd = vm.kvm, vm.rd
    rmi, pages = kvm.rmi, kvm.pages
    if not rmi.granule_delegate(pa).ok:
        return 0  # "It's likely we raced with another VCPU on the same fault"
    vm.data[pa] = pages.owners[pa]
    pages.give(pa, Owner.DATA)
    kvm.threads.preempt("fault:delegated")
    result = rmi.data_create_unknown(rd, pa, ipa)
    if result.status == Status.ERROR_RTT:
        ret = create_rtt_levels(vm, ipa, result.index, RTT_MAX_LEVEL, memcache)
        if ret == 0:
            result = rmi.data_create_unknown(rd, pa, ipa)
    if result.ok:
        return 0
    kvm.warn(f"RMI_DATA_CREATE_UNKNOWN at {ipa:#x}: {result}")
    owner = vm.data.pop(pa)
    if rmi.granule_undelegate(pa).ok:
        pages.give(pa, owner)
    else:
        kvm.warn(f"RMI_GRANULE_UNDELEGATE({pa:#x}) failed: the page is lost")
        pages.leak(pa)
    return -errno.ENXIO


def map_non_secure(vm: Vm, ipa: int, pa: int, memcache: list[int]) -> int:
    """realm_map_non_secure (001-19 to 001-21): RMI_RTT_MAP_UNPROTECTED of the page at level
    3, read and write; on RMI_ERROR_RTT create the missing levels and retry once. An
    RMI_ERROR_RTT after that means another vCPU mapped it first, which is fine."""
    kvm, rd = vm.kvm, vm.rd
    desc = pa | DESC_NORMAL_RW
    kvm.threads.preempt("fault:shared")
    result = kvm.rmi.rtt_map_unprotected(rd, ipa, RTT_MAX_LEVEL, desc)
    if result.status == Status.ERROR_RTT:
        if create_rtt_levels(vm, ipa, result.index, RTT_MAX_LEVEL, memcache):
            return -errno.ENXIO
        result = kvm.rmi.rtt_map_unprotected(rd, ipa, RTT_MAX_LEVEL, desc)
    if not result.ok and result.status != Status.ERROR_RTT:
        kvm.warn(f"RMI_RTT_MAP_UNPROTECTED at {ipa:#x}: {result}")
        return -errno.ENXIO
    return 0


def io_mem_abort(vcpu: Vcpu, gpa: int) -> int:
    """An access outside memslots: emulated MMIO for the VMM, if the syndrome says what it
    was (ISV); otherwise -ENOSYS, as KVM without KVM_CAP_ARM_NISV_TO_USER answers."""
    esr = vcpu.fault_esr
    if not esr & ESR_ISV:
        vcpu.kvm.error("Data abort outside memslots with no valid syndrome info")
        return -errno.ENOSYS
    size = 1 << ((esr >> ESR_SAS_SHIFT) & 3)
    is_write = bool(esr & ESR_WNR)
    data = b""
    if is_write:  # the RMM passes the value written in exit.gprs[0] (A4.3.4.3)
        data = (vcpu.exit_gprs[0] & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    vcpu.prepare_mmio_exit(gpa, size, is_write, data)
    return 0


# -- unmapping (kvm_realm_unmap_range) --------------------------------------------------------


def unmap_range(vm: Vm, start: int, size: int, unmap_private: bool) -> None:
    """kvm_realm_unmap_range: unmap the shared alias of [start, start + size) and, if
    ``unmap_private``, the protected pages too, returning their pages; then fold."""
    realm = vm.realm
    if not realm.created or realm.rd is None:
        return
    end = min(start + size, vm.shared_bit)
    if end <= start:
        return
    level = max(block_level(start, end, vm.start_level), RTT_BLOCK_LEVEL)
    unmap_shared_range(vm, level, start, end)
    if unmap_private:
        unmap_private_range(vm, start, end)


def unmap_shared_range(vm: Vm, level: int, start: int, end: int) -> None:
    """realm_unmap_shared_range: RMI_RTT_UNMAP_UNPROTECTED over the shared alias, skipping
    what is not mapped (the RMM's ``top``) and descending where a table maps finer."""
    if level > RTT_MAX_LEVEL:
        return
    kvm, rd = vm.kvm, vm.rd
    start |= vm.shared_bit
    end |= vm.shared_bit
    map_size = level_size(level)
    addr = start
    while addr < end:
        aligned = align_up(addr, map_size)
        next_addr = align_up(addr + 1, map_size)
        if aligned != addr or next_addr > end:
            if addr < aligned:
                next_addr = aligned
            unmap_shared_range(vm, level + 1, addr, min(next_addr, end))
            addr = next_addr
            continue
        result = kvm.rmi.rtt_unmap_unprotected(rd, addr, level)
        if result.ok:
            next_addr = result.top
        elif result.status == Status.ERROR_RTT:
            next_addr = result.top
            if next_addr == addr:  # mapped, but not as a block at this level: go deeper
                next_addr = align_up(addr + 1, map_size)
                unmap_shared_range(vm, level + 1, addr, next_addr)
        else:
            kvm.warn(f"RMI_RTT_UNMAP_UNPROTECTED({addr:#x}, {level}): {result}")
            return
        addr = next_addr
    fold_range(vm, start, end)


def unmap_private_range(vm: Vm, start: int, end: int) -> None:
    """realm_unmap_private_range: RMI_DATA_DESTROY each mapped page in [start, end) and give
    its page back (undelegated, to its guest_memfd); then fold the tables."""
    addr = start
    while addr < end:
        ret, next_addr = destroy_private_granule(vm, addr)
        if ret or next_addr == addr:
            break
        addr = next_addr
    fold_range(vm, start, end)


def destroy_private_granule(vm: Vm, ipa: int) -> tuple[int, int]:
    """realm_destroy_private_granule: (0 or -errno, the next IPA to look at)."""
    kvm, rd = vm.kvm, vm.rd
    rmi, pages = kvm.rmi, kvm.pages
    while True:
        result = rmi.data_destroy(rd, ipa)
        if result.status != Status.ERROR_RTT:
            break
        if result.top > ipa:
            return 0, result.top  # UNASSIGNED
        # ASSIGNED as a block: split it with a level 3 RTT and retry
        if result.index != RTT_BLOCK_LEVEL:
            kvm.warn(f"RMI_DATA_DESTROY({ipa:#x}): a block at level {result.index}")
        rtt = alloc_delegated_granule(vm, Owner.RTT)
        if rtt is None:
            kvm.warn("no page to split a block mapping")
            return -errno.ENOMEM, ipa
        vm.rtts.add(rtt)
        created = rmi.rtt_create(rd, rtt, ipa & ~(level_size(RTT_BLOCK_LEVEL) - 1), RTT_MAX_LEVEL)
        if not created.ok:
            kvm.warn(f"RMI_RTT_CREATE to split {ipa:#x}: {created}")
            vm.rtts.discard(rtt)
            free_delegated_granule(vm, rtt, "RTT")
            return -errno.ENXIO, ipa
    if not result.ok:
        kvm.warn(f"RMI_DATA_DESTROY({ipa:#x}): {result}")
        return -errno.ENXIO, ipa
    pa = result.data
    owner = vm.data.pop(pa, None)
    if owner is None:
        kvm.warn(f"RMI_DATA_DESTROY returned {pa:#x}, which is not a page of this realm")
        return -errno.ENXIO, ipa
    undelegated = rmi.granule_undelegate(pa)
    if not undelegated.ok:
        kvm.warn(f"RMI_GRANULE_UNDELEGATE({pa:#x}) failed: {undelegated}; leaking it")
        pages.leak(pa)
        return -errno.ENXIO, ipa
    pages.give(pa, owner)
    return 0, result.top
