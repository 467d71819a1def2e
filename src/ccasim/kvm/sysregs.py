"""The registers a realm VMM may read and write with ONE_REG (``guest.c`` and ``sys_regs.c``
of the series), and the VM-wide ID register values realm parameters come from.

The series sets the architecture features of a realm through ID registers, not through
KVM_CAP_ARM_RME_CONFIG_REALM (seed 002-02 class 2): breakpoints and watchpoints through
ID_AA64DFR0_EL1, PMU counters through PMCR_EL0.N, the SVE vector length through
KVM_REG_ARM64_SVE_VLS. Their reset values are the RMM's maxima (RMI feature register 0), a
VMM may lower them, and they are fixed once the RD exists.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ccasim.arch.registers import MASK64
from ccasim.kvm import uapi
from ccasim.kvm.errors import fail, integer

if TYPE_CHECKING:
    from ccasim.kvm.vcpu import Vcpu
    from ccasim.kvm.vm import Vm

#: ID_AA64DFR0_EL1.DebugVer of Armv8.0 debug (ID_AA64DFR0_EL1_DebugVer_IMP).
DEBUGVER_IMP = 0x6
#: Debug resources of the modelled host CPU, for VMs that are not realms (count minus one).
HOST_BRPS, HOST_WRPS, HOST_CTX_CMPS = 5, 3, 1
#: PMU event counters of the modelled host CPU.
HOST_PMU_COUNTERS = 6
#: The largest SVE vector length of the modelled host CPU, in 128-bit quadwords.
HOST_SVE_MAX_VQ = 16
FIELD4 = 0xF


def field(value: int, shift: int) -> int:
    return (value >> shift) & FIELD4


class VmSysregs:
    """The VM-wide ID register values and PMU configuration of one VM."""

    def __init__(self, vm: Vm) -> None:
        self.vm = vm
        if vm.is_realm:
            feat = vm.kvm.feat_reg0
            bps, wps = feat.num_bps & FIELD4, feat.num_wps & FIELD4
            self.max_pmu_counters = feat.pmu_num_ctrs if feat.pmu_en else 0
            self.max_sve_vq = feat.sve_vl + 1 if feat.sve_en else 0
        else:
            bps, wps = HOST_BRPS, HOST_WRPS
            self.max_pmu_counters = HOST_PMU_COUNTERS
            self.max_sve_vq = HOST_SVE_MAX_VQ
        ctx_cmps = min(bps, HOST_CTX_CMPS)
        #: The sanitised (maximum) value: a write may lower a field, not raise it.
        self.dfr0_max = (
            DEBUGVER_IMP << uapi.DFR0_DEBUGVER_SHIFT
            | bps << uapi.DFR0_BRPS_SHIFT
            | wps << uapi.DFR0_WRPS_SHIFT
            | ctx_cmps << uapi.DFR0_CTX_CMPS_SHIFT
        )
        self.dfr0 = self.dfr0_max
        self.pmcr_n = self.max_pmu_counters
        #: kvm->arch.arm_pmu: set when a vCPU is initialised with KVM_ARM_VCPU_PMU_V3.
        self.pmu = False

    @property
    def fixed(self) -> bool:
        """The ID registers are immutable once the VM ran or its RD exists."""
        return self.vm.has_run or (self.vm.is_realm and self.vm.realm.created)

    def set_dfr0(self, value: int) -> None:
        """set_id_aa64dfr0_el1: DebugVer at least IMP, BRPs and WRPs above zero, CTX_CMPs
        not above BRPs (EINVAL); no field above the sanitised value (E2BIG); once fixed,
        only the current value (EBUSY)."""
        debugver = field(value, uapi.DFR0_DEBUGVER_SHIFT)
        bps, wps = field(value, uapi.DFR0_BRPS_SHIFT), field(value, uapi.DFR0_WRPS_SHIFT)
        ctx = field(value, uapi.DFR0_CTX_CMPS_SHIFT)
        if debugver < DEBUGVER_IMP or not bps or not wps or ctx > bps:
            raise fail(errno.EINVAL, f"ID_AA64DFR0_EL1 {value:#x}: invalid debug fields")
        known = (FIELD4 << uapi.DFR0_DEBUGVER_SHIFT) | (FIELD4 << uapi.DFR0_BRPS_SHIFT)
        known |= (FIELD4 << uapi.DFR0_WRPS_SHIFT) | (FIELD4 << uapi.DFR0_CTX_CMPS_SHIFT)
        if value & ~known & MASK64 or any(
            field(value, s) > field(self.dfr0_max, s)
            for s in (uapi.DFR0_BRPS_SHIFT, uapi.DFR0_WRPS_SHIFT, uapi.DFR0_CTX_CMPS_SHIFT)
        ):
            raise fail(errno.E2BIG, f"ID_AA64DFR0_EL1 {value:#x} exceeds {self.dfr0_max:#x}")
        if self.fixed:
            if value != self.dfr0:
                raise fail(errno.EBUSY, "the ID registers are fixed once the RD exists")
            return
        self.dfr0 = value

    def set_pmcr(self, value: int) -> None:
        """set_pmcr: PMCR_EL0.N is taken only while the ID registers may change and only if
        it is not above the RMM's maximum; otherwise it is ignored, as Linux does."""
        n = (value >> uapi.PMCR_N_SHIFT) & 0x1F
        if not self.fixed and n <= self.max_pmu_counters:
            self.pmcr_n = n

    def realm_sve_vq(self, vcpus: list[Vcpu]) -> int:
        """realm_init_sve_param: the vector length every vCPU agrees on, in quadwords (0: no
        SVE); EINVAL if a vCPU with SVE is not finalized or two vCPUs differ."""
        agreed = -1
        for vcpu in vcpus:
            if vcpu.has_sve:
                if not vcpu.sve_finalized:
                    raise fail(errno.EINVAL, f"vCPU {vcpu.vcpu_id}: SVE is not finalized")
                vq = vcpu.sve_max_vq
            else:
                vq = 0
            if agreed >= 0 and vq != agreed:
                raise fail(errno.EINVAL, "the vCPUs have different SVE vector lengths")
            agreed = vq
        return max(agreed, 0)


