"""The KVM uAPI for realms, ioctl by ioctl and state by state: what the kernel of the series
refuses up front, with which errno, and that a refusal changes nothing.

Seed items are named as in ``shared/research/seed-review-points.md`` (e.g. 002-19).
"""

from __future__ import annotations

import errno

import pytest

from ccasim.kvm import Kvm, KvmError, RealmState, uapi
from ccasim.kvm.kvm import VmidAllocator
from ccasim.rmi import InterfaceVersion
from kvm_host import RAM, REALM_FEATURES, RME, errno_of, new_kvm, program_realm, realm_vm

SHA512 = uapi.ArmRmeConfig(
    uapi.ARM_RME_CONFIG_HASH_ALGO, hash_algo=uapi.ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA512
)


# -- /dev/kvm ---------------------------------------------------------------------------------


def test_kvm_init_checks_the_rmi_version_and_reads_the_features():
    """§2.1 X6 (kvm_init_rme): RMI_VERSION, then RMI_FEATURES(0) cached (002-14, 002-11)."""
    kvm = new_kvm()
    assert [c.command for c in kvm.rmi.trace] == ["RMI_VERSION", "RMI_FEATURES"]
    assert "RMI ABI version 1.0" in kvm.dmesg[0]
    assert kvm.check_extension(uapi.KVM_CAP_ARM_RME) == 1
    assert kvm.feat_reg0.encode() == kvm.rmi.trace[1].regs[1]


def test_a_kernel_wanting_another_rmi_version_has_no_realms():
    """rmi_check_version: an RMM that does not speak the wanted version leaves KVM without
    realm support; creating a realm VM is then EINVAL (v5 11/43)."""
    kvm = Kvm(new_kvm().machine, abi=InterfaceVersion(major=2, minor=0))
    assert kvm.check_extension(uapi.KVM_CAP_ARM_RME) == 0
    assert "Unsupported RMI ABI (v1.0 - v1.0) we want v2.0" in kvm.dmesg[0]
    assert errno_of(lambda: kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM)) == "EINVAL"
    assert kvm.create_vm(0).is_realm is False


@pytest.mark.parametrize(
    "vm_type, expected",
    [
        (uapi.KVM_VM_TYPE_ARM_REALM | 40, None),
        (uapi.KVM_VM_TYPE_ARM_REALM, None),  # 0: the default 40 bits
        (uapi.KVM_VM_TYPE_ARM_REALM | 48, None),  # the RMM's S2SZ
        (uapi.KVM_VM_TYPE_ARM_REALM | 49, "EINVAL"),  # above it (002-12)
        (uapi.KVM_VM_TYPE_ARM_REALM | 31, "EINVAL"),  # below ARM64_MIN_PARANGE_BITS
        (2 << 8 | 40, "EINVAL"),  # an unknown machine type
        (1 << 12 | 40, "EINVAL"),  # bits outside the type and IPA fields (002-12)
        (-1, "EINVAL"),
        (40, None),  # a normal VM
    ],
)
def test_create_vm_type_and_ipa_size(vm_type, expected):
    """002-03, 002-12: the IPA size comes from the type's low bits, limited by the RMM."""
    kvm = new_kvm()
    before = kvm.page_counts()
    assert errno_of(lambda: kvm.create_vm(vm_type)) == expected
    if expected:
        assert kvm.page_counts() == before


def test_the_realm_ipa_limit_is_the_rmms_not_the_hosts():
    """002-03, 002-15: KVM_CAP_ARM_VM_IPA_SIZE stays the host's limit; realms use S2SZ."""
    kvm = new_kvm(max_ipa_width=40)
    assert kvm.check_extension(uapi.KVM_CAP_ARM_VM_IPA_SIZE) == 48
    assert kvm.feat_reg0.s2sz == 40
    assert errno_of(lambda: kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 44)) == "EINVAL"
    assert kvm.create_vm(44).ia_bits == 44  # a normal VM may


@pytest.mark.parametrize("cap, realm, normal", [
    (uapi.KVM_CAP_ARM_RME, 1, 1),
    (uapi.KVM_CAP_READONLY_MEM, 0, 1),  # v5 34/43
    (uapi.KVM_CAP_SET_GUEST_DEBUG, 0, 1),
    (uapi.KVM_CAP_STEAL_TIME, 0, 0),  # v5 26/43
    (uapi.KVM_CAP_GUEST_DEBUG_HW_BPS, 0, 6),  # v5 10/43: realms are not debuggable
    (uapi.KVM_CAP_ARM_SVE, 1, 1),  # v5 29/43: from the RMM's SVE_EN for a realm
    (uapi.KVM_CAP_GUEST_MEMFD, 1, 0),
])  # fmt: skip
def test_vm_capabilities(cap, realm, normal):
    kvm = new_kvm()
    assert kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 40).check_extension(cap) == realm
    assert kvm.create_vm(40).check_extension(cap) == normal


