"""Running a REC (A4): REC entry, the run loop, the handling of exceptions taken from the
realm, and REC exit. RMI_REC_ENTER calls :func:`run_rec` once its failure conditions pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccasim import smccc
from ccasim.arch.gicv3 import HCR_EOICOUNT_MASK
from ccasim.arch.vmsa import GRANULE_MASK
from ccasim.hw.pe import Trap, TrapKind
from ccasim.isa import StopReason, SynchronousExternalAbort, UndefinedInstruction, VcpuStop, Wfi
from ccasim.psci import PSCI_FID_RANGES
from ccasim.rmi.levels import RTT_PAGE_LEVEL
from ccasim.rmi.structs import REC_RUN_EXIT_OFFSET, RecEnter, RecExit
from ccasim.rmi.types import (
    ENTER_EMUL_MMIO,
    ENTER_INJECT_SEA,
    ENTER_RIPAS_RESPONSE_REJECT,
    ENTER_TRAP_WFE,
    ENTER_TRAP_WFI,
    RecExitReason,
)
from ccasim.rmm import exits
from ccasim.rmm.exits import ExitToHost, RecExitInfo
from ccasim.rmm.gic import ICH_HCR_HOST_BITS
from ccasim.rmm.profile import Quirk
from ccasim.rmm.psci import handle_psci
from ccasim.rmm.realm import Realm
from ccasim.rmm.realm_call import RealmCall, set_result
from ccasim.rmm.rec import LastExit, Rec
from ccasim.rmm.rsi import handle_rsi
from ccasim.rmm.rsi.host_call import complete_host_call
from ccasim.rmm.s2tt import ASSIGNED_NS, DESTROYED, EMPTY, RAM, UNASSIGNED
from ccasim.rmm.stage2 import RealmStage2
from ccasim.rmm.types import RecState
from ccasim.rsi import RSI_FID_FIRST, RSI_FID_LAST, RsiStatus
from ccasim.smccc import NOT_SUPPORTED as SMCCC_NOT_SUPPORTED

if TYPE_CHECKING:
    from collections.abc import Callable

    from ccasim.rmm.core import Rmm


def run_rec(rmm: Rmm, rec: Rec, realm: Realm, run_ptr: int, enter: RecEnter) -> None:
    """REC entry, realm execution until a REC exit, and the exit record in ``run_ptr``."""
    rec.state = RecState.RUNNING
    try:
        last, trap = restore(rmm, rec, enter)
        complete = COMPLETIONS.get(last)
        try:
            if complete is not None:
                complete(rmm, rec, realm, enter, trap)
            info = run_loop(rmm, rec, realm, enter)
        except ExitToHost as exit_:  # completing the last exit needs the host again
            info = exit_.info
    finally:
        rec.state = RecState.READY
    record_exit(rmm, rec, info, run_ptr)
    rmm.note = f"exit {info.reason.name}" + (f" ESR {info.esr:#x}" if info.esr else "")


# -- REC entry (A4.2) ----------------------------------------------------------------------


def restore(rmm: Rmm, rec: Rec, enter: RecEnter) -> tuple[LastExit, Trap | None]:
    """Restore the REC's GIC state from ``enter``; return what the last REC exit was."""
    vcpu = rec.vcpu
    num_lrs = rmm.features.gicv3_num_lrs
    vcpu.gicv3_lrs[:num_lrs] = enter.gicv3_lrs[:num_lrs]
    vcpu.gicv3_hcr = enter.gicv3_hcr & ICH_HCR_HOST_BITS
    if rmm.pe.timer_asserted(vcpu):  # A6.2: let the realm make progress
        vcpu.timer_masked = True
    last, trap = rec.last_exit, rec.last_trap
    rec.last_exit, rec.last_trap = LastExit.NONE, None
    rec.emulatable_abort = False
    return last, trap


def complete_sea_injection(
    rmm: Rmm, rec: Rec, realm: Realm, enter: RecEnter, trap: Trap | None
) -> None:
    """A4.2.4: after a data abort at an Unprotected IPA the host may inject an SEA."""
    if enter.flags & ENTER_INJECT_SEA and trap is not None:
        rec.vcpu.take_exception(SynchronousExternalAbort(trap.ipa, "injected by the host"))


def complete_emulatable_abort(
    rmm: Rmm, rec: Rec, realm: Realm, enter: RecEnter, trap: Trap | None
) -> None:
    """A4.2.3: the host emulated the access (EMUL_MMIO): a write completes, a read returns
    enter.gprs[0] in the register ISS.SRT names. SEA injection takes precedence."""
    flags = enter.flags
    if flags & ENTER_INJECT_SEA:
        complete_sea_injection(rmm, rec, realm, enter, trap)
    elif flags & ENTER_EMUL_MMIO and trap is not None:
        if trap.write:
            rec.vcpu.complete()
        else:
            value = enter.gprs[0] & ((1 << (8 * trap.size)) - 1)
            rec.vcpu.complete(value.to_bytes(trap.size, "little"))


