"""Running a REC (A4): REC entry, the run loop, the handling of exceptions taken from the
realm, and REC exit. RMI_REC_ENTER calls :func:`run_rec` once its failure conditions pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccasim import smccc
from ccasim.arch.gicv3 import HCR_EOICOUNT_MASK
from ccasim.arch.registers import MASK64
from ccasim.arch.vmsa import GRANULE_MASK
from ccasim.guest.exceptions import SynchronousExternalAbort, UndefinedInstruction
from ccasim.hw.pe import Trap, TrapKind
from ccasim.hw.vcpu import StopReason, VcpuStop
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
from ccasim.rmm.exits import RecExitInfo
from ccasim.rmm.gic import ICH_HCR_HOST_BITS
from ccasim.rmm.log import SmcCall, VcpuEvent
from ccasim.rmm.realm import Realm
from ccasim.rmm.rec import LastExit, Rec
from ccasim.rmm.s2tt import ASSIGNED_NS, DESTROYED, EMPTY, RAM, UNASSIGNED
from ccasim.rmm.stage2 import RealmStage2
from ccasim.rmm.types import RecState
from ccasim.rsi import RSI_FID_FIRST, RSI_FID_LAST, RsiStatus
from ccasim.smccc import NOT_SUPPORTED as SMCCC_NOT_SUPPORTED

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

#: Outputs of an RSI or PSCI call occupy X0..; X0-X16 not written are zero (B1.2).
RESULT_REGISTERS = 17


@dataclass
class RealmCall:
    """The context of an RSI or PSCI command: CurrentRealm() and CurrentRec() (B3.15, B3.16)."""

    rmm: Rmm
    realm: Realm
    rec: Rec

    @property
    def args(self) -> list[int]:
        """X1..X10 as the realm passed them."""
        return self.rec.gprs[1:11]

    def log_stop(self) -> None:
        """Record in the log why the REC's program stopped, once per stop."""
        rec = self.rec
        stop = rec.vcpu.stop
        if stop is not None and stop is not rec.logged_stop:
            rec.logged_stop = stop
            if self.rmm.log is not None:
                self.rmm.log(VcpuEvent(rec.addr, str(stop)))

    def log(
        self,
        fid: int,
        args: tuple[int, ...],
        result: tuple[int, ...],
        condition: str | None = None,
        note: str | None = None,
    ) -> None:
        """Record the realm's SMC in the RMM's log."""
        if self.rmm.log is not None:
            self.rmm.log(SmcCall(fid, args, result, condition, note))


def run_rec(rmm: Rmm, rec: Rec, realm: Realm, run_ptr: int, enter: RecEnter) -> None:
    """REC entry, realm execution until a REC exit, and the exit record in ``run_ptr``."""
    rec.state = RecState.RUNNING
    try:
        info = complete_previous_exit(rmm, rec, realm, enter)
        if info is None:
            info = run_loop(rmm, rec, realm, enter)
    finally:
        rec.state = RecState.READY
    record_exit(rmm, rec, info, run_ptr)
    rmm.note = f"exit {info.reason.name}" + (f" ESR {info.esr:#x}" if info.esr else "")


# -- REC entry ---------------------------------------------------------------------------


