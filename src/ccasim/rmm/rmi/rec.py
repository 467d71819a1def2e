"""RMI_REC_AUX_COUNT, RMI_REC_CREATE, RMI_REC_DESTROY (B4.3.11, B4.3.12, B4.3.13)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccasim.el3.monitor import RmmPanic
from ccasim.hw.memory import GRANULE_MASK, GRANULE_SHIFT
from ccasim.hw.vcpu import Vcpu
from ccasim.rmi import measurement
from ccasim.rmi.status import Status
from ccasim.rmi.structs import RecParams
from ccasim.rmi.types import REC_RUNNABLE, RecMpidr
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.profile import Quirk
from ccasim.rmm.rec import Rec
from ccasim.rmm.types import GranuleState, RealmState, RecState

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm

MAX_AUX_GRANULES = 16
_MPIDR_RESERVED = RecMpidr.reserved_mask()


def rec_aux_count(rmm: Rmm, rd: int) -> tuple[int, ...]:
    """B4.3.11: RecAuxCount(rd) (B3.36), fixed when the realm is created."""
    return (rmm.find_realm(rd).rec_aux_count,)


def check_aux(rmm: Rmm, rec: int, aux: list[int]) -> None:
    """aux_align, aux_alias, aux_state (AuxAligned, AuxAlias, AuxStateEqual: B3.9-B3.13).

    With Quirk.REC_AUX_UNLOCK_ASSERT, the checks are TF-RMM's (a Debug build): it takes the
    granules in order, each aligned, delegable and DELEGATED, and one that fails after the
    first makes it unlock the earlier ones a second time, which stops it. An auxiliary
    granule that is the REC itself is not its loop's to find (the REC's own check fails later).
    """
    if Quirk.REC_AUX_UNLOCK_ASSERT in rmm.quirks:
        _check_aux_unlocking_twice(rmm, rec, aux)
    seen = {rec}
    for addr in aux:
        if addr & GRANULE_MASK:
            raise CommandFailure("aux_align")
        if addr in seen:
            raise CommandFailure("aux_alias")
        seen.add(addr)
        if not rmm.delegable_delegated(addr):
            raise CommandFailure("aux_state")


def _check_aux_unlocking_twice(rmm: Rmm, rec: int, aux: list[int]) -> None:
    taken: set[int] = set()
    for i, addr in enumerate(aux):
        if addr in taken or not rmm.delegable_delegated(addr):
            if i == 0:
                return  # nothing is unlocked twice: the spec's checks give RMI_ERROR_INPUT
            raise RmmPanic(
                f"RMI_REC_CREATE: auxiliary granule {i} ({addr:#x}) fails its check after {i}"
                " were taken, which are unlocked a second time: assertion LOCKED(g) failed"
            )
        taken.add(addr)


def rec_create(rmm: Rmm, rd: int, rec: int, params_ptr: int) -> tuple[int, ...]:
    """B4.3.12: create REC number ``rec_index`` of a NEW realm.

    The order follows the reference RMM and satisfies [rd_bound, rd_state] < [realm_state,
    num_recs]: the parameters and auxiliary granules are checked first, then the REC and RD
    granules, then the realm (ERROR_REALM), then the MPIDR and the auxiliary count.
    """
    rmm.expect_ns_granule(params_ptr, "params")
    params = RecParams.unpack(rmm.read_ns_granule(params_ptr))
    if params.num_aux > MAX_AUX_GRANULES:
        raise CommandFailure("num_aux")
    aux = params.aux[: params.num_aux]
    check_aux(rmm, rec, aux)
    rmm.expect_granule(rec, GranuleState.DELEGATED, "rec")
    realm = rmm.find_realm(rd)
    if realm.num_recs >= rmm.features.max_recs:
        raise CommandFailure("num_recs", Status.ERROR_REALM)
    if realm.state is not RealmState.NEW:
        raise CommandFailure("realm_state", Status.ERROR_REALM)
    if (
        params.mpidr & _MPIDR_RESERVED
        or RecMpidr.decode(params.mpidr).rec_index() != realm.rec_index
    ):
        raise CommandFailure("mpidr_index")
    if params.num_aux != realm.rec_aux_count:
        raise CommandFailure("num_aux")

    runnable = params.flags & 1 == REC_RUNNABLE
    rmm.recs[rec] = Rec(
        addr=rec,
        owner=rd,
        mpidr=params.mpidr,
        aux=list(aux),
        runnable=runnable,
        vcpu=Vcpu(pc=params.pc, gprs=list(params.gprs) + [0] * 24, mpidr=params.mpidr),
    )
    if runnable:
        realm.measurements[0] = measurement.rim_extend_rec(
            realm.hash_algo, realm.measured()[0], params
        )
    for addr in aux:
        rmm.granules[addr >> GRANULE_SHIFT] = GranuleState.REC_AUX
    rmm.granules[rec >> GRANULE_SHIFT] = GranuleState.REC
    realm.rec_index += 1
    realm.num_recs += 1
    return ()


def rec_destroy(rmm: Rmm, rec_ptr: int) -> tuple[int, ...]:
    """B4.3.13: destroy a REC that is not running. [rec_bound, rec_gran_state] < [rec_state]."""
    rec = rmm.find_rec(rec_ptr)
    if rec.state is RecState.RUNNING:
        raise CommandFailure("rec_state", Status.ERROR_REC)
    for addr in rec.aux:
        rmm.granules[addr >> GRANULE_SHIFT] = GranuleState.DELEGATED
    rmm.granules[rec_ptr >> GRANULE_SHIFT] = GranuleState.DELEGATED
    del rmm.recs[rec_ptr]
    rmm.realms[rec.owner].num_recs -= 1
    return ()
