"""B4.3.11 RMI_REC_AUX_COUNT, B4.3.12 RMI_REC_CREATE, B4.3.13 RMI_REC_DESTROY."""

import pytest

from ccasim.rmi import FID, RecParams, Status
from ccasim.rmi.types import RecMpidr
from support import UNPOPULATED, Host, call_changes, expect_failure

INPUT, REALM = Status.ERROR_INPUT, Status.ERROR_REALM


def test_rec_aux_count_failure_rd():
    """B4.3.11.2 rd_align, rd_bound, rd_state."""
    host = Host()
    realm = host.realm()
    for rd, cond in (
        (realm.rd + 4, "rd_align"),
        (UNPOPULATED, "rd_bound"),
        (host.delegated(), "rd_state"),
    ):
        expect_failure(host, FID.REC_AUX_COUNT, (rd,), INPUT, 0, cond)


def rec_create_args(host: Host, activate: bool = False, **params):
    realm = host.realm(activate=activate)
    p = host.rec_params(realm, **params)
    rec = host.delegated()
    ptr = host.ns_page(p.pack())
    return realm, rec, ptr, p


def write_params(host: Host, ptr: int, p: RecParams, **changes) -> None:
    host.m.ns_write(ptr, RecParams(**{**p.__dict__, **changes}).pack())


@pytest.mark.parametrize("cond", ["params_align", "params_bound", "params_pas"])
def test_rec_create_failure_params_ptr(cond):
    """B4.3.12.2 params_align, params_bound, params_pas."""
    host = Host()
    realm, rec, ptr, _ = rec_create_args(host)
    ptr = {"params_align": ptr + 0x10, "params_bound": UNPOPULATED, "params_pas": host.delegated()}[
        cond
    ]
    expect_failure(host, FID.REC_CREATE, (realm.rd, rec, ptr), INPUT, 0, cond)


@pytest.mark.parametrize("cond", ["rec_align", "rec_bound", "rec_state"])
def test_rec_create_failure_rec(cond):
    """B4.3.12.2 rec_align, rec_bound, rec_state (the REC granule must be DELEGATED)."""
    host = Host()
    realm, rec, ptr, _ = rec_create_args(host)
    rec = {"rec_align": rec + 0x800, "rec_bound": UNPOPULATED, "rec_state": host.alloc()}[cond]
    expect_failure(host, FID.REC_CREATE, (realm.rd, rec, ptr), INPUT, 0, cond)


@pytest.mark.parametrize("cond", ["rd_align", "rd_bound", "rd_state"])
def test_rec_create_failure_rd(cond):
    """B4.3.12.2 rd_align, rd_bound, rd_state."""
    host = Host()
    realm, rec, ptr, _ = rec_create_args(host)
    rd = {"rd_align": realm.rd + 1, "rd_bound": UNPOPULATED, "rd_state": host.delegated()}[cond]
    expect_failure(host, FID.REC_CREATE, (rd, rec, ptr), INPUT, 0, cond)


def test_rec_create_failure_realm_state():
    """B4.3.12.2 realm_state: RECs are created only while the realm is NEW."""
    host = Host()
    realm, rec, ptr, _ = rec_create_args(host, activate=True)
    expect_failure(host, FID.REC_CREATE, (realm.rd, rec, ptr), REALM, 0, "realm_state")


def test_rec_create_failure_num_recs():
    """B4.3.12.2 num_recs: at most 2^MAX_RECS_ORDER - 1 RECs (here order 1: one REC)."""
    host = Host(max_recs_order=1)
    realm = host.realm()
    host.rec(realm, 0)
    p = host.rec_params(realm, 1)
    args = (realm.rd, host.delegated(), host.ns_page(p.pack()))
    expect_failure(host, FID.REC_CREATE, args, REALM, 0, "num_recs")


@pytest.mark.parametrize(
    "mpidr",
    [
        RecMpidr.from_index(1).encode(),
        RecMpidr(aff1=1).encode(),
        0x10,  # Aff0[7:4] is reserved (A2.3.3)
        1 << 32,  # bits [63:32] are reserved (B4.4.18)
    ],
)
def test_rec_create_failure_mpidr_index(mpidr):
    """B4.3.12.2 mpidr_index: the first REC must have REC index 0 (RecIndex, B3.38)."""
    host = Host()
    realm, rec, ptr, p = rec_create_args(host)
    write_params(host, ptr, p, mpidr=mpidr)
    expect_failure(host, FID.REC_CREATE, (realm.rd, rec, ptr), INPUT, 0, "mpidr_index")


@pytest.mark.parametrize("num_aux", [0, 15, 17, 1 << 40])
def test_rec_create_failure_num_aux(num_aux):
    """B4.3.12.2 num_aux: params.num_aux must equal RecAuxCount(rd)."""
    host = Host()
    realm, rec, ptr, p = rec_create_args(host)
    write_params(host, ptr, p, num_aux=num_aux)
    expect_failure(host, FID.REC_CREATE, (realm.rd, rec, ptr), INPUT, 0, "num_aux")


