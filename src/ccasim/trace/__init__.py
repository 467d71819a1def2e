"""RMM logs: writing ccasim's as the reference RMM (TF-RMM) prints them, reading any RMM's,
and comparing two (``ccasim trace diff``).

- :mod:`ccasim.trace.tfrmm`: TF-RMM's log format per release, and which calls it prints;
- :mod:`ccasim.trace.writer`: a :meth:`ccasim.Machine.on_rmm_log` callback writing it;
- :mod:`ccasim.trace.parse`: the SMC records of a log from ccasim, an FVP, QEMU or a board;
- :mod:`ccasim.trace.diff`: the first difference between two logs, PAs aside.

This package reads and writes text: it knows the ABIs, not the RMM model.
"""

from ccasim.trace.diff import Divergence, first_divergence, symbolize
from ccasim.trace.parse import LogRecord, parse_log, parse_record
from ccasim.trace.tfrmm import LOG_LEVEL_INFO, LOG_LEVEL_VERBOSE, RELEASES, Release, format_call
from ccasim.trace.writer import ANNOTATION, TraceWriter, record_lines

__all__ = [
    "ANNOTATION", "LOG_LEVEL_INFO", "LOG_LEVEL_VERBOSE", "RELEASES", "Divergence",
    "LogRecord", "Release", "TraceWriter", "first_divergence", "format_call", "parse_log",
    "parse_record", "record_lines", "symbolize",
]  # fmt: skip
