"""Writing the RMM's log as the reference RMM prints it, with ccasim's additions set apart.

A :class:`TraceWriter` is a callback for :meth:`ccasim.Machine.on_rmm_log`. For each record it
writes TF-RMM's line for the chosen release and log level (:mod:`ccasim.trace.tfrmm`), or
nothing where TF-RMM prints nothing, so that a ccasim trace and a log from an FVP or a board
line up. What ccasim knows beyond TF-RMM's line (the failure condition that failed a command,
why a REC exited, why a guest program stopped) follows on lines of its own starting with
``ccasim:``, which TF-RMM never prints and :func:`ccasim.trace.parse_log` skips::

    SMC_RMI_DATA_DESTROY          88000000 1000 > RMI_ERROR_RTT 3 0 200000
    ccasim: failure condition rtte_state

At level 50 (VERBOSE) and with ``level=None`` the hashes the RMM computes while measuring a
realm are written too, as TF-RMM prints them (``Measurement (SHA256): 0x...``), when the
machine logs them (``Machine.on_rmm_log(writer, hashes=writer.hashes)``). ``level=None``
writes every call (ccasim's own level, beyond TF-RMM's): successful DELEGATEs, DATA_CREATEs
and REC_ENTERs too, in the same format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ccasim.trace.tfrmm import (
    LOG_LEVEL_INFO,
    LOG_LEVEL_VERBOSE,
    RELEASES,
    Release,
    call_text,
    format_call,
    measurement_line,
)

__all__ = ["ANNOTATION", "TraceWriter", "record_lines"]

#: The start of a line ccasim adds to TF-RMM's (TF-RMM prints no line starting so).
ANNOTATION = "ccasim: "


class SmcRecord(Protocol):
    """What the RMM's log record of an SMC carries (:class:`ccasim.rmm.log.SmcCall`)."""

    @property
    def fid(self) -> int: ...
    @property
    def args(self) -> tuple[int, ...]: ...
    @property
    def result(self) -> tuple[int, ...]: ...
    @property
    def condition(self) -> str | None: ...
    @property
    def note(self) -> str | None: ...
    @property
    def registers(self) -> tuple[int, ...]: ...
    @property
    def exited(self) -> bool: ...


class HashRecord(Protocol):
    """A hash computed while measuring a realm (:class:`ccasim.rmm.log.Measured`)."""

    @property
    def algorithm(self) -> str: ...
    @property
    def value(self) -> bytes: ...


class PanicRecord(Protocol):
    """The RMM stopped in an RMI command (:class:`ccasim.rmm.log.Panicked`)."""

    @property
    def fid(self) -> int: ...
    @property
    def args(self) -> tuple[int, ...]: ...
    @property
    def reason(self) -> str: ...


class EventRecord(Protocol):
    """A guest program's stop (:class:`ccasim.rmm.log.VcpuEvent`)."""

    @property
    def rec(self) -> int: ...
    @property
    def text(self) -> str: ...


Record = SmcRecord | EventRecord | HashRecord | PanicRecord


def record_lines(
    record: Record,
    release: Release,
    level: int | None = LOG_LEVEL_INFO,
    notes: bool = True,
) -> list[str]:
    """The lines a trace holds for ``record``: TF-RMM's (if it prints one at ``level``;
    every call when ``level`` is None) and, with ``notes``, ccasim's annotations."""
    found: Any = record  # told apart by what it carries
    if hasattr(found, "algorithm"):  # a measurement hash: TF-RMM's at VERBOSE
        if level is not None and level < LOG_LEVEL_VERBOSE:
            return []
        return [measurement_line(found.algorithm, found.value)]
    if hasattr(found, "reason"):  # the RMM stopped: TF-RMM prints no line of it
        call = " ".join(call_text(release, found.fid, found.args).split())
        return [f"{ANNOTATION}RMM panic in {call}: {found.reason}"] if notes else []
    if not hasattr(found, "fid"):  # a guest program that stopped: ccasim's alone
        return [f"{ANNOTATION}REC {found.rec:x}: {found.text}"] if notes else []
    line = format_call(
        release,
        found.fid,
        found.args,
        found.result,
        LOG_LEVEL_INFO if level is None else level,
        every=level is None,
        registers=found.registers,
        exited=found.exited,
    )
    if line is None:
        return []
    lines = [line]
    if notes and found.condition:
        lines.append(f"{ANNOTATION}failure condition {found.condition}")
    if notes and found.note:
        lines.append(f"{ANNOTATION}{found.note}")
    return lines


class TraceWriter:
    """Write each log record of the RMM with ``write`` (one call per line, newline included):
    ``release`` is a name in :data:`~ccasim.trace.tfrmm.RELEASES` (``tfrmm-1.0``,
    ``tfrmm-0.8``), ``level`` TF-RMM's LOG_LEVEL (nothing below 40) or None for every call,
    ``notes`` whether ccasim's annotation lines are written."""

    def __init__(
        self,
        write: Callable[[str], object],
        release: str = "tfrmm-1.0",
        level: int | None = LOG_LEVEL_INFO,
        notes: bool = True,
    ) -> None:
        if release not in RELEASES:
            raise ValueError(f"unknown log format {release!r} (one of {', '.join(RELEASES)})")
        self._write = write
        self.release = RELEASES[release]
        self.level = level
        self.notes = notes

    @property
    def hashes(self) -> bool:
        """Whether the trace prints measurement hashes (so the RMM must log them)."""
        return self.level is None or self.level >= LOG_LEVEL_VERBOSE

    def __call__(self, record: Record) -> None:
        for line in record_lines(record, self.release, self.level, self.notes):
            self._write(line + "\n")