# -- ONE_REG ------------------------------------------------------------------------------------

CORE_X = {uapi.KVM_REG_ARM_CORE_X(n): n for n in range(31)}
#: The core registers a realm VMM may access: X0..X7 and the PC (rec_params.gprs and .pc).
REALM_CORE = {uapi.KVM_REG_ARM_CORE_X(n) for n in range(8)} | {uapi.KVM_REG_ARM_CORE_PC}
REALM_SETTABLE = REALM_CORE | {
    uapi.REG_PMCR_EL0,
    uapi.REG_ID_AA64DFR0_EL1,
    uapi.KVM_REG_ARM64_SVE_VLS,
}


def get_one_reg(vcpu: Vcpu, reg_id: int) -> int:
    """KVM_GET_ONE_REG."""
    reg_id = integer(reg_id, "the register id")
    realm = vcpu.vm.is_realm
    if reg_id in CORE_X or reg_id == uapi.KVM_REG_ARM_CORE_PC:
        if realm and reg_id not in REALM_CORE:
            raise fail(errno.EPERM, "a realm's registers other than X0-X7 and PC are hidden")
        return vcpu.pc if reg_id == uapi.KVM_REG_ARM_CORE_PC else vcpu.regs[CORE_X[reg_id]]
    if reg_id == uapi.REG_ID_AA64DFR0_EL1:
        return vcpu.vm.sysregs.dfr0
    if reg_id == uapi.REG_PMCR_EL0:
        return vcpu.vm.sysregs.pmcr_n << uapi.PMCR_N_SHIFT
    if reg_id == uapi.KVM_REG_ARM64_SVE_VLS:
        if not vcpu.has_sve:
            raise fail(errno.ENOENT, "the vCPU has no SVE")
        return (1 << vcpu.sve_max_vq) - 1
    raise fail(errno.ENOENT, f"no register {reg_id:#x}")


def set_one_reg(vcpu: Vcpu, reg_id: int, value: int) -> None:
    """KVM_SET_ONE_REG; a realm VMM may set only X0-X7, the PC and the three configuration
    registers (validate_realm_set_reg: EINVAL for anything else)."""
    vm = vcpu.vm
    reg_id = integer(reg_id, "the register id")
    size = 512 if reg_id == uapi.KVM_REG_ARM64_SVE_VLS else 64
    value = integer(value, "the value", size, code=errno.EFAULT)
    if vm.is_realm and reg_id not in REALM_SETTABLE:
        raise fail(errno.EINVAL, f"a realm VMM cannot set register {reg_id:#x}")
    if reg_id == uapi.KVM_REG_ARM_CORE_PC:
        vcpu.pc = value & MASK64
    elif reg_id in CORE_X:
        vcpu.regs[CORE_X[reg_id]] = value & MASK64
    elif reg_id == uapi.REG_ID_AA64DFR0_EL1:
        vm.sysregs.set_dfr0(value)
    elif reg_id == uapi.REG_PMCR_EL0:
        vm.sysregs.set_pmcr(value)
    elif reg_id == uapi.KVM_REG_ARM64_SVE_VLS:
        set_sve_vls(vcpu, value)
    else:
        raise fail(errno.ENOENT, f"no register {reg_id:#x}")


def set_sve_vls(vcpu: Vcpu, vqs: int) -> None:
    """set_sve_vls: the set of vector lengths, bit (VQ - 1) for each; it must be every
    length up to its largest, which must not exceed the RMM's."""
    if not vcpu.has_sve:
        raise fail(errno.ENOENT, "the vCPU has no SVE")
    if vcpu.sve_finalized or (vcpu.vm.is_realm and vcpu.vm.realm.created):
        raise fail(errno.EPERM, "too late: SVE is finalized or the RD exists")
    if vqs <= 0:
        raise fail(errno.EINVAL, "no vector length")
    max_vq = vqs.bit_length()
    if max_vq > vcpu.vm.sysregs.max_sve_vq:
        raise fail(errno.EINVAL, f"VQ {max_vq} is above the maximum")
    if vqs != (1 << max_vq) - 1:
        raise fail(errno.EINVAL, "the host supports every vector length up to the largest")
    vcpu.sve_max_vq = max_vq
