"""The processing element running software at EL1 under a hypervisor (a realm's vCPU).

The PE runs a vCPU's program action by action (the instruction set of :mod:`ccasim.isa`)
until an exception must be taken to EL2 (for a realm, the RMM at R-EL2): an SMC or HVC, a
stage 2 fault, a trapped WFI/WFE, or a physical interrupt. It then returns a :class:`Trap`,
and whoever runs it handles it and either resumes the vCPU (setting what the pending action
evaluates to) or stops. The PE starts a program through the loader it is given, so it knows
no image format and no realm.

Stage 2 translation is the RMM's RTT; the PE sees it through a :class:`Stage2` object that the
RMM provides on entry, as hardware sees the tables VTTBR_EL2 points to.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from ccasim import isa
from ccasim.arch.gicv3 import (
    HCR_EOICOUNT_MASK,
    HCR_EOICOUNT_SHIFT,
    LR_ACTIVE,
    LR_PENDING,
    LR_PRIORITY_SHIFT,
    LR_STATE_SHIFT,
    LR_VINTID_MASK,
    SPURIOUS_INTID,
)
from ccasim.arch.registers import MASK64
from ccasim.arch.timer import CNT_CTL_ENABLE, CNT_CTL_IMASK, CNT_CTL_ISTATUS
from ccasim.arch.vmsa import GRANULE_MASK, GRANULE_SIZE, S2AP_READ, S2AP_WRITE
from ccasim.hw.bus import MemorySystem
from ccasim.hw.counter import SystemCounter
from ccasim.hw.faults import MemoryFault
from ccasim.hw.gpt import Pas
from ccasim.hw.vcpu import ResumeKind, Vcpu
from ccasim.isa import GuestCpu, LoadError, ProgramLoader, StopReason, VcpuStop


class Stage2(Protocol):
    """Stage 2 translation for one realm, as the PE walks it."""

    def translate(self, ipa: int) -> tuple[int, Pas, int] | None:
        """(PA, PAS, S2AP bits [7:6]) of a valid mapping of ``ipa``, or None for a stage 2
        translation fault."""
        ...


class TrapKind(enum.Enum):
    SMC = "SMC"
    HVC = "HVC"
    DATA_ABORT = "data abort"
    INSTRUCTION_ABORT = "instruction abort"
    WFI = "WFI"
    WFE = "WFE"
    IRQ = "IRQ"


@dataclass(frozen=True)
class Trap:
    """An exception taken from the realm to R-EL2."""

    kind: TrapKind
    ipa: int = 0
    size: int = 0
    write: bool = False
    data: bytes = b""
    permission: bool = False
    timer: bool = False


class _FetchFault(Exception):
    """An instruction fetch took a stage 2 fault: the loader stops, the trap goes to EL2."""

    def __init__(self, trap: Trap) -> None:
        self.trap = trap


class Pe:
    """A PE of the machine executing software under a hypervisor."""

    def __init__(
        self,
        memory: MemorySystem,
        counter: SystemCounter,
        loader: ProgramLoader,
        time_slice: int = 10_000,
    ) -> None:
        self.memory = memory
        self.counter = counter
        self.loader = loader
        self.time_slice = time_slice
        #: CNTHP_CVAL_EL2 of the host's EL2 physical timer while the host has it enabled and
        #: unmasked (CNTHP_CTL_EL2), else None. Asserted (counter >= CVAL) it is a physical
        #: interrupt pending at this PE, whatever world runs: the realm is interrupted.
        self.host_timer_cval: int | None = None

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        vcpu: Vcpu,
        stage2: Stage2,
        trap_wfi: bool = False,
        trap_wfe: bool = False,
    ) -> Trap:
        """Run ``vcpu`` until it takes an exception to EL2; return that exception."""
        if self.host_timer_fires():
            return Trap(TrapKind.IRQ)  # pending at entry: taken before the realm runs
        if vcpu.spinning:
            return self._spin(vcpu)
        if vcpu.program is None:
            trap = self._start(vcpu, stage2)
            if trap is not None:
                return trap
            if vcpu.spinning:
                return self._spin(vcpu)
        for _ in range(self.time_slice):
            action = vcpu.pending
            if action is None:
                action = self._step(vcpu)
                if action is None:
                    return self._spin(vcpu)
            self.counter.advance(self.counter.ticks_per_action)
            trap = self._perform(vcpu, action, stage2, trap_wfi, trap_wfe)
            if trap is not None:
                vcpu.pending = action
                return trap
            vcpu.pending = None
            if self.timer_fires(vcpu):
                return Trap(TrapKind.IRQ, timer=True)
            host_cval = self.host_timer_cval
            if host_cval is not None and self.counter.value >= host_cval:
                return Trap(TrapKind.IRQ)
        return Trap(TrapKind.IRQ)  # the host's scheduler tick

    def _spin(self, vcpu: Vcpu) -> Trap:
        """A vCPU with no usable software loops taking exceptions until a host interrupt."""
        self.counter.advance(self.counter.ticks_per_action * self.time_slice)
        return Trap(TrapKind.IRQ)

    def _start(self, vcpu: Vcpu, stage2: Stage2) -> Trap | None:
        """Start the program the loader finds at the PC (or leave the vCPU spinning)."""
        pc = vcpu.pc
        cpu = GuestCpu(vcpu.mpidr, tuple(vcpu.gprs[:8]), pc)
        try:
            vcpu.program = self.loader(cpu, lambda ipa, size: self._fetch(stage2, ipa, size))
        except _FetchFault as fault:
            return fault.trap
        except (LoadError, isa.SynchronousExternalAbort) as e:
            vcpu.stopped(VcpuStop(StopReason.NO_PROGRAM, f"at PC {pc:#x}: {e}"))
        return None

    def _fetch(self, stage2: Stage2, ipa: int, size: int) -> bytes:
        """Instruction fetch of ``size`` bytes at ``ipa`` through stage 2."""
        out = bytearray()
        while size > 0:
            granule = ipa & ~GRANULE_MASK
            mapping = stage2.translate(granule)
            if mapping is None:
                raise _FetchFault(Trap(TrapKind.INSTRUCTION_ABORT, ipa=ipa))
            pa, pas, _ = mapping
            if pas is not Pas.REALM:
                raise isa.SynchronousExternalAbort(ipa, "instruction fetch from an Unprotected IPA")
            n = min(size, GRANULE_SIZE - (ipa & GRANULE_MASK))
            out += self.memory.memory.read(pa + (ipa & GRANULE_MASK), n)
            ipa, size = ipa + n, size - n
        return bytes(out)

    def _step(self, vcpu: Vcpu) -> isa.Action | None:
        """Advance the program to its next action, delivering the previous result; None when
        the program has ended (it then has nothing more to execute)."""
        program = vcpu.program
        assert program is not None
        resume, vcpu.resume = vcpu.resume, None
        try:
            if resume is None:
                action = program.send(None)
            elif resume.kind is ResumeKind.REGISTERS:
                action = program.send(tuple(vcpu.gprs[:11]))
            elif resume.kind is ResumeKind.EXCEPTION:
                action = program.throw(resume.value)
            else:
                action = program.send(resume.value)
        except StopIteration:
            vcpu.stopped(VcpuStop(StopReason.NO_PROGRAM, "the software ran off its end"))
            return None
        except Exception as e:  # software with no runtime around it: it stops where it failed
            vcpu.stopped(VcpuStop(StopReason.NO_PROGRAM, f"unhandled {type(e).__name__}: {e}"))
            return None
        if not isinstance(action, isa.Action):  # not an instruction: an Unknown exception
            what = f"yielded {action!r}, which is not an action"
            vcpu.take_exception(isa.UndefinedInstruction(what))
            return self._step(vcpu)
        return action

    # -- actions ---------------------------------------------------------------------------

    def _perform(
        self,
        vcpu: Vcpu,
        action: isa.Action,
        stage2: Stage2,
        trap_wfi: bool,
        trap_wfe: bool,
    ) -> Trap | None:
        """Execute one action. Return a Trap to take to EL2, or None once it completed (its
        result is then in ``vcpu.resume``)."""
        if vcpu.resume is not None:  # EL2 completed this action (emulation, SEA, SMC)
            return None
        if isinstance(action, isa.Smc):
            regs = (action.fid, *action.args)
            vcpu.gprs[: len(regs)] = regs
            vcpu.gprs[len(regs) : 11] = [0] * (11 - len(regs))
            return Trap(TrapKind.SMC)
        if isinstance(action, isa.Load | isa.Store):
            return self._access(vcpu, action, stage2)
        if isinstance(action, isa.Hvc):
            return Trap(TrapKind.HVC)
        if isinstance(action, isa.Wfi):
            if trap_wfi:
                return Trap(TrapKind.WFI)
            intid = self.acknowledge(vcpu)
            if intid == SPURIOUS_INTID:
                # The PE sleeps until a physical interrupt: its own timer if armed (time
                # passes until it fires), else the host's.
                armed = vcpu.cntv_ctl & CNT_CTL_ENABLE and not vcpu.cntv_ctl & CNT_CTL_IMASK
                host = self.host_timer_cval
                if armed and not vcpu.timer_masked and (host is None or vcpu.cntv_cval < host):
                    self.counter.value = max(self.counter.value, vcpu.cntv_cval)
                    return Trap(TrapKind.IRQ, timer=True)
                if host is not None:
                    self.counter.value = max(self.counter.value, host)
                return Trap(TrapKind.IRQ)
            vcpu.complete(intid)
        elif isinstance(action, isa.Wfe):
            if trap_wfe:
                return Trap(TrapKind.WFE)
            vcpu.complete()
        elif isinstance(action, isa.AckInterrupt):
            vcpu.complete(self.acknowledge(vcpu))
        elif isinstance(action, isa.Eoi):
            self.end_of_interrupt(vcpu, action.intid)
            vcpu.complete()
        elif isinstance(action, isa.ReadCounter):
            vcpu.complete(self.counter.value)
        elif isinstance(action, isa.SetTimer):
            vcpu.cntv_cval = action.cval & MASK64
            vcpu.cntv_ctl = (CNT_CTL_ENABLE if action.enable else 0) | (
                CNT_CTL_IMASK if action.mask else 0
            )
            vcpu.timer_masked = False
            vcpu.complete()
        elif isinstance(action, isa.Note):
            vcpu.console.append(action.text)
            vcpu.complete()
        elif isinstance(action, isa.ReportStop):
            vcpu.stopped(action.stop)
            vcpu.complete()
        else:
            raise AssertionError(f"unknown action {action!r}")
        return None

    def _access(self, vcpu: Vcpu, action: isa.Load | isa.Store, stage2: Stage2) -> Trap | None:
        write = isinstance(action, isa.Store)
        size = len(action.data) if isinstance(action, isa.Store) else action.size
        ipa = action.ipa
        mapping = stage2.translate(ipa & ~GRANULE_MASK)
        data = action.data if isinstance(action, isa.Store) else b""
        if mapping is None:
            return Trap(TrapKind.DATA_ABORT, ipa=ipa, size=size, write=write, data=data)
        pa, pas, s2ap = mapping
        if not s2ap & (S2AP_WRITE if write else S2AP_READ):
            return Trap(TrapKind.DATA_ABORT, ipa, size, write, data, permission=True)
        pa += ipa & GRANULE_MASK
        try:
            if isinstance(action, isa.Store):
                self.memory.write(pa, action.data, pas)
                vcpu.complete()
            else:
                vcpu.complete(self.memory.read(pa, size, pas))
        except MemoryFault as fault:
            vcpu.take_exception(isa.SynchronousExternalAbort(ipa, str(fault)))
        return None

    # -- GIC virtual CPU interface and timer -----------------------------------------------

    @staticmethod
    def acknowledge(vcpu: Vcpu) -> int:
        """ICC_IAR1_EL1: the highest-priority pending interrupt becomes active."""
        best = None
        for n, lr in enumerate(vcpu.gicv3_lrs):
            if (lr >> LR_STATE_SHIFT) & LR_PENDING and not (lr >> LR_STATE_SHIFT) & LR_ACTIVE:
                priority = (lr >> LR_PRIORITY_SHIFT) & 0xFF
                if best is None or priority < best[0]:
                    best = (priority, n)
        if best is None:
            return SPURIOUS_INTID
        lr = vcpu.gicv3_lrs[best[1]]
        vcpu.gicv3_lrs[best[1]] = (lr & ~(0b11 << LR_STATE_SHIFT)) | LR_ACTIVE << LR_STATE_SHIFT
        return lr & LR_VINTID_MASK

    @staticmethod
    def end_of_interrupt(vcpu: Vcpu, intid: int) -> None:
        """ICC_EOIR1_EL1 (EOImode 0): deactivate ``intid``, or count an EOI with no LR."""
        for n, lr in enumerate(vcpu.gicv3_lrs):
            if lr & LR_VINTID_MASK == intid and (lr >> LR_STATE_SHIFT) & LR_ACTIVE:
                vcpu.gicv3_lrs[n] = lr & ~(LR_ACTIVE << LR_STATE_SHIFT)
                return
        count = (vcpu.gicv3_hcr & HCR_EOICOUNT_MASK) >> HCR_EOICOUNT_SHIFT
        vcpu.gicv3_hcr = (vcpu.gicv3_hcr & ~HCR_EOICOUNT_MASK) | (
            ((count + 1) << HCR_EOICOUNT_SHIFT) & HCR_EOICOUNT_MASK
        )

    def timer_asserted(self, vcpu: Vcpu) -> bool:
        """The EL1 virtual timer's output (ENABLE, not IMASK, counter >= CVAL)."""
        ctl = vcpu.cntv_ctl
        return bool(
            ctl & CNT_CTL_ENABLE
            and not ctl & CNT_CTL_IMASK
            and self.counter.value >= vcpu.cntv_cval
        )

    def timer_fires(self, vcpu: Vcpu) -> bool:
        """Whether the timer raises a physical interrupt now (A6.2: not while masked)."""
        return not vcpu.timer_masked and self.timer_asserted(vcpu)

    def host_timer_fires(self) -> bool:
        """Whether the host's EL2 physical timer is asserted now (a level-sensitive interrupt:
        pending until the host disables or reprograms it)."""
        cval = self.host_timer_cval
        return cval is not None and self.counter.value >= cval

    def physical_interrupt_pending(self, vcpu: Vcpu) -> bool:
        """ISR_EL1 != 0 at R-EL2 while ``vcpu`` is loaded: its own timer (as :meth:`run`
        takes it) or the host's."""
        return self.timer_fires(vcpu) or self.host_timer_fires()

    def spend(self, ticks: int) -> None:
        """The PE spends ``ticks`` of the system counter on EL2 work (the RMM's own)."""
        self.counter.advance(ticks)

    def timer_ctl(self, vcpu: Vcpu) -> int:
        """CNTV_CTL_EL0 as read now (with ISTATUS)."""
        ctl = vcpu.cntv_ctl
        if ctl & CNT_CTL_ENABLE and self.counter.value >= vcpu.cntv_cval:
            ctl |= CNT_CTL_ISTATUS
        return ctl
