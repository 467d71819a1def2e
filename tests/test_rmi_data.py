"""B4.3.1 RMI_DATA_CREATE, B4.3.2 RMI_DATA_CREATE_UNKNOWN, B4.3.3 RMI_DATA_DESTROY."""

import pytest

from ccasim.hw import GiB, MemoryRegion, Platform, fvp_base
from ccasim.rmi import FID, Status
from ccasim.rmi.types import REALM_FLAG_LPA2
from support import DRAM0, SECURE, UNPOPULATED, Host, call_changes, expect_failure

INPUT, REALM, RTT = Status.ERROR_INPUT, Status.ERROR_REALM, Status.ERROR_RTT
IPA = 0x20_1000  # in the second 2 MiB block: level 3 RTT needed


def setup(host: Host, tables: bool = True, activate: bool = False):
    realm = host.realm()
    if tables:
        host.tables(realm, IPA)
    if activate:
        host.rmi.realm_activate(realm.rd).check()
    return realm, host.delegated(), host.ns_page(b"\x11" * 4096)


def test_data_create_failure_flags():
    """B4.2: reserved RmiDataFlags bits are an invalid encoding."""
    host = Host()
    realm, data, src = setup(host)
    expect_failure(host, FID.DATA_CREATE, (realm.rd, data, IPA, src, 2), INPUT, 0, "flags_valid")


@pytest.mark.parametrize("cond", ["src_align", "src_bound", "src_pas"])
def test_data_create_failure_src(cond):
    """B4.3.1.2 src_align, src_bound, src_pas."""
    host = Host()
    realm, data, src = setup(host)
    src = {"src_align": src + 1, "src_bound": SECURE, "src_pas": host.delegated()}[cond]
    expect_failure(host, FID.DATA_CREATE, (realm.rd, data, IPA, src, 1), INPUT, 0, cond)


@pytest.mark.parametrize("fid", [FID.DATA_CREATE, FID.DATA_CREATE_UNKNOWN])
@pytest.mark.parametrize(
    "cond", ["data_align", "data_bound", "data_state", "rd_align", "rd_bound", "rd_state"]
)
def test_data_create_failure_granules(fid, cond):
    """B4.3.1.2 / B4.3.2.2 data_align, data_bound, data_state, rd_align, rd_bound, rd_state."""
    host = Host()
    realm, data, src = setup(host)
    rd = realm.rd
    if cond.startswith("data"):
        data = {"data_align": data + 8, "data_bound": UNPOPULATED, "data_state": host.alloc()}[cond]
    else:
        rd = {"rd_align": rd + 8, "rd_bound": UNPOPULATED, "rd_state": data}[cond]
        if cond == "rd_state":
            data = host.delegated()
    args = (rd, data, IPA, src, 1) if fid == FID.DATA_CREATE else (rd, data, IPA)
    expect_failure(host, fid, args, INPUT, 0, cond)


@pytest.mark.parametrize("fid", [FID.DATA_CREATE, FID.DATA_CREATE_UNKNOWN])
@pytest.mark.parametrize(
    "ipa, cond",
    [
        (IPA + 0x10, "ipa_align"),
        (1 << 47, "ipa_bound"),
        (1 << 48, "ipa_bound"),
        (-4096, "ipa_bound"),
    ],
)
def test_data_create_failure_ipa(fid, ipa, cond):
    """B4.3.1.2 / B4.3.2.2 ipa_align, ipa_bound (AddrIsProtected, B3.4)."""
    host = Host()
    realm, data, src = setup(host)
    args = (realm.rd, data, ipa, src, 1) if fid == FID.DATA_CREATE else (realm.rd, data, ipa)
    expect_failure(host, fid, args, INPUT, 0, cond)


def test_data_create_failure_realm_state():
    """B4.3.1.2 realm_state: DATA_CREATE only while the realm is NEW (ERROR_REALM)."""
    host = Host()
    realm, data, src = setup(host, activate=True)
    expect_failure(host, FID.DATA_CREATE, (realm.rd, data, IPA, src, 1), REALM, 0, "realm_state")


def test_data_create_unknown_allowed_in_active_realm():
    """B4.3.2 has no realm_state condition (D1.5.1 adds memory to an active realm)."""
    host = Host()
    realm, data, _ = setup(host, activate=True)
    assert host.rmi.data_create_unknown(realm.rd, data, IPA).ok


@pytest.mark.parametrize("fid", [FID.DATA_CREATE, FID.DATA_CREATE_UNKNOWN])
@pytest.mark.parametrize("depth", [0, 1, 2])
def test_data_create_failure_rtt_walk(fid, depth):
    """B4.3.1.2 rtt_walk: walk.level < 3 gives ERROR_RTT with the level the walk reached."""
    host = Host()
    realm, data, src = setup(host, tables=False)
    if depth:
        host.tables(realm, IPA, depth)
    args = (realm.rd, data, IPA, src, 1) if fid == FID.DATA_CREATE else (realm.rd, data, IPA)
    expect_failure(host, fid, args, RTT, depth, "rtt_walk")