def complete_ripas_change(
    rmm: Rmm, rec: Rec, realm: Realm, enter: RecEnter, trap: Trap | None
) -> None:
    """A4.2.6, B5.3.6: RSI_IPA_STATE_SET returns how far the host got and whether it
    rejected the change (RecRipasChangeResponse, B3.40)."""
    rec.ripas_response_reject = bool(enter.flags & ENTER_RIPAS_RESPONSE_REJECT)
    reject = rec.ripas_value is RAM and rec.ripas_addr != rec.ripas_top
    reject = reject and rec.ripas_response_reject
    set_result(rec, RsiStatus.SUCCESS, rec.ripas_addr, int(reject))
    rec.ripas_addr = rec.ripas_top = 0


def complete_psci(rmm: Rmm, rec: Rec, realm: Realm, enter: RecEnter, trap: Trap | None) -> None:
    """A4.3.7: the PSCI call returns what the RMM (or RMI_PSCI_COMPLETE) put in X0..X3."""
    rec.vcpu.complete_smc()


def complete_wfx(rmm: Rmm, rec: Rec, realm: Realm, enter: RecEnter, trap: Trap | None) -> None:
    """A trapped WFI or WFE is not executed again: the reference RMM advances the PC past it
    on the REC exit (``advance_pc()``), so the realm carries on after it. A WFI then reads
    ICC_IAR1_EL1 as its program does after waking (the spurious INTID if nothing is pending),
    with the list registers this entry restored."""
    vcpu = rec.vcpu
    if isinstance(vcpu.pending, Wfi):
        vcpu.complete(rmm.pe.acknowledge(vcpu))
    else:
        vcpu.complete()


#: What REC entry finishes for each kind of REC exit (A4.2); other exits need nothing.
COMPLETIONS: dict[LastExit, Callable[[Rmm, Rec, Realm, RecEnter, Trap | None], None]] = {
    LastExit.EMULATABLE_ABORT: complete_emulatable_abort,
    LastExit.UNPROTECTED_ABORT: complete_sea_injection,
    LastExit.RIPAS_CHANGE: complete_ripas_change,
    LastExit.HOST_CALL: complete_host_call,
    LastExit.PSCI: complete_psci,
    LastExit.WFX: complete_wfx,
}


# -- running -----------------------------------------------------------------------------


def run_loop(rmm: Rmm, rec: Rec, realm: Realm, enter: RecEnter) -> RecExitInfo:
    """Run the REC, handling exceptions the RMM resolves itself, until one needs the host."""
    stage2 = RealmStage2(rmm, realm)
    trap_wfi = bool(enter.flags & ENTER_TRAP_WFI)
    trap_wfe = bool(enter.flags & ENTER_TRAP_WFE)
    call = RealmCall(rmm, realm, rec)
    for _ in range(rmm.pe.time_slice):
        trap = rmm.pe.run(rec.vcpu, stage2, trap_wfi, trap_wfe)
        call.log_stop()
        info = handle_trap(call, trap)
        if info is not None:
            return info
    return RecExitInfo(RecExitReason.IRQ)  # the host's scheduler tick


def handle_trap(call: RealmCall, trap: Trap) -> RecExitInfo | None:
    """Handle an exception taken to R-EL2 (A4.3.4): resume the realm (None) or exit."""
    rec = call.rec
    kind = trap.kind
    if kind is TrapKind.SMC:
        return handle_smc(call)
    if kind is TrapKind.HVC:  # A4.5: an Unknown exception taken to the realm
        rec.vcpu.take_exception(UndefinedInstruction("HVC in a realm"))
        return None
    if kind is TrapKind.DATA_ABORT:
        return handle_data_abort(call, trap)
    if kind is TrapKind.INSTRUCTION_ABORT:
        return handle_instruction_abort(call, trap)
    if kind is TrapKind.WFI or kind is TrapKind.WFE:
        rec.last_exit, rec.last_trap = LastExit.WFX, trap
        return exits.wfx(kind is TrapKind.WFE)
    return RecExitInfo(RecExitReason.IRQ)


def handle_smc(call: RealmCall) -> RecExitInfo | None:
    """An SMC from the realm: RSI, PSCI, or SMCCC_NOT_SUPPORTED for anything else (A4.3.4)."""
    fid = smccc.function_id(call.rec.gprs[0])
    call.registers = tuple(call.rec.gprs[1:8])
    if RSI_FID_FIRST <= fid <= RSI_FID_LAST:
        return handle_rsi(call, fid)
    if any(first <= fid <= last for first, last in PSCI_FID_RANGES):
        return handle_psci(call, fid)
    if fid == smccc.SMCCC_VERSION and Quirk.SMCCC_VERSION_ANSWERED in call.rmm.quirks:
        set_result(call.rec, smccc.VERSION_1_2)
        call.log(fid, (), (smccc.VERSION_1_2,))
        return None
    set_result(call.rec, SMCCC_NOT_SUPPORTED)
    call.log(fid, (), (SMCCC_NOT_SUPPORTED,))
    return None


