"""Creating and destroying a realm as seed 002 (v8 07/43) and its v9 sequel do: the order of
the RMI calls, the stage 2 geometry, and the unwind and leak rules when a call fails.

Failures are injected into the kernel's SMCs (``Kvm.inject``): the RMM never sees them."""

from __future__ import annotations

import pytest

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.kvm import RealmState, uapi
from ccasim.kvm.memory import Owner
from ccasim.rmi import FID, Status
from ccasim.rmi.levels import level_size
from kvm_host import RAM, audit, balanced, errno_of, program_realm, realm_vm, serve
from kvm_programs import words

CREATE = uapi.KVM_CAP_ARM_RME_CREATE_REALM


def calls(kvm, since=0):
    return [(c.command, c.args) for c in kvm.rmi.trace[since:]]


def names(kvm, since=0):
    return [c.command for c in kvm.rmi.trace[since:]]


@pytest.mark.parametrize(
    "ia_bits, start, roots",
    [(32, 2, 4), (33, 2, 8), (34, 2, 16), (35, 1, 1), (39, 1, 1), (40, 1, 2), (41, 1, 4),
     (42, 1, 8), (43, 1, 16), (44, 0, 1), (48, 0, 1)],
)  # fmt: skip
def test_start_level_and_root_rtts(ia_bits, start, roots):
    """002-16, 002-18: the starting level and the number of concatenated root RTTs (the
    table of the catalogue), which RMI_REALM_CREATE gets with rtt_base = the PGD."""
    realm = realm_vm(ipa_bits=ia_bits)
    assert (realm.vm.start_level, realm.vm.pgd_pages) == (start, roots)
    realm.cap(CREATE)
    rmm_realm = realm.kvm.machine.debug_state().rmm.realms[realm.vm.rd]
    assert (rmm_realm.rtt_level_start, rmm_realm.rtt_num_start) == (start, roots)
    assert (rmm_realm.rtt_base, rmm_realm.ipa_width) == (realm.vm.pgd, ia_bits)
    assert rmm_realm.vmid == realm.vm.realm.vmid


def test_create_delegates_rd_then_the_pgd_in_ascending_order():
    """002-20 to 002-24: DELEGATE(RD), DELEGATE of each PGD granule ascending, REALM_CREATE,
    REC_AUX_COUNT; the pages are then owned as RD and root RTTs."""
    realm = realm_vm(ipa_bits=42)  # 8 root RTTs
    kvm = realm.kvm
    since = len(kvm.rmi.trace)
    realm.cap(CREATE)
    pgd = [realm.vm.pgd + i * GRANULE_SIZE for i in range(8)]
    assert calls(kvm, since) == [
        ("RMI_GRANULE_DELEGATE", (realm.vm.rd,)),
        *[("RMI_GRANULE_DELEGATE", (pa,)) for pa in pgd],
        ("RMI_REALM_CREATE", (realm.vm.rd, kvm.rmi.trace[since + 9].args[1])),
        ("RMI_REC_AUX_COUNT", (realm.vm.rd,)),
    ]
    assert realm.vm.realm.num_aux == kvm.machine.debug_state().rmm.realms[realm.vm.rd].rec_aux_count
    counts = audit(kvm)
    assert (counts["rd"], counts["root rtt"]) == (1, 8)


def test_rd_allocation_failure_is_enomem():
    """002-20: no page for the RD: ENOMEM, no RMI call, the VMID released."""
    realm = realm_vm()
    kvm = realm.kvm
    since, before = len(kvm.rmi.trace), kvm.page_counts()
    kvm.pages.inject_failure(1)
    assert errno_of(lambda: realm.cap(CREATE)) == "ENOMEM"
    assert names(kvm, since) == [] and kvm.page_counts() == before
    assert kvm.vmids.in_use() == set()


def test_rd_delegation_failure_frees_the_page_without_undelegating():
    """002-20, L3: DELEGATE(RD) fails: ENXIO, the page freed, no UNDELEGATE."""
    realm = realm_vm()
    kvm = realm.kvm
    before = kvm.page_counts()
    since = len(kvm.rmi.trace)
    kvm.inject(FID.GRANULE_DELEGATE, Status.ERROR_INPUT)
    assert errno_of(lambda: realm.cap(CREATE)) == "ENXIO"
    assert names(kvm, since) == ["RMI_GRANULE_DELEGATE"]
    assert kvm.page_counts() == before and kvm.vmids.in_use() == set()
    assert realm.vm.realm.state is RealmState.NONE


