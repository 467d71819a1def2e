"""The reference RMM's log lines (TF-RMM), exactly: which calls it prints, and how.

TF-RMM prints one line per logged SMC on its console at LOG_LEVEL_INFO (40) and above (Debug
builds default to 40, Release builds to 20, where it prints none). The facts here are from
TF-RMM's handler tables and loggers (``runtime/core/handler.c``, ``runtime/rsi/logger.c``) and
from the logs in ``../shared/rmm-logs/``:

- **RMI** (``rmi_log_on_exit``): ``SMC_RMI_<name>`` left-aligned in a field, then each argument
  as `` %lx``, then `` > RMI_<status>``; the index after ``RMI_ERROR_RTT`` (and after
  ``RMI_ERROR_REALM`` for REC_ENTER); then the command's outputs X1.. (zeros included) on
  success, and on ``RMI_ERROR_RTT`` for DATA_DESTROY, RTT_DESTROY and RTT_UNMAP_UNPROTECTED.
  Each command is logged always, only when it fails, or never (the handler table's flags).
- **RSI** (``rsi_log_on_exit``): every call the realm makes, ``SMC_RSI_<name>`` with the
  command's arguments, `` > RSI_<status>`` and its outputs whatever the status. PSCI calls print
  as ``PSCI_%08x`` and other SMCs as ``SMC_%08x``, with X1..X7 and, after ``>``, X0..X3 in hex.
  A call that exits to the host is printed at the exit: in RMM 1.0-rel0 with the registers
  set so far (RSI_IPA_STATE_SET: ``RSI_SUCCESS <top> 0``), from v0.8.0 without the result.
- **Field width**: the first argument at column 30 in ``rmm-spec-v1.0-rel0`` (v0.5.0, RMM
  1.0), column 34 from v0.8.0.
- **Measurements**: at LOG_LEVEL_VERBOSE (50), every hash computed for a realm's
  measurement, ``Measurement (SHA256): 0x<hash>``, printed by the command that computes it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ccasim.arch.registers import MASK64
from ccasim.psci import PSCI_FID_RANGES
from ccasim.rmi.commands import RMI_COMMANDS
from ccasim.rmi.fid import FID, RMI_FID_FIRST, RMI_FID_LAST
from ccasim.rmi.status import Status
from ccasim.rsi import RSI_FID_FIRST, RSI_FID_LAST, RsiFid, RsiStatus

__all__ = [
    "LOG_LEVEL_INFO", "LOG_LEVEL_VERBOSE", "RELEASES", "Logged", "Release", "call_text",
    "fid_of", "format_call", "measurement_line",
]  # fmt: skip

#: TF-RMM's LOG_LEVEL_INFO: SMC records are printed at this level and above.
LOG_LEVEL_INFO = 40
#: TF-RMM's LOG_LEVEL_VERBOSE: measurement hashes are printed too.
LOG_LEVEL_VERBOSE = 50


class Logged(enum.Enum):
    """When TF-RMM prints an RMI command (its handler table's two flags)."""

    ALWAYS = "always"
    ON_ERROR = "on error"
    NEVER = "never"


A, E, N = Logged.ALWAYS, Logged.ON_ERROR, Logged.NEVER

#: RMI commands as TF-RMM ``rmm-spec-v1.0-rel0`` logs them; the argument and output counts are
#: the spec's (B4.3), which TF-RMM's table repeats.
_RMI_V1_0_REL0: dict[int, Logged] = {
    FID.VERSION: A, FID.FEATURES: A, FID.GRANULE_DELEGATE: E, FID.GRANULE_UNDELEGATE: E,
    FID.REALM_CREATE: A, FID.REALM_DESTROY: A, FID.REALM_ACTIVATE: A, FID.REC_CREATE: A,
    FID.REC_DESTROY: A, FID.REC_ENTER: E, FID.REC_AUX_COUNT: A, FID.PSCI_COMPLETE: A,
    FID.DATA_CREATE: N, FID.DATA_CREATE_UNKNOWN: N, FID.DATA_DESTROY: E, FID.RTT_CREATE: E,
    FID.RTT_DESTROY: E, FID.RTT_FOLD: N, FID.RTT_MAP_UNPROTECTED: N, FID.RTT_UNMAP_UNPROTECTED: N,
    FID.RTT_READ_ENTRY: E, FID.RTT_INIT_RIPAS: E, FID.RTT_SET_RIPAS: E,
}  # fmt: skip

#: From v0.8.0, RMI_FEATURES is logged only when it fails (no FEATURES line follows
#: RMI_VERSION when KVM starts on an FVP with v0.8.0; the v0.9 table has it so).
_RMI_V0_8: dict[int, Logged] = {**_RMI_V1_0_REL0, FID.FEATURES: E}

#: Commands whose outputs are printed after RMI_ERROR_RTT too.
_OUTPUTS_ON_ERROR_RTT = frozenset({FID.DATA_DESTROY, FID.RTT_DESTROY, FID.RTT_UNMAP_UNPROTECTED})

#: RSI commands by TF-RMM's names, with the number of arguments and outputs it prints.
_RSI: dict[int, tuple[str, int, int]] = {
    RsiFid.VERSION: ("VERSION", 1, 2),
    RsiFid.FEATURES: ("FEATURES", 1, 1),
    RsiFid.MEASUREMENT_READ: ("MEASUREMENT_READ", 1, 8),
    RsiFid.MEASUREMENT_EXTEND: ("MEASUREMENT_EXTEND", 10, 0),
    RsiFid.ATTESTATION_TOKEN_INIT: ("ATTEST_TOKEN_INIT", 8, 1),
    RsiFid.ATTESTATION_TOKEN_CONTINUE: ("ATTEST_TOKEN_CONTINUE", 3, 1),
    RsiFid.REALM_CONFIG: ("REALM_CONFIG", 1, 0),
    RsiFid.IPA_STATE_SET: ("IPA_STATE_SET", 4, 2),
    RsiFid.IPA_STATE_GET: ("IPA_STATE_GET", 2, 2),
    RsiFid.HOST_CALL: ("HOST_CALL", 1, 0),
}

#: PSCI calls and other SMCs from a realm: X1..X7 printed, then X0..X3.
_OTHER_ARGS, _OTHER_RESULTS = 7, 4


@dataclass(frozen=True)
class Release:
    """A TF-RMM release's log format: ``column`` where the first argument starts,
    ``rmi`` when each RMI command is printed, ``result_at_exit`` whether a realm call that
    exits to the host is printed with the registers set so far (True) or without a result."""

    name: str
    tf_rmm: str
    column: int
    rmi: dict[int, Logged]
    result_at_exit: bool

    def logged(self, fid: int) -> Logged:
        return self.rmi.get(fid, Logged.NEVER)


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release("tfrmm-1.0", "rmm-spec-v1.0-rel0 (v0.5.0)", 30, _RMI_V1_0_REL0, True),
        Release("tfrmm-0.8", "v0.8.0 and later", 34, _RMI_V0_8, False),
    )
}


