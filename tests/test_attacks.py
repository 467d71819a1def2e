"""Attack scenarios: a hostile host, a hostile guest, and what the spec says must happen.

Each scenario is an attack a real adversary would try, the spec rule that defeats it (in its
docstring), and the proof that it does: the architectural outcome (a fault, a status, a
register) and, where an attack could change something, that nothing changed. Every machine
here runs :class:`ccasim.check.InvariantChecker`, so no scenario passes by breaking an
invariant on the way.
"""

from __future__ import annotations

import pytest

import ccasim
from ccasim.check import InvariantChecker
from ccasim.psci import PsciFid, PsciReturn
from ccasim.rmi import FID, RecEnter, RecExitReason, Status
from ccasim.rmi.types import ENTER_INJECT_SEA, REALM_FLAG_PMU
from ccasim.rsi import RsiFid, RsiStatus
from support import GRANULE, RAM_BASE, UNPOPULATED, Host, Puppet, snapshot

SECRET = b"realm secret".ljust(GRANULE, b"\xa5")


def checked(**machine_kwargs) -> Host:
    m = ccasim.Machine(**machine_kwargs)
    InvariantChecker(m)
    return Host(machine=m)


def unchanged(host: Host, attack) -> object:
    """Run ``attack``; the machine's state is as before. Returns what the attack returned."""
    before = snapshot(host.m)
    outcome = attack()
    assert snapshot(host.m) == before
    return outcome


def rsi(puppet: Puppet, fid: int, *args: int) -> tuple[int, str | None]:
    """X0 of an RSI or PSCI call the realm makes, and the failure condition the RMM found."""
    exit_ = puppet.smc(fid, *args)
    assert exit_.exit_reason == RecExitReason.HOST_CALL, exit_
    record = next(r for r in reversed(puppet.host.smc_log) if r.fid == fid)
    return exit_.gprs[0], record.condition


def nothing_for_the_host(host: Host, pa: int) -> None:
    """The Normal world can neither read nor write the granule at ``pa`` (A2.2.3, B3.20)."""
    with pytest.raises(ccasim.GranuleProtectionFault):
        host.m.ns_read(pa, 8)
    with pytest.raises(ccasim.GranuleProtectionFault):
        host.m.ns_write(pa, b"host")


# -- a hostile host: reading and writing what is not its own -------------------------------------


def test_host_reads_or_writes_a_delegated_granule():
    """A2.2.3: once DELEGATED a granule is in the Realm PAS (GranuleAccessPermitted, B3.20)."""
    host = checked()
    nothing_for_the_host(host, host.delegated())


def test_host_reads_or_writes_an_rd_rec_or_rtt():
    """A2.2.3: RD, REC and RTT granules are Realm PAS for their whole life."""
    host = checked()
    realm = host.realm()
    rec = host.rec(realm)
    for pa in (realm.rd, rec, realm.params.rtt_base, *host.tables(realm, 0x1000)):
        nothing_for_the_host(host, pa)


def test_host_reads_a_realms_data():
    """A2.2.3, B3.20: a DATA granule holds the realm's contents; the host sees a fault."""
    host = checked()
    realm = host.realm()
    data = host.data(realm, 0x1000, SECRET)
    assert host.m.debug_read(data, GRANULE) == SECRET  # the secret is there
    nothing_for_the_host(host, data)


def test_host_gets_back_a_page_it_gave_to_a_realm():
    """A2.2.4: a granule that passed through DELEGATED is wiped before the Normal world has
    it again: DATA_DESTROY then UNDELEGATE hands back zeros, never the realm's data."""
    host = checked()
    realm = host.realm()
    data = host.data(realm, 0x1000, SECRET)
    host.rmi.data_destroy(realm.rd, 0x1000).check()
    host.rmi.granule_undelegate(data).check()
    assert host.m.ns_read(data, GRANULE) == bytes(GRANULE)


def test_host_plants_contents_in_a_page_before_delegating_it():
    """A2.2.4: DELEGATE wipes, so DATA_CREATE_UNKNOWN gives the realm zeros, not what the
    host left there (B4.3.2: the contents are unknown to the host)."""
    host = checked()
    realm = host.realm()
    host.tables(realm, 0x1000)
    page = host.alloc()
    host.m.ns_write(page, b"host-planted".ljust(GRANULE, b"\x11"))
    host.rmi.granule_delegate(page).check()
    host.rmi.data_create_unknown(realm.rd, page, 0x1000).check()
    assert host.m.debug_read(page, GRANULE) == bytes(GRANULE)


