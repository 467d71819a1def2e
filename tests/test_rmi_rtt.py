"""RTT commands: B4.3.15 CREATE, B4.3.16 DESTROY, B4.3.17 FOLD, B4.3.20 READ_ENTRY,
B4.3.19 MAP_UNPROTECTED, B4.3.22 UNMAP_UNPROTECTED."""

import pytest

from ccasim.rmi import FID, Status, levels
from support import DRAM0, DRAM1, UNPOPULATED, Host, call_changes, expect_failure

INPUT, RTT = Status.ERROR_INPUT, Status.ERROR_RTT
NS_ATTRS = 0b101 << 2 | 0b11 << 6  # MemAttr Normal WB (FWB), S2AP read/write


# -- RTT_CREATE -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ipa, level, cond",
    [
        (0, 0, "level_bound"),  # the starting level
        (0, 4, "level_bound"),
        (0, -1, "level_bound"),
        (0, 1 << 40, "level_bound"),
        (0x1000, 1, "ipa_align"),  # a level 1 RTT maps 512 GiB
        (0x20_1000, 3, "ipa_align"),  # a level 3 RTT maps 2 MiB
        (1 << 48, 1, "ipa_bound"),
        (-(1 << 39), 1, "ipa_bound"),
    ],
)
def test_rtt_create_failure_level_and_ipa(ipa, level, cond):
    """B4.3.15.2 level_bound (RttLevelIsValid, RttLevelIsStarting), ipa_align, ipa_bound."""
    host = Host()
    realm = host.realm()
    expect_failure(host, FID.RTT_CREATE, (realm.rd, host.delegated(), ipa, level), INPUT, 0, cond)


@pytest.mark.parametrize(
    "cond", ["rd_align", "rd_bound", "rd_state", "rtt_align", "rtt_bound", "rtt_state"]
)
def test_rtt_create_failure_granules(cond):
    """B4.3.15.2 rd_align, rd_bound, rd_state, rtt_align, rtt_bound, rtt_state."""
    host = Host()
    realm = host.realm()
    rd, rtt = realm.rd, host.delegated()
    bad = {
        "rd_align": ("rd", rd + 0x10), "rd_bound": ("rd", UNPOPULATED), "rd_state": ("rd", rtt),
        "rtt_align": ("rtt", rtt + 1), "rtt_bound": ("rtt", UNPOPULATED), "rtt_state": ("rtt", host.alloc()),
    }  # fmt: skip
    which, value = bad[cond]
    args = (value, rtt, 0, 1) if which == "rd" else (rd, value, 0, 1)
    expect_failure(host, FID.RTT_CREATE, args, INPUT, 0, cond)


def test_rtt_create_failure_rtt_bound2():
    """B4.3.15.2 rtt_bound2 (A3.1.2): without LPA2 an RTT must be below 2^48."""
    from test_rmi_data import lpa2_host

    host = lpa2_host()
    realm = host.realm()
    rtt = 1 << 48
    host.rmi.granule_delegate(rtt).check()
    expect_failure(host, FID.RTT_CREATE, (realm.rd, rtt, 0, 1), INPUT, 0, "rtt_bound2")


@pytest.mark.parametrize("level, walk_level", [(2, 0), (3, 0), (3, 1)])
def test_rtt_create_failure_rtt_walk(level, walk_level):
    """B4.3.15.2 rtt_walk: the parent RTT is missing; index = level the walk reached."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0, walk_level)
    args = (realm.rd, host.delegated(), 0, level)
    expect_failure(host, FID.RTT_CREATE, args, RTT, walk_level, "rtt_walk")


def test_rtt_create_failure_rtte_state():
    """B4.3.15.2 rtte_state: the parent entry is already TABLE."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0, 2)
    expect_failure(host, FID.RTT_CREATE, (realm.rd, host.delegated(), 0, 2), RTT, 1, "rtte_state")


