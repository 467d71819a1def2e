"""RSI command handlers (B5.3), one module per command family (as TF-RMM's runtime/rsi/).

A handler takes the :class:`~ccasim.rmm.realm_call.RealmCall` context and the command's
input registers (named as in its B5.3 definition). It returns the output registers X0.. (the
realm resumes with them), raises :class:`~ccasim.rmm.errors.CommandFailure` for a failure
condition, or raises :class:`~ccasim.rmm.exits.ExitToHost` when the command needs the host
(:class:`~ccasim.rmm.exits.CompletedThenExit` when it has completed but the REC must exit
first).
"""

from __future__ import annotations

from collections.abc import Callable

from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.exits import CompletedThenExit, ExitToHost, RecExitInfo
from ccasim.rmm.handler_table import check_table
from ccasim.rmm.realm_call import RealmCall, set_result
from ccasim.rmm.rsi import attestation, config, host_call, measurement, memory, version
from ccasim.rsi import RSI_COMMANDS, RsiFid
from ccasim.smccc import NOT_SUPPORTED as SMCCC_NOT_SUPPORTED

RsiHandler = Callable[..., tuple[int, ...]]

HANDLERS: dict[int, RsiHandler] = {
    RsiFid.VERSION: version.version,
    RsiFid.FEATURES: version.features,
    RsiFid.MEASUREMENT_READ: measurement.measurement_read,
    RsiFid.MEASUREMENT_EXTEND: measurement.measurement_extend,
    RsiFid.ATTESTATION_TOKEN_INIT: attestation.attestation_token_init,
    RsiFid.ATTESTATION_TOKEN_CONTINUE: attestation.attestation_token_continue,
    RsiFid.REALM_CONFIG: config.realm_config,
    RsiFid.IPA_STATE_SET: memory.ipa_state_set,
    RsiFid.IPA_STATE_GET: memory.ipa_state_get,
    RsiFid.HOST_CALL: host_call.host_call,
}
check_table(HANDLERS, RSI_COMMANDS, context=1)

#: FID -> (handler, number of input registers X1..), from the RSI's declaration.
DISPATCH = {fid: (HANDLERS[fid], len(RSI_COMMANDS[fid].inputs)) for fid in HANDLERS}


def handle_rsi(call: RealmCall, fid: int) -> RecExitInfo | None:
    """Run RSI command ``fid`` and log it: None when the realm resumes with its results, or
    the REC exit it needs. Unknown RSI FIDs return SMCCC_NOT_SUPPORTED (A4.3.4)."""
    entry = DISPATCH.get(fid)
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
    except CompletedThenExit as exit_:
        set_result(call.rec, *exit_.result)
        call.log(fid, args, exit_.result, note=f"REC exit {exit_.info.reason.name}", exited=True)
        return exit_.info
    except ExitToHost as exit_:
        call.log(fid, args, (), note=f"REC exit {exit_.info.reason.name}")
        return exit_.info
    set_result(call.rec, *result)
    call.log(fid, args, result)
    return None
