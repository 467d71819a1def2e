"""B4.3.18 RMI_RTT_INIT_RIPAS and B4.3.21 RMI_RTT_SET_RIPAS."""

from ccasim.rmi import FID, RecExitReason, Status
from ccasim.rmm.types import Ripas
from ccasim.rsi import RIPAS_CHANGE_DESTROYED, RsiFid, RsiRipas
from support import UNPOPULATED, Host, Puppet, call_changes, expect_failure

INPUT, REALM, REC, RTT = (
    Status.ERROR_INPUT,
    Status.ERROR_REALM,
    Status.ERROR_REC,
    Status.ERROR_RTT,
)


def ripas_of(host, realm, ipa):
    return host.rmi.rtt_read_entry(realm.rd, ipa, 3)[4]


# -- RTT_INIT_RIPAS -------------------------------------------------------------------------


def test_init_ripas_input_failures():
    """B4.3.18.2 rd_*, size_valid, top_bound, top_gran_align."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0, 3)
    top_par = 1 << 47
    for args, cond in [
        ((realm.rd + 1, 0, 0x1000), "rd_align"),
        ((UNPOPULATED, 0, 0x1000), "rd_bound"),
        ((host.alloc(), 0, 0x1000), "rd_state"),
        ((realm.rd, 0x2000, 0x2000), "size_valid"),
        ((realm.rd, 0x2000, 0x1000), "size_valid"),
        ((realm.rd, 0, top_par + 0x1000), "top_bound"),
        ((realm.rd, 0, 0x1800), "top_gran_align"),
    ]:
        expect_failure(host, FID.RTT_INIT_RIPAS, args, INPUT, 0, cond)


def test_init_ripas_failure_realm_state():
    """B4.3.18.2 realm_state: only while the realm is NEW."""
    host = Host()
    realm = host.realm(activate=True)
    expect_failure(host, FID.RTT_INIT_RIPAS, (realm.rd, 0, 0x1000), REALM, 0, "realm_state")


def test_init_ripas_rtt_failures():
    """B4.3.18.2 base_align, rtte_state, no_progress: ERROR_RTT at the walk's level."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0, 2)
    # base inside a level 2 entry (2 MiB): base_align at level 2
    expect_failure(host, FID.RTT_INIT_RIPAS, (realm.rd, 0x1000, 0x2000), RTT, 2, "base_align")
    # the level 2 entry is wider than [base, top): no entry fits, no progress
    expect_failure(host, FID.RTT_INIT_RIPAS, (realm.rd, 0, 0x1000), RTT, 2, "no_progress")
    host.tables(realm, 0, 3)
    host.data(realm, 0x3000)
    expect_failure(host, FID.RTT_INIT_RIPAS, (realm.rd, 0x3000, 0x4000), RTT, 3, "rtte_state")


def test_init_ripas_orderings():
    """B4.3.18.2.1 [rd_*] < [realm_state], [rd_*] < [base_align, rtte_state, no_progress],
    [top_gran_align] < [no_progress]."""
    host = Host()
    realm = host.realm(activate=True)
    expect_failure(host, FID.RTT_INIT_RIPAS, (host.alloc(), 0x1000, 0x2000), INPUT, 0, "rd_state")
    host2 = Host()
    realm = host2.realm()
    host2.tables(realm, 0, 2)
    expect_failure(host2, FID.RTT_INIT_RIPAS, (realm.rd, 0, 0x1800), INPUT, 0, "top_gran_align")


def test_init_ripas_success_page_level():
    """B4.3.18.3 rtte_ripas, rim, out_top; B4.3.18.5 footprint (RTT entries and RIM)."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0, 3)
    result, changed = call_changes(host, FID.RTT_INIT_RIPAS, realm.rd, 0x3000, 0x9000)
    assert result.ok and result.out_top == 0x9000
    assert [ripas_of(host, realm, a) for a in range(0x2000, 0xA000, 0x1000)] == [0] + [1] * 6 + [0]
    assert {k[0] for k in changed} == {"rtte", "realm"}
    assert {k for k in changed if k[0] == "realm"} == {("realm", realm.rd, "measurements")}


def test_init_ripas_stops_at_the_end_of_the_rtt():
    """out_top is the end of the level 3 RTT; the host continues from there (D1.2.3)."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0, 3)
    host.tables(realm, 0x20_0000, 3)
    x = host.rmi.rtt_init_ripas(realm.rd, 0x1F_E000, 0x20_2000).check()
    assert x[1] == 0x20_0000
    x = host.rmi.rtt_init_ripas(realm.rd, 0x20_0000, 0x20_2000).check()
    assert x[1] == 0x20_2000


