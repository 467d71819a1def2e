"""The SMC Calling Convention (Arm DEN0028) as the RMI, RSI and PSCI calls use it."""

from __future__ import annotations

from dataclasses import dataclass

from ccasim.arch.registers import MASK64

#: SMCCC 1.2 passes arguments in X1..X17.
MAX_ARGS = 17
#: NOT_SUPPORTED (-1), as the 64-bit value the caller sees in X0.
NOT_SUPPORTED = MASK64
#: SMCCC_VERSION and the versions a caller may see.
SMCCC_VERSION = 0x8000_0000
VERSION_1_2 = 0x1_0002
VERSION_1_3 = 0x1_0003
#: SMCCC 1.3 FID bit 16: "SVE state need not be preserved", a hint ignored for dispatch.
SVE_HINT = 1 << 16
#: The bits of X0 that select a function: W0 without the SVE hint.
FID_MASK = 0xFFFF_FFFF & ~SVE_HINT


def function_id(x0: int) -> int:
    """The function an SMC with ``x0`` calls."""
    return x0 & FID_MASK


@dataclass(frozen=True)
class Function:
    """One function of an SMCCC interface as its specification declares it: the names of its
    input registers X1.. and of its output registers X1.. (X0 carries the result)."""

    fid: int
    name: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


def functions(*table: Function) -> dict[int, Function]:
    """A FID -> Function table; a FID declared twice is an error."""
    out: dict[int, Function] = {}
    for function in table:
        if function.fid in out:
            raise ValueError(f"{function.name}: FID {function.fid:#x} declared twice")
        out[function.fid] = function
    return out
