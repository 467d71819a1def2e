"""The context of an SMC a realm makes to the RMM (RSI or PSCI): CurrentRealm() and
CurrentRec() (B3.15, B3.16), how the call's results reach the realm, and its log record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccasim.arch.registers import MASK64
from ccasim.rmm.log import SmcCall, VcpuEvent
from ccasim.rmm.realm import Realm
from ccasim.rmm.rec import Rec

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

#: Outputs of an RSI or PSCI call occupy X0..; X0-X16 not written are zero (B1.2).
RESULT_REGISTERS = 17


@dataclass
class RealmCall:
    """One SMC from ``rec`` of ``realm``."""

    rmm: Rmm
    realm: Realm
    rec: Rec
    #: X1..X7 of the SMC being handled, as the realm passed them
    registers: tuple[int, ...] = ()

    @property
    def args(self) -> list[int]:
        """X1..X10 as the realm passed them."""
        return self.rec.gprs[1:11]

    def log(
        self,
        fid: int,
        args: tuple[int, ...],
        result: tuple[int, ...],
        condition: str | None = None,
        note: str | None = None,
        exited: bool = False,
    ) -> None:
        """Record the realm's SMC in the RMM's log."""
        if self.rmm.log is not None:
            self.rmm.log(SmcCall(fid, args, result, condition, note, self.registers, exited))

    def log_stop(self) -> None:
        """Record in the log why the REC's program stopped, once per stop."""
        rec = self.rec
        stop = rec.vcpu.stop
        if stop is not None and stop is not rec.logged_stop:
            rec.logged_stop = stop
            if self.rmm.log is not None:
                self.rmm.log(VcpuEvent(rec.addr, str(stop)))


def set_result(rec: Rec, *outputs: int) -> None:
    """Write an RSI/PSCI command's outputs to X0.. (others up to X16 zero); the SMC returns
    them when the REC runs again."""
    regs = rec.gprs
    regs[: len(outputs)] = [v & MASK64 for v in outputs]
    regs[len(outputs) : RESULT_REGISTERS] = [0] * (RESULT_REGISTERS - len(outputs))
    rec.vcpu.complete_smc()
