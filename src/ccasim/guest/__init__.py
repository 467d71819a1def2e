"""Realm software: guest programs that run on a REC (the realm's view of the machine).

Realm software is whatever sits in realm memory at a REC's entry PC. ccasim runs Python guest
programs: an *image* in realm memory names a registered program and its parameters, and the
REC runs the program found at its PC. The image bytes are populated with RMI_DATA_CREATE and
measured like any other realm memory, so what runs is determined by those bytes::

    from ccasim import guest

    @guest.program("hello")
    def hello(cpu, greeting="hi"):
        x = yield guest.Smc(0xC400_0190, 0x10000)        # RSI_VERSION
        yield guest.Store(0x8000_1000, greeting.encode())

    image = guest.image("hello", greeting="hello")      # bytes to place at the entry PC

A program is a generator. Each ``yield`` performs one architectural action and evaluates to
its result (the actions and exceptions are the PE's instruction set, :mod:`ccasim.isa`).
Returning ends the vCPU as PSCI_CPU_OFF would, raising resets the realm
(:mod:`ccasim.guest.runtime`).
"""

from ccasim.guest import default as _default  # noqa: F401  (registers ccasim-default)
from ccasim.guest.image import ImageError, decode_image, image
from ccasim.guest.registry import lookup, program, programs
from ccasim.guest.runtime import load
from ccasim.isa import (
    AckInterrupt,
    Action,
    Eoi,
    GuestCpu,
    Hvc,
    Load,
    ReadCounter,
    SetTimer,
    Smc,
    Store,
    SynchronousExternalAbort,
    UndefinedInstruction,
    Wfe,
    Wfi,
)

__all__ = [
    "AckInterrupt",
    "Action",
    "Eoi",
    "GuestCpu",
    "Hvc",
    "ImageError",
    "Load",
    "ReadCounter",
    "SetTimer",
    "Smc",
    "Store",
    "SynchronousExternalAbort",
    "UndefinedInstruction",
    "Wfe",
    "Wfi",
    "decode_image",
    "image",
    "load",
    "lookup",
    "program",
    "programs",
]