def test_init_ripas_block_level_entries_are_measured_per_entry():
    """B4.3.18.4: one descriptor per RTT entry; a level 2 entry covers 2 MiB."""
    from ccasim.rmi import measurement
    from ccasim.rmi.types import HashAlgorithm

    host = Host()
    realm = host.realm()
    host.tables(realm, 0, 2)
    rim = host.m.realm_measurements(realm.rd)[0]
    x = host.rmi.rtt_init_ripas(realm.rd, 0, 0x60_0000).check()
    assert x[1] == 0x60_0000
    expected = rim.ljust(64, b"\0")
    for base in (0, 0x20_0000, 0x40_0000):
        expected = measurement.rim_extend_ripas_entry(
            HashAlgorithm.SHA_256, expected, base, base + 0x20_0000
        )
    assert host.m.realm_measurements(realm.rd)[0] == expected[:32]
    assert host.rmi.rtt_read_entry(realm.rd, 0x40_0000, 3)[1:] == (2, 0, 0, 1)


def test_init_ripas_stops_at_a_table_entry():
    """B3.75: the range ends at the first TABLE entry."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0x40_0000, 3)
    x = host.rmi.rtt_init_ripas(realm.rd, 0, 0x80_0000).check()
    assert x[1] == 0x40_0000


# -- RTT_SET_RIPAS --------------------------------------------------------------------------


def pending_ripas_change(realm, base, top, ripas=Ripas.RAM, change_destroyed=False):
    """The realm asks for a RIPAS change (RSI_IPA_STATE_SET, A5.4): its REC exits with the
    request pending, as the host sees it before applying the change."""
    flags = RIPAS_CHANGE_DESTROYED if change_destroyed else 0
    value = RsiRipas.RAM if ripas is Ripas.RAM else RsiRipas.EMPTY
    exit_ = realm.smc(RsiFid.IPA_STATE_SET, base, top, value, flags)
    assert exit_.exit_reason == RecExitReason.RIPAS_CHANGE, exit_
    assert (exit_.ripas_base, exit_.ripas_top) == (base, top)


def set_ripas_setup(vmid=1):
    """An active realm (its image at RAM_BASE) with tables down to level 3 at IPA 0."""
    host = Host()
    realm = Puppet(host, vmid=vmid)
    host.tables(realm.realm, 0, 3)
    return host, realm


def test_set_ripas_failures():
    """B4.3.21.2 rd_*, rec_*, rec_owner, size_valid, base_bound, top_bound, top_gran_align."""
    host, realm = set_ripas_setup()
    rec = realm.rec
    other = Puppet(host, vmid=2)
    other_rec = other.rec
    host.tables(other.realm, 0, 3)
    pending_ripas_change(realm, 0x4000, 0x8000)
    pending_ripas_change(other, 0x4000, 0x8000)
    for args, status, cond in [
        ((realm.rd + 1, rec, 0x4000, 0x8000), INPUT, "rd_align"),
        ((UNPOPULATED, rec, 0x4000, 0x8000), INPUT, "rd_bound"),
        ((rec, rec, 0x4000, 0x8000), INPUT, "rd_state"),
        ((realm.rd, rec + 1, 0x4000, 0x8000), INPUT, "rec_align"),
        ((realm.rd, UNPOPULATED, 0x4000, 0x8000), INPUT, "rec_bound"),
        ((realm.rd, realm.rd, 0x4000, 0x8000), INPUT, "rec_gran_state"),
        ((realm.rd, other_rec, 0x4000, 0x8000), REC, "rec_owner"),
        ((realm.rd, rec, 0x4000, 0x4000), INPUT, "size_valid"),
        ((realm.rd, rec, 0x5000, 0x8000), INPUT, "base_bound"),
        ((realm.rd, rec, 0x4000, 0x9000), INPUT, "top_bound"),
        ((realm.rd, rec, 0x4000, 0x7800), INPUT, "top_gran_align"),
    ]:
        expect_failure(host, FID.RTT_SET_RIPAS, args, status, 0, cond)


def test_set_ripas_rtt_failures():
    """B4.3.21.2 base_align, no_progress."""
    host, realm = set_ripas_setup()
    rec = realm.rec
    pending_ripas_change(realm, 0x40_1000, 0x40_3000)
    expect_failure(
        host, FID.RTT_SET_RIPAS, (realm.rd, rec, 0x40_1000, 0x40_3000), RTT, 2, "base_align"
    )
    pending_ripas_change(realm, 0x40_0000, 0x40_3000)
    expect_failure(
        host, FID.RTT_SET_RIPAS, (realm.rd, rec, 0x40_0000, 0x40_3000), RTT, 2, "no_progress"
    )
    # DESTROYED entries stop the change unless the realm allowed it (ripas_destroyed)
    host.rmi.data_create_unknown(realm.rd, host.delegated(), 0x4000).check()
    pending_ripas_change(realm, 0x4000, 0x8000, Ripas.RAM)
    host.rmi.rtt_set_ripas(realm.rd, rec, 0x4000, 0x8000).check()
    host.rmi.data_destroy(realm.rd, 0x4000).check()  # RAM -> DESTROYED
    pending_ripas_change(realm, 0x4000, 0x8000, Ripas.RAM)
    expect_failure(host, FID.RTT_SET_RIPAS, (realm.rd, rec, 0x4000, 0x8000), RTT, 3, "no_progress")
    pending_ripas_change(realm, 0x4000, 0x8000, Ripas.RAM, change_destroyed=True)
    assert host.rmi.rtt_set_ripas(realm.rd, rec, 0x4000, 0x8000).ok


def test_set_ripas_orderings():
    """B4.3.21.2.1 [rec_bound, rec_gran_state] < [rec_owner]; [base_bound] < [base_align];
    [top_gran_align] < [no_progress]."""
    host, realm = set_ripas_setup()
    rec = realm.rec
    pending_ripas_change(realm, 0x40_1000, 0x40_3000)
    expect_failure(
        host, FID.RTT_SET_RIPAS, (realm.rd, rec, 0x40_2000, 0x40_3000), INPUT, 0, "base_bound"
    )
    pending_ripas_change(realm, 0x40_0000, 0x40_3000)
    expect_failure(
        host, FID.RTT_SET_RIPAS, (realm.rd, rec, 0x40_0000, 0x40_2800), INPUT, 0, "top_gran_align"
    )
    expect_failure(
        host,
        FID.RTT_SET_RIPAS,
        (realm.rd, host.alloc(), 0x40_0000, 0x40_3000),
        INPUT,
        0,
        "rec_gran_state",
    )


def test_set_ripas_success_partial_and_complete():
    """B4.3.21.3 rtte_ripas, ripas_addr, out_top; X1 written only on success (RMM 1.0)."""
    host, realm = set_ripas_setup()
    rec = realm.rec
    host.tables(realm.realm, 0x20_0000, 3)
    pending_ripas_change(realm, 0x1F_E000, 0x20_2000, Ripas.RAM)
    result, changed = call_changes(host, FID.RTT_SET_RIPAS, realm.rd, rec, 0x1F_E000, 0x20_2000)
    assert result.ok and result.out_top == 0x20_0000
    assert changed == {("rtte", k[1], k[2]) for k in changed if k[0] == "rtte"} | {
        ("rec", rec, "ripas_addr")
    }
    assert host.m.debug_state().rmm.recs[rec].ripas_addr == 0x20_0000
    x = host.rmi.rtt_set_ripas(realm.rd, rec, 0x20_0000, 0x20_2000).check()
    assert x[1] == 0x20_2000
    assert [ripas_of(host, realm, a) for a in (0x1F_D000, 0x1F_E000, 0x20_1000, 0x20_2000)] == [
        0,
        1,
        1,
        0,
    ]


def test_set_ripas_ram_to_empty_on_assigned_entries():
    """A5.4: a realm may give memory back: ASSIGNED RAM entries become EMPTY."""
    host = Host()
    realm = Puppet(host, activate=False)
    rec = realm.rec
    data = host.data(realm.realm, 0x5000)
    host.rmi.realm_activate(realm.rd).check()
    pending_ripas_change(realm, 0x5000, 0x6000, Ripas.EMPTY)
    host.rmi.rtt_set_ripas(realm.rd, rec, 0x5000, 0x6000).check()
    assert host.rmi.rtt_read_entry(realm.rd, 0x5000, 3)[1:] == (3, 1, data, 0)
