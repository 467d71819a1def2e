"""Reading RMM logs: the SMC records in a log from ccasim, an FVP, QEMU or a board.

An SMC record is the line TF-RMM prints for an RMI or RSI call::

    SMC_RMI_DATA_DESTROY          17ffb000 9951d000 > RMI_ERROR_RTT 3 0 99600000

the command's name after ``SMC_RMI_`` / ``SMC_RSI_`` (``SMC_RMM_`` before TF-RMM 0.5), its
arguments in hex, then after ``>`` the status and the values printed with it (an index, the
output registers). A PSCI call or another SMC from a realm is ``PSCI_<fid>`` / ``SMC_<fid>``
with X1..X7 and, after ``>``, X0..X3. Everything else in a log (boot messages, the kernel's
and VMM's output, ccasim's annotation lines) is not a record and is skipped. Records are
found wherever they sit in a line, so that a console prefix (``[     rmm ] ``, a timestamp)
does not matter, and a record split over two lines by a console (the name on one, the rest
on the next, with the same prefix) is joined. A record printed without its result (some
logs cut the line at a REC exit) has ``status`` None. The name column may be of any width.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["LogRecord", "parse_log", "parse_record"]

_RECORD = re.compile(r"(?:SMC_(RMI|RMM|RSI)_([A-Z0-9_]+)|(PSCI|SMC)_([0-9a-f]{8}))(?=\s|$)(.*)$")
_HEX = re.compile(r"[0-9a-fA-F]+")
_MEASUREMENT = re.compile(r"Measurement \((SHA\d+)\): 0x([0-9a-f]+)$")
_STATUS = re.compile(r"(RMI|RSI)_[A-Z_]+")


@dataclass(frozen=True)
class LogRecord:
    """One SMC record: ``interface`` is ``RMI``, ``RSI`` (``SMC_RMM_`` reads as RMI), ``PSCI``
    or ``SMC``, ``command`` the name without the interface (``DATA_DESTROY``; the FID in hex
    for PSCI and SMC), ``args`` the arguments,
    ``status`` the status name (``RMI_ERROR_RTT``; None if the line has no result, or shows
    only values, as RMMs before 1.0 did for RSI_ABI_VERSION), ``values`` what follows the
    status (an index, then the outputs), ``line`` the 1-based line number of the record's
    first line and ``text`` the record as it stands in the log (without a console prefix)."""

    interface: str
    command: str
    args: tuple[int, ...]
    status: str | None
    values: tuple[int, ...]
    line: int
    text: str

    @property
    def name(self) -> str:
        """``RMI_DATA_DESTROY``, as TF-RMM names the command."""
        return f"{self.interface}_{self.command}"

    @property
    def has_result(self) -> bool:
        return self.status is not None or bool(self.values)


def parse_record(text: str, line: int = 1) -> LogRecord | None:
    """The SMC record in ``text`` (one line, or two joined), or None if it holds none."""
    match = _RECORD.search(text)
    if match is None:
        return None
    interface, command, other, fid, rest = match.groups()
    if other is not None:  # a PSCI call or another SMC from a realm, by its FID
        interface, command = other, fid
    before, _, after = rest.partition(">")
    args = before.split()
    if not all(_HEX.fullmatch(a) for a in args):
        return None  # not a record: a message that happens to contain such a name
    status = None
    tokens = after.split()
    if tokens and _STATUS.fullmatch(tokens[0]):
        status = tokens.pop(0)
    values = []
    for token in tokens:
        if not _HEX.fullmatch(token):
            break  # whatever a console appended after the record
        values.append(int(token, 16))
    return LogRecord(
        interface="RMI" if interface == "RMM" else interface,
        command=command,
        args=tuple(int(a, 16) for a in args),
        status=status,
        values=tuple(values),
        line=line,
        text=match.group(0).rstrip(),
    )


def parse_log(lines: Iterable[str], measurements: bool = False) -> Iterator[LogRecord]:
    """The SMC records of a log, in order; with ``measurements``, also the hashes TF-RMM
    prints at VERBOSE while measuring a realm (``Measurement (SHA256): 0x...``), as records
    of interface ``MEASUREMENT`` whose command is the algorithm and whose one value is the
    hash."""
    pending: tuple[str, str, int] | None = None  # a name alone: (console prefix, name, line)
    for number, raw in enumerate(lines, start=1):
        text = raw.rstrip("\n")
        if pending is not None:
            prefix, name, first = pending
            pending = None
            rest = text[len(prefix) :]
            if text.startswith(prefix) and _RECORD.search(text) is None:
                joined = parse_record(f"{name} {rest}", first)
                if joined is not None:
                    yield joined
                    continue
            yield _name_only(name, first)
        match = _RECORD.search(text)
        if match is None:
            if measurements:
                hashed = _MEASUREMENT.search(text)
                if hashed is not None:
                    algorithm, value = hashed.groups()
                    yield LogRecord("MEASUREMENT", algorithm, (), None, (int(value, 16),),
                                    number, hashed.group(0))  # fmt: skip
            continue
        if not match.group(5).strip():  # the name alone: the rest may be on the next line
            pending = (text[: match.start()], match.group(0).strip(), number)
            continue
        record = parse_record(text, number)
        if record is not None:
            yield record
    if pending is not None:
        yield _name_only(pending[1], pending[2])


def _name_only(name: str, line: int) -> LogRecord:
    record = parse_record(name, line)
    assert record is not None  # a name the record pattern matched
    return record
