"""RMI_REC_ENTER and RMI_PSCI_COMPLETE (B4.3.14, B4.3.7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccasim.psci import (
    AFFINITY_OFF,
    AFFINITY_ON,
    CPU_ON_FIDS,
    MASK64,
    PsciReturn,
    mpidr_el1_to_index,
)
from ccasim.rmi.status import Status
from ccasim.rmi.structs import RecEnter
from ccasim.rmi.types import ENTER_EMUL_MMIO, ENTER_INJECT_SEA, RecMpidr
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.execution import run_rec
from ccasim.rmm.gic import gicv3_config_is_valid
from ccasim.rmm.rec import LastExit, PsciPending, Rec
from ccasim.rmm.types import RealmState, RecState

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm


def rec_enter(rmm: Rmm, rec: int, run_ptr: int) -> tuple[int, ...]:
    """B4.3.14: run a REC until it exits; RmiRecExit in the run granule says why (A4).

    Ordering [rec_*, run_*] < [rec_state, rec_runnable, rec_mmio, realm_new, system_off,
    rec_gicv3, rec_psci]; among the latter the reference RMM's order is followed.
    """
    rmm.expect_ns_granule(run_ptr, "run")
    entered = rmm.find_rec(rec)
    if entered.state is RecState.RUNNING:
        raise CommandFailure("rec_state", Status.ERROR_REC)
    enter = RecEnter.unpack(rmm.read_ns_granule(run_ptr))
    realm = rmm.realms[entered.owner]
    if realm.state is RealmState.NEW:
        raise CommandFailure("realm_new", Status.ERROR_REALM, 0)
    if realm.state is RealmState.SYSTEM_OFF:
        raise CommandFailure("system_off", Status.ERROR_REALM, 1)
    if not entered.runnable:
        raise CommandFailure("rec_runnable", Status.ERROR_REC)
    if entered.psci_pending is PsciPending.PENDING:
        raise CommandFailure("rec_psci", Status.ERROR_REC)
    if not gicv3_config_is_valid(enter.gicv3_hcr, enter.gicv3_lrs, rmm.features.gicv3_num_lrs):
        raise CommandFailure("rec_gicv3", Status.ERROR_REC)
    emul_mmio = enter.flags & ENTER_EMUL_MMIO and not enter.flags & ENTER_INJECT_SEA  # A4.2.3
    if emul_mmio and not entered.emulatable_abort:
        raise CommandFailure("rec_mmio", Status.ERROR_REC)

    run_rec(rmm, entered, realm, run_ptr, enter)
    return ()


def psci_return_code_permitted(calling: Rec, target: Rec, status: int) -> bool:
    """PsciReturnCodePermitted (B3.27): SUCCESS, or DENIED to CPU_ON of a stopped target."""
    if status == PsciReturn.SUCCESS.encode():
        return True
    return (
        calling.gprs[0] in CPU_ON_FIDS
        and not target.runnable
        and status == PsciReturn.DENIED.encode()
    )


def psci_complete(rmm: Rmm, calling_rec: int, target_rec: int, status: int) -> tuple[int, ...]:
    """B4.3.7: complete the PSCI_CPU_ON or PSCI_AFFINITY_INFO that ``calling_rec`` made.

    All failures return RMI_ERROR_INPUT; the command has no failure ordering.
    """
    if calling_rec == target_rec:
        raise CommandFailure("alias")
    calling = rmm.find_rec(calling_rec, "calling", "state")
    target = rmm.find_rec(target_rec, "target", "state")
    if calling.psci_pending is not PsciPending.PENDING:
        raise CommandFailure("pending")
    if target.owner != calling.owner:
        raise CommandFailure("owner")
    if RecMpidr.decode(target.mpidr).rec_index() != mpidr_el1_to_index(calling.gprs[1]):
        raise CommandFailure("target")
    if not psci_return_code_permitted(calling, target, status):
        raise CommandFailure("status")

    fid = calling.gprs[0]
    if status != PsciReturn.SUCCESS.encode():
        result = status
    elif fid in CPU_ON_FIDS:
        if target.runnable:
            result = PsciReturn.ALREADY_ON.encode()
        else:
            entry, context_id = calling.gprs[2], calling.gprs[3]
            target.vcpu.reset(entry, context_id)
            # a fresh start: nothing of the REC's last exit is completed on its next entry
            target.last_exit, target.last_trap = LastExit.NONE, None
            target.runnable = True
            result = PsciReturn.SUCCESS.encode()
    else:  # a pending request is CPU_ON or AFFINITY_INFO (A4.3.7)
        result = AFFINITY_ON if target.runnable else AFFINITY_OFF
    calling.gprs[0] = result & MASK64
    calling.gprs[1] = calling.gprs[2] = calling.gprs[3] = 0
    calling.psci_pending = PsciPending.NONE
    return ()
