"""What the realm's kernel does around a guest program: find it at the PC, start it, and end
the vCPU as Linux does when the program returns (PSCI_CPU_OFF) or fails (a panic that resets
the system, PSCI_SYSTEM_RESET).

:func:`load` is the loader a machine gives its PE (:data:`ccasim.isa.ProgramLoader`).
"""

from __future__ import annotations

import difflib
import os
import sysconfig
import traceback
from collections.abc import Generator
from pathlib import Path
from typing import Any

from ccasim.guest.image import HEADER, ImageError, decode_image, header_length
from ccasim.guest.registry import lookup, programs
from ccasim.isa import Fetch, GuestCpu, LoadError, ReportStop, Smc, StopReason, VcpuStop, Wfi
from ccasim.psci import PsciFid

#: Frames in ccasim's own modules (this runtime, the action classes, RSI helpers), the
#: standard library and generated code (a dataclass's __init__) are machinery: the line a
#: crash report points at is the innermost frame outside them, in the program's own code.
_MACHINERY = (
    str(Path(__file__).resolve().parent.parent) + os.sep,
    sysconfig.get_paths()["stdlib"] + os.sep,
    "<",
)


def load(cpu: GuestCpu, fetch: Fetch) -> Generator[Any, Any, Any]:
    """The guest program whose image is at ``cpu.pc``, started (raises LoadError)."""
    try:
        total = header_length(fetch(cpu.pc, HEADER.size))
        name, params = decode_image(fetch(cpu.pc, total))
    except ImageError as e:
        raise LoadError(str(e)) from None
    fn = lookup(name)
    if fn is None:
        close = difflib.get_close_matches(name, programs(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise LoadError(f"no guest program named {name!r} is registered{hint}")
    try:
        program = fn(cpu, **params)
    except TypeError as e:  # the image's parameters do not fit the program
        raise LoadError(str(e)) from None
    return run(program)


def run(program: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """Run ``program``; when it ends, report why and end the vCPU with PSCI."""
    try:
        yield from program
    except Exception as error:
        yield ReportStop(crash_report(error))
        yield Smc(PsciFid.SYSTEM_RESET)
    else:
        yield ReportStop(VcpuStop(StopReason.RETURNED, "the vCPU turns off (PSCI_CPU_OFF)"))
        yield Smc(PsciFid.CPU_OFF)
    while True:  # PSCI_CPU_OFF and SYSTEM_RESET return only if they failed: idle
        yield Wfi()


def _own(filename: str) -> bool:
    return not filename.startswith(_MACHINERY)


def crash_report(error: BaseException) -> VcpuStop:
    """A program raised ``error``: the report points at the program's own line, and its
    traceback starts at the program's frame."""
    frames = traceback.extract_tb(error.__traceback__)
    while frames and frames[0].filename == __file__:  # run() itself
        frames.pop(0)
    own = [f for f in frames if _own(f.filename)]
    at = own[-1] if own else (frames[0] if frames else None)
    report = "".join(traceback.format_list(frames))
    report += "".join(traceback.format_exception_only(type(error), error))
    text = str(error).strip().replace("\n", " ")
    return VcpuStop(
        StopReason.CRASHED,
        f"{type(error).__name__}: {text}" if text else type(error).__name__,
        at.filename if at else None,
        at.lineno if at else None,
        "Traceback (most recent call last):\n" + report.rstrip("\n"),
    )
