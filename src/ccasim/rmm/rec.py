"""The Realm Execution Context: attributes of a REC (A2.3.2, C1.19)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ccasim.hw.pe import Trap
from ccasim.hw.vcpu import Vcpu
from ccasim.isa import VcpuStop
from ccasim.rmm.types import RecState, Ripas


class PsciPending(enum.Enum):
    """RmmPsciPending (C1.15)."""

    NONE = "NO_PSCI_REQUEST_PENDING"
    PENDING = "PSCI_REQUEST_PENDING"


class LastExit(enum.Enum):
    """What the most recent REC exit was, for the REC entry that follows it (A4.2)."""

    NONE = "none"
    EMULATABLE_ABORT = "emulatable data abort"
    UNPROTECTED_ABORT = "data abort at an Unprotected IPA"
    PSCI = "PSCI"
    RIPAS_CHANGE = "RIPAS change"
    HOST_CALL = "host call"
    WFX = "trapped WFI or WFE"
    OTHER = "other"


@dataclass(slots=True, eq=False)
class Rec:
    """RmmRec (C1.19), kept by the RMM for the REC granule at ``addr``.

    ``vcpu`` is the PE state the RMM saves on REC exit and restores on REC entry: the
    general-purpose registers (``rec.gprs``), the PC, the GIC and timer state and the position
    of the guest program.
    """

    addr: int
    owner: int
    mpidr: int
    aux: list[int]
    runnable: bool
    vcpu: Vcpu
    state: RecState = RecState.READY
    attest_in_progress: bool = False
    attest_challenge: bytes = bytes(64)
    attest_token: bytes = b""
    attest_offset: int = 0
    #: signing steps of the token left before its first part can be copied (A7.2.2)
    attest_sign_steps: int = 0
    emulatable_abort: bool = False
    psci_pending: PsciPending = PsciPending.NONE
    ripas_addr: int = 0
    ripas_top: int = 0
    ripas_value: Ripas = Ripas.EMPTY
    ripas_destroyed: bool = False
    ripas_response_reject: bool = False
    host_call_pending: bool = False
    host_call_addr: int = 0
    last_exit: LastExit = LastExit.NONE
    last_trap: Trap | None = None
    logged_stop: VcpuStop | None = None  # the vCPU stop the RMM's log last recorded
    sysregs: dict[str, int] = field(default_factory=dict)

    @property
    def gprs(self) -> list[int]:
        """X0..X30 (and a 32nd zero slot) as saved in the REC."""
        return self.vcpu.gprs

    @property
    def pc(self) -> int:
        return self.vcpu.pc
