"""A realm VM's life as KVM leads it (``rme.c`` of the series): configuration, creation of
the RD with its root RTTs, INIT_RIPAS, POPULATE, activation and destruction.

The states are the series' ``enum realm_state`` (seed 002; NEW from v9, §2.1 X1)::

    NONE --CREATE_REALM--> NEW --ACTIVATE_REALM--> ACTIVE
      \\                     \\                       \\
       `----------------------`-----------------------`--> DYING --> DEAD   (VM destruction)
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.kvm import uapi
from ccasim.kvm.errors import KvmError, fail, fields
from ccasim.kvm.memory import Owner
from ccasim.kvm.rtt import RTT_MAX_LEVEL, create_rtt_levels, free_delegated_granule
from ccasim.rmi import RealmParams, Status
from ccasim.rmi.levels import block_level, start_level_rtts
from ccasim.rmi.types import DATA_MEASURE_CONTENT, REALM_FLAG_PMU, REALM_FLAG_SVE, HashAlgorithm

if TYPE_CHECKING:
    from ccasim.kvm.vm import Vm

#: POPULATE_REALM works in chunks of this size, dropping its locks between them.
POPULATE_CHUNK = 2 << 20


class RealmState(enum.Enum):
    """``enum realm_state`` of the series."""

    NONE = "none"
    NEW = "new"
    ACTIVE = "active"
    DYING = "dying"
    DEAD = "dead"


@dataclass
class Realm:
    """``struct realm`` (seed 002-07): the RD, the parameters for RMI_REALM_CREATE while the
    RD does not exist yet, the REC aux count, the VMID and the IPA size."""

    ia_bits: int
    params_page: int | None
    params: RealmParams = field(default_factory=RealmParams)
    state: RealmState = RealmState.NONE
    rd: int | None = None
    num_aux: int = 0
    vmid: int | None = None

    @property
    def created(self) -> bool:
        """kvm_realm_is_created (002-05)."""
        return self.state is not RealmState.NONE


# -- KVM_CAP_ARM_RME_CONFIG_REALM ------------------------------------------------------------


def config_realm(vm: Vm, cfg: object) -> None:
    """Set an RMM-defined parameter before the RD exists (002-02 class 3; §2.1 X2)."""
    realm = vm.realm
    if realm.created:
        raise fail(errno.EBUSY, "the realm is created: its configuration is fixed")
    fields(cfg, uapi.ArmRmeConfig, "cfg", "hash_algo")
    assert isinstance(cfg, uapi.ArmRmeConfig)
    if cfg.cfg == uapi.ARM_RME_CONFIG_RPV:
        if not isinstance(cfg.rpv, bytes | bytearray):
            raise fail(errno.EFAULT, "arm_rme_config.rpv is not bytes")
        rpv = bytes(cfg.rpv)
        if len(rpv) != uapi.ARM_RME_CONFIG_RPV_SIZE:
            raise fail(errno.EINVAL, f"the RPV is {uapi.ARM_RME_CONFIG_RPV_SIZE} bytes")
        realm.params.rpv = rpv
    elif cfg.cfg == uapi.ARM_RME_CONFIG_HASH_ALGO:
        feat = vm.kvm.feat_reg0
        supported = {
            uapi.ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA256: feat.hash_sha_256,
            uapi.ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA512: feat.hash_sha_512,
        }
        if not supported.get(cfg.hash_algo):
            raise fail(errno.EINVAL, f"hash algorithm {cfg.hash_algo} is not one the RMM has")
        realm.params.hash_algo = HashAlgorithm(cfg.hash_algo)
    else:
        raise fail(errno.EINVAL, f"unknown configuration item {cfg.cfg}")


# -- KVM_CAP_ARM_RME_CREATE_REALM ------------------------------------------------------------


def create_realm(vm: Vm) -> None:
    """kvm_create_realm (§2.1 X1): a VMID, then the RD and its root RTTs; state NEW."""
    realm = vm.realm
    if realm.created:
        raise fail(errno.EEXIST, "the realm already exists")
    realm.vmid = vm.kvm.vmids.reserve()
    try:
        create_rd(vm)
    except KvmError:
        vm.kvm.vmids.release(realm.vmid)
        realm.vmid = None
        raise
    realm.state = RealmState.NEW
    assert realm.params_page is not None
    vm.kvm.pages.free(realm.params_page)  # the realm is up: free the parameters
    realm.params_page = None


def create_rd(vm: Vm) -> None:
    """realm_create_rd (002-19 to 002-25): delegate the RD, then every granule of the stage 2
    PGD in ascending order, fill in the parameters, RMI_REALM_CREATE, RMI_REC_AUX_COUNT; a
    failure unwinds in reverse, leaking what the RMM will not give back."""
    kvm, realm = vm.kvm, vm.realm
    rmi, pages = kvm.rmi, kvm.pages
    rtt_num_start = start_level_rtts(vm.ia_bits)
    if realm.rd is not None or realm.params_page is None:
        kvm.warn("realm_create_rd: the RD exists or there are no parameters")
        raise fail(errno.EEXIST, "the RD exists already")
    if vm.pgd_pages < rtt_num_start:
        raise fail(errno.EINVAL, f"the PGD has {vm.pgd_pages} pages, {rtt_num_start} needed")

    rd = pages.alloc(Owner.KERNEL)
    if not rmi.granule_delegate(rd).ok:
        pages.free(rd)
        raise fail(errno.ENXIO, "RMI_GRANULE_DELEGATE of the RD failed")
    pages.give(rd, Owner.RD)

    delegated = 0
    error: KvmError | None = None
    for i in range(vm.pgd_pages):
        if not rmi.granule_delegate(vm.pgd + i * GRANULE_SIZE).ok:
            error = fail(errno.ENXIO, f"RMI_GRANULE_DELEGATE of PGD page {i} failed")
            break
        pages.give(vm.pgd + i * GRANULE_SIZE, Owner.ROOT_RTT)
        delegated += 1

    if error is None:
        params = realm.params
        params.s2sz = vm.ia_bits
        params.rtt_level_start = vm.start_level
        params.rtt_num_start = rtt_num_start
        params.rtt_base = vm.pgd
        params.vmid = realm.vmid or 0
        dfr0 = vm.sysregs.dfr0
        params.num_bps = (dfr0 >> uapi.DFR0_BRPS_SHIFT) & 0xF
        params.num_wps = (dfr0 >> uapi.DFR0_WRPS_SHIFT) & 0xF
        if vm.sysregs.pmu:
            params.pmu_num_ctrs = vm.sysregs.pmcr_n
            params.flags |= REALM_FLAG_PMU
        try:
            sve_vq = vm.sysregs.realm_sve_vq(vm.vcpus)
        except KvmError as e:
            error = e
        else:
            if sve_vq:
                params.sve_vl = sve_vq - 1
                params.flags |= REALM_FLAG_SVE
    if error is None:
        kvm.machine.ns_write(realm.params_page, params.pack())
        if not rmi.realm_create(rd, realm.params_page).ok:
            error = fail(errno.ENXIO, "RMI_REALM_CREATE failed")
    if error is None:
        aux = rmi.rec_aux_count(rd)
        if aux.ok:
            realm.num_aux = aux.aux_count
            realm.rd = rd
            return
        kvm.warn(f"RMI_REC_AUX_COUNT failed: {aux}")
        destroyed = rmi.realm_destroy(rd)
        if not destroyed.ok:
            kvm.warn(f"RMI_REALM_DESTROY after RMI_REC_AUX_COUNT failed: {destroyed}")
        # 002-23: the series leaves the return value unset here; the model returns ENXIO.
        error = fail(errno.ENXIO, "RMI_REC_AUX_COUNT failed")

    # out_undelegate_tables: reverse order; the first failure leaks the whole PGD (002-25, L2)
    for i in reversed(range(delegated)):
        pa = vm.pgd + i * GRANULE_SIZE
        result = rmi.granule_undelegate(pa)
        if not result.ok:
            kvm.warn(f"RMI_GRANULE_UNDELEGATE of PGD page {i} failed: {result}; leaking the PGD")
            vm.pgd_leaked = True
            for j in range(vm.pgd_pages):
                pages.leak(vm.pgd + j * GRANULE_SIZE)
            break
        pages.give(pa, Owner.KERNEL)
    free_delegated_granule(vm, rd, "RD")  # leaked if the RMM keeps it (L3)
    raise error


# -- KVM_CAP_ARM_RME_INIT_RIPAS_REALM --------------------------------------------------------


def init_ripas(vm: Vm, args: object) -> None:
    """kvm_init_ipa_range_realm: RIPAS RAM over [base, base + size) before activation, with
    the RTTs RMI_RTT_INIT_RIPAS asks for down to ``find_map_level``."""
    fields(args, uapi.ArmRmeInitRipas, "base", "size")
    assert isinstance(args, uapi.ArmRmeInitRipas)
    base, end = args.base, args.base + args.size
    if end < base or base < 0:
        raise fail(errno.EINVAL, "the range wraps")
    if vm.realm.state is not RealmState.NEW:
        raise fail(errno.EPERM, f"the realm is {vm.realm.state.value}, not new")
    rmi, rd = vm.kvm.rmi, vm.rd
    ipa = base
    while ipa < end:
        result = rmi.rtt_init_ripas(rd, ipa, end)
        if result.status == Status.ERROR_RTT:
            level = block_level(ipa, end, vm.start_level)
            if result.index >= level:
                vm.kvm.warn(f"RMI_RTT_INIT_RIPAS({ipa:#x}, {end:#x}): {result}")
                raise fail(errno.ENXIO, f"RMI_RTT_INIT_RIPAS failed at {ipa:#x}")
            ret = create_rtt_levels(vm, ipa, result.index, level)
            if ret:
                raise fail(-ret, f"creating RTTs for {ipa:#x} failed")
            continue
        if not result.ok:
            vm.kvm.warn(f"RMI_RTT_INIT_RIPAS({ipa:#x}, {end:#x}): {result}")
            raise fail(errno.ENXIO, f"RMI_RTT_INIT_RIPAS failed at {ipa:#x}")
        ipa = result.out_top


# -- KVM_CAP_ARM_RME_POPULATE_REALM ----------------------------------------------------------


def populate(vm: Vm, args: object) -> None:
    """kvm_populate_realm: copy the VMM's memory at [base, base + size) into the realm's
    private memory, page by page in ascending IPA order, with RMI_DATA_CREATE (measured if
    KVM_ARM_RME_POPULATE_FLAGS_MEASURE)."""
    fields(args, uapi.ArmRmePopulateRealm, "base", "size", "flags")
    assert isinstance(args, uapi.ArmRmePopulateRealm)
    if vm.realm.state is not RealmState.NEW:
        raise fail(errno.EPERM, f"the realm is {vm.realm.state.value}, not new")
    if args.base % GRANULE_SIZE or args.size % GRANULE_SIZE or args.base < 0 or args.size < 0:
        raise fail(errno.EINVAL, "base and size must be page aligned")
    if args.flags & ~uapi.KVM_ARM_RME_POPULATE_FLAGS_MEASURE:
        raise fail(errno.EINVAL, f"unknown flags {args.flags:#x}")
    flags = DATA_MEASURE_CONTENT if args.flags & uapi.KVM_ARM_RME_POPULATE_FLAGS_MEASURE else 0
    base, end = args.base, args.base + args.size
    while base < end:
        chunk_end = min(end, base + POPULATE_CHUNK)
        populate_region(vm, base, chunk_end, flags)
        base = chunk_end
        vm.kvm.threads.preempt("populate")


def populate_region(vm: Vm, base: int, end: int, flags: int) -> None:
    memslot = vm.memslots.find(base)
    if memslot is None:
        raise fail(errno.EFAULT, f"no memslot holds {base:#x}")
    if memslot.end < end:
        raise fail(errno.EINVAL, "the range must lie within one memslot")
    if not memslot.can_be_private:
        raise fail(errno.EINVAL, "the memslot has no guest_memfd")
    assert memslot.gmem is not None
    for ipa in range(base, end, GRANULE_SIZE):
        src = memslot.user_page(ipa)
        dst = memslot.gmem.get(memslot.gmem_index(ipa))
        ret = create_protected_data_page(vm, ipa, dst, src, flags)
        if ret:
            raise fail(-ret, f"populating {ipa:#x} failed")


def create_protected_data_page(vm: Vm, ipa: int, dst: int, src: int, flags: int) -> int:
    """realm_create_protected_data_page: delegate ``dst`` and RMI_DATA_CREATE it from
    ``src``, creating the missing RTTs down to level 3 on RMI_ERROR_RTT; 0 or -ENXIO."""
    kvm, rd = vm.kvm, vm.rd
    rmi, pages = kvm.rmi, kvm.pages
    if not rmi.granule_delegate(dst).ok:
        return -errno.ENXIO
    pages.give(dst, Owner.DATA)
    result = rmi.data_create(rd, dst, ipa, src, flags)
    if result.status == Status.ERROR_RTT:
        ret = create_rtt_levels(vm, ipa, result.index, RTT_MAX_LEVEL)
        if ret == 0:
            result = rmi.data_create(rd, dst, ipa, src, flags)
    if result.ok:
        vm.data[dst] = Owner.GUEST_MEMFD
        return 0
    kvm.warn(f"RMI_DATA_CREATE at {ipa:#x}: {result}")
    if rmi.granule_undelegate(dst).ok:
        pages.give(dst, Owner.GUEST_MEMFD)
    else:
        kvm.warn(f"RMI_GRANULE_UNDELEGATE({dst:#x}) failed: leaking the page")
        pages.leak(dst)
    return -errno.ENXIO


# -- KVM_CAP_ARM_RME_ACTIVATE_REALM ----------------------------------------------------------


def activate(vm: Vm) -> None:
    realm = vm.realm
    if realm.state is not RealmState.NEW:
        raise fail(errno.EINVAL, f"the realm is {realm.state.value}, not new")
    if not vm.kvm.rmi.realm_activate(vm.rd).ok:
        raise fail(errno.ENXIO, "RMI_REALM_ACTIVATE failed")
    realm.state = RealmState.ACTIVE


# -- destruction (kvm_destroy_realm) ---------------------------------------------------------


def destroy_realm(vm: Vm) -> None:
    """kvm_destroy_realm (§2.1 X4): DYING, RMI_REALM_DESTROY, the RD, the VMID, the PGD
    granules in ascending order, DEAD. A failure WARNs and returns, leaking the rest (L4)."""
    kvm, realm = vm.kvm, vm.realm
    if realm.params_page is not None:
        kvm.pages.free(realm.params_page)
        realm.params_page = None
    if not realm.created:
        return
    realm.state = RealmState.DYING
    if realm.rd is not None:
        result = kvm.rmi.realm_destroy(realm.rd)
        if not result.ok:
            kvm.warn(f"RMI_REALM_DESTROY failed: {result}; leaking the RD, PGD and VMID")
            return
        free_delegated_granule(vm, realm.rd, "RD")
        realm.rd = None
    if realm.vmid is not None:
        kvm.vmids.release(realm.vmid)
        realm.vmid = None
    for i in range(vm.pgd_pages):
        pa = vm.pgd + i * GRANULE_SIZE
        result = kvm.rmi.granule_undelegate(pa)
        if not result.ok:
            kvm.warn(f"RMI_GRANULE_UNDELEGATE of PGD page {i} failed: {result}; leaking")
            return
        kvm.pages.give(pa, Owner.KERNEL)
    realm.state = RealmState.DEAD