@pytest.mark.parametrize("fid", [FID.DATA_CREATE, FID.DATA_CREATE_UNKNOWN])
def test_data_create_failure_rtte_state(fid):
    """B4.3.1.2 rtte_state: the level 3 entry is already ASSIGNED."""
    host = Host()
    realm, data, src = setup(host)
    host.data(realm, IPA)
    args = (realm.rd, data, IPA, src, 1) if fid == FID.DATA_CREATE else (realm.rd, data, IPA)
    expect_failure(host, fid, args, RTT, 3, "rtte_state")


def lpa2_host() -> Host:
    """A 52-bit platform with delegable DRAM above 2^48 (for the *_bound2 conditions)."""
    regions = [*fvp_base(52).regions, MemoryRegion("dram-high", 1 << 48, GiB)]
    return Host(platform=Platform(regions, 52))


@pytest.mark.parametrize("fid", [FID.DATA_CREATE, FID.DATA_CREATE_UNKNOWN])
def test_data_create_failure_data_bound2(fid):
    """B4.3.1.2 data_bound2 (A3.1.2): without LPA2 a DATA granule must be below 2^48."""
    host = lpa2_host()
    realm, _, src = setup(host)
    data = 1 << 48
    host.rmi.granule_delegate(data).check()
    args = (realm.rd, data, IPA, src, 1) if fid == FID.DATA_CREATE else (realm.rd, data, IPA)
    expect_failure(host, fid, args, INPUT, 0, "data_bound2")
    realm2 = host.realm(flags=REALM_FLAG_LPA2, vmid=2)
    host.tables(realm2, IPA)
    args = (realm2.rd, data, IPA, src, 1) if fid == FID.DATA_CREATE else (realm2.rd, data, IPA)
    assert host.rmi.call(fid, *args).ok


def test_data_create_orderings():
    """B4.3.1.2.1 [rd_bound, rd_state] < [realm_state, rtt_walk, rtte_state]; [ipa_bound] <
    [rtt_walk, rtte_state]."""
    host = Host()
    realm, data, src = setup(host, tables=False, activate=True)
    expect_failure(host, FID.DATA_CREATE, (host.alloc(), data, IPA, src, 1), INPUT, 0, "rd_state")
    host2 = Host()
    realm, data, src = setup(host2, tables=False)
    expect_failure(host2, FID.DATA_CREATE, (realm.rd, data, 1 << 47, src, 1), INPUT, 0, "ipa_bound")


def test_data_create_success_and_footprint():
    """B4.3.1.3 data_state, rtte_state, rtte_ripas, rtte_addr, rim; B4.3.1.5 footprint."""
    host = Host()
    realm, data, src = setup(host)
    result, changed = call_changes(host, FID.DATA_CREATE, realm.rd, data, IPA, src, 1)
    assert result.ok
    x = host.rmi.rtt_read_entry(realm.rd, IPA, 3)
    assert x[1:] == (3, 1, data, 1)  # level 3, ASSIGNED, addr == data, RIPAS RAM
    assert host.m.granule_state(data) == "DATA"
    rtte_keys = {k for k in changed if k[0] == "rtte"}
    assert len(rtte_keys) == 1 and next(iter(rtte_keys))[2] == (IPA >> 12) & 511
    assert changed - rtte_keys == {
        ("granule", data),
        ("realm", realm.rd, "measurements"),
        ("mem", data),
    }
    # the footprint is rtte, data_state, rim (plus the granule's new contents)


def test_data_create_copies_the_source_and_the_host_cannot_read_it():
    host = Host()
    realm = host.realm()
    data = host.data(realm, IPA, b"\x42" * 4096)
    assert host.m.debug_read(data, 4096) == b"\x42" * 4096
    with pytest.raises(Exception, match="granule protection"):
        host.m.ns_read(data, 1)


def test_data_create_unmeasured_content_does_not_change_with_content():
    """B4.3.1.4: with RMI_NO_MEASURE_CONTENT the content field is zero."""
    rims = []
    for byte in (b"\x01", b"\x02"):
        host = Host()
        realm, data, _ = setup(host)
        src = host.ns_page(byte * 4096)
        host.rmi.data_create(realm.rd, data, IPA, src, 0).check()
        rims.append(host.m.realm_measurements(realm.rd)[0])
    assert rims[0] == rims[1]