@pytest.mark.parametrize("which", [0, 15])
def test_rec_create_failure_aux_align(which):
    """B4.3.12.2 aux_align (AuxAligned, B3.10)."""
    host = Host()
    realm, rec, ptr, p = rec_create_args(host)
    aux = list(p.aux)
    aux[which] += 8
    write_params(host, ptr, p, aux=aux)
    expect_failure(host, FID.REC_CREATE, (realm.rd, rec, ptr), INPUT, 0, "aux_align")


@pytest.mark.parametrize("alias", ["aux", "rec"])
def test_rec_create_failure_aux_alias(alias):
    """B4.3.12.2 aux_alias (AuxAlias, B3.9): two aux granules alike, or an aux is the REC."""
    host = Host()
    realm, rec, ptr, p = rec_create_args(host)
    aux = list(p.aux)
    aux[9] = aux[3] if alias == "aux" else rec
    write_params(host, ptr, p, aux=aux)
    expect_failure(host, FID.REC_CREATE, (realm.rd, rec, ptr), INPUT, 0, "aux_alias")


@pytest.mark.parametrize("bad", ["undelegated", "unpopulated", "rtt"])
def test_rec_create_failure_aux_state(bad):
    """B4.3.12.2 aux_state (AuxStateEqual, B3.13): each aux must be delegable and DELEGATED."""
    host = Host()
    realm, rec, ptr, p = rec_create_args(host)
    aux = list(p.aux)
    aux[5] = {
        "undelegated": host.alloc(),
        "unpopulated": UNPOPULATED,
        "rtt": realm.params.rtt_base,
    }[bad]
    write_params(host, ptr, p, aux=aux)
    expect_failure(host, FID.REC_CREATE, (realm.rd, rec, ptr), INPUT, 0, "aux_state")


def test_rec_create_ordering_rd_before_realm_state():
    """B4.3.12.2.1 [rd_bound, rd_state] < [realm_state, num_recs]."""
    host = Host()
    realm, rec, ptr, _ = rec_create_args(host, activate=True)
    expect_failure(host, FID.REC_CREATE, (realm.params.rtt_base, rec, ptr), INPUT, 0, "rd_state")


def test_rec_create_success_and_footprint():
    """B4.3.12.3 and B4.3.12.5: REC and REC_AUX states, rec_index, RIM (runnable)."""
    host = Host()
    realm, rec, ptr, p = rec_create_args(host)
    rim = host.m.realm_measurements(realm.rd)[0]
    result, changed = call_changes(host, FID.REC_CREATE, realm.rd, rec, ptr)
    assert result.ok
    assert host.m.granule_state(rec) == "REC"
    assert all(host.m.granule_state(a) == "REC_AUX" for a in p.aux)
    assert host.m.realm_measurements(realm.rd)[0] != rim
    allowed = {("granule", rec)} | {("granule", a) for a in p.aux}
    allowed |= {("realm", realm.rd, k) for k in ("rec_index", "num_recs", "measurements")}
    assert {k for k in changed if k[0] != "rec"} == allowed
    state = host.m.debug_state().rmm.recs[rec]
    assert state.gprs[:8] == p.gprs and state.gprs[8:] == [0] * 24 and state.pc == p.pc
    assert (state.ripas_addr, state.ripas_top, state.host_call_pending) == (0, 0, False)
    # the next REC must use index 1
    p1 = host.rec_params(realm, 1)
    assert host.rmi.rec_create(realm.rd, host.delegated(), host.ns_page(), p1).ok


def test_rec_create_not_runnable_is_not_measured():
    """B4.3.12.3 rim: only a runnable REC extends the RIM (B4.3.12.4)."""
    host = Host()
    realm = host.realm()
    rim = host.m.realm_measurements(realm.rd)[0]
    host.rec(realm, runnable=False)
    assert host.m.realm_measurements(realm.rd)[0] == rim


def test_rec_destroy_failures_and_success():
    """B4.3.13: rec_align, rec_bound, rec_gran_state; success returns REC and aux granules."""
    host = Host()
    realm = host.realm()
    rec = host.rec(realm)
    aux = list(host.m.debug_state().rmm.recs[rec].aux)
    cases = [
        (rec + 4, "rec_align"),
        (UNPOPULATED, "rec_bound"),
        (aux[0], "rec_gran_state"),
        (host.alloc(), "rec_gran_state"),
    ]
    for addr, cond in cases:
        expect_failure(host, FID.REC_DESTROY, (addr,), INPUT, 0, cond)
    result, changed = call_changes(host, FID.REC_DESTROY, rec)
    assert result.ok
    assert host.m.granule_state(rec) == "DELEGATED"
    assert all(host.m.granule_state(a) == "DELEGATED" for a in aux)
    assert {k for k in changed if k[0] == "realm"} == {("realm", realm.rd, "num_recs")}
    assert host.rmi.realm_destroy(realm.rd).ok  # num_recs back to 0: not live
