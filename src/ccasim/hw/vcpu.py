"""A vCPU's PE state, and why its software stopped.

:class:`Vcpu` is the state of a REC that the RMM saves on REC exit and restores on REC entry.
Its :attr:`~Vcpu.console` and :attr:`~Vcpu.stop` are the model's own debug output, the way an
FVP's per-CPU console shows what real hardware would not: when a guest program raises, returns
or cannot be started, the PE records why, with the program's own file and line.
``Machine.vcpu_console`` and ``Machine.vcpu_stop`` show them to the host.
"""

from __future__ import annotations

import enum
import os
import sysconfig
import traceback
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccasim.guest.actions import Action

#: Frames in ccasim's own modules (the PE, action classes, RSI helpers), the standard library
#: and generated code (a dataclass's __init__) are machinery: the line a crash report points
#: at is the innermost frame outside them, in the guest program's own code.
_MACHINERY = (
    str(Path(__file__).resolve().parent.parent) + os.sep,
    sysconfig.get_paths()["stdlib"] + os.sep,
    "<",
)


def _own(filename: str) -> bool:
    return not filename.startswith(_MACHINERY)


class StopReason(enum.Enum):
    """Why a vCPU's guest program is no longer running."""

    RETURNED = "program returned"  # the vCPU turns off as PSCI_CPU_OFF would
    CRASHED = "program crashed"  # the realm resets as PSCI_SYSTEM_RESET would
    NO_PROGRAM = "no runnable program"  # the vCPU spins taking exceptions: IRQ exits only


@dataclass(frozen=True)
class VcpuStop:
    """Why a vCPU stopped: ``reason``, a one-line ``message``, the guest program's ``file``
    and ``line`` it stopped at (when there is one) and, for a crash, the ``traceback``
    (the guest program's frames only)."""

    reason: StopReason
    message: str
    file: str | None = None
    line: int | None = None
    traceback: str = ""

    @property
    def where(self) -> str:
        """``file:line``, or "" when no guest line is known."""
        return f"{self.file}:{self.line}" if self.file else ""

    def __str__(self) -> str:
        text = f"{self.reason.value}: {self.message}"
        return f"{text} (at {self.where})" if self.where else text

    @classmethod
    def crash(cls, error: BaseException, entry: str) -> VcpuStop:
        """A program raised ``error``; ``entry`` is the file of the frame that resumed it
        (whose frames and the ones before are left out of the report)."""
        frames = traceback.extract_tb(error.__traceback__)
        while frames and frames[0].filename == entry:
            frames.pop(0)
        own = [f for f in frames if _own(f.filename)]
        at = own[-1] if own else (frames[0] if frames else None)
        report = "".join(traceback.format_list(frames))
        report += "".join(traceback.format_exception_only(type(error), error))
        text = str(error).strip().replace("\n", " ")
        return cls(
            StopReason.CRASHED,
            f"{type(error).__name__}: {text}" if text else type(error).__name__,
            at.filename if at else None,
            at.lineno if at else None,
            "Traceback (most recent call last):\n" + report.rstrip("\n"),
        )

    @classmethod
    def at_yield(
        cls, reason: StopReason, message: str, program: Generator[Any, Any, Any]
    ) -> VcpuStop:
        """A stop at the ``yield`` where ``program`` is suspended (its innermost own frame)."""
        file = line = None
        gen: Any = program
        while gen is not None and gen.gi_frame is not None:
            code = gen.gi_frame.f_code
            if _own(code.co_filename) or file is None:
                file, line = code.co_filename, gen.gi_frame.f_lineno
            gen = gen.gi_yieldfrom
        return cls(reason, message, file, line)


@dataclass
class Vcpu:
    """The PE state of a REC that the RMM saves and restores (registers, GIC, timer, and the
    guest program's position), and the model's debug view of it (console, stop)."""

    pc: int
    gprs: list[int]
    mpidr: int
    program: Generator[Any, Any, Any] | None = None
    pending: Action | None = None
    resume: tuple[str, Any] | None = None
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

    @property
    def spinning(self) -> bool:
        """No program can run: the PE takes exceptions it cannot make progress from."""
        return self.stop is not None and self.stop.reason is StopReason.NO_PROGRAM

    def stopped(self, stop: VcpuStop) -> None:
        """Record why the program stopped, on the console too."""
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
