"""The Realm Execution Context: attributes of a REC (A2.3.2, C1.19)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ccasim.rmm.types import RecState, Ripas


class PsciPending(enum.Enum):
    """RmmPsciPending (C1.15)."""

    NONE = "NO_PSCI_REQUEST_PENDING"
    PENDING = "PSCI_REQUEST_PENDING"


@dataclass(slots=True, eq=False)
class Rec:
    """RmmRec (C1.19), kept by the RMM for the REC granule at ``addr``."""

    addr: int
    owner: int
    mpidr: int
    pc: int
    gprs: list[int]
    aux: list[int]
    runnable: bool
    state: RecState = RecState.READY
    attest_in_progress: bool = False
    attest_challenge: bytes = bytes(64)
    emulatable_abort: bool = False
    psci_pending: PsciPending = PsciPending.NONE
    ripas_addr: int = 0
    ripas_top: int = 0
    ripas_value: Ripas = Ripas.EMPTY
    ripas_destroyed: bool = False
    ripas_response_reject: bool = False
    host_call_pending: bool = False
    sysregs: dict[str, int] = field(default_factory=dict)
