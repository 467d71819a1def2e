"""A vCPU's PE state: what the RMM saves on REC exit and restores on REC entry.

Besides registers, the GIC's virtual CPU interface and the timer, it holds the running
program's position: the action it is performing (``pending``) and how that action completes
when the vCPU runs again (``resume``). Its ``console`` and ``stop`` are the model's debug
output (:mod:`ccasim.isa.debug`).
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from ccasim.isa.actions import Action
from ccasim.isa.debug import StopReason, VcpuStop
from ccasim.isa.exceptions import GuestException


class ResumeKind(enum.Enum):
    """How the pending action completes when the vCPU runs again."""

    VALUE = "the action evaluates to a value"
    REGISTERS = "an SMC returns: the action evaluates to X0..X10"
    EXCEPTION = "the action takes an exception"


@dataclass(frozen=True, slots=True)
class Resume:
    kind: ResumeKind
    value: Any = None


RESUME_NONE = Resume(ResumeKind.VALUE)
RESUME_REGISTERS = Resume(ResumeKind.REGISTERS)


@dataclass
class Vcpu:
    """The PE state of a REC (registers, GIC, timer, the program's position) and the model's
    debug view of it (console, stop)."""

    pc: int
    gprs: list[int]
    mpidr: int
    program: Generator[Any, Any, Any] | None = None
    pending: Action | None = None
    resume: Resume | None = None
    stop: VcpuStop | None = None
    gicv3_lrs: list[int] = field(default_factory=lambda: [0] * 16)
    gicv3_hcr: int = 0
    gicv3_vmcr: int = 0
    gicv3_misr: int = 0
    cntv_ctl: int = 0
    cntv_cval: int = 0
    cntp_ctl: int = 0
    cntp_cval: int = 0
    timer_masked: bool = False
    console: list[str] = field(default_factory=list)

    # -- how the pending action completes --------------------------------------------------

    def complete(self, value: Any = None) -> None:
        """The pending action evaluates to ``value``."""
        self.resume = RESUME_NONE if value is None else Resume(ResumeKind.VALUE, value)

    def complete_smc(self) -> None:
        """The pending SMC returns: it evaluates to X0..X10 as the registers then hold."""
        self.resume = RESUME_REGISTERS

    def take_exception(self, exception: GuestException) -> None:
        """The pending action takes ``exception`` (raised in the program at its ``yield``)."""
        self.resume = Resume(ResumeKind.EXCEPTION, exception)

    # -- the program's life ----------------------------------------------------------------

    @property
    def spinning(self) -> bool:
        """No program can run: the PE takes exceptions it cannot make progress from."""
        return self.stop is not None and self.stop.reason is StopReason.NO_PROGRAM

    def stopped(self, stop: VcpuStop) -> None:
        """Record why the program stopped, on the console too. A program that has not
        returned keeps running until it does (it reports its stop before its last call)."""
        if stop.reason is StopReason.NO_PROGRAM:
            self.program = None
        self.stop = stop
        self.console.append(str(stop))
        if stop.traceback:
            self.console.append(stop.traceback)

    def reset(self, pc: int, x0: int) -> None:
        """Reset for PSCI_CPU_ON: a fresh program found at ``pc`` with X0 = ``x0``. The
        console keeps what the vCPU printed before."""
        self.pc = pc
        self.gprs = [x0] + [0] * 31
        self.program = self.pending = self.resume = None
        self.stop = None
