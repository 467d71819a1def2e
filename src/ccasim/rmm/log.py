"""The RMM's log: one record per SMC it handles (RMI from the host, RSI and PSCI from realms).

A record prints as one line in ccasim's own view: the spec's command names, every call's
outputs that are not zero, the failure condition that caught a failing command and, for
RMI_REC_ENTER, why the REC exited (the reference RMM's exact lines, with these set apart,
are :mod:`ccasim.trace`'s)::

    SMC_RMI_DATA_CREATE            88000000 88007000 1000 88006000 1 > RMI_SUCCESS
    SMC_RSI_IPA_STATE_SET          80000000 80001001 1 0 > RSI_ERROR_INPUT  (top_align)

What no SMC shows, such as a guest program that crashed, is a :class:`VcpuEvent`, printed
after a ``#`` that TF-RMM never prints::

    # REC 88014000: program crashed: ValueError: ... (at hello.py:23)
"""

from __future__ import annotations

from dataclasses import dataclass

from ccasim.arch.registers import MASK64
from ccasim.psci import PSCI_FID_RANGES, PsciFid
from ccasim.rmi.fid import FID, RMI_FID_FIRST, RMI_FID_LAST
from ccasim.rmi.status import describe_return_code
from ccasim.rsi import RSI_FID_FIRST, RSI_FID_LAST, RsiFid, RsiStatus


def interface_of(fid: int) -> str:
    if RMI_FID_FIRST <= fid <= RMI_FID_LAST:
        return "RMI"
    if RSI_FID_FIRST <= fid <= RSI_FID_LAST:
        return "RSI"
    if any(first <= fid <= last for first, last in PSCI_FID_RANGES):
        return "PSCI"
    return "SMC"


@dataclass(frozen=True, slots=True)
class SmcCall:
    """One SMC the RMM handled: FID, input registers, X0.. on return, and what it found."""

    fid: int
    args: tuple[int, ...]
    result: tuple[int, ...]
    condition: str | None = None
    note: str | None = None
    #: X1..X7 as a realm passed them (realm calls only; what the reference RMM prints for a
    #: PSCI call or an SMC it does not implement)
    registers: tuple[int, ...] = ()
    #: the realm's call completed (``result``) but its REC exited to the host before running
    #: on (an interrupted token signing, A7.2.2); a call with no result exited too
    exited: bool = False

    @property
    def interface(self) -> str:
        return interface_of(self.fid)

    @property
    def name(self) -> str:
        enum = {"RMI": FID, "RSI": RsiFid, "PSCI": PsciFid}.get(self.interface)
        if enum is not None and self.fid in enum._value2member_map_:
            return f"{self.interface}_{enum(self.fid).name}"
        return f"FID {self.fid:#x}"

    def status(self) -> str:
        if not self.result:  # the call did not return: the REC exited to the host
            return "..."
        x0 = self.result[0]
        if x0 == MASK64:
            return "SMCCC_NOT_SUPPORTED"
        if self.interface == "RMI":
            return describe_return_code(x0)
        if self.interface == "RSI" and x0 in RsiStatus._value2member_map_:
            return f"RSI_{RsiStatus(x0).name}"
        return f"{x0 - (1 << 64) if x0 >> 63 else x0:#x}"

    def __str__(self) -> str:
        args = " ".join(f"{a:x}" for a in self.args)
        text = f"SMC_{self.name:<26} {args} > {self.status()}"
        outs = " ".join(f"{v:x}" for v in self.result[1:] if v)
        if outs:
            text += f" {outs}"
        if self.condition:
            text += f"  ({self.condition})"
        if self.note:
            text += f"  [{self.note}]"
        return text


@dataclass(frozen=True, slots=True)
class VcpuEvent:
    """Why a REC's guest program stopped (``text``: see :class:`ccasim.isa.VcpuStop`),
    recorded when the RMM sees it: the model's debug output, not an SMC."""

    rec: int
    text: str

    def __str__(self) -> str:
        return f"# REC {self.rec:x}: {self.text}"


@dataclass(frozen=True, slots=True)
class Measured:
    """A hash the RMM computed while measuring a realm (logged only when asked for:
    :mod:`ccasim.rmm.verbose`); ``algorithm`` as TF-RMM names it (``SHA256``)."""

    algorithm: str
    value: bytes

    def __str__(self) -> str:
        return f"# Measurement ({self.algorithm}): 0x{self.value.hex()}"


@dataclass(frozen=True, slots=True)
class Panicked:
    """The RMM stopped in RMI command ``fid`` (X1.. = ``args``): ``reason`` says what it hit.
    The command returns nothing: it has no SmcCall record."""

    fid: int
    args: tuple[int, ...]
    reason: str

    def __str__(self) -> str:
        name = SmcCall(self.fid, self.args, ()).name
        args = " ".join(f"{a:x}" for a in self.args)
        return f"# RMM panic in SMC_{name} {args}: {self.reason}"


#: What the RMM's log holds.
LogRecord = SmcCall | VcpuEvent | Measured | Panicked
