"""B4.3.9 RMI_REALM_CREATE, B4.3.8 RMI_REALM_ACTIVATE, B4.3.10 RMI_REALM_DESTROY."""

import pytest

from ccasim.rmi import FID, RealmParams, Status
from ccasim.rmi.types import REALM_FLAG_LPA2, REALM_FLAG_PMU, REALM_FLAG_SVE
from support import DRAM0, DRAM1, SECURE, UNPOPULATED, Host, call_changes, expect, expect_failure

INPUT, REALM = Status.ERROR_INPUT, Status.ERROR_REALM


def create_args(host: Host, **overrides) -> tuple[int, int, RealmParams]:
    """A valid (rd, params_ptr) pair, then ``overrides`` applied to the parameters."""
    params = host.realm_params(**overrides)
    if "rtt_base" not in overrides:
        params.rtt_base = host.delegated(max(params.rtt_num_start, 1))
    rd = host.delegated()
    ptr = host.ns_page(params.pack())
    return rd, ptr, params


# Each case: (condition, parameter overrides) for conditions of the params themselves.
PARAMS_CASES = [
    ("params_valid", dict(hash_algo=2)),
    ("params_valid", dict(hash_algo=0xFF)),
    ("params_supp", dict(s2sz=31)),
    ("params_supp", dict(s2sz=49)),
    ("params_supp", dict(flags=REALM_FLAG_LPA2, s2sz=48)),
    ("params_supp", dict(flags=REALM_FLAG_SVE, sve_vl=16)),
    ("params_supp", dict(num_bps=0)),
    ("params_supp", dict(num_bps=16)),
    ("params_supp", dict(num_wps=0)),
    ("params_supp", dict(num_wps=16)),
    ("params_supp", dict(flags=REALM_FLAG_PMU, pmu_num_ctrs=32)),
    ("rtt_num_level", dict(rtt_level_start=1, rtt_num_start=1)),
    ("rtt_num_level", dict(rtt_level_start=0, rtt_num_start=2)),
    ("rtt_num_level", dict(rtt_level_start=-1, rtt_num_start=1)),
    ("rtt_num_level", dict(rtt_level_start=3, rtt_num_start=1)),
    ("rtt_num_level", dict(rtt_level_start=4, rtt_num_start=1)),
    ("rtt_num_level", dict(s2sz=39, rtt_level_start=0, rtt_num_start=1)),
    ("rtt_num_level", dict(s2sz=44, rtt_level_start=1, rtt_num_start=16)),
    ("rtt_num_level", dict(rtt_level_start=0, rtt_num_start=0)),
]


@pytest.mark.parametrize("condition, overrides", PARAMS_CASES)
def test_realm_create_failure_params(condition, overrides):
    """B4.3.9.2 params_valid, params_supp (RealmParamsSupported, A3.1), rtt_num_level."""
    host = Host()
    rd, ptr, _ = create_args(host, **overrides)
    expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, condition)


def test_realm_create_failure_unsupported_hash_algorithm():
    """B4.3.9.2 params_supp (A3.1.1): SHA-512 requested from an RMM without it."""
    host = Host(sha_512=False)
    rd, ptr, _ = create_args(host, hash_algo=1)
    expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, "params_supp")


def test_realm_create_failure_sve_and_pmu_when_not_implemented():
    """B4.3.9.2 params_supp (A3.1.3, A3.1.5)."""
    host = Host(sve=False, pmu=False)
    for flags in (REALM_FLAG_SVE, REALM_FLAG_PMU):
        rd, ptr, _ = create_args(host, flags=flags)
        expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, "params_supp")


@pytest.mark.parametrize(
    "ptr, condition",
    [(DRAM0 + 0x100_0010, "params_align"), (UNPOPULATED, "params_bound"), (SECURE, "params_bound")],
)
def test_realm_create_failure_params_ptr(ptr, condition):
    """B4.3.9.2 params_align, params_bound."""
    host = Host()
    rd, _, _ = create_args(host)
    expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, condition)


def test_realm_create_failure_params_pas():
    """B4.3.9.2 params_pas: the parameters are in a granule the host delegated."""
    host = Host()
    rd, _, params = create_args(host)
    ptr = host.delegated()
    expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, "params_pas")


def test_realm_create_failure_alias():
    """B4.3.9.2 alias: rd is one of the starting-level RTTs."""
    host = Host()
    rd, ptr, params = create_args(host)
    host.m.ns_write(ptr, RealmParams(**{**params.__dict__, "rtt_base": rd}).pack())
    expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, "alias")


