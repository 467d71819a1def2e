"""A VM (KVM_CREATE_VM): its stage 2 geometry, memslots, guest_memfd files and memory
attributes, the realm it may be, its vCPUs and its destruction."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.kvm import realm as realm_ops
from ccasim.kvm import uapi
from ccasim.kvm.errors import KvmError, fail, fields, integer
from ccasim.kvm.hypercalls import SmcccFilter
from ccasim.kvm.memory import DELEGATED, GuestMemfd, Owner
from ccasim.kvm.memslots import Memslot, Memslots
from ccasim.kvm.mmu import unmap_range
from ccasim.kvm.ranges import RangeMap
from ccasim.kvm.realm import Realm, RealmState
from ccasim.kvm.rtt import destroy_rtts
from ccasim.kvm.sysregs import VmSysregs
from ccasim.kvm.vcpu import Vcpu
from ccasim.kvm.vgic import REC_GIC_NUM_LRS, VgicCpu
from ccasim.rmi.levels import start_level, start_level_rtts

if TYPE_CHECKING:
    from ccasim.kvm.kvm import Kvm

#: KVM_MAX_VCPUS on arm64.
KVM_MAX_VCPUS = 512
#: KVM_MEM_SLOTS_NUM: memslot ids are below this.
KVM_MEM_SLOTS_NUM = 32767
VALID_MEMSLOT_FLAGS = uapi.KVM_MEM_READONLY | uapi.KVM_MEM_GUEST_MEMFD


#: KVM_PHYS_SHIFT: the IPA size of a VM created with 0 in the type's IPA bits.
KVM_PHYS_SHIFT = 40
#: ARM64_MIN_PARANGE_BITS.
MIN_IPA_BITS = 32


class Vm:
    """A VM of :class:`~ccasim.kvm.Kvm`; a realm VM when created with KVM_VM_TYPE_ARM_REALM.

    Its methods are the VM ioctls. Realm-specific state is ``realm`` (``struct realm``).
    """

    def __init__(self, kvm: Kvm, vm_type: int) -> None:
        if not isinstance(vm_type, int) or vm_type < 0:
            raise fail(errno.EINVAL, f"VM type {vm_type!r}")
        if vm_type & ~(uapi.KVM_VM_TYPE_ARM_MASK | uapi.KVM_VM_TYPE_ARM_IPA_SIZE_MASK):
            raise fail(errno.EINVAL, f"unknown bits in VM type {vm_type:#x}")
        machine_type = vm_type & uapi.KVM_VM_TYPE_ARM_MASK
        if machine_type not in (uapi.KVM_VM_TYPE_ARM_NORMAL, uapi.KVM_VM_TYPE_ARM_REALM):
            raise fail(errno.EINVAL, f"unknown machine type {machine_type >> 8}")
        self.kvm = kvm
        self.is_realm = machine_type == uapi.KVM_VM_TYPE_ARM_REALM
        if self.is_realm and not kvm.rme_available:
            raise fail(errno.EINVAL, "realm support is unavailable (no usable RMM)")
        # kvm_init_ipa_range (002-12): a realm's limit is the RMM's S2SZ
        limit = kvm.feat_reg0.s2sz if self.is_realm else kvm.ipa_limit
        ia_bits = uapi.KVM_VM_TYPE_ARM_IPA_SIZE(vm_type)
        if ia_bits == 0:
            ia_bits = KVM_PHYS_SHIFT
            if ia_bits > limit:
                raise fail(errno.EINVAL, f"the default IPA size (40 bits) is above {limit}")
        elif not MIN_IPA_BITS <= ia_bits <= limit:
            raise fail(errno.EINVAL, f"IPA size {ia_bits} is outside 32..{limit} bits")
        self.ia_bits = ia_bits
        self.start_level = start_level(ia_bits)
        # The stage 2 PGD: for a realm, these pages become the starting-level RTTs.
        self.pgd_pages = start_level_rtts(ia_bits)
        self.pgd = kvm.pages.alloc_contiguous(self.pgd_pages, Owner.KERNEL)
        self.pgd_leaked = False
        params_page = None
        if self.is_realm:
            try:
                params_page = kvm.pages.alloc(Owner.KERNEL, zero=True)
            except KvmError:
                for i in range(self.pgd_pages):
                    kvm.pages.free(self.pgd + i * GRANULE_SIZE)
                raise
        self.realm = Realm(ia_bits, params_page)
        self.memslots = Memslots()
        self.gmems: list[GuestMemfd] = []
        self.attributes = RangeMap()
        self.vcpus: list[Vcpu] = []
        self.vcpu_features: frozenset[int] | None = None
        self.sysregs = VmSysregs(self)
        self.smccc_filter = SmcccFilter()
        self.has_vgic = False
        self.vgic_ready = False
        self.has_run = False
        self.closed = False
        #: kvm->lock, held by a KVM_CAP_ARM_RME action (002-08).
        self.lock_held = False
        #: Pages delegated as data, with the owner they return to (guest_memfd or user).
        self.data: dict[int, Owner] = {}
        #: RTT pages delegated below the starting level.
        self.rtts: set[int] = set()

    def __repr__(self) -> str:
        kind = "realm" if self.is_realm else "VM"
        return f"<{kind} {self.ia_bits}-bit IPA, {self.realm.state.value}>"

    @property
    def rd(self) -> int:
        """The PA of the realm's RD (the realm must be created)."""
        rd = self.realm.rd
        assert rd is not None, "the realm has no RD"
        return rd

    # -- addresses ---------------------------------------------------------------------------

    @property
    def shared_bit(self) -> int:
        """kvm_gpa_stolen_bits (001-02): the top IPA bit for a realm, 0 otherwise."""
        return 1 << (self.ia_bits - 1) if self.is_realm else 0

    def gpa_from_fault(self, ipa: int) -> int:
        """kvm_gpa_from_fault: the shared alias stripped (001-12)."""
        return ipa & ~self.shared_bit

    def is_private_address(self, ipa: int) -> bool:
        """realm_is_addr_protected / kvm_realm_is_private_address."""
        return ipa < (1 << (self.ia_bits - 1))

    def is_private(self, gpa: int) -> bool:
        """kvm_mem_is_private: the memory attribute of ``gpa``'s page."""
        return bool(self.attributes.get(gpa // GRANULE_SIZE) & uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)

    # -- capabilities --------------------------------------------------------------------------

    def check_extension(self, cap: int) -> int:
        """KVM_CHECK_EXTENSION on the VM: the answers a realm changes (SVE from the RMM, no
        read-only memory, no guest debug, no stolen time; breakpoints from the RMM)."""
        if cap == uapi.KVM_CAP_ARM_RME:
            return int(self.kvm.rme_available)
        if cap in (uapi.KVM_CAP_READONLY_MEM, uapi.KVM_CAP_SET_GUEST_DEBUG):
            return int(not self.is_realm)
        if cap == uapi.KVM_CAP_STEAL_TIME:
            return 0
        if cap == uapi.KVM_CAP_ARM_SVE:
            return int(self.sysregs.max_sve_vq > 0)
        if cap == uapi.KVM_CAP_ARM_PMU_V3:
            return int(self.sysregs.max_pmu_counters > 0)
        if cap in (uapi.KVM_CAP_GUEST_DEBUG_HW_BPS, uapi.KVM_CAP_GUEST_DEBUG_HW_WPS):
            return 0 if self.is_realm else 6 if cap == uapi.KVM_CAP_GUEST_DEBUG_HW_BPS else 4
        if cap in (uapi.KVM_CAP_GUEST_MEMFD, uapi.KVM_CAP_MEMORY_ATTRIBUTES):
            return int(self.is_realm)
        return self.kvm.check_extension(cap)

    def enable_cap(self, cap: int, *args: object) -> None:
        """KVM_ENABLE_CAP. For KVM_CAP_ARM_RME, ``args[0]`` is the action and ``args[1]`` its
        argument structure (002-08: realm actions run one at a time, under kvm->lock)."""
        self._check_open()
        if cap != uapi.KVM_CAP_ARM_RME:
            raise fail(errno.EINVAL, f"capability {cap} cannot be enabled")
        if not self.is_realm:
            raise fail(errno.EINVAL, "not a realm VM")
        action = args[0] if args else None
        arg = args[1] if len(args) > 1 else None
        self.kvm.threads.block("waits for kvm->lock", lambda: not self.lock_held, lambda: None)
        self.lock_held = True
        try:
            self._realm_action(action, arg)
        finally:
            self.lock_held = False

    def _realm_action(self, action: object, arg: object) -> None:
        """kvm_realm_enable_cap: one action, under kvm->lock."""
        if action == uapi.KVM_CAP_ARM_RME_CONFIG_REALM:
            realm_ops.config_realm(self, arg)
        elif action == uapi.KVM_CAP_ARM_RME_CREATE_REALM:
            realm_ops.create_realm(self)
        elif action == uapi.KVM_CAP_ARM_RME_INIT_RIPAS_REALM:
            realm_ops.init_ripas(self, arg)
        elif action == uapi.KVM_CAP_ARM_RME_POPULATE_REALM:
            realm_ops.populate(self, arg)
        elif action == uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM:
            realm_ops.activate(self)
        else:
            raise fail(errno.EINVAL, f"unknown KVM_CAP_ARM_RME action {action!r}")

    # -- memory --------------------------------------------------------------------------------

    def create_guest_memfd(self, size: int, flags: int = 0) -> GuestMemfd:
        """KVM_CREATE_GUEST_MEMFD: private memory for this VM (realms only)."""
        self._check_open()
        if not self.is_realm:
            raise fail(errno.EINVAL, "only a realm VM has private memory")
        if integer(flags, "flags"):
            raise fail(errno.EINVAL, f"unknown guest_memfd flags {flags:#x}")
        gmem = GuestMemfd(self.kvm.pages, integer(size, "size"))
        self.gmems.append(gmem)
        return gmem

    def set_user_memory_region(self, region: uapi.KvmUserspaceMemoryRegion2) -> None:
        """KVM_SET_USER_MEMORY_REGION2: add a memslot, or delete it with a size of 0.
        Changing an existing memslot is not supported (EINVAL)."""
        self._check_open()
        names = ("slot", "flags", "guest_phys_addr", "memory_size", "userspace_addr")
        fields(region, uapi.KvmUserspaceMemoryRegion2, *names, "guest_memfd_offset")
        r = region
        if not 0 <= r.slot < KVM_MEM_SLOTS_NUM:
            raise fail(errno.EINVAL, f"memslot id {r.slot} is out of range")
        if r.flags & ~VALID_MEMSLOT_FLAGS:
            raise fail(errno.EINVAL, f"unknown memslot flags {r.flags:#x}")
        if r.flags & uapi.KVM_MEM_READONLY and self.is_realm:
            raise fail(errno.EINVAL, "realms have no read-only memory")
        if (r.memory_size | r.guest_phys_addr | r.userspace_addr) % GRANULE_SIZE or min(
            r.memory_size, r.guest_phys_addr, r.userspace_addr
        ) < 0:
            raise fail(errno.EINVAL, "size and addresses must be page aligned")
        existing = self.memslots.get(r.slot)
        if r.memory_size == 0:
            if existing is None:
                raise fail(errno.EINVAL, f"no memslot {r.slot} to delete")
            self._delete_memslot(existing)
            return
        if existing is not None:
            raise fail(errno.EINVAL, f"memslot {r.slot} exists: delete it first")
        if (r.guest_phys_addr + r.memory_size) >> self.ia_bits:
            raise fail(errno.EFAULT, "the memslot ends above the IPA space")
        if self.memslots.overlaps(r.guest_phys_addr, r.memory_size):
            raise fail(errno.EEXIST, "the memslot overlaps another")
        found = self.kvm.user_memory(r.userspace_addr, r.memory_size)
        if found is None:
            raise fail(errno.EFAULT, f"{r.userspace_addr:#x} is not mapped for that size")
        user, offset = found
        gmem: GuestMemfd | None = None
        if r.flags & uapi.KVM_MEM_GUEST_MEMFD:
            if not isinstance(r.guest_memfd, GuestMemfd) or r.guest_memfd not in self.gmems:
                raise fail(errno.EINVAL, "not a guest_memfd of this VM")
            gmem = r.guest_memfd
            end = r.guest_memfd_offset + r.memory_size
            if r.guest_memfd_offset % GRANULE_SIZE or r.guest_memfd_offset < 0 or end > gmem.size:
                raise fail(errno.EINVAL, "the guest_memfd range is outside the file")
            for other in self.memslots:
                if (
                    other.gmem is gmem
                    and other.gmem_offset < end
                    and (r.guest_memfd_offset < other.gmem_offset + other.size)
                ):
                    raise fail(errno.EEXIST, "that guest_memfd range is bound already")
        self.memslots.add(
            Memslot(
                r.slot,
                r.flags,
                r.guest_phys_addr,
                r.memory_size,
                r.userspace_addr,
                user,
                offset,
                gmem,
                r.guest_memfd_offset,
            )
        )

    def _delete_memslot(self, memslot: Memslot) -> None:
        """kvm_arch_flush_shadow_memslot: unmap both aliases of the range, then drop it."""
        if self.is_realm:
            unmap_range(self, memslot.gpa, memslot.size, unmap_private=True)
        self.memslots.remove(memslot)

    def set_memory_attributes(self, address: int, size: int, attributes: int) -> None:
        """KVM_SET_MEMORY_ATTRIBUTES: mark pages private (KVM_MEMORY_ATTRIBUTE_PRIVATE) or
        shared. Making memory private unmaps its shared alias; making it shared unmaps both
        (kvm_arch_post_set_memory_attributes)."""
        self._check_open()
        if not self.is_realm:
            raise fail(errno.EINVAL, "only a realm VM has memory attributes")
        address, size = integer(address, "address"), integer(size, "size")
        if integer(attributes, "attributes") & ~uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE:
            raise fail(errno.EINVAL, f"unknown attributes {attributes:#x}")
        if size <= 0 or address < 0 or (address | size) % GRANULE_SIZE:
            raise fail(errno.EINVAL, "the range must be page aligned and not empty")
        end = address + size
        self.attributes.set(address // GRANULE_SIZE, end // GRANULE_SIZE, attributes)
        private = bool(attributes & uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
        unmap_range(self, address, size, unmap_private=not private)

    def punch_hole(self, gmem: GuestMemfd, offset: int, size: int) -> None:
        """fallocate(PUNCH_HOLE) on a guest_memfd: unmap the private pages behind the range
        (kvm_gmem_invalidate) and free them."""
        if gmem not in self.gmems:
            raise fail(errno.EINVAL, "not a guest_memfd of this VM")
        offset, size = integer(offset, "offset"), integer(size, "size")
        if (offset | size) % GRANULE_SIZE or offset < 0 or size <= 0 or offset + size > gmem.size:
            raise fail(errno.EINVAL, "the range must be page aligned and inside the file")
        for memslot in self.memslots:
            if memslot.gmem is not gmem:
                continue
            start = max(offset, memslot.gmem_offset)
            stop = min(offset + size, memslot.gmem_offset + memslot.size)
            if start < stop:
                gpa = memslot.gpa + start - memslot.gmem_offset
                unmap_range(self, gpa, stop - start, unmap_private=True)
        for index in range(offset, offset + size, GRANULE_SIZE):
            self._release_gmem_page(gmem, index)

    def _release_gmem_page(self, gmem: GuestMemfd, index: int) -> None:
        pa = gmem.drop(index)
        if pa is None:
            return
        owner = self.kvm.pages.owners.get(pa)
        if owner is Owner.GUEST_MEMFD:
            self.kvm.pages.free(pa)
        elif owner in DELEGATED:  # the RMM still has it: it cannot be freed
            self.kvm.warn(f"guest_memfd page {pa:#x} is still delegated; leaking it")
            self.data.pop(pa, None)
            self.kvm.pages.leak(pa)

    # -- vCPUs and interrupts ------------------------------------------------------------------

    def create_vcpu(self, vcpu_id: int) -> Vcpu:
        """KVM_CREATE_VCPU (a vCPU may be added after activation, seed 002 §2.1 X7; it can
        never become a REC then)."""
        self._check_open()
        if integer(vcpu_id, "vCPU id", 32) >= KVM_MAX_VCPUS:
            raise fail(errno.EINVAL, f"vCPU id {vcpu_id!r} is out of range")
        if any(v.vcpu_id == vcpu_id for v in self.vcpus):
            raise fail(errno.EEXIST, f"vCPU {vcpu_id} exists")
        if self.vgic_ready:
            raise fail(errno.EBUSY, "the vGIC is initialised: no more vCPUs")
        vcpu = Vcpu(self, vcpu_id)
        self.vcpus.append(vcpu)
        return vcpu

    def vcpu_by_mpidr(self, mpidr: int) -> Vcpu | None:
        """kvm_mpidr_to_vcpu."""
        for vcpu in self.vcpus:
            if vcpu.mpidr == mpidr:
                return vcpu
        return None

    def create_vgic(self) -> None:
        """KVM_CREATE_DEVICE(KVM_DEV_TYPE_ARM_VGIC_V3): the in-kernel irqchip a realm needs."""
        self._check_open()
        if self.has_vgic:
            raise fail(errno.EEXIST, "the VM has an irqchip")
        if self.has_run:
            raise fail(errno.EBUSY, "the VM has run")
        self.has_vgic = True

    def init_vgic(self) -> None:
        """vgic_init, at the first KVM_RUN: a CPU interface per vCPU, with the number of list
        registers the RMM reports (RMI feature register 0)."""
        if self.vgic_ready:
            return
        nr_lrs = min(self.kvm.feat_reg0.gicv3_num_lrs + 1, REC_GIC_NUM_LRS)
        for vcpu in self.vcpus:
            vcpu.vgic = VgicCpu(nr_lrs)
        self.vgic_ready = True

    def irq_line(self, intid: int, level: bool, vcpu: int = 0) -> None:
        """KVM_IRQ_LINE: raise or lower an SPI (routed to vCPU 0, the distributor's reset
        routing) or a PPI of ``vcpu``."""
        self._check_open()
        if not self.has_vgic:
            raise fail(errno.ENXIO, "no in-kernel irqchip")
        intid, vcpu = integer(intid, "INTID", 32), integer(vcpu, "vCPU", 32)
        if not 16 <= intid < 1020:
            raise fail(errno.EINVAL, f"INTID {intid} is not a PPI or an SPI")
        target = vcpu if intid < 32 else 0
        found = [v for v in self.vcpus if v.vcpu_id == target]
        if not found:
            raise fail(errno.EINVAL, f"no vCPU {target}")
        self.init_vgic()
        assert found[0].vgic is not None
        found[0].vgic.set_line(intid, bool(level))

    def set_smccc_filter(self, base: int, nr_functions: int, action: int) -> None:
        """KVM_ARM_VM_SMCCC_FILTER (KVM_SET_DEVICE_ATTR, group KVM_ARM_VM_SMCCC_CTRL)."""
        self._check_open()
        base, nr_functions = integer(base, "base", 32), integer(nr_functions, "nr_functions", 33)
        self.smccc_filter.set(base, nr_functions, integer(action, "action", 8), self.has_run)

    # -- destruction ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the VM and its vCPUs: the kernel destroys the VM, in the series' order:
        unmap everything and tear the RTTs down (kvm_free_stage2_pgd, from the MMU notifier's
        release), destroy the RECs (kvm_destroy_vcpus), then kvm_destroy_realm. Pages the
        RMM keeps are leaked and reported; the VMM's own memory stays its own."""
        if self.closed:
            return
        if any(v.in_run for v in self.vcpus):
            raise fail(errno.EBUSY, "a vCPU is running")
        self.closed = True
        kvm, realm = self.kvm, self.realm
        if self.is_realm and realm.state not in (RealmState.NONE, RealmState.DEAD):
            unmap_range(self, 0, 1 << self.ia_bits, unmap_private=True)
            destroy_rtts(self)
        for vcpu in self.vcpus:
            vcpu.destroy_rec()
            vcpu.free_memcache()
        if self.is_realm:
            realm_ops.destroy_realm(self)
        if not self.is_realm or realm.state in (RealmState.NONE, RealmState.DEAD):
            self._free_pgd()
        for gmem in self.gmems:
            for index in gmem.offsets():
                self._release_gmem_page(gmem, index)
        self._leak_what_the_rmm_kept()
        if self in kvm.vms:
            kvm.vms.remove(self)

    def _free_pgd(self) -> None:
        if self.pgd_leaked:
            return
        for i in range(self.pgd_pages):
            pa = self.pgd + i * GRANULE_SIZE
            if self.kvm.pages.owners.get(pa) is Owner.KERNEL:
                self.kvm.pages.free(pa)

    def _leak_what_the_rmm_kept(self) -> None:
        """Pages still delegated when the VM is gone are lost to the host: count them as
        leaked (the kernel has no way to get them back), and say so."""
        pages = self.kvm.pages
        kept = sorted(self.rtts) + sorted(self.data)
        if self.realm.rd is not None:
            kept.append(self.realm.rd)
        lost = [pa for pa in kept if pages.owners.get(pa) in DELEGATED]
        if self.realm.state is RealmState.DYING and not self.pgd_leaked:
            # kvm_free_stage2_pgd is never reached: the whole PGD is lost (L4)
            lost += [self.pgd + i * GRANULE_SIZE for i in range(self.pgd_pages)]
            self.pgd_leaked = True
        for pa in lost:
            pages.leak(pa)
        if lost:
            self.kvm.warn(f"the realm is gone with {len(lost)} pages the RMM kept: leaked")
        self.rtts.clear()
        self.data.clear()

    def _check_open(self) -> None:
        if self.closed:
            raise fail(errno.EBADF, "the VM is closed")
