"""REC exit syndromes (A4.3): what the RMM reports in RmiRecExit for each kind of exit."""

from __future__ import annotations

from dataclasses import dataclass, field

from ccasim.arch.vmsa import GRANULE_MASK
from ccasim.rmi.types import RecExitReason

# ESR_ELx exception classes
EC_WFX = 0x01
EC_INSTRUCTION_ABORT_LOWER = 0x20
EC_DATA_ABORT_LOWER = 0x24
ESR_EC_SHIFT = 26
ESR_IL = 1 << 25
# Data Abort ISS
ISS_ISV = 1 << 24
ISS_SAS_SHIFT = 22
ISS_SF = 1 << 15
ISS_WNR = 1 << 6
# Fault status codes: translation and permission faults at a level (0b0001LL, 0b0011LL).
FSC_TRANSLATION = 0b000100
FSC_PERMISSION = 0b001100
# WFx ISS.TI
TI_WFI = 0b00
TI_WFE = 0b01


@dataclass
class RecExitInfo:
    """The fields of RmiRecExit (B4.4.16) that an exit sets; everything else is zero
    except the GIC, timer and PMU state, which every exit reports (A4.3.1)."""

    reason: RecExitReason
    esr: int = 0
    far: int = 0
    hpfar: int = 0
    gprs: list[int] = field(default_factory=list)
    ripas_base: int = 0
    ripas_top: int = 0
    ripas_value: int = 0
    imm: int = 0


class ExitToHost(Exception):
    """The command or completion running for a REC needs the host: the REC exits with
    ``info``. RSI and PSCI handlers raise it, as they raise CommandFailure for a failure."""

    def __init__(self, info: RecExitInfo) -> None:
        super().__init__(info.reason.name)
        self.info = info


class CompletedThenExit(ExitToHost):
    """The command completed with ``result`` (in the REC's registers when the realm runs
    again), and the REC exits with ``info`` before it does: an interrupted command that
    returns RSI_INCOMPLETE (A7.2.2)."""

    def __init__(self, info: RecExitInfo, result: tuple[int, ...]) -> None:
        super().__init__(info)
        self.result = result


def fault_status(level: int, permission: bool = False) -> int:
    """DFSC/IFSC of a stage 2 translation (or permission) fault at RTT ``level``."""
    return (FSC_PERMISSION if permission else FSC_TRANSLATION) | (level & 0b11)


def hpfar(ipa: int) -> int:
    """HPFAR_EL2: FIPA holds IPA[51:12] in bits [43:4]."""
    return (ipa >> 12) << 4


def data_abort(
    ipa: int,
    level: int,
    *,
    emulatable: bool = False,
    unprotected: bool = False,
    size: int = 0,
    write: bool = False,
    permission: bool = False,
) -> RecExitInfo:
    """REC exit due to Data Abort (A4.3.4.3).

    Every data abort reports EC and DFSC and HPFAR. An Emulatable one adds ISV, SAS, SF, WnR
    and FAR (masked to the granule offset); a non-emulatable one at an Unprotected IPA adds IL.
    """
    esr = EC_DATA_ABORT_LOWER << ESR_EC_SHIFT | fault_status(level, permission)
    far = 0
    if emulatable:
        esr |= ISS_ISV | (size.bit_length() - 1) << ISS_SAS_SHIFT
        esr |= (ISS_SF if size == 8 else 0) | (ISS_WNR if write else 0)
        far = ipa & GRANULE_MASK
    elif unprotected:
        esr |= ESR_IL
    return RecExitInfo(RecExitReason.SYNC, esr=esr, far=far, hpfar=hpfar(ipa))


def instruction_abort(ipa: int, level: int) -> RecExitInfo:
    """REC exit due to Instruction Abort (A4.3.4.2): EC, IFSC and HPFAR."""
    esr = EC_INSTRUCTION_ABORT_LOWER << ESR_EC_SHIFT | fault_status(level)
    return RecExitInfo(RecExitReason.SYNC, esr=esr, hpfar=hpfar(ipa))


def wfx(wfe: bool) -> RecExitInfo:
    """REC exit due to WFI or WFE (A4.3.4.1): EC and ISS.TI."""
    return RecExitInfo(RecExitReason.SYNC, esr=EC_WFX << ESR_EC_SHIFT | (TI_WFE if wfe else TI_WFI))