def test_realm_create_failure_alias_concatenated():
    """B4.3.9.2 alias over rtt_num_start RTTs: rd is the last of 4 concatenated RTTs."""
    host = Host()
    base = host.delegated(4)
    rd = base + 3 * 4096
    params = host.realm_params(s2sz=41, rtt_level_start=1, rtt_num_start=4, rtt_base=base)
    ptr = host.ns_page(params.pack())
    expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, "alias")


@pytest.mark.parametrize("kind", ["rd_align", "rd_bound", "rd_state"])
def test_realm_create_failure_rd(kind):
    """B4.3.9.2 rd_align, rd_bound, rd_state (rd must be DELEGATED)."""
    host = Host()
    rd, ptr, _ = create_args(host)
    rd = {"rd_align": rd + 8, "rd_bound": UNPOPULATED, "rd_state": host.alloc()}[kind]
    expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, kind)


def test_realm_create_failure_rtt_align():
    """B4.3.9.2 rtt_align: 2 concatenated RTTs must start on an 8 KiB boundary."""
    host = Host()
    base = host.delegated(3)
    if base % 8192 == 0:
        base += 4096
    rd, ptr, _ = create_args(host, s2sz=40, rtt_level_start=1, rtt_num_start=2, rtt_base=base)
    expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, "rtt_align")


@pytest.mark.parametrize("which", [0, 3])
def test_realm_create_failure_rtt_state(which):
    """B4.3.9.2 rtt_state: each starting-level RTT granule must be DELEGATED."""
    host = Host()
    base = host.delegated(8)
    base = (base + 0x3FFF) & ~0x3FFF
    host.rmi.granule_undelegate(base + which * 4096).check()
    rd, ptr, _ = create_args(host, s2sz=41, rtt_level_start=1, rtt_num_start=4, rtt_base=base)
    expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, "rtt_state")


def test_realm_create_failure_vmid_in_use():
    """B4.3.9.2 vmid_valid: VmidIsFree (A2.1.3: every realm has a unique VMID)."""
    host = Host()
    host.realm(vmid=7)
    rd, ptr, _ = create_args(host, vmid=7)
    expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, "vmid_valid")


def test_realm_create_failure_vmid_out_of_range():
    """B4.3.9.2 vmid_valid: VmidIsValid (B3.82) without FEAT_VMID16."""
    host = Host(vmid_bits=8)
    rd, ptr, _ = create_args(host, vmid=256)
    expect_failure(host, FID.REALM_CREATE, (rd, ptr), INPUT, 0, "vmid_valid")


def test_realm_create_success_and_footprint():
    """B4.3.9.3 and B4.3.9.5: the RD and RTT granules change state, nothing else observable."""
    host = Host()
    rd, ptr, params = create_args(host, vmid=0)
    result, changed = call_changes(host, FID.REALM_CREATE, rd, ptr)
    assert result.ok
    assert host.m.granule_state(rd) == "RD"
    assert host.m.granule_state(params.rtt_base) == "RTT"
    assert {k for k in changed if k[0] == "granule"} == {
        ("granule", rd),
        ("granule", params.rtt_base),
    }
    assert {k[0] for k in changed} <= {"granule", "realm", "rtte", "vmid"}
    rim, *rems = host.m.realm_measurements(rd)
    assert len(rim) == 32 and rems == [bytes(32)] * 4
    # rtte_p_states, rtte_up_states, rtte_ripas: protected UNASSIGNED/EMPTY, unprotected NS
    assert host.rmi.rtt_read_entry(rd, 0, 0)[1:] == (0, 0, 0, 0)
    assert host.rmi.rtt_read_entry(rd, 1 << 47, 0)[1:] == (0, 0, 0, 0)
    assert host.m.debug_state().rmm.rtts[params.rtt_base][256].state.name == "UNASSIGNED_NS"