def test_host_gives_a_realm_parameters_in_realm_memory():
    """B4.3.9.2 params_pas: the RmiRealmParams page must be Non-secure (B3.20)."""
    host = checked()
    params = host.delegated()
    rd = host.delegated()
    status = unchanged(host, lambda: host.m.smc(FID.REALM_CREATE, rd, params)[0])
    assert (status, host.last_condition) == (Status.ERROR_INPUT, "params_pas")


def test_host_delegates_secure_or_missing_memory():
    """B4.3.5.2 gran_bound: only delegable memory (PaIsDelegable, B3.25) enters the Realm PAS."""
    host = checked()
    for pa in (0x0600_0000, UNPOPULATED):
        assert unchanged(host, lambda pa=pa: host.m.smc(FID.GRANULE_DELEGATE, pa)[0]) == 1


# -- a hostile host: changing a realm behind its back ----------------------------------------


def test_host_maps_its_page_at_a_protected_ipa_after_activation():
    """B4.3.1.2 realm_state: DATA_CREATE (host-chosen contents) only while the realm is NEW;
    once ACTIVE only DATA_CREATE_UNKNOWN, whose contents the host cannot choose."""
    host = checked()
    realm = host.realm(activate=True)
    host.tables(realm, 0x1000)
    data, src = host.delegated(), host.ns_page(SECRET)
    status = unchanged(host, lambda: host.m.smc(FID.DATA_CREATE, realm.rd, data, 0x1000, src, 1)[0])
    assert (status, host.last_condition) == (Status.ERROR_REALM, "realm_state")


def test_host_maps_an_unprotected_page_at_a_protected_ipa():
    """B4.3.19.2 ipa_bound: RTT_MAP_UNPROTECTED only maps Unprotected IPAs."""
    host = checked()
    realm = host.realm(activate=True)
    host.tables(realm, 0x1000)
    desc = host.ns_page() | 0x7 << 2 | 0x3 << 6
    status = unchanged(
        host, lambda: host.m.smc(FID.RTT_MAP_UNPROTECTED, realm.rd, 0x1000, 3, desc)[0]
    )
    assert (status, host.last_condition) == (Status.ERROR_INPUT, "ipa_bound")


def test_host_destroys_an_rtt_under_a_live_mapping():
    """B4.3.16.2 rtt_live: an RTT with ASSIGNED entries cannot be destroyed (A5.5.8)."""
    host = checked()
    realm = host.realm()
    host.data(realm, 0x1000)
    status = unchanged(host, lambda: host.m.smc(FID.RTT_DESTROY, realm.rd, 0, 3)[0])
    assert (status & 0xFF, host.last_condition) == (Status.ERROR_RTT, "rtt_live")


@pytest.mark.parametrize("what", ["RD", "REC", "RTT", "DATA"])
def test_host_undelegates_a_granule_in_use(what):
    """B4.3.6.2 gran_state: only a DELEGATED granule goes back to the Normal world."""
    host = checked()
    realm = host.realm()
    pa = {"RD": lambda: realm.rd, "REC": lambda: host.rec(realm),
          "RTT": lambda: host.tables(realm, 0x1000)[0],
          "DATA": lambda: host.data(realm, 0x1000)}[what]()  # fmt: skip
    status = unchanged(host, lambda: host.m.smc(FID.GRANULE_UNDELEGATE, pa)[0])
    assert (status, host.last_condition) == (Status.ERROR_INPUT, "gran_state")


def test_host_reuses_an_rd_for_a_second_realm():
    """B4.3.9.2 rd_state: the RD granule must be DELEGATED."""
    host = checked()
    realm = host.realm()
    params = host.ns_page(host.realm_params(vmid=9, rtt_base=host.delegated()).pack())
    status = unchanged(host, lambda: host.m.smc(FID.REALM_CREATE, realm.rd, params)[0])
    assert (status, host.last_condition) == (Status.ERROR_INPUT, "rd_state")


