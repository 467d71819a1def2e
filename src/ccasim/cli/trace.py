"""``ccasim trace``: compare RMM logs (ccasim's, TF-RMM's from an FVP or a board)."""

from __future__ import annotations

from pathlib import Path

import click

from ccasim.cli.numbers import Number
from ccasim.trace import RELEASES, Divergence, LogRecord, first_divergence, parse_log
from ccasim.trace.diff import ignored
from ccasim.trace.tfrmm import LOG_LEVEL_INFO

#: What ``--trace-format`` and ``--trace-level`` accept (``ccasim run``).
FORMATS = tuple(RELEASES)
LEVELS = ("0", "10", "20", "30", "40", "50", "all")


def trace_level(text: str) -> int | None:
    """TF-RMM's LOG_LEVEL (0-50), or None for ``all`` (every call)."""
    return None if text == "all" else int(text)


@click.group()
def trace() -> None:
    """Compare RMM logs."""


@trace.command(
    epilog=f"""\b
Examples:
  ccasim run --trace ccasim.log -m 256M
  ccasim trace diff ccasim.log fvp.log
  ccasim trace diff --ignore RSI_HOST_CALL a.log b.log

SMC records are read wherever they are in a line (a console prefix such as
'[     rmm ] ' or a timestamp does not matter), in any column width (TF-RMM's is
30 or 34); other lines are skipped. Exit status: 0 when the logs hold the same
records, 1 at a divergence, 2 when a log cannot be read. ccasim writes TF-RMM's
lines at level {LOG_LEVEL_INFO} by default ({", ".join(FORMATS)}: see 'ccasim run --help').""",
)
@click.argument("log_a", metavar="A")
@click.argument("log_b", metavar="B")
@click.option(
    "--ignore", metavar="COMMAND", multiple=True,
    help="Leave a command (e.g. RMI_REC_ENTER) or an interface (PSCI, SMC) out of both logs;"
    " repeatable.",
)  # fmt: skip
@click.option(
    "-C", "--context", type=Number(high=1000, name="N"), default=3, show_default=True,
    help="Records shown before and after the divergence.",
)  # fmt: skip
@click.option(
    "--measurements", is_flag=True,
    help="Compare the measurement hashes TF-RMM prints at level 50 too.",
)  # fmt: skip
def diff(log_a: str, log_b: str, ignore: tuple[str, ...], context: int, measurements: bool) -> int:
    """Compare the SMC records of two RMM logs, physical addresses aside.

    Each log's physical addresses (the RD, REC, RTT, DATA and NS pages, by each command's
    signature) become P0, P1, ... in the order they first appear, so that two runs of the
    same launch on different hosts compare equal. Reports the first record where the
    command, the arguments, the status or the outputs differ, with the records around it.
    """
    a, b = _read(log_a, measurements), _read(log_b, measurements)
    found = first_divergence(a, b, ignore)
    if found is None:
        n = len([r for r in a if not ignored(r, ignore)])
        what = "SMC records and measurements" if measurements else "SMC records"
        click.echo(f"same: {n} {what} compared")
        return 0
    click.echo(_describe(found, log_a, log_b, context))
    return 1


class _Unreadable(click.ClickException):
    exit_code = 2


def _read(path: str, measurements: bool) -> list[LogRecord]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise _Unreadable(f"cannot read {path}: {e.strerror or e}") from None
    return list(parse_log(text.splitlines(), measurements))


def _describe(found: Divergence, name_a: str, name_b: str, context: int) -> str:
    i = found.position
    ra, rb = found.record_a, found.record_b
    where_a = f"{name_a}:{ra.record.line}" if ra else f"{name_a}: (ends)"
    where_b = f"{name_b}:{rb.record.line}" if rb else f"{name_b}: (ends)"
    what = {
        "missing": "one log has more records",
        "command": "the command differs",
        "arguments": "the arguments differ",
        "status": "the status differs",
        "index": "the status's index differs",
        "outputs": "the outputs differ",
        "measurement": "a measurement hash differs",
    }[found.what]
    lines = [f"first divergence at SMC record {i + 1}: {what}", f"  A {where_a}", f"  B {where_b}"]
    for label, records in (("A", found.a), ("B", found.b)):
        lines.append(f"{label}, PAs as symbols:")
        for j in range(max(0, i - context), min(len(records), i + context + 1)):
            mark = ">" if j == i else " "
            lines.append(f" {mark} {records[j].record.line:6} {records[j]}")
    return "\n".join(lines)