def test_rtt_create_orderings():
    """B4.3.15.2.1 [rd_bound, rd_state] and [level_bound, ipa_bound] < [rtt_walk, rtte_state]."""
    host = Host()
    realm = host.realm()
    rtt = host.delegated()
    expect_failure(host, FID.RTT_CREATE, (host.alloc(), rtt, 0, 3), INPUT, 0, "rd_state")
    expect_failure(host, FID.RTT_CREATE, (realm.rd, rtt, 0, 5), INPUT, 0, "level_bound")
    expect_failure(host, FID.RTT_CREATE, (realm.rd, rtt, 1 << 48, 3), INPUT, 0, "ipa_bound")


def test_rtt_create_success_and_footprint():
    """B4.3.15.3 rtt_state, rtte_state, rtte_addr; rtte_c_state, rtte_c_ripas (unfold)."""
    host = Host()
    realm = host.realm()
    rtt = host.delegated()
    result, changed = call_changes(host, FID.RTT_CREATE, realm.rd, rtt, 0, 1)
    assert result.ok
    assert host.rmi.rtt_read_entry(realm.rd, 0, 0)[1:] == (0, 2, rtt, 0)  # TABLE -> rtt
    assert host.m.granule_state(rtt) == "RTT"
    base = realm.params.rtt_base
    assert {k for k in changed if k[0] != "rtte" or k[1] != rtt} == {
        ("granule", rtt),
        ("rtte", base, 0),
    }
    assert host.rmi.rtt_read_entry(realm.rd, 5 << 30, 1)[1:] == (1, 0, 0, 0)


def test_rtt_create_unfolds_an_unprotected_block():
    """A5.5.7: an ASSIGNED_NS block becomes 512 contiguous ASSIGNED_NS entries."""
    host = Host()
    realm = host.realm()
    ipa = realm.unprotected
    host.tables(realm, ipa, 1)
    assert host.rmi.rtt_map_unprotected(realm.rd, ipa, 1, DRAM1 | NS_ATTRS).ok
    host.tables(realm, ipa, 2)
    x = host.rmi.rtt_read_entry(realm.rd, ipa + (7 << 21), 2)
    assert x[1:] == (2, 1, (DRAM1 + (7 << 21)) | NS_ATTRS, 0)


def test_rtt_create_unfolds_a_protected_block_with_its_ripas():
    """A5.5.7 / B4.3.15.3 rtte_c_addr, rtte_c_ripas: a DATA block unfolds to contiguous pages."""
    host = Host()
    realm = host.realm()
    pa = host.block(realm, 0x20_0000)
    host.rmi.rtt_fold(realm.rd, 0x20_0000, 3).check()
    assert host.rmi.rtt_read_entry(realm.rd, 0x20_0000, 3)[1:] == (2, 1, pa, 1)
    host.rmi.rtt_create(realm.rd, host.delegated(), 0x20_0000, 3).check()
    assert host.rmi.rtt_read_entry(realm.rd, 0x20_5000, 3)[1:] == (3, 1, pa + 0x5000, 1)


# -- RTT_DESTROY ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, cond",
    [
        (("rd+1", 0, 1), "rd_align"),
        (("unpopulated", 0, 1), "rd_bound"),
        (("ns", 0, 1), "rd_state"),
        (("rd", 0, 0), "level_bound"),
        (("rd", 0x1000, 2), "ipa_align"),
        (("rd", 1 << 48, 1), "ipa_bound"),
    ],
)
def test_rtt_destroy_input_failures(args, cond):
    """B4.3.16.2 rd_*, level_bound, ipa_align, ipa_bound: X2 (top) is 0."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0, 3)
    rd = {"rd+1": realm.rd + 1, "unpopulated": UNPOPULATED, "ns": host.alloc(), "rd": realm.rd}[
        args[0]
    ]
    x = expect_failure(host, FID.RTT_DESTROY, (rd, *args[1:]), INPUT, 0, cond)
    assert x[1:3] == (0, 0)


def test_rtt_destroy_missing_rtt():
    """B4.3.16.1.3 'Missing RTT': (RMI_ERROR_RTT, < level), top > ipa."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0, 1)
    x = expect_failure(host, FID.RTT_DESTROY, (realm.rd, 0, 3), RTT, 1, "rtt_walk")
    assert x[2] == 1 << 39
    x = expect_failure(host, FID.RTT_DESTROY, (realm.rd, 0, 2), RTT, 1, "rtte_state")
    assert x[2] == 1 << 39