def test_host_reuses_a_vmid():
    """B4.3.9.2 vmid_valid: two live realms never share a VMID (VmidIsFree, B3.80)."""
    host = checked()
    host.realm(vmid=5)
    params = host.ns_page(host.realm_params(vmid=5, rtt_base=host.delegated()).pack())
    rd = host.delegated()
    status = unchanged(host, lambda: host.m.smc(FID.REALM_CREATE, rd, params)[0])
    assert (status, host.last_condition) == (Status.ERROR_INPUT, "vmid_valid")


def test_host_reuses_a_rec_granule():
    """B4.3.12.2 rec_state: the REC granule must be DELEGATED."""
    host = checked()
    realm = host.realm()
    rec = host.rec(realm)
    params = host.ns_page(host.rec_params(realm, index=1).pack())
    status = unchanged(host, lambda: host.m.smc(FID.REC_CREATE, realm.rd, rec, params)[0])
    assert (status, host.last_condition) == (Status.ERROR_INPUT, "rec_state")


def test_host_destroys_a_live_realm():
    """B4.3.10.2 realm_live: a realm with RECs or live RTTs cannot be destroyed."""
    host = checked()
    realm = host.realm()
    host.rec(realm)
    status = unchanged(host, lambda: host.m.smc(FID.REALM_DESTROY, realm.rd)[0])
    assert (status, host.last_condition) == (Status.ERROR_REALM, "realm_live")


def test_host_folds_an_rtt_of_mixed_entries():
    """B4.3.17.2 rtt_homo: only a homogeneous RTT folds into a block (A5.5.6): a host
    cannot turn one DATA page into a block mapping pages it did not map."""
    host = checked()
    realm = host.realm()
    host.data(realm, 0x1000)
    status = unchanged(host, lambda: host.m.smc(FID.RTT_FOLD, realm.rd, 0, 3)[0])
    assert (status & 0xFF, host.last_condition) == (Status.ERROR_RTT, "rtt_homo")


def test_host_uses_a_realms_data_as_an_rtt():
    """B4.3.15.2 rtt_state: a new RTT must be a DELEGATED granule, not a realm's DATA."""
    host = checked()
    realm = host.realm()
    data = host.data(realm, 0x1000)
    status = unchanged(host, lambda: host.m.smc(FID.RTT_CREATE, realm.rd, data, 0x20_0000, 3)[0])
    assert (status, host.last_condition) == (Status.ERROR_INPUT, "rtt_state")


def test_host_gives_a_rec_the_rd_as_an_auxiliary_granule():
    """B4.3.12.2 aux_state: auxiliary granules must be DELEGATED (AuxStateEqual, B3.13)."""
    host = checked()
    realm = host.realm()
    params = host.rec_params(realm)
    params.aux[3] = realm.rd
    rec, page = host.delegated(), host.ns_page(params.pack())
    status = unchanged(host, lambda: host.m.smc(FID.REC_CREATE, realm.rd, rec, page)[0])
    assert (status, host.last_condition) == (Status.ERROR_INPUT, "aux_state")


def test_host_reorders_construction_to_forge_a_rim():
    """A7.1.1: the RIM chains every measured step in order, so the same pages in another
    order (or at other IPAs) give another RIM: a host cannot forge one by reordering."""
    rims = []
    for order in ((0x1000, 0x2000), (0x2000, 0x1000)):
        host = checked()
        realm = host.realm()
        for ipa, content in zip(order, (b"A" * GRANULE, b"B" * GRANULE), strict=True):
            host.data(realm, ipa, content)
        rims.append(host.m.realm_measurements(realm.rd)[0])
    assert rims[0] != rims[1]


def test_host_adds_measured_content_after_activation():
    """A7.1.1: the RIM is fixed once the realm is ACTIVE; every extending command fails."""
    host = checked()
    realm = host.realm()
    host.tables(realm, 0x1000)
    host.rmi.realm_activate(realm.rd).check()
    rim = host.m.realm_measurements(realm.rd)[0]
    assert host.rmi.rtt_init_ripas(realm.rd, 0x1000, 0x2000).status == Status.ERROR_REALM
    assert host.rmi.rec_create(realm.rd, host.delegated(), host.ns_page(),
                               host.rec_params(realm)).status == Status.ERROR_REALM  # fmt: skip
    assert host.m.realm_measurements(realm.rd)[0] == rim