def handle_data_abort(call: RealmCall, trap: Trap) -> RecExitInfo | None:
    """A stage 2 data abort (A5.2.9): an SEA to the realm, or a REC exit due to Data Abort."""
    realm, rec = call.realm, call.rec
    ipa = trap.ipa
    if not ipa < 1 << realm.ipa_width:
        rec.vcpu.take_exception(SynchronousExternalAbort(ipa, "address size fault"))
        return None
    walk = call.rmm.rtt_walk(realm, ipa & ~GRANULE_MASK, RTT_PAGE_LEVEL)
    if realm.is_protected(ipa):
        if walk.rtte.ripas is EMPTY:
            rec.vcpu.take_exception(SynchronousExternalAbort(ipa, "RIPAS is EMPTY"))
            return None
        rec.last_exit, rec.last_trap = LastExit.OTHER, trap  # RAM unassigned, or DESTROYED
        return exits.data_abort(ipa, walk.level)
    # Unprotected IPA: emulatable when the syndrome is valid (a 1-8 byte access, ISV = 1)
    level = walk.level
    emulatable = trap.size <= 8 and (walk.rtte.state is not ASSIGNED_NS or trap.permission)
    rec.last_exit = LastExit.EMULATABLE_ABORT if emulatable else LastExit.UNPROTECTED_ABORT
    rec.last_trap = trap
    rec.emulatable_abort = emulatable
    info = exits.data_abort(
        ipa,
        level,
        emulatable=emulatable,
        unprotected=True,
        size=trap.size,
        write=trap.write,
        permission=trap.permission,
    )
    if emulatable and trap.write:  # A4.3.4.3: the value written, for the host to emulate
        info.gprs = [int.from_bytes(trap.data, "little")]
    return info


def handle_instruction_abort(call: RealmCall, trap: Trap) -> RecExitInfo | None:
    """Fetching the program faulted (A5.2.3, A5.2.9)."""
    realm, rec = call.realm, call.rec
    ipa = trap.ipa
    if ipa < 1 << realm.ipa_width and realm.is_protected(ipa):
        walk = call.rmm.rtt_walk(realm, ipa & ~GRANULE_MASK, RTT_PAGE_LEVEL)
        entry = walk.rtte
        if (entry.state is UNASSIGNED and entry.ripas is RAM) or entry.ripas is DESTROYED:
            rec.last_exit, rec.last_trap = LastExit.OTHER, trap
            return exits.instruction_abort(ipa, walk.level)
    # An SEA (RIPAS EMPTY, Unprotected IPA, outside the IPA space) with nothing to run
    why = f"at PC {rec.vcpu.pc:#x}: instruction abort at IPA {ipa:#x} (an SEA: not executable)"
    rec.vcpu.stopped(VcpuStop(StopReason.NO_PROGRAM, why))
    call.log_stop()
    return None


# -- REC exit ----------------------------------------------------------------------------


def record_exit(rmm: Rmm, rec: Rec, info: RecExitInfo, run_ptr: int) -> None:
    """Write RmiRecExit (A4.3.1) to the run granule; GIC and timer state on every exit."""
    vcpu = rec.vcpu
    if rec.last_exit is not LastExit.RIPAS_CHANGE:
        rec.ripas_addr = rec.ripas_top = 0  # A4.3.8
    gprs = list(info.gprs) + [0] * (31 - len(info.gprs))
    exit_record = RecExit(
        exit_reason=info.reason,
        esr=info.esr,
        far=info.far,
        hpfar=info.hpfar,
        gprs=gprs,
        gicv3_hcr=vcpu.gicv3_hcr & (ICH_HCR_HOST_BITS | HCR_EOICOUNT_MASK),
        gicv3_lrs=list(vcpu.gicv3_lrs),
        gicv3_misr=vcpu.gicv3_misr,
        gicv3_vmcr=vcpu.gicv3_vmcr,
        cntv_ctl=rmm.pe.timer_ctl(vcpu),
        cntv_cval=vcpu.cntv_cval,
        cntp_ctl=vcpu.cntp_ctl,
        cntp_cval=vcpu.cntp_cval,
        ripas_base=info.ripas_base,
        ripas_top=info.ripas_top,
        ripas_value=info.ripas_value,
        imm=info.imm,
    )
    rmm.mem.memory.write(run_ptr + REC_RUN_EXIT_OFFSET, exit_record.pack())