@pytest.mark.parametrize("failing", [1, 4, 8])
def test_pgd_delegation_failure_unwinds_in_reverse(failing):
    """002-21, 002-25: a failure at PGD granule i: ENXIO; granules [0, i) undelegated in
    reverse order, then the RD; every page back."""
    realm = realm_vm(ipa_bits=42)
    kvm = realm.kvm
    before = kvm.page_counts()
    since = len(kvm.rmi.trace)
    kvm.inject(FID.GRANULE_DELEGATE, Status.ERROR_INPUT, nth=1 + failing)
    assert errno_of(lambda: realm.cap(CREATE)) == "ENXIO"
    pgd = [realm.vm.pgd + i * GRANULE_SIZE for i in range(8)]
    rd = kvm.rmi.trace[since].args[0]
    undelegated = [args[0] for name, args in calls(kvm, since) if name == "RMI_GRANULE_UNDELEGATE"]
    assert undelegated == [*reversed(pgd[: failing - 1]), rd]
    assert kvm.page_counts() == before
    assert balanced_after_close(realm)


def test_realm_create_failure_unwinds():
    """002-22: RMI_REALM_CREATE fails: ENXIO, the PGD and RD undelegated, nothing kept."""
    realm = realm_vm()
    before = realm.kvm.page_counts()
    realm.kvm.inject(FID.REALM_CREATE, Status.ERROR_INPUT)
    assert errno_of(lambda: realm.cap(CREATE)) == "ENXIO"
    assert realm.kvm.page_counts() == before
    realm.cap(CREATE)  # and it can be tried again
    assert realm.vm.realm.state is RealmState.NEW


def test_rec_aux_count_failure_destroys_the_realm_and_unwinds():
    """002-23: REC_AUX_COUNT fails: WARN, REALM_DESTROY, then the tables unwind. The series
    leaves the return value unset here (Zhuang Yiwei, v9); the model returns ENXIO."""
    realm = realm_vm()
    kvm = realm.kvm
    before = kvm.page_counts()
    since = len(kvm.rmi.trace)
    kvm.inject(FID.REC_AUX_COUNT, Status.ERROR_INPUT)
    assert errno_of(lambda: realm.cap(CREATE)) == "ENXIO"
    assert names(kvm, since)[-5:] == [
        "RMI_REC_AUX_COUNT", "RMI_REALM_DESTROY", "RMI_GRANULE_UNDELEGATE",
        "RMI_GRANULE_UNDELEGATE", "RMI_GRANULE_UNDELEGATE",
    ]  # fmt: skip
    assert any("RMI_REC_AUX_COUNT failed" in w for w in kvm.warnings())
    assert kvm.page_counts() == before


def test_rec_aux_count_and_realm_destroy_failing_leak_the_pgd_and_rd():
    """002-23 (L5) with 002-25 (L2) and L3: REALM_DESTROY fails too, so the PGD granules are
    still RTTs: the first undelegate fails and the whole PGD is leaked, the RD as well."""
    realm = realm_vm()
    kvm = realm.kvm
    kvm.inject(FID.REC_AUX_COUNT, Status.ERROR_INPUT)
    kvm.inject(FID.REALM_DESTROY, Status.ERROR_REALM)
    assert errno_of(lambda: realm.cap(CREATE)) == "ENXIO"
    counts = audit(kvm)
    assert counts["leaked"] == realm.vm.pgd_pages + 1
    assert counts["root rtt"] == counts["rd"] == 0
    assert realm.vm.pgd_leaked


