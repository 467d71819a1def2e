"""How a PE starts software: the state the software first sees, and the loader that finds
the program in memory at the PC."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GuestCpu:
    """What a program receives: the vCPU's MPIDR, its X0..X7 at first entry, its PC."""

    mpidr: int
    gprs: tuple[int, ...]
    pc: int


class LoadError(Exception):
    """Memory at the PC holds nothing the loader can start; the message says why."""


#: Reads ``size`` bytes of instructions at an IPA through stage 2 (raising the exception an
#: instruction fetch would take there).
Fetch = Callable[[int, int], bytes]
#: Finds the program at ``cpu.pc`` (reading memory with ``fetch``) and starts it: returns
#: the running program, or raises :class:`LoadError`.
ProgramLoader = Callable[[GuestCpu, Fetch], Generator[Any, Any, Any]]