def test_realm_sve_capability_follows_the_rmm():
    kvm = new_kvm(sve=False)
    assert kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 40).check_extension(uapi.KVM_CAP_ARM_SVE) == 0


# -- the realm state machine ---------------------------------------------------------------------


def to_state(state: RealmState):
    """A 1-vCPU realm with 2 MiB of RAM in ``state`` (NONE, NEW or ACTIVE)."""
    realm = realm_vm()
    if state is not RealmState.NONE:
        realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    if state is RealmState.ACTIVE:
        realm.vcpus[0].finalize(uapi.KVM_ARM_VCPU_REC)
        realm.cap(uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)
    assert realm.vm.realm.state is state
    return realm


def config(realm):
    realm.cap(uapi.KVM_CAP_ARM_RME_CONFIG_REALM, SHA512)


def create(realm):
    realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)


def init_ripas(realm):
    realm.cap(uapi.KVM_CAP_ARM_RME_INIT_RIPAS_REALM, uapi.ArmRmeInitRipas(RAM, 0x1000))


def populate(realm):
    realm.cap(uapi.KVM_CAP_ARM_RME_POPULATE_REALM, uapi.ArmRmePopulateRealm(RAM, 0x1000))


def activate(realm):
    realm.cap(uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)


def finalize_rec(realm):
    vcpu = realm.vcpus[0] if realm.vcpus[0].rec is None else realm.vm.create_vcpu(1)
    if not vcpu.initialized:
        vcpu.init([*REALM_FEATURES, uapi.KVM_ARM_VCPU_POWER_OFF])
    vcpu.finalize(uapi.KVM_ARM_VCPU_REC)


def lower_breakpoints(realm):
    dfr0 = realm.vcpus[0].get_one_reg(uapi.REG_ID_AA64DFR0_EL1)
    realm.vcpus[0].set_one_reg(uapi.REG_ID_AA64DFR0_EL1, dfr0 & ~(0xF << 12) | 1 << 12)


def unknown_action(realm):
    realm.cap(5)


NONE, NEW, ACTIVE = RealmState.NONE, RealmState.NEW, RealmState.ACTIVE
TABLE = [
    # action, {state: errno name or None}; seed items in the comments
    (config, {NONE: None, NEW: "EBUSY", ACTIVE: "EBUSY"}),  # 002-02, §2.1 X2
    (create, {NONE: None, NEW: "EEXIST", ACTIVE: "EEXIST"}),  # §2.1 X1
    (init_ripas, {NONE: "EPERM", NEW: None, ACTIVE: "EPERM"}),
    (populate, {NONE: "EPERM", NEW: None, ACTIVE: "EPERM"}),
    (activate, {NONE: "EINVAL", NEW: None, ACTIVE: "EINVAL"}),
    (finalize_rec, {NONE: "ENOENT", NEW: None, ACTIVE: "ENOENT"}),  # kvm_create_rec
    (lower_breakpoints, {NONE: None, NEW: "EBUSY", ACTIVE: "EBUSY"}),  # v5 36/43
    (unknown_action, {NONE: "EINVAL", NEW: "EINVAL", ACTIVE: "EINVAL"}),  # §2.1 X3
]


@pytest.mark.parametrize("action, outcomes", TABLE, ids=[a.__name__ for a, _ in TABLE])
@pytest.mark.parametrize("state", [NONE, NEW, ACTIVE], ids=lambda s: s.value)
def test_each_realm_ioctl_in_each_state(action, outcomes, state):
    """What each KVM_CAP_ARM_RME action (and the ID register and finalize ioctls) does in
    each realm state; a refusal changes neither the state nor any page."""
    realm = to_state(state)
    before = (realm.vm.realm.state, realm.kvm.page_counts(), len(realm.kvm.rmi.trace))
    assert errno_of(lambda: action(realm)) == outcomes[state]
    if outcomes[state] is not None:
        after = (realm.vm.realm.state, realm.kvm.page_counts(), len(realm.kvm.rmi.trace))
        assert after == before