def _status_rmi(x0: int) -> str:
    code = x0 & 0xFF
    if code in Status._value2member_map_:
        return f"RMI_{Status(code).name}"
    return f"{x0:x}"  # a status TF-RMM has no name for


def _status_rsi(x0: int) -> str:
    if x0 in RsiStatus._value2member_map_:
        return f"RSI_{RsiStatus(x0).name}"
    return f"{x0:x}"


def _line(release: Release, name: str, args: tuple[int, ...], tail: str | None) -> str:
    text = name.ljust(release.column - 1) + "".join(f" {a & MASK64:x}" for a in args)
    return text if tail is None else f"{text} > {tail}"


def _hex(values: tuple[int, ...]) -> str:
    return "".join(f" {v & MASK64:x}" for v in values)


def format_call(
    release: Release,
    fid: int,
    args: tuple[int, ...],
    result: tuple[int, ...],
    level: int = LOG_LEVEL_INFO,
    *,
    every: bool = False,
    registers: tuple[int, ...] = (),
    exited: bool = False,
) -> str | None:
    """The line TF-RMM ``release`` prints at log ``level`` for the SMC ``fid`` with X1.. =
    ``args`` returning X0.. = ``result`` (empty for a realm call that exited to the host), or
    None if it prints none. ``every`` prints the line whatever the level and the command's
    logging rule; ``registers`` are X1..X7 as a realm passed them, printed for a PSCI call or
    an SMC the RMM does not implement (``args`` otherwise); ``exited`` says that a realm call
    with a result exited to the host all the same (printed then as any exit)."""
    if level < LOG_LEVEL_INFO and not every:
        return None
    if RMI_FID_FIRST <= fid <= RMI_FID_LAST:
        return _rmi_line(release, fid, args, result, every)
    if RSI_FID_FIRST <= fid <= RSI_FID_LAST and fid in _RSI:
        return _rsi_line(release, fid, args, result, exited)
    is_psci = any(first <= fid <= last for first, last in PSCI_FID_RANGES)
    name = f"{'PSCI' if is_psci else 'SMC'}_{fid:08x}"
    regs = (tuple(registers or args) + (0,) * _OTHER_ARGS)[:_OTHER_ARGS]
    if not result:
        return _line(release, name, regs, "0 0 0 0" if release.result_at_exit else None)
    x = (tuple(result) + (0,) * _OTHER_RESULTS)[:_OTHER_RESULTS]
    return _line(release, name, regs, f"{x[0] & MASK64:x}" + _hex(x[1:]))


