"""RSI_VERSION and RSI_FEATURES (B5.3.10, B5.3.3)."""

from __future__ import annotations

from ccasim.rmm.realm_call import RealmCall
from ccasim.rsi import RSI_VERSION_1_0, RsiStatus


def version(call: RealmCall, req: int) -> tuple[int, ...]:
    """B5.3.10: only RSI 1.0 is implemented; any other request fails (B2 outcomes b, c)."""
    status = RsiStatus.SUCCESS if req == RSI_VERSION_1_0 else RsiStatus.ERROR_INPUT
    return (status, RSI_VERSION_1_0, RSI_VERSION_1_0)


def features(call: RealmCall, index: int) -> tuple[int, ...]:
    """B5.3.3: every feature register reads as zero in RSI 1.0."""
    return (RsiStatus.SUCCESS, 0)
