"""B4.3.14 RMI_REC_ENTER and B4.3.7 RMI_PSCI_COMPLETE: failure conditions and completion.

Realm execution arrives with the next layer. Where a condition needs REC state that only a
running realm creates (a pending PSCI request, SYSTEM_OFF), the test sets that state on the
RMM's REC or realm object as a running realm would leave it.
"""

import pytest

from ccasim.psci import PsciFid, PsciReturn
from ccasim.rmi import FID, RecEnter, RecExitReason, Status
from ccasim.rmi.types import ENTER_EMUL_MMIO, ENTER_INJECT_SEA, RecMpidr
from ccasim.rmm.rec import PsciPending
from ccasim.rmm.types import RealmState
from support import UNPOPULATED, Host, call_changes, expect_failure

INPUT, REALM, REC = Status.ERROR_INPUT, Status.ERROR_REALM, Status.ERROR_REC
LR_PENDING = 1 << 62
GROUP1 = 1 << 60


def enter_setup(activate=True, runnable=True):
    host = Host()
    realm = host.realm()
    rec = host.rec(realm, runnable=runnable)
    if activate:
        host.rmi.realm_activate(realm.rd).check()
    run = host.ns_page(RecEnter().pack())
    return host, realm, rec, run


def test_rec_enter_input_failures():
    """B4.3.14.2 run_align, run_bound, run_pas, rec_align, rec_bound, rec_gran_state."""
    host, realm, rec, run = enter_setup()
    for args, cond in [
        ((rec, run + 8), "run_align"),
        ((rec, UNPOPULATED), "run_bound"),
        ((rec, host.delegated()), "run_pas"),
        ((rec + 8, run), "rec_align"),
        ((UNPOPULATED, run), "rec_bound"),
        ((realm.rd, run), "rec_gran_state"),
    ]:
        expect_failure(host, FID.REC_ENTER, args, INPUT, 0, cond)


def test_rec_enter_failure_realm_new():
    """B4.3.14.2 realm_new: (RMI_ERROR_REALM, 0)."""
    host, realm, rec, run = enter_setup(activate=False)
    expect_failure(host, FID.REC_ENTER, (rec, run), REALM, 0, "realm_new")


def test_rec_enter_failure_system_off():
    """B4.3.14.2 system_off: (RMI_ERROR_REALM, 1) once the realm called PSCI_SYSTEM_OFF."""
    host, realm, rec, run = enter_setup()
    host.m._rmm.realms[realm.rd].state = RealmState.SYSTEM_OFF
    expect_failure(host, FID.REC_ENTER, (rec, run), REALM, 1, "system_off")


def test_rec_enter_failure_not_runnable():
    """B4.3.14.2 rec_runnable."""
    host, realm, rec, run = enter_setup(runnable=False)
    expect_failure(host, FID.REC_ENTER, (rec, run), REC, 0, "rec_runnable")


def test_rec_enter_failure_mmio_without_emulatable_abort():
    """B4.3.14.2 rec_mmio: emul_mmio set but the last exit was not an Emulatable Abort."""
    host, realm, rec, run = enter_setup()
    host.m.ns_write(run, RecEnter(flags=ENTER_EMUL_MMIO).pack())
    expect_failure(host, FID.REC_ENTER, (rec, run), REC, 0, "rec_mmio")


def test_rec_enter_emul_mmio_is_ignored_with_inject_sea():
    """A4.2.3: if enter.flags.inject_sea is set, enter.flags.emul_mmio is ignored."""
    host, realm, rec, run = enter_setup()
    host.m.ns_write(run, RecEnter(flags=ENTER_EMUL_MMIO | ENTER_INJECT_SEA).pack())
    assert host.rmi.rec_enter(rec, run).ok


@pytest.mark.parametrize(
    "hcr, lrs",
    [
        (1, []),  # En is the RMM's
        (1 << 20, []),
        (0, [LR_PENDING | GROUP1 | 1 << 61 | 27]),  # HW interrupt
        (0, [LR_PENDING | GROUP1 | 1 << 33 | 27]),  # reserved bits [44:32]
        (0, [LR_PENDING | GROUP1 | 1 << 48 | 27]),  # priority bits below PRIbits
        (0, [LR_PENDING | GROUP1 | 1020]),  # special INTID
        (0, [LR_PENDING | GROUP1 | 27, LR_PENDING | GROUP1 | 27]),  # duplicate vINTID
    ],
)
def test_rec_enter_failure_gicv3(hcr, lrs):
    """B4.3.14.2 rec_gicv3 (Gicv3ConfigIsValid, B3.18)."""
    host, realm, rec, run = enter_setup()
    host.m.ns_write(run, RecEnter(gicv3_hcr=hcr, gicv3_lrs=lrs + [0] * (16 - len(lrs))).pack())
    expect_failure(host, FID.REC_ENTER, (rec, run), REC, 0, "rec_gicv3")


def test_rec_enter_failure_psci_pending():
    """B4.3.14.2 rec_psci: a PSCI request awaits RMI_PSCI_COMPLETE."""
    host, realm, rec, run = enter_setup()
    host.m._rmm.recs[rec].psci_pending = PsciPending.PENDING
    expect_failure(host, FID.REC_ENTER, (rec, run), REC, 0, "rec_psci")


def test_rec_enter_ordering_input_before_realm_and_rec():
    """B4.3.14.2.1 [rec_*, run_*] < [realm_new, rec_runnable, ...]."""
    host, realm, rec, run = enter_setup(activate=False, runnable=False)
    expect_failure(host, FID.REC_ENTER, (rec, run + 1), INPUT, 0, "run_align")
    expect_failure(host, FID.REC_ENTER, (rec, run), REALM, 0, "realm_new")