def test_realm_actions_on_a_normal_vm_are_einval():
    """§2.1 X3: KVM_ENABLE_CAP(KVM_CAP_ARM_RME) on a VM that is not a realm."""
    vm = new_kvm().create_vm(40)
    for action in range(5):
        with pytest.raises(KvmError) as e:
            vm.enable_cap(RME, action)
        assert e.value.errno == errno.EINVAL


def test_config_refuses_bad_items():
    """§2.1 X2: an unknown item or algorithm is EINVAL, a bad pointer EFAULT, an algorithm
    the RMM lacks EINVAL (checked against RMI feature register 0)."""
    realm = realm_vm()
    bad = [
        (uapi.ArmRmeConfig(7), "EINVAL"),
        (uapi.ArmRmeConfig(uapi.ARM_RME_CONFIG_HASH_ALGO, hash_algo=2), "EINVAL"),
        (uapi.ArmRmeConfig(uapi.ARM_RME_CONFIG_RPV, rpv=b"short"), "EINVAL"),
        (None, "EFAULT"),
        (b"\0" * 260, "EFAULT"),
    ]
    for cfg, expected in bad:
        assert errno_of(lambda cfg=cfg: realm.cap(uapi.KVM_CAP_ARM_RME_CONFIG_REALM, cfg)) == (
            expected
        )
    no512 = realm_vm(new_kvm(sha_512=False))
    assert errno_of(lambda: no512.cap(uapi.KVM_CAP_ARM_RME_CONFIG_REALM, SHA512)) == "EINVAL"


def test_configuration_reaches_realm_create():
    """002-02 class 3 and 002-22: the hash algorithm and RPV set by CONFIG are in the
    parameters RMI_REALM_CREATE reads (the RMM reports them in the realm's token claims;
    here, the hash algorithm shows in the length of the RIM)."""
    realm = realm_vm()
    realm.cap(uapi.KVM_CAP_ARM_RME_CONFIG_REALM, SHA512)
    realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    rim = realm.kvm.machine.realm_measurements(realm.vm.rd)[0]
    assert len(rim) == 64


def test_the_realm_state_progression():
    """002-05, §2.1 X1, X4: NONE, NEW after CREATE (params page freed), ACTIVE, and DEAD at
    destruction."""
    realm = realm_vm()
    kernel = realm.kvm.page_counts()["kernel"]
    assert realm.vm.realm.created is False
    realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    assert realm.vm.realm.state is RealmState.NEW and realm.vm.realm.params_page is None
    assert realm.kvm.page_counts()["kernel"] == kernel - 1 - realm.vm.pgd_pages
    realm.vcpus[0].finalize(uapi.KVM_ARM_VCPU_REC)
    realm.cap(uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)
    assert realm.vm.realm.state is RealmState.ACTIVE
    realm.vm.close()
    assert realm.vm.realm.state is RealmState.DEAD


def test_a_closed_vm_refuses_everything():
    realm = realm_vm()
    realm.vm.close()
    assert errno_of(lambda: realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)) == "EBADF"
    assert errno_of(lambda: realm.vm.create_vcpu(3)) == "EBADF"


# -- vCPUs ---------------------------------------------------------------------------------


def test_vcpu_init_features():
    """A realm vCPU needs KVM_ARM_VCPU_REC; REC on a normal VM, AArch32 and nested virt on a
    realm, unknown features and differing feature sets are EINVAL."""
    kvm = new_kvm()
    realm = kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 40)
    normal = kvm.create_vm(40)
    cases = [
        (realm, [uapi.KVM_ARM_VCPU_PSCI_0_2], "EINVAL"),
        (realm, [*REALM_FEATURES, uapi.KVM_ARM_VCPU_EL1_32BIT], "EINVAL"),
        (realm, [*REALM_FEATURES, uapi.KVM_ARM_VCPU_HAS_EL2], "EINVAL"),
        (realm, [*REALM_FEATURES, 12], "EINVAL"),
        (normal, REALM_FEATURES, "EINVAL"),
        (realm, REALM_FEATURES, None),
        (realm, [*REALM_FEATURES, uapi.KVM_ARM_VCPU_SVE], "EINVAL"),  # not what vCPU 0 has
        (realm, [*REALM_FEATURES, uapi.KVM_ARM_VCPU_POWER_OFF], None),  # POWER_OFF aside
    ]
    for i, (vm, features, expected) in enumerate(cases):
        vcpu = vm.create_vcpu(i)
        assert errno_of(lambda vcpu=vcpu, f=features: vcpu.init(f)) == expected, (i, features)
    assert errno_of(lambda: realm.create_vcpu(9).init(REALM_FEATURES, target=3)) == "EINVAL"


