"""The system counter (Arm generic timer): one count shared by every PE.

Time in the model is deterministic: the counter advances by a fixed number of ticks for every
architectural action a vCPU performs, and the host can advance it explicitly.
"""

from __future__ import annotations

from ccasim.arch.registers import MASK64


class SystemCounter:
    """CNTPCT: a 64-bit count that only moves forward."""

    def __init__(self, frequency_hz: int = 100_000_000, ticks_per_action: int = 100) -> None:
        self.frequency_hz = frequency_hz
        self.ticks_per_action = ticks_per_action
        self.value = 0

    def advance(self, ticks: int) -> int:
        if ticks < 0:
            raise ValueError("the system counter never goes backwards")
        self.value = (self.value + ticks) & MASK64
        return self.value
