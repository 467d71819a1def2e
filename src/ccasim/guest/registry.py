"""Guest programs registered by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import Any

GuestProgram = Callable[..., Generator[Any, Any, Any]]

_PROGRAMS: dict[str, GuestProgram] = {}


def program(name: str) -> Callable[[GuestProgram], GuestProgram]:
    """Register the decorated generator function as the guest program ``name``."""

    def register(fn: GuestProgram) -> GuestProgram:
        if not inspect.isgeneratorfunction(fn):
            raise TypeError(f"guest program {name!r} must be a generator function (use yield)")
        _PROGRAMS[name] = fn
        return fn

    return register


def lookup(name: str) -> GuestProgram | None:
    return _PROGRAMS.get(name)


def programs() -> list[str]:
    return sorted(_PROGRAMS)
