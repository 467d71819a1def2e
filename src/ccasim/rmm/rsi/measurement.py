"""RSI_MEASUREMENT_READ and RSI_MEASUREMENT_EXTEND (B5.3.8, B5.3.7)."""

from __future__ import annotations

import struct

from ccasim.rmi import measurement
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.realm_call import RealmCall
from ccasim.rsi import RsiStatus

_DOUBLEWORDS = struct.Struct("<8Q")


def measurement_read(call: RealmCall, index: int) -> tuple[int, ...]:
    """B5.3.8: the RIM (index 0) or a REM (1-4: REM0..REM3), as eight doublewords, zero
    padded."""
    if index > 4:
        raise CommandFailure("index_bound", RsiStatus.ERROR_INPUT)
    return (RsiStatus.SUCCESS, *_DOUBLEWORDS.unpack(call.realm.measured()[index]))


def measurement_extend(call: RealmCall, index: int, size: int, *value: int) -> tuple[int, ...]:
    """B5.3.7: REM[index] = H(REM[index] || the first ``size`` bytes of X3..X10) (B3.42)."""
    if not 1 <= index <= 4:
        raise CommandFailure("index_bound", RsiStatus.ERROR_INPUT)
    if size > 64:
        raise CommandFailure("size_bound", RsiStatus.ERROR_INPUT)
    realm = call.realm
    data = _DOUBLEWORDS.pack(*value)[:size]
    realm.measurements[index] = measurement.rem_extend(
        realm.hash_algo, realm.measured()[index], data
    )
    return (RsiStatus.SUCCESS,)
