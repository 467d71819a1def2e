"""PSCI function IDs and return codes used by realms (B6.4; Arm PSCI, DEN0022)."""

import enum

from ccasim.arch.registers import MASK64


class PsciFid(enum.IntEnum):
    VERSION = 0x8400_0000
    CPU_SUSPEND_32 = 0x8400_0001
    CPU_OFF = 0x8400_0002
    CPU_ON_32 = 0x8400_0003
    AFFINITY_INFO_32 = 0x8400_0004
    SYSTEM_OFF = 0x8400_0008
    SYSTEM_RESET = 0x8400_0009
    FEATURES = 0x8400_000A
    CPU_SUSPEND = 0xC400_0001
    CPU_ON = 0xC400_0003
    AFFINITY_INFO = 0xC400_0004


class PsciReturn(enum.IntEnum):
    """PsciReturnCode (B6.4.1) as signed values."""

    SUCCESS = 0
    NOT_SUPPORTED = -1
    INVALID_PARAMETERS = -2
    DENIED = -3
    ALREADY_ON = -4
    ON_PENDING = -5
    INTERNAL_FAILURE = -6
    NOT_PRESENT = -7
    DISABLED = -8
    INVALID_ADDRESS = -9

    def encode(self) -> int:
        """PsciReturnCodeEncode (B3.26): the 64-bit register value."""
        return self.value & MASK64


#: The SMC32 and SMC64 PSCI function ID ranges (SMCCC Standard Service Calls 0x00-0x1F).
PSCI_FID_RANGES = ((0x8400_0000, 0x8400_001F), (0xC400_0000, 0xC400_001F))

#: PSCI 1.1, the version the RMM implements (B6.2).
PSCI_VERSION_1_1 = 0x1_0001

#: AFFINITY_INFO results.
AFFINITY_ON = 0
AFFINITY_OFF = 1

CPU_ON_FIDS = (PsciFid.CPU_ON, PsciFid.CPU_ON_32)
AFFINITY_INFO_FIDS = (PsciFid.AFFINITY_INFO, PsciFid.AFFINITY_INFO_32)


def mpidr_el1_to_index(mpidr: int) -> int:
    """REC index (A2.3.3) of the vCPU a realm names by an MPIDR_EL1-format value.

    MPIDR_EL1 holds Aff0..Aff2 in bits [23:0] and Aff3 in bits [39:32].
    """
    return (
        (mpidr & 0xF)
        | ((mpidr >> 8) & 0xFF) << 4
        | ((mpidr >> 16) & 0xFF) << 12
        | ((mpidr >> 32) & 0xFF) << 20
    )
