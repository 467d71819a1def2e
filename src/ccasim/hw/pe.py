"""The processing element running realm software at R-EL1 (the realm's vCPU).

The PE runs a REC's guest program action by action until an exception must be taken to R-EL2
(the RMM): an SMC or HVC, a stage 2 fault, a trapped WFI/WFE, or a physical interrupt. It then
returns a :class:`Trap` to the RMM, which handles it and either resumes the vCPU (setting what
the pending action evaluates to) or exits to the host.

Stage 2 translation is the RMM's RTT; the PE sees it through a :class:`Stage2` object that the
RMM provides on entry, as hardware sees the tables VTTBR_EL2 points to.
"""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass
from typing import Protocol

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
from ccasim.guest import actions as act
from ccasim.guest.cpu import GuestCpu
from ccasim.guest.exceptions import SynchronousExternalAbort
from ccasim.guest.image import HEADER, ImageError, decode_image, header_length
from ccasim.guest.registry import lookup, programs
from ccasim.hw.bus import MemorySystem
from ccasim.hw.counter import SystemCounter
from ccasim.hw.faults import MemoryFault
from ccasim.hw.gpt import Pas
from ccasim.hw.vcpu import StopReason, Vcpu, VcpuStop
from ccasim.psci import PsciFid


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


class Pe:
    """A PE of the machine executing realm code."""

    def __init__(self, memory: MemorySystem, counter: SystemCounter, time_slice: int = 10_000):
        self.memory = memory
        self.counter = counter
        self.time_slice = time_slice

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        vcpu: Vcpu,
        stage2: Stage2,
        trap_wfi: bool = False,
        trap_wfe: bool = False,
    ) -> Trap:
        """Run ``vcpu`` until it takes an exception to R-EL2; return that exception."""
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
                step = self._step(vcpu)
                if isinstance(step, Trap):
                    return step
                action = step
            self.counter.advance(self.counter.ticks_per_action)
            trap = self._perform(vcpu, action, stage2, trap_wfi, trap_wfe)
            if trap is not None:
                vcpu.pending = action
                return trap
            vcpu.pending = None
            if self.timer_fires(vcpu):
                return Trap(TrapKind.IRQ, timer=True)
        return Trap(TrapKind.IRQ)  # the host's scheduler tick

    def _spin(self, vcpu: Vcpu) -> Trap:
        """A vCPU with no usable software loops taking exceptions until a host interrupt."""
        self.counter.advance(self.counter.ticks_per_action * self.time_slice)
        return Trap(TrapKind.IRQ)

    def _start(self, vcpu: Vcpu, stage2: Stage2) -> Trap | None:
        """Fetch the guest image at the PC and start its program (or wedge the vCPU)."""
        pc = vcpu.pc
        try:
            head = self._fetch(stage2, pc, HEADER.size)
            if isinstance(head, Trap):
                return head
            data = self._fetch(stage2, pc, header_length(head))
            if isinstance(data, Trap):
                return data
            name, params = decode_image(data)
            fn = lookup(name)
            if fn is None:
                raise ImageError(f"no guest program named {name!r} is registered{_hint(name)}")
            cpu = GuestCpu(vcpu.mpidr, tuple(vcpu.gprs[:8]), pc)
            vcpu.program = fn(cpu, **params)
        except (ImageError, SynchronousExternalAbort, TypeError) as e:
            vcpu.stopped(VcpuStop(StopReason.NO_PROGRAM, f"at PC {pc:#x}: {e}"))
        return None

    def _fetch(self, stage2: Stage2, ipa: int, size: int) -> bytes | Trap:
        """Instruction fetch of ``size`` bytes at ``ipa`` through stage 2."""
        out = bytearray()
        while size > 0:
            granule = ipa & ~GRANULE_MASK
            mapping = stage2.translate(granule)
            if mapping is None:
                return Trap(TrapKind.INSTRUCTION_ABORT, ipa=ipa)
            pa, pas, _ = mapping
            if pas is not Pas.REALM:
                raise SynchronousExternalAbort(ipa, "instruction fetch from an Unprotected IPA")
            n = min(size, GRANULE_SIZE - (ipa & GRANULE_MASK))
            out += self.memory.memory.read(pa + (ipa & GRANULE_MASK), n)
            ipa, size = ipa + n, size - n
        return bytes(out)

    def _step(self, vcpu: Vcpu) -> act.Action | Trap:
        """Advance the program to its next action, delivering the previous result."""
        program = vcpu.program
        assert program is not None
        resume, vcpu.resume = vcpu.resume, None
        try:
            if resume is None:
                action = program.send(None)
            elif resume[0] == "raise":
                action = program.throw(resume[1])
            elif resume[0] == "regs":
                action = program.send(tuple(vcpu.gprs[:11]))
            else:
                action = program.send(resume[1])
        except StopIteration:
            # A program that returns ends its vCPU as PSCI_CPU_OFF would.
            vcpu.stopped(VcpuStop(StopReason.RETURNED, "the vCPU turns off (PSCI_CPU_OFF)"))
            return self._smc(vcpu, act.Smc(PsciFid.CPU_OFF))
        except Exception as e:
            # A guest crash: the realm's software panics and resets the system.
            vcpu.stopped(VcpuStop.crash(e, __file__))
            return self._smc(vcpu, act.Smc(PsciFid.SYSTEM_RESET))
        if not isinstance(action, act.Action):
            message = f"yielded {action!r}, which is not a guest action"
            vcpu.stopped(VcpuStop.at_yield(StopReason.CRASHED, message, program))
            return self._smc(vcpu, act.Smc(PsciFid.SYSTEM_RESET))
        return action

    def _smc(self, vcpu: Vcpu, smc: act.Smc) -> Trap:
        regs = (smc.fid, *smc.args)
        vcpu.gprs[: len(regs)] = regs
        vcpu.gprs[len(regs) : 11] = [0] * (11 - len(regs))
        vcpu.pending = smc
        return Trap(TrapKind.SMC)

    # -- actions ---------------------------------------------------------------------------

    def _perform(
        self,
        vcpu: Vcpu,
        action: act.Action,
        stage2: Stage2,
        trap_wfi: bool,
        trap_wfe: bool,
    ) -> Trap | None:
        """Execute one action. Return a Trap to take to R-EL2, or None once it completed (its
        result is then in ``vcpu.resume``)."""
        if vcpu.resume is not None:  # the RMM completed this action (emulation, SEA, SMC)
            return None
        if isinstance(action, act.Smc):
            return self._smc(vcpu, action)
        if isinstance(action, act.Hvc):
            return Trap(TrapKind.HVC)
        if isinstance(action, act.Load | act.Store):
            return self._access(vcpu, action, stage2)
        if isinstance(action, act.Wfi):
            if trap_wfi:
                return Trap(TrapKind.WFI)
            intid = self.acknowledge(vcpu)
            if intid == SPURIOUS_INTID:
                # The PE sleeps until a physical interrupt: its own timer if armed (time
                # passes until it fires), else the host's.
                armed = vcpu.cntv_ctl & CNT_CTL_ENABLE and not vcpu.cntv_ctl & CNT_CTL_IMASK
                if armed and not vcpu.timer_masked:
                    self.counter.value = max(self.counter.value, vcpu.cntv_cval)
                    return Trap(TrapKind.IRQ, timer=True)
                return Trap(TrapKind.IRQ)
            vcpu.resume = ("value", intid)
            return None
        if isinstance(action, act.Wfe):
            if trap_wfe:
                return Trap(TrapKind.WFE)
            vcpu.resume = ("value", None)
            return None
        if isinstance(action, act.AckInterrupt):
            vcpu.resume = ("value", self.acknowledge(vcpu))
            return None
        if isinstance(action, act.Eoi):
            self.end_of_interrupt(vcpu, action.intid)
            vcpu.resume = ("value", None)
            return None
        if isinstance(action, act.ReadCounter):
            vcpu.resume = ("value", self.counter.value)
            return None
        if isinstance(action, act.SetTimer):
            vcpu.cntv_cval = action.cval & MASK64
            vcpu.cntv_ctl = (CNT_CTL_ENABLE if action.enable else 0) | (
                CNT_CTL_IMASK if action.mask else 0
            )
            vcpu.timer_masked = False
            vcpu.resume = ("value", None)
            return None
        raise AssertionError(f"unknown action {action!r}")

    def _access(self, vcpu: Vcpu, action: act.Load | act.Store, stage2: Stage2) -> Trap | None:
        write = isinstance(action, act.Store)
        size = len(action.data) if isinstance(action, act.Store) else action.size
        ipa = action.ipa
        mapping = stage2.translate(ipa & ~GRANULE_MASK)
        data = action.data if isinstance(action, act.Store) else b""
        if mapping is None:
            return Trap(TrapKind.DATA_ABORT, ipa=ipa, size=size, write=write, data=data)
        pa, pas, s2ap = mapping
        if not s2ap & (S2AP_WRITE if write else S2AP_READ):
            return Trap(TrapKind.DATA_ABORT, ipa, size, write, data, permission=True)
        pa += ipa & GRANULE_MASK
        try:
            if isinstance(action, act.Store):
                self.memory.write(pa, action.data, pas)
                vcpu.resume = ("value", None)
            else:
                vcpu.resume = ("value", self.memory.read(pa, size, pas))
        except MemoryFault as fault:
            vcpu.resume = ("raise", SynchronousExternalAbort(ipa, str(fault)))
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

    def timer_ctl(self, vcpu: Vcpu) -> int:
        """CNTV_CTL_EL0 as read now (with ISTATUS)."""
        ctl = vcpu.cntv_ctl
        if ctl & CNT_CTL_ENABLE and self.counter.value >= vcpu.cntv_cval:
            ctl |= CNT_CTL_ISTATUS
        return ctl


def _hint(name: str) -> str:
    """A did-you-mean hint for a program name close to a registered one, or ""."""
    close = difflib.get_close_matches(name, programs(), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
