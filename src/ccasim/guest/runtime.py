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
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

from ccasim.guest.image import HEADER, ImageError, decode_image, header_length, is_kernel_image
from ccasim.guest.registry import lookup, programs
from ccasim.isa import Fetch, GuestCpu, LoadError, Note, ReportStop, Smc, StopReason, VcpuStop, Wfi
from ccasim.psci import PsciFid

#: Frames in ccasim's own modules (this runtime, the action classes, RSI helpers), the
#: standard library and generated code (a dataclass's __init__) are machinery: the line a
#: crash report points at is the innermost frame outside them, in the program's own code.
_MACHINERY = (
    str(Path(__file__).resolve().parent.parent) + os.sep,
    sysconfig.get_paths()["stdlib"] + os.sep,
    "<",
)


def load(
    cpu: GuestCpu, fetch: Fetch, fallback: tuple[str, Mapping[str, Any]] | None = None
) -> Generator[Any, Any, Any]:
    """The guest program whose image is at ``cpu.pc`` (directly, or after the header of an
    arm64 kernel Image), started; raises LoadError.

    With ``fallback`` (a program name and its parameters), memory at the PC that holds no
    guest image (a real AArch64 kernel, say) runs that program instead: ccasim executes guest
    programs, not AArch64 code. Its vCPU's console says so.
    """
    try:
        name, params = find_image(cpu.pc, fetch)
    except LoadError as error:
        if fallback is None:
            raise
        program, args = fallback
        note = f"no guest program at {cpu.pc:#x} ({error}): running {program!r} in its place"
        return run(program_named(cpu, program, dict(args)), note)
    return run(program_named(cpu, name, params))


def find_image(pc: int, fetch: Fetch) -> tuple[str, dict]:
    try:
        head = fetch(pc, 64)
        if is_kernel_image(head):
            pc += 64
            head = fetch(pc, HEADER.size)
        total = header_length(head[: HEADER.size])
        return decode_image(fetch(pc, total))
    except ImageError as e:
        raise LoadError(str(e)) from None


def program_named(cpu: GuestCpu, name: str, params: dict) -> Generator[Any, Any, Any]:
    fn = lookup(name)
    if fn is None:
        close = difflib.get_close_matches(name, programs(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise LoadError(f"no guest program named {name!r} is registered{hint}")
    try:
        return fn(cpu, **params)
    except TypeError as e:  # the image's parameters do not fit the program
        raise LoadError(str(e)) from None


def run(program: Generator[Any, Any, Any], note: str | None = None) -> Generator[Any, Any, Any]:
    """Run ``program``; when it ends, report why and end the vCPU with PSCI."""
    if note is not None:
        yield Note(note)
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
