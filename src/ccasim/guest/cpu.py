"""The vCPU as a guest program sees it when it starts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuestCpu:
    """What a guest program receives: the vCPU's MPIDR, its X0..X7 at first entry, its PC."""

    mpidr: int
    gprs: tuple[int, ...]
    pc: int
