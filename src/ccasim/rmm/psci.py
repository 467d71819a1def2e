"""PSCI for realms (B6): what the RMM does when a realm calls a PSCI function (A4.3.7)."""

from __future__ import annotations

from ccasim.psci import (
    AFFINITY_INFO_FIDS,
    CPU_ON_FIDS,
    PSCI_VERSION_1_1,
    PsciFid,
    PsciReturn,
    mpidr_el1_to_index,
)
from ccasim.rmi.types import RecExitReason
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.exits import ExitToHost, RecExitInfo
from ccasim.rmm.profile import Quirk
from ccasim.rmm.realm_call import RealmCall, set_result
from ccasim.rmm.rec import LastExit, PsciPending
from ccasim.rmm.types import RealmState
from ccasim.smccc import SMCCC_VERSION

#: PSCI functions a realm may call (A4.3.7); PSCI_FEATURES reports these as supported.
SUPPORTED = frozenset(PsciFid)
#: MPIDR_EL1 affinity fields a target_cpu may use: Aff0[3:0] (A2.3.3), Aff1, Aff2, Aff3.
MPIDR_AFFINITY = 0xFF_00FF_FF0F


def mpidr_is_used(call: RealmCall, mpidr: int) -> bool:
    """MpidrIsUsed (B3.24): the MPIDR names a REC that has been created in this realm."""
    return not mpidr & ~MPIDR_AFFINITY and mpidr_el1_to_index(mpidr) < call.realm.rec_index


def forward(call: RealmCall, fid: int, *args: int, pending: bool = False) -> ExitToHost:
    """A REC exit due to PSCI: exit.gprs[0] = FID, [1..3] the arguments (A4.3.3, A4.3.7)."""
    rec = call.rec
    rec.psci_pending = PsciPending.PENDING if pending else PsciPending.NONE
    rec.last_exit = LastExit.PSCI
    regs = [fid, *args][:4]
    regs += [0] * (4 - len(regs))
    rec.gprs[:4] = regs
    if not pending:  # completes without RMI_PSCI_COMPLETE: returns PSCI_SUCCESS on re-entry
        rec.gprs[0], rec.gprs[1], rec.gprs[2], rec.gprs[3] = 0, 0, 0, 0
    return ExitToHost(RecExitInfo(RecExitReason.PSCI, gprs=regs))


def handle_psci(call: RealmCall, fid: int) -> RecExitInfo | None:
    """Run PSCI function ``fid`` for the calling REC (B6.3) and log it."""
    rec = call.rec
    args = tuple(rec.gprs[1:4])
    try:
        result = psci_function(call, fid, *args)
    except CommandFailure as failure:
        set_result(rec, failure.status)
        call.log(fid, args, (failure.status,), failure.condition)
        return None
    except ExitToHost as exit_:
        call.log(fid, args, (), note=f"REC exit {exit_.info.reason.name}")
        return exit_.info
    set_result(rec, result)
    call.log(fid, args, (result,))
    return None


def psci_function(call: RealmCall, fid: int, x1: int, x2: int, x3: int) -> int:
    """One PSCI function: its return value. A function the host completes raises the REC
    exit that forwards it (ExitToHost)."""
    if fid == PsciFid.VERSION:
        return PSCI_VERSION_1_1
    if fid == PsciFid.FEATURES:
        func_id = x1 & 0xFFFF_FFFF
        supported = func_id in SUPPORTED or (
            func_id == SMCCC_VERSION and Quirk.SMCCC_VERSION_ANSWERED in call.rmm.quirks
        )
        return (PsciReturn.SUCCESS if supported else PsciReturn.NOT_SUPPORTED).encode()
    if fid in (PsciFid.CPU_SUSPEND, PsciFid.CPU_SUSPEND_32):
        raise forward(call, fid, x1 & 0xFFFF_FFFF, x2, x3)
    if fid == PsciFid.CPU_OFF:
        call.rec.runnable = False
        raise forward(call, fid)
    if fid in CPU_ON_FIDS:
        if not call.realm.is_protected(x2):
            raise CommandFailure("entry", PsciReturn.INVALID_ADDRESS.encode())
        if not mpidr_is_used(call, x1):
            raise CommandFailure("mpidr", PsciReturn.INVALID_PARAMETERS.encode())
        raise forward(call, fid, x1, x2, x3, pending=True)
    if fid in AFFINITY_INFO_FIDS:
        if x2 & 0xFFFF_FFFF != 0:
            raise CommandFailure("target_bound", PsciReturn.INVALID_PARAMETERS.encode())
        if not mpidr_is_used(call, x1):
            raise CommandFailure("target_match", PsciReturn.INVALID_PARAMETERS.encode())
        raise forward(call, fid, x1, x2 & 0xFFFF_FFFF, pending=True)
    if fid in (PsciFid.SYSTEM_OFF, PsciFid.SYSTEM_RESET):
        call.realm.state = RealmState.SYSTEM_OFF
        raise forward(call, fid)
    return PsciReturn.NOT_SUPPORTED.encode()
