"""Why a program stopped: the model's debug output, the way an FVP's console shows what
hardware would not. ``Machine.vcpu_stop`` and ``Machine.vcpu_console`` show it to the host."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StopReason(enum.Enum):
    """Why a vCPU's program is no longer running."""

    RETURNED = "program returned"  # the guest turns its vCPU off (PSCI_CPU_OFF)
    CRASHED = "program crashed"  # the guest resets the system (PSCI_SYSTEM_RESET)
    NO_PROGRAM = "no runnable program"  # the PE spins taking exceptions: IRQ exits only


@dataclass(frozen=True)
class VcpuStop:
    """Why a vCPU stopped: ``reason``, a one-line ``message``, the program's ``file`` and
    ``line`` where it stopped (when there is one) and, for a crash, the ``traceback`` (the
    program's frames only)."""

    reason: StopReason
    message: str
    file: str | None = None
    line: int | None = None
    traceback: str = ""

    @property
    def where(self) -> str:
        """``file:line``, or "" when no line of the program is known."""
        return f"{self.file}:{self.line}" if self.file else ""

    def __str__(self) -> str:
        text = f"{self.reason.value}: {self.message}"
        return f"{text} (at {self.where})" if self.where else text
