"""Test helpers for ccasim.kvm: build realm VMs the way kvmtool does (through the KVM uAPI
only), a small VMM loop that answers exits, and the audit of the host's page accounting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import ccasim
import kvm_programs  # noqa: F401  (registers the guest programs)
from ccasim import guest
from ccasim.check import check_host_pages
from ccasim.kvm import Kvm, KvmError, uapi
from ccasim.kvm.memory import GuestMemfd, UserMemory
from ccasim.kvm.sched import WouldBlockForever
from ccasim.kvm.vcpu import Vcpu
from ccasim.kvm.vm import Vm
from ccasim.vmm.launch import Launch

RAM = 0x8000_0000
MiB = 1 << 20
RME = uapi.KVM_CAP_ARM_RME
REALM_FEATURES = [uapi.KVM_ARM_VCPU_PSCI_0_2, uapi.KVM_ARM_VCPU_REC]


def new_kvm(**machine_kwargs) -> Kvm:
    return Kvm(ccasim.Machine(**machine_kwargs), record_rmi=True)


@dataclass
class Realm:
    """A realm VM and what its VMM holds: the vCPUs, guest RAM and its guest_memfd."""

    kvm: Kvm
    vm: Vm
    vcpus: list[Vcpu]
    mem: UserMemory
    gmem: GuestMemfd
    base: int
    size: int
    exits: list[uapi.KvmRun] = field(default_factory=list)

    def cap(self, action: int, arg: object = None) -> None:
        self.vm.enable_cap(RME, action, arg)

    def populate(self, ipa: int, data: bytes, measure: bool = True) -> None:
        """Write ``data`` at ``ipa`` in the VMM's RAM and populate those granules."""
        start = ipa & ~0xFFF
        end = -(-(ipa + len(data)) // 4096) * 4096
        self.mem.write(ipa - self.base, data)
        flags = uapi.KVM_ARM_RME_POPULATE_FLAGS_MEASURE if measure else 0
        self.cap(
            uapi.KVM_CAP_ARM_RME_POPULATE_REALM,
            uapi.ArmRmePopulateRealm(start, end - start, flags),
        )


def realm_vm(
    kvm: Kvm | None = None,
    *,
    ipa_bits: int = 40,
    base: int = RAM,
    size: int = 2 * MiB,
    vcpus: int = 1,
    features: tuple[int, ...] = (),
) -> Realm:
    """A realm VM in state NONE with RAM at [base, base + size) (a memslot with a
    guest_memfd, all private), the vGIC and initialised vCPUs (secondaries powered off)."""
    kvm = kvm or new_kvm()
    vm = kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | uapi.KVM_VM_TYPE_ARM_IPA_SIZE(ipa_bits))
    mem = kvm.mmap(size)
    gmem = vm.create_guest_memfd(size)
    vm.set_user_memory_region(
        uapi.KvmUserspaceMemoryRegion2(0, uapi.KVM_MEM_GUEST_MEMFD, base, size, mem.addr, gmem)
    )
    vm.set_memory_attributes(base, size, uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
    vm.create_vgic()
    cpus = []
    for i in range(vcpus):
        vcpu = vm.create_vcpu(i)
        extra = [uapi.KVM_ARM_VCPU_POWER_OFF] if i else []
        vcpu.init([*REALM_FEATURES, *features, *extra])
        cpus.append(vcpu)
    return Realm(kvm, vm, cpus, mem, gmem, base, size)


def program_realm(
    name: str, *, activate: bool = True, vcpus: int = 1, kvm: Kvm | None = None, **kw
) -> Realm:
    """A realm running the registered guest program ``name`` (its image at ``base``, the
    boot vCPU's PC there), created, RAM RIPAS RAM, RECs made, activated."""
    params = {k: kw.pop(k) for k in list(kw) if k not in ("ipa_bits", "base", "size")}
    realm = realm_vm(kvm, vcpus=vcpus, **kw)
    realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    realm.cap(uapi.KVM_CAP_ARM_RME_INIT_RIPAS_REALM, uapi.ArmRmeInitRipas(realm.base, realm.size))
    realm.populate(realm.base, guest.image(name, **params))
    realm.vcpus[0].set_one_reg(uapi.KVM_REG_ARM_CORE_PC, realm.base)
    for vcpu in realm.vcpus:
        vcpu.finalize(uapi.KVM_ARM_VCPU_REC)
    if activate:
        realm.cap(uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)
    return realm


def realm_from_launch(launch: Launch, kvm: Kvm | None = None) -> Realm:
    """Build the realm a VMM's :class:`Launch` describes, the way kvmtool does with the v8
    uAPI: configure, create, INIT_RIPAS over RAM, measured POPULATE of each image in IPA
    order, the RECs, the unmeasured pages, activate."""
    caps = launch.caps
    features = []
    if caps.sve_vl:
        features.append(uapi.KVM_ARM_VCPU_SVE)
    if caps.pmu:
        features.append(uapi.KVM_ARM_VCPU_PMU_V3)
    assert len(launch.ram) == 1, "one RAM range"
    base, size = launch.ram[0]
    realm = realm_vm(
        kvm, ipa_bits=caps.ipa_bits or 40, base=base, size=size, vcpus=launch.vcpus,
        features=tuple(features),
    )  # fmt: skip
    boot = realm.vcpus[0]
    dfr0 = boot.get_one_reg(uapi.REG_ID_AA64DFR0_EL1) & ~(0xFFF << 12 | 0xF << 28)
    bps, wps = (caps.num_bps or 2) - 1, (caps.num_wps or 2) - 1
    dfr0 |= bps << uapi.DFR0_BRPS_SHIFT | wps << uapi.DFR0_WRPS_SHIFT
    dfr0 |= min(bps, 1) << uapi.DFR0_CTX_CMPS_SHIFT
    boot.set_one_reg(uapi.REG_ID_AA64DFR0_EL1, dfr0)
    if caps.pmu:
        boot.set_one_reg(uapi.REG_PMCR_EL0, (caps.pmu_num_ctrs or 0) << uapi.PMCR_N_SHIFT)
    for vcpu in realm.vcpus:
        if caps.sve_vl:
            vcpu.set_one_reg(uapi.KVM_REG_ARM64_SVE_VLS, (1 << (caps.sve_vl // 128)) - 1)
            vcpu.finalize(uapi.KVM_ARM_VCPU_SVE)
    algo = uapi.ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA512 if caps.hash_algo == "sha512" else 0
    realm.cap(
        uapi.KVM_CAP_ARM_RME_CONFIG_REALM,
        uapi.ArmRmeConfig(uapi.ARM_RME_CONFIG_HASH_ALGO, hash_algo=algo),
    )
    realm.cap(
        uapi.KVM_CAP_ARM_RME_CONFIG_REALM,
        uapi.ArmRmeConfig(uapi.ARM_RME_CONFIG_RPV, rpv=launch.rpv),
    )
    realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    realm.cap(uapi.KVM_CAP_ARM_RME_INIT_RIPAS_REALM, uapi.ArmRmeInitRipas(base, size))
    for blob in sorted(launch.blobs, key=lambda b: b.ipa):
        realm.populate(blob.ipa, blob.data)
    boot.set_one_reg(uapi.KVM_REG_ARM_CORE_PC, launch.pc)
    boot.set_one_reg(uapi.KVM_REG_ARM_CORE_X(0), launch.x0)
    for vcpu in realm.vcpus:
        vcpu.finalize(uapi.KVM_ARM_VCPU_REC)
    for region in launch.unmeasured:
        realm.populate(region.ipa, bytes(region.size), measure=False)
    realm.cap(uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)
    return realm


# -- a small VMM loop ---------------------------------------------------------------------------


def serve(
    vcpu: Vcpu,
    *,
    mmio: Callable[[uapi.KvmMmioExit], bytes | None] | None = None,
    hypercall: Callable[[Vcpu, uapi.KvmHypercallExit], None] | None = None,
    limit: int = 200,
) -> list[uapi.KvmRun]:
    """Run ``vcpu`` answering its exits as a simple VMM would (MMIO reads as zero unless
    ``mmio`` says otherwise; memory faults converted as asked; host calls returning 0) until
    a system event, an unknown exit, or a sleep nothing can end. The exits, in order (copies).
    """
    seen: list[uapi.KvmRun] = []
    vm = vcpu.vm
    for _ in range(limit):
        try:
            run = vcpu.run()
        except WouldBlockForever:
            break
        seen.append(_copy(run))
        reason = run.exit_reason
        if reason == uapi.KVM_EXIT_MMIO:
            data = mmio(run.mmio) if mmio else None
            if not run.mmio.is_write:
                run.mmio.data = (data or bytes(run.mmio.len))[: run.mmio.len]
        elif reason == uapi.KVM_EXIT_MEMORY_FAULT:
            fault = run.memory_fault
            private = fault.flags & uapi.KVM_MEMORY_EXIT_FLAG_PRIVATE
            attrs = uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE if private else 0
            vm.set_memory_attributes(fault.gpa, fault.size, attrs)
        elif reason == uapi.KVM_EXIT_HYPERCALL:
            if hypercall:
                hypercall(vcpu, run.hypercall)
            else:
                vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_X(0), 0)
        elif reason in (uapi.KVM_EXIT_SYSTEM_EVENT, uapi.KVM_EXIT_UNKNOWN):
            break
    return seen


def _copy(run: uapi.KvmRun) -> uapi.KvmRun:
    import copy

    return copy.deepcopy(run)


# -- accounting -----------------------------------------------------------------------------


def audit(kvm: Kvm) -> dict[str, int]:
    """The host's page accounting agrees with the machine (ccasim.check.check_host_pages:
    each page the kernel gave the RMM is in that state, every granule the RMM holds is one of
    those or leaked), and the counts add up. Returns the counts."""
    counts = kvm.page_counts()
    assert sum(counts.values()) == kvm.pages.total
    check_host_pages(kvm, kvm.machine)
    return counts


def balanced(kvm: Kvm) -> bool:
    """After every VM is closed: nothing is held but leaked pages and the VMM's memory."""
    counts = audit(kvm)
    held = {k: v for k, v in counts.items() if v and k not in ("free", "leaked", "user")}
    return not held


def errno_of(call: Callable[[], object]) -> str | None:
    """The errno name ``call`` fails with, or None if it succeeds."""
    try:
        call()
    except KvmError as e:
        return e.name
    return None