# -- a hostile host: the REC's entry and exit -----------------------------------------------------


def test_host_enters_a_rec_of_a_realm_not_yet_active():
    """B4.3.14.2 realm_new: no REC runs before the realm's measurement is final."""
    host = checked()
    realm = host.realm()
    rec, run = host.rec(realm), host.ns_page()
    status = unchanged(host, lambda: host.m.smc(FID.REC_ENTER, rec, run)[0])
    assert (status, host.last_condition) == (Status.ERROR_REALM, "realm_new")


def test_host_tampers_with_registers_it_may_not_set():
    """A4.2: the host's gprs in RmiRecEnter reach the REC only after a host call (or PSCI,
    MMIO read): after a RIPAS change the realm sees the RMM's answer, not the host's."""
    host = checked()
    puppet = Puppet(host)
    exit_ = puppet.smc(RsiFid.IPA_STATE_SET, RAM_BASE, RAM_BASE + GRANULE, 0, 0)
    assert exit_.exit_reason == RecExitReason.RIPAS_CHANGE
    forged = RecEnter(gprs=[0xBAD] * 31)
    host.rmi.rtt_set_ripas(puppet.rd, puppet.rec, RAM_BASE, RAM_BASE + GRANULE).check()
    back = puppet.finish(enter=forged)
    assert back.exit_reason == RecExitReason.HOST_CALL
    assert back.gprs[0] == RsiStatus.SUCCESS and 0xBAD not in back.gprs[:3]


def test_host_injects_an_sea_at_the_wrong_moment():
    """A4.2.3: inject_sea applies to an Emulatable Data Abort only; after a host call it is
    ignored, and the realm's call returns normally."""
    host = checked()
    puppet = Puppet(host)
    puppet.finish()  # at its host call
    back = puppet.finish(enter=RecEnter(flags=ENTER_INJECT_SEA))
    assert back.exit_reason == RecExitReason.HOST_CALL


def test_host_injects_an_invalid_interrupt():
    """B4.3.14.2 rec_gicv3: list registers must describe a valid virtual interrupt
    (Gicv3ConfigIsValid, B3.18): a hardware-linked one is refused."""
    host = checked()
    puppet = Puppet(host)
    run = puppet.run
    host.m.ns_write(run, RecEnter(gicv3_lrs=[1 << 62 | 1 << 60 | 1 << 61 | 27] + [0] * 15).pack())
    status = unchanged(host, lambda: host.m.smc(FID.REC_ENTER, puppet.rec, run)[0])
    assert (status, host.last_condition) == (Status.ERROR_REC, "rec_gicv3")


def test_host_completes_psci_for_the_wrong_rec():
    """B4.3.7.2: PSCI_COMPLETE names the REC whose PSCI request is pending, and a target in
    the same realm; any other pairing is refused and changes nothing."""
    host = checked()
    puppet = Puppet(host, recs=2)
    exit_ = puppet.smc(PsciFid.CPU_ON, 1, RAM_BASE, 0)
    assert exit_.exit_reason == RecExitReason.PSCI
    other = puppet.recs[1]
    for caller, target in ((other, puppet.rec), (other, other)):
        status = unchanged(
            host, lambda c=caller, t=target: host.m.smc(FID.PSCI_COMPLETE, c, t, 0)[0]
        )
        assert status != Status.SUCCESS


# -- a hostile guest -------------------------------------------------------------------------


@pytest.mark.parametrize("base, top, condition", [
    (RAM_BASE, RAM_BASE + 0x1001, "top_align"),
    (RAM_BASE + 0x2000, RAM_BASE + 0x1000, "size_valid"),  # wraps: top below base
    ((1 << 47) - GRANULE, (1 << 47) + GRANULE, "rgn_bound"),  # into the Unprotected half
])  # fmt: skip
def test_guest_asks_for_a_ripas_change_it_may_not(base, top, condition):
    """B5.3.6.2: RSI_IPA_STATE_SET over a range that is misaligned, empty or wrapping, or
    reaches past the Protected half: RSI_ERROR_INPUT, and no REC exit to the host."""
    host = checked()
    puppet = Puppet(host)
    x0, found = rsi(puppet, RsiFid.IPA_STATE_SET, base, top, 1, 0)
    assert (x0, found) == (RsiStatus.ERROR_INPUT, condition)


