"""The host kernel's RMI calls (``arch/arm64/include/asm/rmi_cmds.h`` of the series): every
command the kernel issues goes through :class:`KernelRmi`, which makes the SMC with
``Machine.smc`` and can be told to make chosen calls fail (:meth:`KernelRmi.inject`).

Fault injection wraps the SMC the kernel issues, not the RMM: an injected call returns the
chosen status without reaching the RMM, so the RMM stays exact and nothing changes there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccasim.rmi import FID, Rmi, Status, describe_return_code, return_code
from ccasim.rmi.commands import RMI_COMMANDS

if TYPE_CHECKING:
    from ccasim.machine import Machine


@dataclass
class Injection:
    """Make call number ``nth`` (1 for the next one) of ``command`` fail with ``status`` and
    ``index``; ``outputs`` are the X1..X4 it returns (junk a real RMM may leave behind)."""

    command: FID
    nth: int
    status: Status
    index: int = 0
    outputs: tuple[int, int, int, int] = (0, 0, 0, 0)
    #: The call count at which the injection fires (set when it is armed).
    at: int = 0
    #: Whether it has fired.
    hit: bool = False

    def __str__(self) -> str:
        name = RMI_COMMANDS[self.command].name
        code = describe_return_code(return_code(self.status, self.index))
        return f"{name} call {self.nth} -> {code}"


@dataclass(frozen=True)
class RmiCall:
    """One RMI call the kernel made, for the kernel's trace: its result, and whether it was
    injected (then it never reached the RMM)."""

    command: str
    args: tuple[int, ...]
    regs: tuple[int, int, int, int, int]
    injected: bool = False

    def __str__(self) -> str:
        args = " ".join(f"{a:x}" for a in self.args)
        mark = "  (injected)" if self.injected else ""
        return f"{self.command:<27} {args} > {describe_return_code(self.regs[0])}{mark}"


class KernelRmi(Rmi):
    """The kernel's view of the RMI: a typed client whose SMCs can be made to fail.

    ``calls`` counts the calls made per command (injected ones too); ``trace`` keeps every
    call when ``record`` is set; ``on_call`` (a tracepoint) is called with each call's FID
    and the X0 it returned.
    """

    def __init__(self, machine: Machine, record: bool = False) -> None:
        super().__init__(self)
        self._smc = machine.smc
        self.ns_write = machine.ns_write
        self.ns_read = machine.ns_read
        self.calls: Counter[int] = Counter()
        self.injections: list[Injection] = []
        self.record = record
        self.trace: list[RmiCall] = []
        self.on_call: Callable[[int, int], None] | None = None

    def smc(self, fid: int, *args: int) -> tuple[int, int, int, int, int]:
        count = self.calls[fid] = self.calls[fid] + 1
        for injection in self.injections:
            if injection.command == fid and injection.at == count and not injection.hit:
                injection.hit = True
                regs = (return_code(injection.status, injection.index), *injection.outputs)
                if self.record:
                    self.trace.append(RmiCall(_name(fid), args, regs, injected=True))
                if self.on_call is not None:
                    self.on_call(fid, regs[0])
                return regs  # type: ignore[return-value]
        regs = self._smc(fid, *args)
        if self.record:
            self.trace.append(RmiCall(_name(fid), args, regs))
        if self.on_call is not None:
            self.on_call(fid, regs[0])
        return regs

    def inject(
        self,
        command: FID,
        status: Status,
        nth: int = 1,
        index: int = 0,
        outputs: tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> Injection:
        """Make the ``nth`` next call of ``command`` return ``status`` (with ``index``)."""
        if command not in RMI_COMMANDS:
            raise ValueError(f"{command!r} is not an RMI command")
        if nth < 1:
            raise ValueError("nth counts from 1 (the next call)")
        injection = Injection(FID(command), nth, Status(status), index, tuple(outputs))  # type: ignore[arg-type]
        injection.at = self.calls[command] + nth
        self.injections.append(injection)
        return injection


def _name(fid: int) -> str:
    function = RMI_COMMANDS.get(fid)
    return function.name if function is not None else f"FID {fid:#x}"


__all__ = ["Injection", "KernelRmi", "RmiCall"]