def call_text(release: Release, fid: int, args: tuple[int, ...]) -> str:
    """TF-RMM's start of a line for SMC ``fid`` with X1.. = ``args``: the name and the
    arguments it prints, without a result (as v0.8.0 prints a call that exits)."""
    command = RMI_COMMANDS.get(fid)
    if command is not None:
        return _line(release, f"SMC_{command.name}", tuple(args)[: len(command.inputs)], None)
    if fid in _RSI:
        name, n_args, _ = _RSI[fid]
        return _line(release, f"SMC_RSI_{name}", (tuple(args) + (0,) * n_args)[:n_args], None)
    is_psci = any(first <= fid <= last for first, last in PSCI_FID_RANGES)
    regs = (tuple(args) + (0,) * _OTHER_ARGS)[:_OTHER_ARGS]
    return _line(release, f"{'PSCI' if is_psci else 'SMC'}_{fid:08x}", regs, None)


def _rmi_line(
    release: Release, fid: int, args: tuple[int, ...], result: tuple[int, ...], every: bool
) -> str | None:
    command = RMI_COMMANDS.get(fid)
    if command is None:
        return None  # an FID with no handler: TF-RMM says so only at VERBOSE, not as a record
    x0 = result[0]
    status, index = x0 & 0xFF, (x0 >> 8) & 0xFF
    logged = release.logged(fid)
    if not every and (
        logged is Logged.NEVER or (logged is Logged.ON_ERROR and status == Status.SUCCESS)
    ):
        return None
    tail = _status_rmi(x0)
    if status == Status.ERROR_RTT or (fid == FID.REC_ENTER and status == Status.ERROR_REALM):
        tail += f" {index:x}"
    outputs = len(command.outputs)
    if status == Status.SUCCESS or (status == Status.ERROR_RTT and fid in _OUTPUTS_ON_ERROR_RTT):
        tail += _hex((tuple(result[1:]) + (0,) * outputs)[:outputs])
    return _line(release, f"SMC_{command.name}", tuple(args)[: len(command.inputs)], tail)


def _rsi_line(
    release: Release, fid: int, args: tuple[int, ...], result: tuple[int, ...], exited: bool
) -> str:
    name, n_args, n_outputs = _RSI[fid]
    shown = (tuple(args) + (0,) * n_args)[:n_args]
    if (not result or exited) and not release.result_at_exit:  # printed at the exit, as is
        return _line(release, f"SMC_RSI_{name}", shown, None)
    if not result:  # the registers the handler set before the exit (IPA_STATE_SET: X1 = top)
        result = (RsiStatus.SUCCESS, shown[1]) if fid == RsiFid.IPA_STATE_SET else (0,)
    outputs = (tuple(result[1:]) + (0,) * n_outputs)[:n_outputs]
    return _line(release, f"SMC_RSI_{name}", shown, _status_rsi(result[0]) + _hex(outputs))


_BY_NAME: dict[str, int] = {
    **{f"SMC_{command.name}": fid for fid, command in RMI_COMMANDS.items()},
    **{f"SMC_RSI_{name}": fid for fid, (name, _, _) in _RSI.items()},
}


def fid_of(name: str) -> int | None:
    """The FID of the call a record names as TF-RMM prints it (``SMC_RMI_DATA_DESTROY``,
    ``SMC_RSI_ATTEST_TOKEN_INIT``, ``PSCI_8400000a``, ``SMC_80000000``), or None."""
    fid = _BY_NAME.get(name)
    if fid is not None:
        return fid
    prefix, _, digits = name.rpartition("_")
    if prefix in ("PSCI", "SMC") and len(digits) == 8:
        try:
            return int(digits, 16)
        except ValueError:
            return None
    return None


def measurement_line(algorithm: str, value: bytes) -> str:
    """A hash TF-RMM computed while measuring a realm, as it prints it at VERBOSE
    (``measurement_print``): ``Measurement (SHA256): 0x`` and the hash in hex."""
    return f"Measurement ({algorithm}): 0x{value.hex()}"