def test_vcpu_ids():
    vm = new_kvm().create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 40)
    vm.create_vcpu(0)
    assert errno_of(lambda: vm.create_vcpu(0)) == "EEXIST"
    assert errno_of(lambda: vm.create_vcpu(512)) == "EINVAL"
    assert errno_of(lambda: vm.create_vcpu(-1)) == "EINVAL"


def test_finalize_rec_needs_psci_0_2_and_an_initialised_vcpu():
    """kvm_create_rec: PSCI 0.2 or later is required (EINVAL); an uninitialised vCPU is
    ENOEXEC; a REC that exists is EBUSY; only SVE and REC can be finalized."""
    vm = new_kvm().create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 40)
    vcpu = vm.create_vcpu(0)
    vm.enable_cap(RME, uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    assert errno_of(lambda: vcpu.finalize(uapi.KVM_ARM_VCPU_REC)) == "ENOEXEC"
    vcpu.init([uapi.KVM_ARM_VCPU_REC])
    assert errno_of(lambda: vcpu.finalize(uapi.KVM_ARM_VCPU_REC)) == "EINVAL"
    realm = realm_vm()
    realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    realm.vcpus[0].finalize(uapi.KVM_ARM_VCPU_REC)
    assert errno_of(lambda: realm.vcpus[0].finalize(uapi.KVM_ARM_VCPU_REC)) == "EBUSY"
    assert errno_of(lambda: realm.vcpus[0].finalize(99)) == "EINVAL"
    assert errno_of(lambda: realm.vcpus[0].finalize(uapi.KVM_ARM_VCPU_SVE)) == "EINVAL"


def test_recs_must_be_created_in_mpidr_order():
    """RMI_REC_CREATE takes RECs in REC index order (Suzuki's review of v5 14/43): finalizing
    vCPU 1 first fails with ENXIO, and gives its pages back."""
    realm = realm_vm(vcpus=2)
    realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    before = realm.kvm.page_counts()
    assert errno_of(lambda: realm.vcpus[1].finalize(uapi.KVM_ARM_VCPU_REC)) == "ENXIO"
    assert realm.kvm.page_counts() == before
    realm.vcpus[0].finalize(uapi.KVM_ARM_VCPU_REC)
    realm.vcpus[1].finalize(uapi.KVM_ARM_VCPU_REC)


def test_a_vcpu_added_after_activation_never_runs():
    """§2.1 X7 (Gavin Shan on v8 06/43): nothing stops creating a vCPU after activation, but
    it cannot become a REC (ENOENT) and so cannot run (EPERM)."""
    realm = program_realm("t.kvm-idle")
    late = realm.vm.create_vcpu(1)
    late.init([*REALM_FEATURES, uapi.KVM_ARM_VCPU_POWER_OFF])
    assert errno_of(lambda: late.finalize(uapi.KVM_ARM_VCPU_REC)) == "ENOENT"
    assert errno_of(late.run) == "EPERM"


def test_run_needs_an_active_realm_a_rec_and_the_vgic():
    """kvm_vcpu_first_run_init: uninitialised ENOEXEC, not a REC of an active realm EPERM,
    no in-kernel irqchip EOPNOTSUPP (v5 15/43); a normal VM cannot run in the model."""
    kvm = new_kvm()
    vm = kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 40)
    vcpu = vm.create_vcpu(0)
    assert errno_of(vcpu.run) == "ENOEXEC"
    vcpu.init(REALM_FEATURES)
    assert errno_of(vcpu.run) == "EPERM"
    vm.enable_cap(RME, uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    vcpu.finalize(uapi.KVM_ARM_VCPU_REC)
    vm.enable_cap(RME, uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)
    assert errno_of(vcpu.run) == "EOPNOTSUPP"
    normal = kvm.create_vm(40).create_vcpu(0)
    assert errno_of(normal.run) == "ENOSYS"


def test_one_reg_access_for_realms():
    """v5 23/43, 41/43: a realm VMM may set X0-X7, the PC and three configuration registers;
    reading other core registers is EPERM, setting them EINVAL."""
    realm = realm_vm()
    vcpu = realm.vcpus[0]
    vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_X(7), 77)
    vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_PC, RAM)
    assert vcpu.get_one_reg(uapi.KVM_REG_ARM_CORE_X(7)) == 77
    assert errno_of(lambda: vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_X(8), 1)) == "EINVAL"
    assert errno_of(lambda: vcpu.get_one_reg(uapi.KVM_REG_ARM_CORE_X(8))) == "EPERM"
    assert errno_of(lambda: vcpu.set_one_reg(0x6030_0000_0013_DF1A, 1)) == "EINVAL"
    assert errno_of(lambda: vcpu.get_one_reg(uapi.KVM_REG_ARM64_SVE_VLS)) == "ENOENT"


