"""The EL3 monitor: routes Normal-world SMCs and owns the GPT.

Only EL3 may change a GPT entry. The RMM asks for it through the RMM-EL3 interface's
granule transition service (GTSI delegate/undelegate), as TF-RMM does with TF-A.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from ccasim import smccc
from ccasim.arch.registers import MASK64
from ccasim.el3.attestation import PlatformAttestation
from ccasim.hw.bus import MemorySystem
from ccasim.hw.gpt import Pas
from ccasim.rmi.fid import RMI_FID_FIRST, RMI_FID_LAST

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

_MASKS = (MASK64,) * smccc.MAX_ARGS
#: Packing as unsigned 64-bit fails for what a register cannot hold as is: the cheap check.
_IN_RANGE = [struct.Struct(f"<{n}Q").pack for n in range(smccc.MAX_ARGS + 1)]
_and = operator.and_
_FID_MASK = smccc.FID_MASK
_NS, _REALM = Pas.NS, Pas.REALM


class RmmPanic(Exception):
    """The RMM stopped while handling an SMC (an assertion failed, or it crashed) and answers
    no more: on hardware that SMC and every later one never return. ``reason`` says what the
    RMM hit; ``fid`` and ``args`` are the SMC that stopped it (X0, X1..)."""

    def __init__(self, reason: str, fid: int = 0, args: tuple[int, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fid = fid
        self.args = args

    def __str__(self) -> str:
        where = f" in SMC {self.fid:#x}" if self.fid else ""
        return f"the RMM stopped{where}: {self.reason}"


def _no_rmm(fid: int, args: tuple[int, ...]) -> tuple[int, int, int, int, int]:
    return (smccc.NOT_SUPPORTED, 0, 0, 0, 0)


class Monitor:
    """EL3: dispatches SMCs from the Normal world and performs GPT transitions for the RMM."""

    def __init__(
        self, memory: MemorySystem, attestation: PlatformAttestation | None = None
    ) -> None:
        self.memory = memory
        # The RMM-EL3 granule transition service (GTSI) is the GPT transition itself:
        #: Move the granule at ``pa`` from the NS PAS to the Realm PAS; False if not NS.
        self.gtsi_delegate: Callable[[int], bool] = memory.gpt.ns_to_realm
        #: Move the granule at ``pa`` from the Realm PAS back to the NS PAS.
        self.gtsi_undelegate: Callable[[int], bool] = memory.gpt.realm_to_ns
        self.attestation = attestation if attestation is not None else PlatformAttestation()
        self._rmm: Rmm | None = None
        self._handle_rmi = _no_rmm
        #: Why the RMM stopped answering, once it has (None while it runs).
        self.panic: RmmPanic | None = None

    @property
    def rmm(self) -> Rmm | None:
        """The RMM that RMI calls go to (None: RMI FIDs are not supported)."""
        return self._rmm

    @rmm.setter
    def rmm(self, rmm: Rmm | None) -> None:
        self._rmm = rmm
        self._handle_rmi = rmm.handle_rmi if rmm is not None else _no_rmm

    def _stop(self, panic: RmmPanic, fid: int, args: tuple[int, ...]) -> None:
        """The RMM stopped in SMC ``fid``: record why; it takes no more calls."""
        if self.panic is None:
            panic.fid, panic.args = fid, args
            self.panic = panic
        first = self.panic

        def stopped(fid: int, args: tuple[int, ...]) -> tuple[int, int, int, int, int]:
            raise RmmPanic(first.reason, first.fid, first.args)

        self._handle_rmi = stopped

    def smc_from_ns(self, x0: int, *args: int) -> tuple[int, int, int, int, int]:
        """An SMC from the Normal world: X0 = ``x0``, X1.. = ``args``. Returns X0..X4.

        Register values are taken modulo 2^64, as a 64-bit register holds them. An SMC FID
        is the low 32 bits of X0, without the SMCCC 1.3 SVE hint (bit 16).
        """
        try:
            _IN_RANGE[len(args)](*args)  # every register value already in [0, 2^64)?
        except IndexError:
            raise TypeError(f"an SMC has at most {smccc.MAX_ARGS} argument registers") from None
        except struct.error:  # no: take them modulo 2^64 (TypeError for what is not an int)
            args = tuple(map(_and, args, _MASKS))
        fid = x0 & _FID_MASK
        if RMI_FID_FIRST <= fid <= RMI_FID_LAST:
            try:
                return self._handle_rmi(fid, args)
            except RmmPanic as panic:
                self._stop(panic, fid, args)
                raise
        if fid == smccc.SMCCC_VERSION:  # 1.3 lets callers mark SVE state as not live (B1.1)
            return (smccc.VERSION_1_3, 0, 0, 0, 0)
        return (smccc.NOT_SUPPORTED, 0, 0, 0, 0)