@pytest.mark.parametrize("addr, condition", [
    (1 << 47, "addr_bound"),  # an Unprotected IPA
    (RAM_BASE + 0x20_0000, "buffer_ripas"),  # Protected, RIPAS EMPTY
])  # fmt: skip
def test_guest_puts_its_token_where_the_host_could_read_it(addr, condition):
    """B5.3.1.2: the token's buffer must be a Protected IPA with RIPAS RAM, never memory
    the host can read."""
    host = checked()
    puppet = Puppet(host)
    assert rsi(puppet, RsiFid.ATTESTATION_TOKEN_INIT, *([7] * 8))[0] == RsiStatus.SUCCESS
    x0, found = rsi(puppet, RsiFid.ATTESTATION_TOKEN_CONTINUE, addr, 0, 0x100)
    assert (x0, found) == (RsiStatus.ERROR_INPUT, condition)


def test_guest_has_its_configuration_written_to_host_memory():
    """B5.3.9.2 addr_bound: RSI_REALM_CONFIG writes to a Protected IPA only."""
    host = checked()
    puppet = Puppet(host)
    assert rsi(puppet, RsiFid.REALM_CONFIG, 1 << 47) == (RsiStatus.ERROR_INPUT, "addr_bound")


@pytest.mark.parametrize("index, size, condition", [
    (0, 32, "index_bound"),  # the RIM is not the realm's to extend
    (5, 32, "index_bound"),
    (1, 65, "size_bound"),
])  # fmt: skip
def test_guest_extends_a_measurement_it_may_not(index, size, condition):
    """B5.3.7.2: RSI_MEASUREMENT_EXTEND extends REM0-3 only, by at most 64 bytes."""
    host = checked()
    puppet = Puppet(host)
    rim = host.m.realm_measurements(puppet.rd)
    x0, found = rsi(puppet, RsiFid.MEASUREMENT_EXTEND, index, size, *([1] * 8))
    assert (x0, found) == (RsiStatus.ERROR_INPUT, condition)
    assert host.m.realm_measurements(puppet.rd) == rim


def test_guest_storms_cpu_on():
    """B6.3.3: PSCI_CPU_ON of a REC that does not exist never reaches the host
    (INVALID_PARAMETERS); of one that is on already, the RMM answers ALREADY_ON once the host
    names the target in RMI_PSCI_COMPLETE (B4.3.7; docs/decisions.md), whatever it asks."""
    host = checked()
    puppet = Puppet(host, recs=2, runnable=(0, 1))
    assert rsi(puppet, PsciFid.CPU_ON, 7, RAM_BASE, 0)[0] == PsciReturn.INVALID_PARAMETERS.encode()
    for _ in range(3):
        assert puppet.smc(PsciFid.CPU_ON, 1, RAM_BASE, 0).exit_reason == RecExitReason.PSCI
        host.rmi.psci_complete(puppet.rec, puppet.recs[1], 0).check()
        assert puppet.finish().gprs[0] == PsciReturn.ALREADY_ON.encode()


def test_guest_reads_outside_its_measurements():
    """B5.3.8.2 index_bound: RSI_MEASUREMENT_READ indexes the RIM and REM0-3 only."""
    host = checked()
    puppet = Puppet(host)
    assert rsi(puppet, RsiFid.MEASUREMENT_READ, 5) == (RsiStatus.ERROR_INPUT, "index_bound")


def test_a_realm_cannot_be_created_with_a_pmu_the_platform_cannot_give():
    """B3.34 RealmParamsSupported: without FEAT_HPMN0, no PMU with no counters."""
    host = checked(hpmn0=False)
    params = host.realm_params(flags=REALM_FLAG_PMU, pmu_num_ctrs=0, rtt_base=host.delegated())
    rd, page = host.delegated(), host.ns_page(params.pack())
    status = unchanged(host, lambda: host.m.smc(FID.REALM_CREATE, rd, page)[0])
    assert (status, host.last_condition) == (Status.ERROR_INPUT, "params_supp")