def test_id_registers_carry_the_realm_parameters():
    """002-02 class 2, v5 35-39/43: DFR0 and PMCR.N start at the RMM's maxima; lowered by
    the VMM they become num_bps, num_wps, pmu_num_ctrs and sve_vl of RMI_REALM_CREATE."""
    realm = realm_vm(features=(uapi.KVM_ARM_VCPU_SVE, uapi.KVM_ARM_VCPU_PMU_V3))
    vcpu, kvm = realm.vcpus[0], realm.kvm
    dfr0 = vcpu.get_one_reg(uapi.REG_ID_AA64DFR0_EL1)
    assert (dfr0 >> 12) & 0xF == kvm.feat_reg0.num_bps & 0xF
    assert vcpu.get_one_reg(uapi.REG_PMCR_EL0) >> 11 == kvm.feat_reg0.pmu_num_ctrs
    assert vcpu.get_one_reg(uapi.KVM_REG_ARM64_SVE_VLS) == (1 << (kvm.feat_reg0.sve_vl + 1)) - 1
    too_many = dfr0 | 0xF << 12
    lowered = (dfr0 & ~(0xF << 12 | 0xF << 20 | 0xF << 28)) | 3 << 12 | 2 << 20 | 1 << 28
    assert errno_of(lambda: vcpu.set_one_reg(uapi.REG_ID_AA64DFR0_EL1, lowered & ~0xF)) == (
        "EINVAL"  # DebugVer below Armv8.0
    )
    if too_many != dfr0:
        assert errno_of(lambda: vcpu.set_one_reg(uapi.REG_ID_AA64DFR0_EL1, too_many)) == "E2BIG"
    vcpu.set_one_reg(uapi.REG_ID_AA64DFR0_EL1, lowered)
    vcpu.set_one_reg(uapi.REG_PMCR_EL0, 5 << 11)
    vcpu.set_one_reg(uapi.KVM_REG_ARM64_SVE_VLS, 0b1111)
    assert errno_of(lambda: vcpu.set_one_reg(uapi.KVM_REG_ARM64_SVE_VLS, 0b101)) == "EINVAL"
    assert errno_of(lambda: realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)) == "EINVAL"  # SVE
    assert realm.vm.realm.state is RealmState.NONE
    vcpu.finalize(uapi.KVM_ARM_VCPU_SVE)
    trace_from = len(kvm.rmi.trace)
    realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    assert realm.vm.realm.params.num_bps == 3 and realm.vm.realm.params.num_wps == 2
    assert realm.vm.realm.params.pmu_num_ctrs == 5 and realm.vm.realm.params.sve_vl == 3
    assert [c.command for c in kvm.rmi.trace[trace_from:]].count("RMI_REALM_CREATE") == 1
    assert errno_of(lambda: vcpu.set_one_reg(uapi.KVM_REG_ARM64_SVE_VLS, 0b1)) == "EPERM"


def test_create_with_unfinalized_sve_unwinds():
    """realm_init_sve_param fails after the RD and PGD are delegated: EINVAL, and the
    unwind gives every page back."""
    realm = realm_vm(features=(uapi.KVM_ARM_VCPU_SVE,))
    before = realm.kvm.page_counts()
    assert errno_of(lambda: realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)) == "EINVAL"
    assert realm.kvm.page_counts() == before and realm.vm.realm.state is RealmState.NONE


# -- VMIDs -----------------------------------------------------------------------------------


def test_vmids_come_from_the_realm_bitmap():
    """002-01, §2.1 X1/X4: each realm gets the lowest free VMID; destruction releases it."""
    kvm = new_kvm()
    realms = [realm_vm(kvm) for _ in range(3)]
    for r in realms:
        r.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    assert [r.vm.realm.vmid for r in realms] == [0, 1, 2]
    realms[1].vm.close()
    again = realm_vm(kvm)
    again.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    assert again.vm.realm.vmid == 1


def test_vmid_exhaustion_is_enomem():
    vmids = VmidAllocator(bits=1)
    assert [vmids.reserve(), vmids.reserve()] == [0, 1]
    with pytest.raises(KvmError) as e:
        vmids.reserve()
    assert e.value.errno == errno.ENOMEM
