"""What realm software and the PE that runs it agree on: the PE's "instruction set".

A guest program performs architectural actions (:mod:`ccasim.isa.actions`), one per
``yield``, and takes architectural exceptions (:mod:`ccasim.isa.exceptions`) at the ``yield``
that caused them. The PE starts a program through a loader it is given (:mod:`ccasim.isa.boot`),
and records why a program stopped for the debugger (:mod:`ccasim.isa.debug`). Nothing here
knows about realms, the RMM or RSI: a PE could run any software that speaks this set.
"""

from ccasim.isa.actions import (
    ACCESS_SIZES,
    AckInterrupt,
    Action,
    Eoi,
    Hvc,
    Load,
    Note,
    ReadCounter,
    ReportStop,
    SetTimer,
    Smc,
    Store,
    Wfe,
    Wfi,
)
from ccasim.isa.boot import Fetch, GuestCpu, LoadError, ProgramLoader
from ccasim.isa.debug import StopReason, VcpuStop
from ccasim.isa.exceptions import GuestException, SynchronousExternalAbort, UndefinedInstruction

__all__ = [
    "ACCESS_SIZES",
    "AckInterrupt",
    "Action",
    "Eoi",
    "Fetch",
    "GuestCpu",
    "GuestException",
    "Hvc",
    "Load",
    "LoadError",
    "Note",
    "ProgramLoader",
    "ReadCounter",
    "ReportStop",
    "SetTimer",
    "Smc",
    "StopReason",
    "Store",
    "SynchronousExternalAbort",
    "UndefinedInstruction",
    "VcpuStop",
    "Wfe",
    "Wfi",
]
