"""RSI_HOST_CALL (B5.3.4; A4.5 Host call)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccasim.hw.memory import GRANULE_MASK
from ccasim.hw.pe import Trap
from ccasim.rmi.structs import RecEnter
from ccasim.rmi.types import RecExitReason
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.exits import ExitToHost, RecExitInfo
from ccasim.rmm.realm import Realm
from ccasim.rmm.realm_call import RealmCall, set_result
from ccasim.rmm.rec import LastExit, Rec
from ccasim.rmm.rsi.realm_memory import access_granule
from ccasim.rsi import HostCall, RsiStatus

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

HOST_CALL_ALIGN = 256


def host_call(call: RealmCall, addr: int) -> tuple[int, ...]:
    """B5.3.4: pass the RsiHostCall at ``addr`` (immediate, X0..X30) to the host.

    The REC exits with RMI_EXIT_HOST_CALL; on the next entry the host's enter.gprs are written
    back into the structure (A4.2.2).
    """
    if addr % HOST_CALL_ALIGN:
        raise CommandFailure("addr_align", RsiStatus.ERROR_INPUT)
    if not call.realm.is_protected(addr):
        raise CommandFailure("addr_bound", RsiStatus.ERROR_INPUT)
    pa = access_granule(call, addr)
    offset = addr & GRANULE_MASK
    data = HostCall.unpack(call.rmm.mem.memory.read(pa + offset, HostCall.SIZE))
    rec = call.rec
    rec.host_call_pending = True
    rec.host_call_addr = addr
    rec.last_exit = LastExit.HOST_CALL
    raise ExitToHost(RecExitInfo(RecExitReason.HOST_CALL, gprs=data.gprs, imm=data.imm))


def complete_host_call(
    rmm: Rmm, rec: Rec, realm: Realm, enter: RecEnter, trap: Trap | None = None
) -> None:
    """On the REC entry after a host call: copy enter.gprs into the RsiHostCall (A4.2.2).

    If the structure is no longer mapped the entry ends at once in a REC exit due to Data
    Abort (ExitToHost), and the copy is retried on the next entry.
    """
    call = RealmCall(rmm, realm, rec)
    try:
        pa = access_granule(call, rec.host_call_addr)
    except CommandFailure as failure:  # the page became EMPTY meanwhile
        set_result(rec, failure.status)
        rec.host_call_pending = False
        return
    except ExitToHost:
        rec.last_exit = LastExit.HOST_CALL
        raise
    offset = rec.host_call_addr & GRANULE_MASK
    imm = HostCall.unpack(rmm.mem.memory.read(pa + offset, HostCall.SIZE)).imm
    rmm.mem.memory.write(pa + offset, HostCall(imm, list(enter.gprs)).pack())
    rec.host_call_pending = False
    set_result(rec, RsiStatus.SUCCESS)