def test_rtt_destroy_block_mapping():
    """B4.3.16.1.3 'Block mapping at lower level': (RMI_ERROR_RTT, < level), top == ipa."""
    host = Host()
    realm = host.realm()
    host.block(realm, 0x20_0000)
    host.rmi.rtt_fold(realm.rd, 0x20_0000, 3).check()
    x = expect_failure(host, FID.RTT_DESTROY, (realm.rd, 0x20_0000, 3), RTT, 2, "rtte_state")
    assert x[2] == 0x20_0000


def test_rtt_destroy_live_rtt():
    """B4.3.16.2 rtt_live: (RMI_ERROR_RTT, level), top == ipa."""
    host = Host()
    realm = host.realm()
    host.data(realm, 0x3000)
    x = expect_failure(host, FID.RTT_DESTROY, (realm.rd, 0, 3), RTT, 3, "rtt_live")
    assert x[2] == 0
    x = expect_failure(host, FID.RTT_DESTROY, (realm.rd, 0, 2), RTT, 2, "rtt_live")


def test_rtt_destroy_success():
    """B4.3.16.3 rtte_state UNASSIGNED, ripas DESTROYED, rtt_state DELEGATED, rtt, top."""
    host = Host()
    realm = host.realm()
    rtts = host.tables(realm, 0x20_0000, 3)
    host.tables(realm, 0x60_0000, 3)
    result, changed = call_changes(host, FID.RTT_DESTROY, realm.rd, 0x20_0000, 3)
    assert result.ok and result.rtt == rtts[-1]
    assert result.top == 0x60_0000  # the next live entry of the level 2 RTT
    assert host.rmi.rtt_read_entry(realm.rd, 0x20_0000, 3)[1:] == (2, 0, 0, 2)
    assert host.m.granule_state(rtts[-1]) == "DELEGATED"
    assert {k for k in changed if k[0] != "rtte" or k[1] != rtts[-1]} == {
        ("granule", rtts[-1]),
        ("rtte", rtts[-2], 1),
    }


def test_rtt_destroy_unprotected_gives_unassigned_ns_and_ignores_ns_mappings():
    """A5.5.8: an RTT holding only ASSIGNED_NS entries is not live, so it can be destroyed."""
    host = Host()
    realm = host.realm()
    ipa = realm.unprotected
    host.tables(realm, ipa, 3)
    host.rmi.rtt_map_unprotected(realm.rd, ipa, 3, DRAM0 | NS_ATTRS).check()
    assert host.rmi.rtt_destroy(realm.rd, ipa, 3).ok
    assert host.rmi.rtt_read_entry(realm.rd, ipa, 3)[1:] == (2, 0, 0, 0)


# -- RTT_FOLD -------------------------------------------------------------------------------


