"""The architectural actions a program performs, one per ``yield``.

Loads and stores are what one AArch64 load or store does: 1, 2, 4 or 8 bytes, naturally
aligned (what an MMIO exit can report), or a whole 4 KiB granule at a granule-aligned IPA
(a ``DC ZVA``-like block move, for copying pages). Anything else is a ValueError in the
program that asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccasim.arch.registers import MASK64
from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.isa.debug import VcpuStop


class Action:
    """Base class of everything a program may yield."""


@dataclass(frozen=True)
class Smc(Action):
    """``SMC #0`` with X0 = ``fid`` and X1.. = ``args`` (RSI and PSCI calls).

    Evaluates to the tuple X0..X10 after the call.
    """

    fid: int
    args: tuple[int, ...] = ()

    def __init__(self, fid: int, *args: int) -> None:
        if len(args) > 10:
            raise ValueError("an SMC from a realm passes at most X1..X10 here")
        object.__setattr__(self, "fid", fid & MASK64)
        object.__setattr__(self, "args", tuple(a & MASK64 for a in args))


@dataclass(frozen=True)
class Hvc(Action):
    """``HVC #imm``. In a realm this takes an Unknown exception (A4.5): the ``yield`` raises
    :class:`~ccasim.isa.UndefinedInstruction`. Realms call the host with RSI_HOST_CALL."""

    imm: int
    args: tuple[int, ...] = ()

    def __init__(self, imm: int, *args: int) -> None:
        object.__setattr__(self, "imm", imm & 0xFFFF)
        object.__setattr__(self, "args", tuple(a & MASK64 for a in args))


ACCESS_SIZES = (1, 2, 4, 8, GRANULE_SIZE)


@dataclass(frozen=True)
class Load(Action):
    """Read ``size`` bytes (1, 2, 4, 8, or a whole 4 KiB granule) at ``ipa``; evaluates to
    the bytes read. An access of 1-8 bytes must be naturally aligned."""

    ipa: int
    size: int

    def __post_init__(self) -> None:
        check_access(self.ipa, self.size)


@dataclass(frozen=True)
class Store(Action):
    """Write ``data`` (1, 2, 4, 8 or 4096 bytes) at ``ipa``."""

    ipa: int
    data: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", bytes(self.data))
        check_access(self.ipa, len(self.data))


def check_access(ipa: int, size: int) -> None:
    if size not in ACCESS_SIZES:
        raise ValueError(f"an access is 1, 2, 4, 8 or 4096 bytes, not {size}")
    if ipa < 0 or ipa % size:
        raise ValueError(f"an access of {size} bytes must be aligned to {size}: {ipa:#x}")


@dataclass(frozen=True)
class Wfi(Action):
    """Wait for interrupt. Evaluates to the INTID of the virtual interrupt that woke the vCPU,
    which is acknowledged (its list register becomes active)."""


@dataclass(frozen=True)
class Wfe(Action):
    """Wait for event. Evaluates to None."""


@dataclass(frozen=True)
class AckInterrupt(Action):
    """Read ICC_IAR1_EL1: evaluates to the INTID of the highest-priority pending virtual
    interrupt, now active, or 1023 (spurious) if none is pending."""


@dataclass(frozen=True)
class Eoi(Action):
    """Write ICC_EOIR1_EL1: end the active virtual interrupt ``intid``."""

    intid: int


@dataclass(frozen=True)
class ReadCounter(Action):
    """Read CNTVCT_EL0 (the virtual counter; its offset is zero in a realm, A6.2)."""


@dataclass(frozen=True)
class SetTimer(Action):
    """Program the EL1 virtual timer: CNTV_CVAL_EL0 = ``cval``, CNTV_CTL_EL0.ENABLE =
    ``enable`` and IMASK = ``mask``."""

    cval: int
    enable: bool = True
    mask: bool = False


@dataclass(frozen=True)
class Note(Action):
    """Write ``text`` to the vCPU's debug console (like semihosting SYS_WRITE0 on a model):
    the PE records it and carries on; no exception is taken."""

    text: str


@dataclass(frozen=True)
class ReportStop(Action):
    """Tell the debugger why the program stops (like Arm semihosting's exit report on a
    model): the PE records ``stop`` on the vCPU's console and carries on; no exception is
    taken. The guest runtime issues it before the PSCI call that ends the vCPU."""

    stop: VcpuStop
