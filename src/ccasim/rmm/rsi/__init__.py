"""RSI command handlers (B5.3), one module per command family (as TF-RMM's runtime/rsi/).

A handler takes the :class:`~ccasim.rmm.execution.RealmCall` context and the command's input
registers. It returns the output registers X0.. (the realm resumes with them), or a
:class:`~ccasim.rmm.exits.RecExitInfo` when the command needs the host.
"""

from __future__ import annotations

from collections.abc import Callable

from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.execution import RealmCall, set_result
from ccasim.rmm.exits import RecExitInfo
from ccasim.rsi import RsiFid
from ccasim.smccc import NOT_SUPPORTED as SMCCC_NOT_SUPPORTED

RsiHandler = Callable[..., "tuple[int, ...] | RecExitInfo"]

#: FID -> (handler, number of input registers after X0)
COMMANDS: dict[int, tuple[RsiHandler, int]] = {}


def command(fid: RsiFid, nargs: int):
    """Register the decorated function as the handler of RSI command ``fid``."""

    def register(fn: RsiHandler) -> RsiHandler:
        COMMANDS[fid] = (fn, nargs)
        return fn

    return register


def handle_rsi(call: RealmCall, fid: int) -> RecExitInfo | None:
    """Dispatch an RSI command; unknown RSI FIDs return SMCCC_NOT_SUPPORTED (A4.3.4)."""
    entry = COMMANDS.get(fid)
    if entry is None:
        set_result(call.rec, SMCCC_NOT_SUPPORTED)
        call.log(fid, (), (SMCCC_NOT_SUPPORTED,))
        return None
    handler, nargs = entry
    args = tuple(call.args[:nargs])
    try:
        result = handler(call, *args)
    except CommandFailure as failure:
        set_result(call.rec, failure.status, *failure.outputs)
        call.log(fid, args, (failure.status, *failure.outputs), failure.condition)
        return None
    if isinstance(result, RecExitInfo):
        call.log(fid, args, (), note=f"REC exit {result.reason.name}")
        return result
    set_result(call.rec, *result)
    call.log(fid, args, result)
    return None


from ccasim.rmm.rsi import (  # noqa: E402, F401
    attestation,
    config,
    host_call,
    measurement,
    memory,
    version,
)