@pytest.mark.parametrize(
    "s2sz, level, num",
    [
        (48, 0, 1),
        (40, 0, 1),
        (42, 1, 8),
        (43, 1, 16),
        (40, 1, 2),
        (32, 1, 1),
        (34, 2, 16),
        (32, 2, 4),
    ],
)
def test_realm_create_accepts_every_valid_rtt_configuration(s2sz, level, num):
    """RttConfigIsValid (B3.55): starting level and concatenated table count per VMSA."""
    host = Host()
    base = host.delegated(2 * num)
    base = (base + num * 4096 - 1) & ~(num * 4096 - 1)
    realm = host.realm(s2sz=s2sz, rtt_level_start=level, rtt_num_start=num, rtt_base=base)
    assert all(host.m.granule_state(base + i * 4096) == "RTT" for i in range(num))
    # the last Protected IPA is reachable from the starting level
    last = (realm.unprotected - 1) & ~((1 << (12 + 9 * (3 - level))) - 1)
    assert host.rmi.rtt_read_entry(realm.rd, last, level).ok


def test_realm_create_lpa2_level_minus_one():
    """A3.1.2 / A5.5: with LPA2 a 52-bit realm starts at level -1."""
    host = Host(pa_bits=52)
    realm = host.realm(flags=REALM_FLAG_LPA2, s2sz=52, rtt_level_start=-1)
    rtts = host.tables(realm, 0x1000, 3)
    assert len(rtts) == 4
    assert host.rmi.rtt_read_entry(realm.rd, 0x1000, 3)[1] == 3


def test_realm_activate_failure_and_success():
    """B4.3.8: rd_*, realm_state ([rd_bound, rd_state] < [realm_state])."""
    host = Host()
    realm = host.realm()
    for rd, cond in (
        (realm.rd + 1, "rd_align"),
        (UNPOPULATED, "rd_bound"),
        (host.alloc(), "rd_state"),
    ):
        expect_failure(host, FID.REALM_ACTIVATE, (rd,), INPUT, 0, cond)
    result, changed = call_changes(host, FID.REALM_ACTIVATE, realm.rd)
    assert result.ok and changed == {("realm", realm.rd, "state")}
    expect_failure(host, FID.REALM_ACTIVATE, (realm.rd,), REALM, 0, "realm_state")


def test_realm_destroy_failure_rd():
    host = Host()
    for rd, cond in (
        (DRAM0 + 0x100_0100, "rd_align"),
        (SECURE, "rd_bound"),
        (host.delegated(), "rd_state"),
    ):
        expect_failure(host, FID.REALM_DESTROY, (rd,), INPUT, 0, cond)


def test_realm_destroy_failure_live_with_rec():
    """B4.3.10.2 realm_live (A2.1.4): the realm owns a REC."""
    host = Host()
    realm = host.realm()
    host.rec(realm)
    expect_failure(host, FID.REALM_DESTROY, (realm.rd,), REALM, 0, "realm_live")


def test_realm_destroy_failure_live_with_rtt():
    """B4.3.10.2 realm_live: a starting-level RTT is live (it holds a TABLE entry)."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0, 1)
    expect_failure(host, FID.REALM_DESTROY, (realm.rd,), REALM, 0, "realm_live")


def test_realm_destroy_not_live_with_unprotected_mapping_at_start_level():
    """A5.5.8: an ASSIGNED_NS entry does not make an RTT live, so the realm is not live."""
    host = Host()
    base = host.delegated(3)
    base = (base + 0x1FFF) & ~0x1FFF
    realm = host.realm(s2sz=40, rtt_level_start=1, rtt_num_start=2, rtt_base=base)
    desc = DRAM1 | 0b110 << 2 | 0b11 << 6  # 1 GiB block, Normal WB, read/write
    assert host.rmi.rtt_map_unprotected(realm.rd, realm.unprotected, 1, desc).ok
    assert host.rmi.realm_destroy(realm.rd).ok


def test_realm_destroy_success_and_footprint():
    """B4.3.10.3: RD and RTTs DELEGATED, the VMID free again."""
    host = Host()
    realm = host.realm(vmid=9)
    result, changed = call_changes(host, FID.REALM_DESTROY, realm.rd)
    assert result.ok
    assert host.m.granule_state(realm.rd) == "DELEGATED"
    assert host.m.granule_state(realm.params.rtt_base) == "DELEGATED"
    granules = {k for k in changed if k[0] == "granule"}
    assert granules == {("granule", realm.rd), ("granule", realm.params.rtt_base)}
    host.realm(vmid=9)  # vmid: VmidIsFree(realm.vmid)


def test_realm_lifecycle_new_active_destroy():
    """A2.1.5.2: NEW -> ACTIVE -> NULL."""
    host = Host()
    realm = host.realm(activate=True)
    expect(host, host.rmi.realm_destroy(realm.rd), Status.SUCCESS)
    assert host.m.granule_state(realm.rd) == "DELEGATED"
