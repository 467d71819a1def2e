"""The KVM uAPI a realm VMM uses, with the names and numbers of Linux and of the Arm CCA host
series v8 (RMM 1.0), as ``../shared/research/seed-review-points.md`` collects them.

Ioctls are methods of :class:`~ccasim.kvm.Kvm`, :class:`~ccasim.kvm.Vm` and
:class:`~ccasim.kvm.Vcpu`; their argument structures are the dataclasses here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# -- capabilities (KVM_CHECK_EXTENSION, KVM_ENABLE_CAP) --------------------------------------

KVM_CAP_SET_GUEST_DEBUG = 23
KVM_CAP_ONE_REG = 70
KVM_CAP_READONLY_MEM = 81
KVM_CAP_ARM_PSCI = 87
KVM_CAP_ARM_PSCI_0_2 = 102
KVM_CAP_GUEST_DEBUG_HW_BPS = 119
KVM_CAP_GUEST_DEBUG_HW_WPS = 120
KVM_CAP_ARM_PMU_V3 = 126
KVM_CAP_IMMEDIATE_EXIT = 136
KVM_CAP_ARM_SVE = 170
KVM_CAP_STEAL_TIME = 224
KVM_CAP_USER_MEMORY2 = 231
KVM_CAP_MEMORY_ATTRIBUTES = 233
KVM_CAP_GUEST_MEMFD = 234
KVM_CAP_ARM_VM_IPA_SIZE = 165
#: The realm capability of the v8 series (earlier versions used 300, later ones 243/244).
KVM_CAP_ARM_RME = 240

# KVM_ENABLE_CAP(KVM_CAP_ARM_RME) actions, in args[0]
KVM_CAP_ARM_RME_CONFIG_REALM = 0
KVM_CAP_ARM_RME_CREATE_REALM = 1
KVM_CAP_ARM_RME_INIT_RIPAS_REALM = 2
KVM_CAP_ARM_RME_POPULATE_REALM = 3
KVM_CAP_ARM_RME_ACTIVATE_REALM = 4

# struct arm_rme_config.cfg
ARM_RME_CONFIG_RPV = 0
ARM_RME_CONFIG_HASH_ALGO = 1
ARM_RME_CONFIG_RPV_SIZE = 64
ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA256 = 0
ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA512 = 1

KVM_ARM_RME_POPULATE_FLAGS_MEASURE = 1 << 0

# -- VM types (KVM_CREATE_VM) ----------------------------------------------------------------

KVM_VM_TYPE_ARM_IPA_SIZE_MASK = 0xFF
KVM_VM_TYPE_ARM_SHIFT = 8
KVM_VM_TYPE_ARM_MASK = 0xF << KVM_VM_TYPE_ARM_SHIFT
KVM_VM_TYPE_ARM_NORMAL = 0 << KVM_VM_TYPE_ARM_SHIFT
KVM_VM_TYPE_ARM_REALM = 1 << KVM_VM_TYPE_ARM_SHIFT


def KVM_VM_TYPE_ARM_IPA_SIZE(bits: int) -> int:
    return bits & KVM_VM_TYPE_ARM_IPA_SIZE_MASK


# -- memory ----------------------------------------------------------------------------------

KVM_MEM_READONLY = 1 << 1
KVM_MEM_GUEST_MEMFD = 1 << 2
KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3

# -- SMCCC filter (KVM_SET_DEVICE_ATTR, group KVM_ARM_VM_SMCCC_CTRL) ---------------------------

KVM_SMCCC_FILTER_HANDLE = 0
KVM_SMCCC_FILTER_DENY = 1
KVM_SMCCC_FILTER_FWD_TO_USER = 2

# -- KVM_SET_VCPU_EVENTS, KVM_GET/SET_MP_STATE, KVM_IRQ_LINE -----------------------------------

KVM_MP_STATE_RUNNABLE = 0
KVM_MP_STATE_STOPPED = 5
KVM_MP_STATE_SUSPENDED = 9

KVM_ARM_IRQ_TYPE_SPI = 1
KVM_ARM_IRQ_TYPE_PPI = 2

# -- vCPU features (KVM_ARM_VCPU_INIT) and finalize --------------------------------------------

KVM_ARM_VCPU_POWER_OFF = 0
KVM_ARM_VCPU_EL1_32BIT = 1
KVM_ARM_VCPU_PSCI_0_2 = 2
KVM_ARM_VCPU_PMU_V3 = 3
KVM_ARM_VCPU_SVE = 4
KVM_ARM_VCPU_PTRAUTH_ADDRESS = 5
KVM_ARM_VCPU_PTRAUTH_GENERIC = 6
KVM_ARM_VCPU_HAS_EL2 = 7
#: The vCPU is a REC of a realm (v8; earlier versions used 7 or 8).
KVM_ARM_VCPU_REC = 9

#: KVM_ARM_VCPU_RMM_PSCI_COMPLETE = _IOW(KVMIO, 0xd6, struct kvm_arm_rmm_psci_complete) in
#: v8 (0xd2 before): the ioctl behind ``Vcpu.psci_complete``.
KVMIO = 0xAE
KVM_ARM_RMM_PSCI_COMPLETE_SIZE = 24  # u64 target_mpidr, u32 psci_status, u32 padding[3]
KVM_ARM_VCPU_RMM_PSCI_COMPLETE = 1 << 30 | KVM_ARM_RMM_PSCI_COMPLETE_SIZE << 16 | KVMIO << 8 | 0xD6

# -- ONE_REG ids ------------------------------------------------------------------------------

KVM_REG_ARM64 = 0x6000_0000_0000_0000
KVM_REG_SIZE_U64 = 0x0030_0000_0000_0000
KVM_REG_SIZE_U512 = 0x0060_0000_0000_0000
KVM_REG_ARM_CORE = 0x0010 << 16
KVM_REG_ARM64_SYSREG = 0x0013 << 16
KVM_REG_ARM64_SVE = 0x0015 << 16


def KVM_REG_ARM_CORE_X(n: int) -> int:
    """The id of Xn: struct user_pt_regs.regs[n], in 32-bit units."""
    return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (2 * n)


KVM_REG_ARM_CORE_PC = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (2 * 32)


def KVM_REG_ARM64_SYSREG_ID(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    encoding = op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2
    return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG | encoding


#: ID_AA64DFR0_EL1: BRPs [15:12], WRPs [23:20] and CTX_CMPs [31:28] (each the count minus
#: one), PMUVer [11:8], DebugVer [3:0].
REG_ID_AA64DFR0_EL1 = KVM_REG_ARM64_SYSREG_ID(3, 0, 0, 5, 0)
#: PMCR_EL0: N [15:11], the number of event counters.
REG_PMCR_EL0 = KVM_REG_ARM64_SYSREG_ID(3, 3, 9, 12, 0)
#: The SVE vector lengths the vCPU supports: bit (VQ - 1) for each VQ (in 128-bit units).
KVM_REG_ARM64_SVE_VLS = KVM_REG_ARM64 | KVM_REG_SIZE_U512 | KVM_REG_ARM64_SVE | 0xFFFF

DFR0_DEBUGVER_SHIFT = 0
DFR0_PMUVER_SHIFT = 8
DFR0_BRPS_SHIFT = 12
DFR0_WRPS_SHIFT = 20
DFR0_CTX_CMPS_SHIFT = 28
PMCR_N_SHIFT = 11

# -- KVM_RUN exits ------------------------------------------------------------------------------

KVM_EXIT_UNKNOWN = 0
KVM_EXIT_EXCEPTION = 1
KVM_EXIT_HYPERCALL = 3
KVM_EXIT_MMIO = 6
KVM_EXIT_SHUTDOWN = 8
KVM_EXIT_FAIL_ENTRY = 9
KVM_EXIT_INTR = 10
KVM_EXIT_INTERNAL_ERROR = 17
KVM_EXIT_SYSTEM_EVENT = 24
KVM_EXIT_MEMORY_FAULT = 39

KVM_SYSTEM_EVENT_SHUTDOWN = 1
KVM_SYSTEM_EVENT_RESET = 2

KVM_MEMORY_EXIT_FLAG_PRIVATE = 1 << 3
KVM_HYPERCALL_EXIT_SMC = 1 << 0
KVM_HYPERCALL_EXIT_16 = 1 << 1

EXIT_NAMES = {
    KVM_EXIT_UNKNOWN: "UNKNOWN",
    KVM_EXIT_EXCEPTION: "EXCEPTION",
    KVM_EXIT_HYPERCALL: "HYPERCALL",
    KVM_EXIT_MMIO: "MMIO",
    KVM_EXIT_SHUTDOWN: "SHUTDOWN",
    KVM_EXIT_FAIL_ENTRY: "FAIL_ENTRY",
    KVM_EXIT_INTR: "INTR",
    KVM_EXIT_INTERNAL_ERROR: "INTERNAL_ERROR",
    KVM_EXIT_SYSTEM_EVENT: "SYSTEM_EVENT",
    KVM_EXIT_MEMORY_FAULT: "MEMORY_FAULT",
}

# -- argument structures -----------------------------------------------------------------------


@dataclass
class ArmRmeConfig:
    """struct arm_rme_config: ``cfg`` selects which member of the union counts."""

    cfg: int
    rpv: bytes = bytes(ARM_RME_CONFIG_RPV_SIZE)
    hash_algo: int = 0


@dataclass
class ArmRmeInitRipas:
    """struct arm_rme_init_ripas."""

    base: int
    size: int
    reserved: tuple[int, int] = (0, 0)


@dataclass
class ArmRmePopulateRealm:
    """struct arm_rme_populate_realm."""

    base: int
    size: int
    flags: int = 0
    reserved: tuple[int, int, int] = (0, 0, 0)


@dataclass
class KvmUserspaceMemoryRegion2:
    """struct kvm_userspace_memory_region2 (KVM_SET_USER_MEMORY_REGION2)."""

    slot: int
    flags: int
    guest_phys_addr: int
    memory_size: int
    userspace_addr: int
    guest_memfd: object | None = None
    guest_memfd_offset: int = 0


@dataclass
class KvmMmioExit:
    phys_addr: int = 0
    data: bytes = b""
    len: int = 0
    is_write: bool = False


@dataclass
class KvmHypercallExit:
    """An SMCCC call forwarded to user space by the SMCCC filter (a realm's RSI_HOST_CALL or
    PSCI call): ``nr`` is the function ID (X0), ``flags`` KVM_HYPERCALL_EXIT_*. As in Linux
    the arguments are not copied here: the VMM reads X1.. with ``get_one_reg`` and sets the
    results with ``set_one_reg`` before the next ``run()``."""

    nr: int = 0
    flags: int = 0


@dataclass
class KvmSystemEventExit:
    type: int = 0
    ndata: int = 0
    data: tuple[int, ...] = ()


@dataclass
class KvmMemoryFaultExit:
    flags: int = 0
    gpa: int = 0
    size: int = 0


@dataclass
class KvmRun:
    """struct kvm_run: why KVM_RUN returned to user space, and the data of that exit.

    ``ret`` is what the ioctl returned: 0, or -EFAULT with a MEMORY_FAULT exit and -EINTR with
    an INTR exit (the two errors that come with an exit reason; ``Vcpu.run`` returns this
    structure for them and raises :class:`~ccasim.kvm.KvmError` for every other error).
    """

    exit_reason: int = KVM_EXIT_UNKNOWN
    ret: int = 0
    immediate_exit: bool = False
    mmio: KvmMmioExit = field(default_factory=KvmMmioExit)
    hypercall: KvmHypercallExit = field(default_factory=KvmHypercallExit)
    system_event: KvmSystemEventExit = field(default_factory=KvmSystemEventExit)
    memory_fault: KvmMemoryFaultExit = field(default_factory=KvmMemoryFaultExit)
    internal_error: str = ""

    @property
    def exit_name(self) -> str:
        return EXIT_NAMES.get(self.exit_reason, str(self.exit_reason))
