"""RMI command handlers, one module per command family (as TF-RMM's runtime/rmi/).

Each handler takes the RMM and the command's input registers, checks the failure conditions
of its B4.3 definition in an order that satisfies the spec's failure-condition orderings
(raising :class:`~ccasim.rmm.errors.CommandFailure` for the first that holds, before changing
anything), then applies the success conditions and returns the output registers X1...
"""

from __future__ import annotations

from collections.abc import Callable

from ccasim.rmi.fid import FID

#: FID -> (handler, number of input registers after X0)
COMMANDS: dict[int, tuple[Callable[..., tuple[int, ...]], int]] = {}


def command(fid: FID, nargs: int):
    """Register the decorated function as the handler of RMI command ``fid``."""

    def register(fn):
        COMMANDS[fid] = (fn, nargs)
        return fn

    return register


# Importing the modules registers their commands.
from ccasim.rmm.rmi import data, granule, realm, rec, rtt, run, version  # noqa: E402, F401
