"""The hashes the reference RMM prints at LOG_LEVEL_VERBOSE while it measures a realm.

A Debug build of TF-RMM prints every hash it computes for a realm's measurement, as
``Measurement (SHA256): 0x...``, inside the command that computes it (so before the command's
own log line): the RIM RMI_REALM_CREATE starts from; after each RTT entry RMI_RTT_INIT_RIPAS
covers, the RIM; for RMI_DATA_CREATE the page's hash if its contents are measured, then the
RIM; for RMI_REC_CREATE the hash of the REC's measured parameters, then the RIM (B4.3.9.4,
B4.3.18.4, B4.3.1.4, B4.3.12.4). With :func:`hashing_dispatch` the RMM logs the same values
(:class:`~ccasim.rmm.log.Measured`), each computed from the RIM before the command, which is
completed first: slower for a large realm, and only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ccasim.rmi import levels, measurement
from ccasim.rmi.fid import FID
from ccasim.rmi.levels import RTT_PAGE_LEVEL
from ccasim.rmi.structs import RecParams
from ccasim.rmi.types import DATA_MEASURE_CONTENT
from ccasim.rmm.log import Measured
from ccasim.rmm.realm import Realm

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

Dispatch = dict[int, tuple[Callable[..., tuple[int, ...]], int]]


def _steps(rmm: Rmm, fid: int, regs: tuple[int, ...], realm: Realm, rim: bytes,
           outputs: tuple[int, ...]) -> list[bytes]:  # fmt: skip
    """The hashes command ``fid`` computed, in order, from the RIM ``rim`` it started from."""
    algo = realm.hash_algo
    if fid == FID.REALM_CREATE:
        return [realm.measured()[0]]
    if fid == FID.RTT_INIT_RIPAS:
        base, top = regs[1], outputs[0]
        size = levels.level_size(rmm.rtt_walk(realm, base, RTT_PAGE_LEVEL).level)
        out = []
        for addr in range(base, top, size):
            rim = measurement.rim_extend_ripas_entry(algo, rim, addr, addr + size)
            out.append(rim)
        return out
    if fid == FID.DATA_CREATE:
        data, ipa, flags = regs[1], regs[2], regs[4]
        content = rmm.memory.granule(data) if flags == DATA_MEASURE_CONTENT else None
        first = [measurement.measure(algo, content)] if content is not None else []
        return [*first, measurement.rim_extend_data(algo, rim, ipa, flags, content)]
    params = RecParams.unpack(rmm.read_ns_granule(regs[2]))  # REC_CREATE
    content = measurement.rec_content_hash(algo, params)
    return [content, measurement.rim_extend_rec(algo, rim, params)]


def _hashing(fid: int, handler: Callable[..., tuple[int, ...]]) -> Callable[..., tuple[int, ...]]:
    def run(rmm: Rmm, *regs: int) -> tuple[int, ...]:
        before = rmm.realms.get(regs[0]) if fid != FID.REALM_CREATE else None
        rim = before.measured()[0] if before is not None else b""
        outputs = handler(rmm, *regs)  # a failure raises: nothing was measured
        realm = rmm.realms[regs[0]]
        if rmm.log is not None:
            name = realm.hash_algo.name.replace("_", "")  # SHA256, as TF-RMM names it
            size = realm.hash_algo.digest_size
            for value in _steps(rmm, fid, regs, realm, rim, outputs):
                rmm.log(Measured(name, value[:size]))
        return outputs

    return run


#: The commands that measure a realm.
MEASURING = (FID.REALM_CREATE, FID.RTT_INIT_RIPAS, FID.DATA_CREATE, FID.REC_CREATE)


def hashing_dispatch(dispatch: Dispatch) -> Dispatch:
    """``dispatch`` with each measuring command logging the hashes it computes."""
    return {
        fid: (_hashing(fid, handler), n) if fid in MEASURING else (handler, n)
        for fid, (handler, n) in dispatch.items()
    }


__all__ = ["MEASURING", "hashing_dispatch"]