def test_the_first_pgd_undelegate_failure_leaks_the_whole_pgd():
    """002-25 (L2; Suzuki's nit to carry on was not adopted by v9): with 8 PGD granules and
    REALM_CREATE failing, undelegating granule 7 (the first tried) fails: the loop stops,
    granules 0-6 are never tried, the whole PGD leaks; the RD is still undelegated."""
    realm = realm_vm(ipa_bits=42)
    kvm = realm.kvm
    since = len(kvm.rmi.trace)
    kvm.inject(FID.REALM_CREATE, Status.ERROR_INPUT)
    kvm.inject(FID.GRANULE_UNDELEGATE, Status.ERROR_INPUT)
    assert errno_of(lambda: realm.cap(CREATE)) == "ENXIO"
    undelegated = [args[0] for name, args in calls(kvm, since) if name == "RMI_GRANULE_UNDELEGATE"]
    rd = kvm.rmi.trace[since].args[0]
    assert undelegated == [realm.vm.pgd + 7 * GRANULE_SIZE, rd]
    counts = audit(kvm)
    assert counts["leaked"] == 8 and counts["rd"] == 0
    realm.vm.close()
    assert audit(kvm)["leaked"] == 8  # closing never frees a leaked page


def test_rd_undelegate_failure_during_unwind_leaks_the_rd():
    """L3: REALM_CREATE fails and so does undelegating the RD: the RD page is leaked."""
    realm = realm_vm()  # 2 PGD granules: undelegates are PGD 1, PGD 0, RD
    kvm = realm.kvm
    kvm.inject(FID.REALM_CREATE, Status.ERROR_INPUT)
    kvm.inject(FID.GRANULE_UNDELEGATE, Status.ERROR_INPUT, nth=3)
    assert errno_of(lambda: realm.cap(CREATE)) == "ENXIO"
    counts = audit(kvm)
    assert counts["leaked"] == 1 and counts["root rtt"] == 0


def test_leaked_pages_are_never_reused():
    """002-17 (L1): a page the RMM would not give back is leaked on purpose, counted, and
    never handed out again."""
    realm = realm_vm()
    kvm = realm.kvm
    kvm.inject(FID.REALM_CREATE, Status.ERROR_INPUT)
    kvm.inject(FID.GRANULE_UNDELEGATE, Status.ERROR_INPUT, nth=3)
    assert errno_of(lambda: realm.cap(CREATE)) == "ENXIO"
    leaked = set(kvm.leaked())
    assert len(leaked) == 1
    handed_out = {kvm.pages.alloc(Owner.KERNEL) for _ in range(64)}
    assert not handed_out & leaked


# -- destruction ------------------------------------------------------------------------------


def balanced_after_close(realm) -> bool:
    realm.vm.close()
    return balanced(realm.kvm)


def test_pgd_is_not_freed_while_the_realm_lives():
    """002-13: kvm_free_stage2_pgd leaves the PGD alone in NEW and ACTIVE (its pages are
    delegated root RTTs) and frees it in NONE and, at the end of destruction, DEAD."""
    never = realm_vm()
    never.vm.close()  # NONE: freed normally
    assert balanced(never.kvm)
    realm = program_realm("t.kvm-idle")
    assert audit(realm.kvm)["root rtt"] == realm.vm.pgd_pages
    realm.vm.close()
    assert realm.vm.realm.state is RealmState.DEAD and balanced(realm.kvm)


def test_teardown_order():
    """§2.1 X4 and the RFC order (001-08): everything unmapped before any RTT is destroyed,
    the RTTs bottom up, the RECs, REALM_DESTROY, the RD, the PGD granules ascending;
    kvm_destroy_realm comes last (002-10) and ends with the PGD freed (000-14)."""
    realm = program_realm("t.kvm-touch", tag="order", addrs=words(RAM + 0x3000, RAM + 0x10_0000))
    serve(realm.vcpus[0])
    kvm = realm.kvm
    since = len(kvm.rmi.trace)
    realm.vm.close()
    order = [n for n in names(kvm, since) if n not in ("RMI_RTT_FOLD", "RMI_GRANULE_UNDELEGATE")]
    first = {n: order.index(n) for n in reversed(order)}
    last = {n: i for i, n in enumerate(order)}
    assert last["RMI_DATA_DESTROY"] < first["RMI_RTT_DESTROY"]
    assert last["RMI_RTT_DESTROY"] < first["RMI_REC_DESTROY"] < first["RMI_REALM_DESTROY"]
    tail = calls(kvm, since)[-3:]
    pgd = realm.vm.pgd
    assert tail == [
        ("RMI_GRANULE_UNDELEGATE", (kvm.rmi.trace[-3].args[0],)),
        ("RMI_GRANULE_UNDELEGATE", (pgd,)),
        ("RMI_GRANULE_UNDELEGATE", (pgd + GRANULE_SIZE,)),
    ]
    destroyed = [
        (c.args[1], c.args[2]) for c in kvm.rmi.trace[since:]
        if c.command == "RMI_RTT_DESTROY" and c.regs[0] == 0
    ]  # fmt: skip
    assert destroyed
    for i, (ipa, level) in enumerate(destroyed):  # bottom up: no child destroyed later
        size = level_size(level - 1)
        assert not [(a, lv) for a, lv in destroyed[i + 1 :] if lv > level and ipa <= a < ipa + size]
    assert balanced(kvm)


