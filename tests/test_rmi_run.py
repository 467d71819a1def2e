"""B4.3.14 RMI_REC_ENTER and B4.3.7 RMI_PSCI_COMPLETE: failure conditions and completion.

Where a condition needs REC state that only a running realm creates (a pending PSCI request,
SYSTEM_OFF), a realm makes the PSCI call that creates it (support.Puppet).
"""

import pytest

from ccasim.psci import PsciFid, PsciReturn
from ccasim.rmi import FID, RecEnter, RecExitReason, Status
from ccasim.rmi.types import ENTER_EMUL_MMIO, ENTER_INJECT_SEA, RecMpidr
from ccasim.rmm.rec import PsciPending
from support import RAM_BASE, UNPOPULATED, Host, Puppet, call_changes, expect_failure

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
    host = Host()
    realm = Puppet(host)
    assert realm.smc(PsciFid.SYSTEM_OFF).exit_reason == RecExitReason.PSCI
    rec = realm.recs[0]
    expect_failure(host, FID.REC_ENTER, (rec, realm.run), REALM, 1, "system_off")


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
    host = Host()
    realm = Puppet(host, recs=2)
    assert realm.smc(PsciFid.CPU_ON, 1, RAM_BASE).exit_reason == RecExitReason.PSCI
    expect_failure(host, FID.REC_ENTER, (realm.recs[0], realm.run), REC, 0, "rec_psci")


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


def psci_setup(request=PsciFid.CPU_ON, target_runnable=False, target_mpidr=1):
    """REC 0 asks for CPU_ON (entry 0x8020_0000, context 0xC0DE) or AFFINITY_INFO of the vCPU
    with MPIDR ``target_mpidr``; the request awaits RMI_PSCI_COMPLETE. Returns REC 0 and 1."""
    host = Host()
    runnable = (0, 1) if target_runnable else (0,)
    realm = Puppet(host, recs=3, runnable=runnable)
    args = (0x8020_0000, 0xC0DE) if request == PsciFid.CPU_ON else (0,)
    exit_ = realm.smc(request, target_mpidr, *args)
    assert exit_.exit_reason == RecExitReason.PSCI and exit_.gprs[0] == request
    calling, target = realm.recs[:2]
    return host, realm, calling, target


def rec_state(host, rec):
    """The REC as the RMM holds it (the machine's debug view)."""
    return host.m.debug_state().rmm.recs[rec]


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
    host, realm, calling, target = psci_setup(target_mpidr=2)  # names a vCPU other than target
    expect_failure(host, FID.PSCI_COMPLETE, (calling, target, ok), INPUT, 0, "target")


def test_psci_complete_failure_nothing_pending():
    """B4.3.7.2 pending."""
    host, realm, calling, target = psci_setup()
    third = realm.recs[2]  # has asked for nothing
    expect_failure(host, FID.PSCI_COMPLETE, (third, target, 0), INPUT, 0, "pending")
    host.rmi.psci_complete(calling, target, 0).check()  # once completed, nothing is pending
    expect_failure(host, FID.PSCI_COMPLETE, (calling, target, 0), INPUT, 0, "pending")


def test_psci_complete_cpu_on_success():
    """B4.3.7.3 on_success, args, pending."""
    host, realm, calling, target = psci_setup()
    assert host.rmi.psci_complete(calling, target, 0).ok
    c, t = rec_state(host, calling), rec_state(host, target)
    assert t.runnable and t.pc == 0x8020_0000 and t.gprs[0] == 0xC0DE and t.gprs[1:] == [0] * 31
    assert c.gprs[:4] == [0, 0, 0, 0] and c.psci_pending is PsciPending.NONE
    # and the realm sees PSCI_SUCCESS in X0..X3 when the calling REC runs again
    assert realm.finish(calling).gprs[:4] == [0, 0, 0, 0]


def test_psci_complete_cpu_on_already_on():
    """B4.3.7.3 on_already: the target is already runnable."""
    host, realm, calling, target = psci_setup(target_runnable=True)
    assert host.rmi.psci_complete(calling, target, 0).ok
    assert rec_state(host, calling).gprs[0] == PsciReturn.ALREADY_ON.encode()
    assert realm.finish(calling).gprs[0] == PsciReturn.ALREADY_ON.encode()


def test_psci_complete_cpu_on_denied():
    """B4.3.7.3 status: the host may deny CPU_ON of a stopped vCPU (PsciReturnCodePermitted)."""
    host, realm, calling, target = psci_setup()
    assert host.rmi.psci_complete(calling, target, PsciReturn.DENIED.encode()).ok
    assert rec_state(host, calling).gprs[0] == PsciReturn.DENIED.encode()
    assert not rec_state(host, target).runnable
    assert realm.finish(calling).gprs[0] == PsciReturn.DENIED.encode()


@pytest.mark.parametrize("runnable, result", [(True, 0), (False, 1)])
def test_psci_complete_affinity_info(runnable, result):
    """B4.3.7.3 affinity_on, affinity_off."""
    host, realm, calling, target = psci_setup(PsciFid.AFFINITY_INFO, target_runnable=runnable)
    assert host.rmi.psci_complete(calling, target, 0).ok
    assert rec_state(host, calling).gprs[0] == result
    assert realm.finish(calling).gprs[:2] == [result, 0]


def test_psci_complete_affinity_info_cannot_be_denied():
    host, realm, calling, target = psci_setup(PsciFid.AFFINITY_INFO)
    expect_failure(
        host, FID.PSCI_COMPLETE, (calling, target, PsciReturn.DENIED.encode()), INPUT, 0, "status"
    )


def test_mpidr_encoding_helpers():
    """A2.3.3: REC index and MPIDR."""
    for index in (0, 1, 15, 16, 4095, 4096, 1 << 20):
        assert RecMpidr.from_index(index).rec_index() == index
