"""Comparing two RMM logs record by record, physical addresses aside.

Two runs of the same launch, one in ccasim and one on an FVP or a board, make the same calls
with different physical addresses: the host allocates its granules where it likes. So each
log's PAs are replaced by symbols, ``P0``, ``P1``, ... in the order they first appear in that
log, and the symbolized records are compared. Which registers hold PAs is decided from each
command's signature (RMM 1.0, B4.3: ``rd``, ``rec``, ``data``, ``src``, ``rtt``, the
parameter and run pages, and the outputs ``data``, ``rtt``, ``desc``); IPAs, levels, sizes
and everything RSI carries are compared as they are. A command the table does not know (from
a later RMI) is compared as printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ccasim.rmi.commands import RMI_COMMANDS
from ccasim.trace.parse import LogRecord

__all__ = ["Divergence", "Symbolized", "first_divergence", "ignored", "symbolize"]

#: Names of the RMM 1.0 registers that hold a physical address (B4.3.x.1 Interface).
PA_NAMES = frozenset(
    {"rd", "rec", "rec_ptr", "data", "src", "rtt", "addr", "params_ptr", "run_ptr",
     "calling_rec", "target_rec", "desc"}
)  # fmt: skip
GRANULE_MASK = 0xFFF

#: For each RMI command by its TF-RMM name: which arguments and which outputs hold PAs.
_SIGNATURES: dict[str, tuple[tuple[bool, ...], tuple[bool, ...]]] = {
    f.name: (
        tuple(name in PA_NAMES for name in f.inputs),
        tuple(name in PA_NAMES for name in f.outputs),
    )
    for f in RMI_COMMANDS.values()
}


@dataclass(frozen=True)
class Symbolized:
    """A record with its PAs replaced by symbols: what two logs must agree on."""

    record: LogRecord
    name: str
    args: tuple[str, ...]
    status: str | None
    values: tuple[str, ...]

    def __str__(self) -> str:
        if self.record.interface == "MEASUREMENT":
            return self.record.text
        name = self.name if self.record.interface in ("PSCI", "SMC") else f"SMC_{self.name}"
        text = " ".join((name, *self.args))
        if self.record.has_result:
            text += " > " + " ".join(filter(None, (self.status, *self.values)))
        return text


class _Symbols:
    """PA -> ``P<n>``, numbered in order of first appearance."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}

    def __call__(self, value: int) -> str:
        if value == 0:
            return "0"  # no address (an output the command did not set)
        base, low = value & ~GRANULE_MASK, value & GRANULE_MASK
        name = self._names.setdefault(base, f"P{len(self._names)}")
        return f"{name}+{low:x}" if low else name


def _index_values(record: LogRecord) -> int:
    """How many of the values after the status are an index (printed before the outputs)."""
    if record.status == "RMI_ERROR_RTT" or (
        record.status == "RMI_ERROR_REALM" and record.command == "REC_ENTER"
    ):
        return 1
    return 0


def symbolize(records: Iterable[LogRecord]) -> list[Symbolized]:
    """The records of one log with their PAs as symbols (one numbering for the whole log)."""
    symbol = _Symbols()
    out = []
    for record in records:
        arg_pas: tuple[bool, ...] = ()
        out_pas: tuple[bool, ...] = ()
        if record.interface == "RMI":
            arg_pas, out_pas = _SIGNATURES.get(record.name, ((), ()))
        args = tuple(
            symbol(v) if i < len(arg_pas) and arg_pas[i] else f"{v:x}"
            for i, v in enumerate(record.args)
        )
        skip = _index_values(record)
        values = tuple(
            symbol(v) if i >= skip and i - skip < len(out_pas) and out_pas[i - skip] else f"{v:x}"
            for i, v in enumerate(record.values)
        )
        out.append(Symbolized(record, record.name, args, record.status, values))
    return out


@dataclass(frozen=True)
class Divergence:
    """Where two logs first differ: the position in each log's records, what differs
    (``command``, ``arguments``, ``status``, ``index`` (of an RMI_ERROR_RTT, say),
    ``outputs``, ``measurement`` (a hash), or ``missing`` when one log ends first) and the
    symbolized records of both logs."""

    position: int
    what: str
    a: Sequence[Symbolized]
    b: Sequence[Symbolized]

    @property
    def record_a(self) -> Symbolized | None:
        return self.a[self.position] if self.position < len(self.a) else None

    @property
    def record_b(self) -> Symbolized | None:
        return self.b[self.position] if self.position < len(self.b) else None


def _difference(a: Symbolized, b: Symbolized) -> str | None:
    if a.name != b.name:
        return "command"
    if a.args != b.args:
        return "arguments"
    if not (a.record.has_result and b.record.has_result):
        return None  # a log without the result: the call is all there is to compare
    if a.record.interface == "MEASUREMENT" and a.values != b.values:
        return "measurement"
    if a.status != b.status:
        return "status"
    if _index_values(a.record) and a.values[:1] != b.values[:1]:
        return "index"
    if a.values != b.values:
        return "outputs"
    return None


def ignored(record: LogRecord, ignore: Iterable[str]) -> bool:
    """Whether ``record`` is one of the commands or interfaces ``ignore`` names."""
    return any(name in (record.name, record.command, record.interface) for name in ignore)


def first_divergence(
    a: Iterable[LogRecord], b: Iterable[LogRecord], ignore: Iterable[str] = ()
) -> Divergence | None:
    """The first record at which the logs differ, or None if they hold the same records.

    ``ignore`` names commands (``RMI_REC_ENTER``, or without the interface, ``REC_ENTER``)
    or whole interfaces (``PSCI``, ``SMC``: a realm's other SMCs) left out of both logs
    before comparing them."""
    keep = [r for r in a if not ignored(r, ignore)]
    keep_b = [r for r in b if not ignored(r, ignore)]
    sa, sb = symbolize(keep), symbolize(keep_b)
    for i, (x, y) in enumerate(zip(sa, sb, strict=False)):
        what = _difference(x, y)
        if what is not None:
            return Divergence(i, what, sa, sb)
    if len(sa) != len(sb):
        return Divergence(min(len(sa), len(sb)), "missing", sa, sb)
    return None