def test_rtt_fold_failures():
    """B4.3.17.2 rd_*, level_bound, ipa_align, ipa_bound, rtt_walk, rtte_state, rtt_homo."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0, 3)
    host.data(realm, 0x5000)
    for args, status, index, cond in [
        ((realm.rd + 8, 0, 3), INPUT, 0, "rd_align"),
        ((UNPOPULATED, 0, 3), INPUT, 0, "rd_bound"),
        ((realm.params.rtt_base, 0, 3), INPUT, 0, "rd_state"),
        ((realm.rd, 0, 0), INPUT, 0, "level_bound"),
        ((realm.rd, 0x1000, 3), INPUT, 0, "ipa_align"),
        ((realm.rd, 1 << 48, 2), INPUT, 0, "ipa_bound"),
        ((realm.rd, 1 << 30, 3), RTT, 1, "rtt_walk"),
        ((realm.rd, 0x20_0000, 3), RTT, 2, "rtte_state"),
        ((realm.rd, 0, 3), RTT, 3, "rtt_homo"),
        ((realm.rd, 0, 2), RTT, 2, "rtt_homo"),
    ]:
        expect_failure(host, FID.RTT_FOLD, args, status, index, cond)


@pytest.mark.parametrize("ripas_pages", [0, 512])
def test_rtt_fold_unassigned(ripas_pages):
    """A5.5.6: all UNASSIGNED with one RIPAS folds to an UNASSIGNED entry with that RIPAS."""
    host = Host()
    realm = host.realm()
    rtt = host.tables(realm, 0x20_0000, 3)[-1]
    if ripas_pages:
        host.rmi.rtt_init_ripas(realm.rd, 0x20_0000, 0x40_0000).check()
    result, changed = call_changes(host, FID.RTT_FOLD, realm.rd, 0x20_0000, 3)
    assert result.ok and result.rtt == rtt
    assert host.rmi.rtt_read_entry(realm.rd, 0x20_0000, 3)[1:] == (2, 0, 0, int(bool(ripas_pages)))
    assert host.m.granule_state(rtt) == "DELEGATED"


def test_rtt_fold_mixed_ripas_is_not_homogeneous():
    host = Host()
    realm = host.realm()
    host.tables(realm, 0x20_0000, 3)
    host.rmi.rtt_init_ripas(realm.rd, 0x20_0000, 0x20_1000).check()
    expect_failure(host, FID.RTT_FOLD, (realm.rd, 0x20_0000, 3), RTT, 3, "rtt_homo")


def test_rtt_fold_assigned_requires_contiguous_aligned_block():
    """A5.5.6 ASSIGNED: contiguous output addresses, first aligned to the parent entry size."""
    host = Host()
    realm = host.realm()
    pa = host.block(realm, 0x20_0000)
    host.rmi.data_destroy(realm.rd, 0x20_0000 + 0x7000).check()
    host.rmi.granule_undelegate(pa + 0x7000).check()
    expect_failure(host, FID.RTT_FOLD, (realm.rd, 0x20_0000, 3), RTT, 3, "rtt_homo")


def test_rtt_fold_unprotected_block():
    """A5.5.6 ASSIGNED_NS: contiguous, aligned, identical attributes -> an NS block entry."""
    host = Host()
    realm = host.realm()
    ipa = realm.unprotected
    host.tables(realm, ipa, 3)
    for i in range(512):
        attrs = NS_ATTRS if i != 100 else 0b110 << 2
        host.rmi.rtt_map_unprotected(
            realm.rd, ipa + i * 4096, 3, (DRAM1 + i * 4096) | attrs
        ).check()
    expect_failure(host, FID.RTT_FOLD, (realm.rd, ipa, 3), RTT, 3, "rtt_homo")
    host.rmi.rtt_unmap_unprotected(realm.rd, ipa + 100 * 4096, 3).check()
    host.rmi.rtt_map_unprotected(
        realm.rd, ipa + 100 * 4096, 3, (DRAM1 + 100 * 4096) | NS_ATTRS
    ).check()
    assert host.rmi.rtt_fold(realm.rd, ipa, 3).ok
    assert host.rmi.rtt_read_entry(realm.rd, ipa, 3)[1:] == (2, 1, DRAM1 | NS_ATTRS, 0)


# -- RTT_READ_ENTRY -------------------------------------------------------------------------


def test_rtt_read_entry_failures():
    """B4.3.20.2 rd_*, level_bound, ipa_align, ipa_bound."""
    host = Host()
    realm = host.realm()
    for args, cond in [
        ((realm.rd + 1, 0, 0), "rd_align"),
        ((UNPOPULATED, 0, 0), "rd_bound"),
        ((DRAM0, 0, 0), "rd_state"),
        ((realm.rd, 0, -1), "level_bound"),
        ((realm.rd, 0, 4), "level_bound"),
        ((realm.rd, 0x1000, 2), "ipa_align"),
        ((realm.rd, 1 << 48, 3), "ipa_bound"),
    ]:
        expect_failure(host, FID.RTT_READ_ENTRY, args, INPUT, 0, cond)


def test_rtt_read_entry_reports_the_level_the_walk_reached():
    """B4.3.20.3: X1 walk_level is where the walk stopped, not the requested level."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0, 2)
    assert host.rmi.rtt_read_entry(realm.rd, 0x1000, 3)[1] == 2


