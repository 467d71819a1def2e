"""RMI_VERSION and RMI_FEATURES (B4.3.23, B4.3.4): interface discovery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccasim.rmi.status import Status
from ccasim.rmm.errors import CommandFailure

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

#: The one RMI revision this RMM implements (B4.1): 1.0.
RMI_VERSION_MAJOR, RMI_VERSION_MINOR = 1, 0
RMI_VERSION = RMI_VERSION_MAJOR << 16 | RMI_VERSION_MINOR


def version(rmm: Rmm, req: int) -> tuple[int, ...]:
    """B4.3.23 and B2: negotiate the interface revision.

    Only revision 1.0 is implemented, so lower == higher == 1.0. A request for 1.0 succeeds
    (outcome a); any other request fails with RMI_ERROR_INPUT (outcome b or c), still
    reporting 1.0 in X1 and X2.
    """
    if req != RMI_VERSION:
        raise CommandFailure("version", Status.ERROR_INPUT, 0, (RMI_VERSION, RMI_VERSION))
    return (RMI_VERSION, RMI_VERSION)


def features(rmm: Rmm, index: int) -> tuple[int, ...]:
    """B4.3.4: feature register ``index``; only register 0 exists, others read as zero."""
    return (rmm.features.register0 if index == 0 else 0,)