def test_realm_destroy_failure_leaks_rd_pgd_and_vmid():
    """§2.1 X4 (L4): REALM_DESTROY fails: WARN and return; the RD, the PGD and the VMID are
    leaked and the realm stays DYING."""
    realm = program_realm("t.kvm-idle")
    kvm = realm.kvm
    vmid = realm.vm.realm.vmid
    kvm.inject(FID.REALM_DESTROY, Status.ERROR_REALM)
    realm.vm.close()
    assert realm.vm.realm.state is RealmState.DYING
    counts = audit(kvm)
    assert counts["leaked"] == 1 + realm.vm.pgd_pages
    assert vmid in kvm.vmids.in_use()
    assert any("RMI_REALM_DESTROY failed" in w for w in kvm.warnings())


def test_pgd_undelegate_failure_at_destruction_stays_dying():
    """§2.1 X4 (L4): a PGD granule the RMM keeps: WARN, return before DEAD, the PGD leaked
    (granules already undelegated included: kvm_free_stage2_pgd is never reached)."""
    realm = program_realm("t.kvm-idle")
    kvm = realm.kvm
    injection = kvm.inject(
        FID.GRANULE_UNDELEGATE, Status.ERROR_INPUT, nth=_undelegates_before_pgd() + 1
    )
    realm.vm.close()
    assert injection.hit
    assert realm.vm.realm.state is RealmState.DYING
    assert audit(kvm)["leaked"] == realm.vm.pgd_pages
    assert realm.vm.realm.vmid is None  # released before the PGD loop


def _undelegates_before_pgd() -> int:
    """How many GRANULE_UNDELEGATE calls destruction makes before the first PGD granule:
    measured on a twin realm built the same way."""
    twin = program_realm("t.kvm-idle")
    since = len(twin.kvm.rmi.trace)
    twin.vm.close()
    undelegates = [a[0] for n, a in calls(twin.kvm, since) if n == "RMI_GRANULE_UNDELEGATE"]
    return undelegates.index(twin.vm.pgd)


def test_rec_destroy_failure_leaks_the_rec_and_its_aux_pages():
    """kvm_destroy_rec: if REC_DESTROY fails the REC and aux pages cannot be reclaimed: they
    are leaked; REALM_DESTROY then fails too (the REC is live), leaking the rest."""
    realm = program_realm("t.kvm-idle")
    kvm = realm.kvm
    aux = realm.vm.realm.num_aux
    kvm.inject(FID.REC_DESTROY, Status.ERROR_REC)
    realm.vm.close()
    counts = audit(kvm)
    assert counts["leaked"] == 1 + aux + 1 + realm.vm.pgd_pages
    assert counts["rec"] == counts["rec aux"] == counts["rd"] == 0


def test_rtt_undelegate_failure_at_teardown_leaks_that_rtt_only():
    """002-17 at teardown: an RTT the RMM keeps after RTT_DESTROY is leaked; the realm is
    still destroyed."""
    realm = program_realm("t.kvm-touch", tag="rtt-leak", addrs=words(RAM + 0x3000))
    serve(realm.vcpus[0])
    kvm = realm.kvm
    rtts = audit(kvm)["rtt"]
    assert rtts
    original = kvm.rmi.smc

    def smc(fid, *args):  # fail the undelegate of the first RTT RMI_RTT_DESTROY returns
        regs = original(fid, *args)
        if fid == FID.RTT_DESTROY and regs[0] == 0 and not kvm.leaked():
            kvm.inject(FID.GRANULE_UNDELEGATE, Status.ERROR_INPUT)
        return regs

    kvm.rmi.smc = smc
    realm.vm.close()
    assert realm.vm.realm.state is RealmState.DEAD
    assert audit(kvm)["leaked"] == 1
    assert any("RTT failed" in w for w in kvm.warnings())