def test_rec_enter_success_reports_an_exit():
    """B4.3.14.3 rec_exit: run.exit holds the exit; valid GIC state is accepted."""
    host, realm, rec, run = enter_setup()
    lrs = [LR_PENDING | GROUP1 | 0xA0 << 48 | 27] + [0] * 15
    host.m.ns_write(run, RecEnter(gicv3_hcr=0b10, gicv3_lrs=lrs).pack())
    result, changed = call_changes(host, FID.REC_ENTER, rec, run)
    assert result.ok
    exit_ = host.rmi.rec_exit(run)
    assert exit_.exit_reason == RecExitReason.IRQ and exit_.gicv3_lrs == lrs
    assert {k[0] for k in changed} <= {"mem", "rec"}


# -- PSCI_COMPLETE --------------------------------------------------------------------------


def psci_setup(request=PsciFid.CPU_ON, target_runnable=False):
    host = Host()
    realm = host.realm()
    calling = host.rec(realm, 0)
    target = host.rec(realm, 1, runnable=target_runnable)
    host.rmi.realm_activate(realm.rd).check()
    c = host.m._rmm.recs[calling]
    mpidr_el1 = 1  # Aff0 = 1
    c.gprs[:4] = [request, mpidr_el1, 0x8020_0000, 0xC0DE]
    c.psci_pending = PsciPending.PENDING
    return host, realm, calling, target


def test_psci_complete_failures():
    """B4.3.7.2 alias, calling_*, target_*, owner, target, status."""
    host, realm, calling, target = psci_setup()
    other = host.realm(vmid=5)
    stranger = host.rec(other, 0)
    ok = PsciReturn.SUCCESS.encode()
    for args, cond in [
        ((calling, calling, ok), "alias"),
        ((calling + 1, target, ok), "calling_align"),
        ((UNPOPULATED, target, ok), "calling_bound"),
        ((realm.rd, target, ok), "calling_state"),
        ((calling, target + 1, ok), "target_align"),
        ((calling, UNPOPULATED, ok), "target_bound"),
        ((calling, realm.rd, ok), "target_state"),
        ((calling, stranger, ok), "owner"),
        ((calling, target, PsciReturn.NOT_SUPPORTED.encode()), "status"),
        ((calling, target, PsciReturn.ALREADY_ON.encode()), "status"),
    ]:
        expect_failure(host, FID.PSCI_COMPLETE, args, INPUT, 0, cond)
    host.m._rmm.recs[calling].gprs[1] = 2  # names a vCPU other than target
    expect_failure(host, FID.PSCI_COMPLETE, (calling, target, ok), INPUT, 0, "target")


def test_psci_complete_failure_nothing_pending():
    """B4.3.7.2 pending."""
    host, realm, calling, target = psci_setup()
    host.m._rmm.recs[calling].psci_pending = PsciPending.NONE
    expect_failure(host, FID.PSCI_COMPLETE, (calling, target, 0), INPUT, 0, "pending")


def test_psci_complete_cpu_on_success():
    """B4.3.7.3 on_success, args, pending."""
    host, realm, calling, target = psci_setup()
    assert host.rmi.psci_complete(calling, target, 0).ok
    rmm = host.m._rmm
    c, t = rmm.recs[calling], rmm.recs[target]
    assert t.runnable and t.pc == 0x8020_0000 and t.gprs[0] == 0xC0DE and t.gprs[1:] == [0] * 31
    assert c.gprs[:4] == [0, 0, 0, 0] and c.psci_pending is PsciPending.NONE


def test_psci_complete_cpu_on_already_on():
    """B4.3.7.3 on_already: the target is already runnable."""
    host, realm, calling, target = psci_setup(target_runnable=True)
    assert host.rmi.psci_complete(calling, target, 0).ok
    assert host.m._rmm.recs[calling].gprs[0] == PsciReturn.ALREADY_ON.encode()


def test_psci_complete_cpu_on_denied():
    """B4.3.7.3 status: the host may deny CPU_ON of a stopped vCPU (PsciReturnCodePermitted)."""
    host, realm, calling, target = psci_setup()
    assert host.rmi.psci_complete(calling, target, PsciReturn.DENIED.encode()).ok
    assert host.m._rmm.recs[calling].gprs[0] == PsciReturn.DENIED.encode()
    assert not host.m._rmm.recs[target].runnable


@pytest.mark.parametrize("runnable, result", [(True, 0), (False, 1)])
def test_psci_complete_affinity_info(runnable, result):
    """B4.3.7.3 affinity_on, affinity_off."""
    host, realm, calling, target = psci_setup(PsciFid.AFFINITY_INFO, target_runnable=runnable)
    assert host.rmi.psci_complete(calling, target, 0).ok
    assert host.m._rmm.recs[calling].gprs[0] == result


def test_psci_complete_affinity_info_cannot_be_denied():
    host, realm, calling, target = psci_setup(PsciFid.AFFINITY_INFO)
    expect_failure(
        host, FID.PSCI_COMPLETE, (calling, target, PsciReturn.DENIED.encode()), INPUT, 0, "status"
    )


def test_mpidr_encoding_helpers():
    """A2.3.3: REC index and MPIDR."""
    for index in (0, 1, 15, 16, 4095, 4096, 1 << 20):
        assert RecMpidr.from_index(index).rec_index() == index