def complete_previous_exit(rmm: Rmm, rec: Rec, realm: Realm, enter: RecEnter) -> RecExitInfo | None:
    """Restore the REC from ``enter`` and finish what the last REC exit left pending (A4.2).

    Returns an exit when completing a host call fails to write realm memory (A4.2.2).
    """
    vcpu = rec.vcpu
    num_lrs = rmm.features.gicv3_num_lrs
    vcpu.gicv3_lrs[:num_lrs] = enter.gicv3_lrs[:num_lrs]
    vcpu.gicv3_hcr = enter.gicv3_hcr & ICH_HCR_HOST_BITS
    if rmm.pe.timer_asserted(vcpu):  # A6.2: let the realm make progress
        vcpu.timer_masked = True

    last, trap = rec.last_exit, rec.last_trap
    rec.last_exit, rec.last_trap = LastExit.NONE, None
    rec.emulatable_abort = False
    flags = enter.flags
    if flags & ENTER_INJECT_SEA and last in (LastExit.EMULATABLE_ABORT, LastExit.UNPROTECTED_ABORT):
        assert trap is not None
        vcpu.resume = ("raise", SynchronousExternalAbort(trap.ipa, "injected by the host"))
    elif last is LastExit.EMULATABLE_ABORT and flags & ENTER_EMUL_MMIO:
        assert trap is not None
        if trap.write:
            vcpu.resume = ("value", None)
        else:  # A4.2.3: the register indicated by ISS.SRT gets enter.gprs[0]
            value = enter.gprs[0] & ((1 << (8 * trap.size)) - 1)
            vcpu.resume = ("value", value.to_bytes(trap.size, "little"))
    elif last is LastExit.RIPAS_CHANGE:
        rec.ripas_response_reject = bool(flags & ENTER_RIPAS_RESPONSE_REJECT)
        reject = rec.ripas_value is RAM and rec.ripas_addr != rec.ripas_top
        reject = reject and rec.ripas_response_reject  # RecRipasChangeResponse (B3.40)
        set_result(rec, RsiStatus.SUCCESS, rec.ripas_addr, int(reject))
        rec.ripas_addr = rec.ripas_top = 0
    elif last is LastExit.HOST_CALL:
        from ccasim.rmm.rsi.host_call import complete_host_call

        return complete_host_call(rmm, rec, realm, enter)
    elif last is LastExit.PSCI:
        vcpu.resume = ("regs", None)
    return None


def set_result(rec: Rec, *outputs: int) -> None:
    """Write an RSI/PSCI command's outputs to X0.. (others up to X16 zero) and resume."""
    regs = rec.gprs
    regs[: len(outputs)] = [v & MASK64 for v in outputs]
    regs[len(outputs) : RESULT_REGISTERS] = [0] * (RESULT_REGISTERS - len(outputs))
    rec.vcpu.resume = ("regs", None)


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
        rec.vcpu.resume = ("raise", UndefinedInstruction("HVC in a realm"))
        return None
    if kind is TrapKind.DATA_ABORT:
        return handle_data_abort(call, trap)
    if kind is TrapKind.INSTRUCTION_ABORT:
        return handle_instruction_abort(call, trap)
    if kind is TrapKind.WFI or kind is TrapKind.WFE:
        return exits.wfx(kind is TrapKind.WFE)
    return RecExitInfo(RecExitReason.IRQ)


def handle_smc(call: RealmCall) -> RecExitInfo | None:
    """An SMC from the realm: RSI, PSCI, or SMCCC_NOT_SUPPORTED for anything else (A4.3.4)."""
    from ccasim.rmm.psci import handle_psci
    from ccasim.rmm.rsi import handle_rsi

    fid = smccc.function_id(call.rec.gprs[0])
    if RSI_FID_FIRST <= fid <= RSI_FID_LAST:
        return handle_rsi(call, fid)
    if any(first <= fid <= last for first, last in PSCI_FID_RANGES):
        return handle_psci(call, fid)
    set_result(call.rec, SMCCC_NOT_SUPPORTED)
    call.log(fid, (), (SMCCC_NOT_SUPPORTED,))
    return None


def handle_data_abort(call: RealmCall, trap: Trap) -> RecExitInfo | None:
    """A stage 2 data abort (A5.2.9): an SEA to the realm, or a REC exit due to Data Abort."""
    realm, rec = call.realm, call.rec
    ipa = trap.ipa
    if not ipa < 1 << realm.ipa_width:
        rec.vcpu.resume = ("raise", SynchronousExternalAbort(ipa, "address size fault"))
        return None
    walk = call.rmm.rtt_walk(realm, ipa & ~GRANULE_MASK, RTT_PAGE_LEVEL)
    if realm.is_protected(ipa):
        if walk.rtte.ripas is EMPTY:
            rec.vcpu.resume = ("raise", SynchronousExternalAbort(ipa, "RIPAS is EMPTY"))
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
    """Fetching the guest image faulted (A5.2.3, A5.2.9)."""
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