@pytest.mark.parametrize("ripas", ["EMPTY", "RAM", "DESTROYED"])
def test_data_create_over_any_unassigned_ripas_gives_ram(ripas):
    """A5.3.5: DATA_CREATE depends on HIPAS only; the new RIPAS is RAM."""
    host = Host()
    realm, data, src = setup(host)
    if ripas != "EMPTY":
        host.rmi.rtt_init_ripas(realm.rd, IPA, IPA + 4096).check()
    if ripas == "DESTROYED":
        host.rmi.data_create(realm.rd, host.delegated(), IPA, src, 1).check()
        host.rmi.data_destroy(realm.rd, IPA).check()
    assert (
        host.rmi.rtt_read_entry(realm.rd, IPA, 3)[4]
        == {"EMPTY": 0, "RAM": 1, "DESTROYED": 2}[ripas]
    )
    host.rmi.data_create(realm.rd, data, IPA, src, 1).check()
    assert host.rmi.rtt_read_entry(realm.rd, IPA, 3)[4] == 1


@pytest.mark.parametrize("ripas", [0, 1])
def test_data_create_unknown_keeps_ripas_and_wipes(ripas):
    """B4.3.2.3 (A5.3.5 'Unchanged'); A2.2.4 data_content wiped."""
    host = Host()
    realm, data, _ = setup(host)
    if ripas:
        host.rmi.rtt_init_ripas(realm.rd, IPA, IPA + 4096).check()
    rim = host.m.realm_measurements(realm.rd)[0]
    result, changed = call_changes(host, FID.DATA_CREATE_UNKNOWN, realm.rd, data, IPA)
    assert result.ok
    assert host.rmi.rtt_read_entry(realm.rd, IPA, 3)[1:] == (3, 1, data, ripas)
    assert host.m.realm_measurements(realm.rd)[0] == rim
    assert host.m.debug_read(data, 4096) == bytes(4096)
    assert {k[0] for k in changed} == {"granule", "rtte"}


def test_data_destroy_failures():
    """B4.3.3.2 rd_*, ipa_align, ipa_bound (top 0), rtt_walk and rtte_state (top reported)."""
    host = Host()
    realm, _, _ = setup(host)
    for args, status, index, cond in [
        ((realm.rd + 1, IPA), INPUT, 0, "rd_align"),
        ((UNPOPULATED, IPA), INPUT, 0, "rd_bound"),
        ((DRAM0, IPA), INPUT, 0, "rd_state"),
        ((realm.rd, IPA + 1), INPUT, 0, "ipa_align"),
        ((realm.rd, 1 << 47), INPUT, 0, "ipa_bound"),
    ]:
        x = expect_failure(host, FID.DATA_DESTROY, args, status, index, cond)
        assert x[1:3] == (0, 0)
    # not mapped: top > ipa, the end of the level 3 RTT's range
    x = expect_failure(host, FID.DATA_DESTROY, (realm.rd, IPA), RTT, 3, "rtte_state")
    assert x[2] == 0x40_0000
    # no level 2 RTT for this IPA: walk stops at level 1
    x = expect_failure(host, FID.DATA_DESTROY, (realm.rd, 1 << 30), RTT, 1, "rtt_walk")
    assert x[2] == 1 << 39  # no live entry in the rest of the level 1 RTT


def test_data_destroy_top_is_next_live_entry():
    """B4.3.3.1.3: top is the next live IPA after the one destroyed."""
    host = Host()
    realm = host.realm()
    host.data(realm, IPA)
    host.data(realm, IPA + 0x5000)
    x = host.rmi.data_destroy(realm.rd, IPA).check()
    assert x[2] == IPA + 0x5000
    x = host.rmi.data_destroy(realm.rd, IPA + 0x5000).check()
    assert x[2] == 0x40_0000


def test_data_destroy_block_mapping_reports_top_equal_ipa():
    """B4.3.3.1.3: 'ipa is mapped as a block' gives (RMI_ERROR_RTT, level) and top == ipa."""
    host = Host()
    realm = host.realm()
    base = 0x20_0000
    host.block(realm, base)
    host.rmi.rtt_fold(realm.rd, base, 3).check()
    x = expect_failure(host, FID.DATA_DESTROY, (realm.rd, base + 0x3000), RTT, 2, "rtt_walk")
    assert x[2] == base + 0x3000


@pytest.mark.parametrize("before, after", [(1, 2), (0, 0)])
def test_data_destroy_success(before, after):
    """B4.3.3.3: data_state DELEGATED, rtte_state UNASSIGNED, ripas_ram (RAM -> DESTROYED),
    data == walk.rtte.addr."""
    host = Host()
    realm, data, _ = setup(host)
    if before == 1:
        data = host.data(realm, IPA)
    else:
        host.rmi.data_create_unknown(realm.rd, data, IPA).check()
    result, changed = call_changes(host, FID.DATA_DESTROY, realm.rd, IPA)
    assert result.ok and result.data == data
    assert host.rmi.rtt_read_entry(realm.rd, IPA, 3)[1:] == (3, 0, 0, after)
    assert host.m.granule_state(data) == "DELEGATED"
    assert {k[0] for k in changed} <= {"granule", "rtte", "mem"}