# -- RTT_MAP_UNPROTECTED / RTT_UNMAP_UNPROTECTED -------------------------------------------


@pytest.mark.parametrize(
    "desc, cond",
    [
        (DRAM0 | NS_ATTRS | 0b11, "attr_valid"),  # valid/page bits are the RMM's
        (DRAM0 | NS_ATTRS | 1 << 10, "attr_valid"),  # AF
        (DRAM0 | NS_ATTRS | 1 << 54, "attr_valid"),  # XN
        (DRAM0 | NS_ATTRS | 1 << 48, "attr_valid"),  # OA bits above 48 without LPA2
        (DRAM0 | 0b100 << 2, "attr_valid"),  # MemAttr 0b100 reserved under FWB
        (DRAM0 | NS_ATTRS | 0x800, "attr_valid"),
    ],
)
def test_map_unprotected_failure_attr_valid(desc, cond):
    """B4.3.19.2 attr_valid (RttDescriptorIsValidForUnprotected, B3.56)."""
    host = Host()
    realm = host.realm()
    host.tables(realm, realm.unprotected, 3)
    expect_failure(
        host, FID.RTT_MAP_UNPROTECTED, (realm.rd, realm.unprotected, 3, desc), INPUT, 0, cond
    )


def test_map_unprotected_failures():
    """B4.3.19.2 rd_*, level_bound, addr_align, ipa_align, ipa_bound, rtt_walk, rtte_state."""
    host = Host()
    realm = host.realm()
    ipa = realm.unprotected
    host.tables(realm, ipa, 2)
    d = DRAM0 | NS_ATTRS
    for args, status, index, cond in [
        ((realm.rd + 1, ipa, 3, d), INPUT, 0, "rd_align"),
        ((UNPOPULATED, ipa, 3, d), INPUT, 0, "rd_bound"),
        ((DRAM0, ipa, 3, d), INPUT, 0, "rd_state"),
        ((realm.rd, ipa, 0, d), INPUT, 0, "level_bound"),
        ((realm.rd, ipa, 4, d), INPUT, 0, "level_bound"),
        ((realm.rd, ipa, 2, DRAM0 + 0x1000 | NS_ATTRS), INPUT, 0, "addr_align"),
        ((realm.rd, ipa + 0x1000, 2, d), INPUT, 0, "ipa_align"),
        ((realm.rd, 0x1000, 3, d), INPUT, 0, "ipa_bound"),  # a Protected IPA
        ((realm.rd, 1 << 48, 3, d), INPUT, 0, "ipa_bound"),
        ((realm.rd, ipa, 3, d), RTT, 2, "rtt_walk"),
    ]:
        expect_failure(host, FID.RTT_MAP_UNPROTECTED, args, status, index, cond)
    host.rmi.rtt_map_unprotected(realm.rd, ipa, 2, d).check()
    expect_failure(host, FID.RTT_MAP_UNPROTECTED, (realm.rd, ipa, 2, d), RTT, 2, "rtte_state")


def test_map_and_unmap_unprotected_success():
    """B4.3.19.3 rtte_state ASSIGNED_NS, rtte_contents; B4.3.22.3 rtte_state, top."""
    host = Host()
    realm = host.realm()
    ipa = realm.unprotected + 0x20_0000
    host.tables(realm, ipa, 3)
    result, changed = call_changes(
        host, FID.RTT_MAP_UNPROTECTED, realm.rd, ipa, 3, DRAM0 | NS_ATTRS
    )
    assert result.ok and len(changed) == 1
    assert host.rmi.rtt_read_entry(realm.rd, ipa, 3)[1:] == (3, 1, DRAM0 | NS_ATTRS, 0)
    host.rmi.rtt_map_unprotected(realm.rd, ipa + 0x9000, 3, DRAM0 | NS_ATTRS).check()
    result, changed = call_changes(host, FID.RTT_UNMAP_UNPROTECTED, realm.rd, ipa, 3)
    assert result.ok and result.top == ipa + 0x9000 and len(changed) == 1
    assert host.rmi.rtt_read_entry(realm.rd, ipa, 3)[1:] == (3, 0, 0, 0)


