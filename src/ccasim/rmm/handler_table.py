"""The RMM's handler tables, checked against the ABI's declaration of the commands when they
are built (as TF-RMM's handler table asserts its entries)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from ccasim.smccc import Function


def check_table(
    handlers: Mapping[int, Callable[..., object]], declared: Mapping[int, Function], context: int
) -> None:
    """Every declared command has a handler taking ``context`` arguments and then exactly
    its declared inputs (or a ``*args`` group for them); nothing else has a handler."""
    if set(handlers) != set(declared):
        missing = {declared[f].name for f in set(declared) - set(handlers)}
        raise AssertionError(f"handlers missing for {missing}, or for FIDs not declared")
    for fid, handler in handlers.items():
        params = list(inspect.signature(handler).parameters.values())[context:]
        varargs = params and params[-1].kind is inspect.Parameter.VAR_POSITIONAL
        if not varargs and len(params) != len(declared[fid].inputs):
            raise AssertionError(f"{handler.__name__} does not take {declared[fid].inputs}")