def test_unmap_unprotected_failures():
    """B4.3.22.2 rd_*, level_bound, ipa_align, ipa_bound; rtt_walk and rtte_state with top."""
    host = Host()
    realm = host.realm()
    ipa = realm.unprotected
    host.tables(realm, ipa, 2)
    for args, cond in [
        ((realm.rd + 1, ipa, 3), "rd_align"),
        ((UNPOPULATED, ipa, 3), "rd_bound"),
        ((host.delegated(), ipa, 3), "rd_state"),
        ((realm.rd, ipa, 0), "level_bound"),
        ((realm.rd, ipa + 0x1000, 2), "ipa_align"),
        ((realm.rd, 0, 3), "ipa_bound"),
    ]:
        x = expect_failure(host, FID.RTT_UNMAP_UNPROTECTED, args, INPUT, 0, cond)
        assert x[1] == 0
    x = expect_failure(host, FID.RTT_UNMAP_UNPROTECTED, (realm.rd, ipa, 3), RTT, 2, "rtt_walk")
    assert x[1] == ipa + (1 << 30)  # 'ipa is not mapped': top > ipa
    x = expect_failure(host, FID.RTT_UNMAP_UNPROTECTED, (realm.rd, ipa, 2), RTT, 2, "rtte_state")
    assert x[1] == ipa + (1 << 30)
    host.rmi.rtt_map_unprotected(realm.rd, ipa, 2, DRAM1 | NS_ATTRS).check()
    x = expect_failure(
        host, FID.RTT_UNMAP_UNPROTECTED, (realm.rd, ipa + 0x5000, 3), RTT, 2, "rtt_walk"
    )
    assert x[1] == ipa + 0x5000  # 'mapped at a lower level': top == ipa


def test_level_size_and_index_helpers():
    """B3.68 RttLevelSize, B3.60 RttEntryIndex."""
    assert [levels.level_size(lv) for lv in (-1, 0, 1, 2, 3)] == [
        1 << 48,
        1 << 39,
        1 << 30,
        1 << 21,
        1 << 12,
    ]
    assert levels.entry_index(0x20_3000, 3) == 3 and levels.entry_index(0x20_3000, 2) == 1


# -- LPA2 ----------------------------------------------------------------------------------


def lpa2_realm():
    """A 52-bit platform with NS DRAM at 2^51, and a 52-bit LPA2 realm starting at level -1."""
    from ccasim.hw import GiB, MemoryRegion, Platform, fvp_base
    from ccasim.rmi.types import REALM_FLAG_LPA2

    regions = [*fvp_base(52).regions, MemoryRegion("dram-top", 1 << 51, GiB)]
    host = Host(platform=Platform(regions, 52))
    realm = host.realm(flags=REALM_FLAG_LPA2, s2sz=52, rtt_level_start=-1)
    return host, realm


def test_lpa2_unprotected_mapping_of_a_pa_above_2_50():
    """A5.5.11 / B4.3.19.1.1: with LPA2 the descriptor carries OA[51:50] in bits [9:8]."""
    host, realm = lpa2_realm()
    ipa = realm.unprotected
    host.tables(realm, ipa, 3)
    pa = (1 << 51) + 0x5000
    desc = (pa & ((1 << 50) - 1)) | ((pa >> 50) & 3) << 8 | NS_ATTRS
    assert host.rmi.rtt_map_unprotected(realm.rd, ipa, 3, desc).ok
    assert host.rmi.rtt_read_entry(realm.rd, ipa, 3)[1:] == (3, 1, desc, 0)


def test_lpa2_level_minus_one_rtt_has_16_entries():
    """Level -1 resolves IPA bits [51:48]: top of a miss at level -1 is the end of the 2^52
    IPA space, not 512 entries further."""
    host, realm = lpa2_realm()
    # the index field holds the level as an 8-bit value: level -1 is 0xFF
    x = expect_failure(host, FID.DATA_DESTROY, (realm.rd, 0x1000), RTT, 0xFF, "rtt_walk")
    assert x[2] == 1 << 52
