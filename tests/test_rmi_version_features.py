"""B4.3.23 RMI_VERSION (with chapter B2) and B4.3.4 RMI_FEATURES."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ccasim
from ccasim.rmi import FID, FeatureRegister0, Status
from support import Host


def test_version_request_1_0_succeeds():
    """B2 outcome (a): lower == requested == 1.0, higher == 1.0."""
    assert ccasim.Machine().smc(FID.VERSION, 0x10000) == (0, 0x10000, 0x10000, 0, 0)


@pytest.mark.parametrize(
    "requested", [0x10001, 0x20000, 0x20001, 0x00009, 0x0, 0x10000 | 1 << 31, 0x10000 | 1 << 63]
)
def test_version_other_requests_fail_with_lower_and_higher_1_0(requested):
    """B2 outcomes (b) and (c): with 1.0 as the only revision, lower == higher == 1.0."""
    x = ccasim.Machine().smc(FID.VERSION, requested)
    assert x == (Status.ERROR_INPUT, 0x10000, 0x10000, 0, 0)


@given(st.integers(0, 2**64 - 1))
def test_version_never_fails_to_report_the_implemented_revision(requested):
    x0, lower, higher, *_ = ccasim.Machine().smc(FID.VERSION, requested)
    assert (lower, higher) == (0x10000, 0x10000)
    assert x0 == (Status.SUCCESS if requested == 0x10000 else Status.ERROR_INPUT)


def test_features_register0_defaults():
    """B4.4.6 with the issue's default platform: what kvmtool/QEMU realms may ask for."""
    reg = FeatureRegister0.decode(ccasim.Machine().smc(FID.FEATURES, 0)[1])
    assert reg == FeatureRegister0(
        s2sz=48, lpa2=0, sve_en=1, sve_vl=15, num_bps=15, num_wps=15, pmu_en=1,
        pmu_num_ctrs=31, hash_sha_256=1, hash_sha_512=1, gicv3_num_lrs=15, max_recs_order=10,
    )  # fmt: skip


def test_features_lpa2_with_52_bit_pa():
    reg = FeatureRegister0.decode(ccasim.Machine(pa_bits=52).smc(FID.FEATURES, 0)[1])
    assert reg.lpa2 == 1 and reg.s2sz == 52


def test_features_are_configurable():
    m = ccasim.Machine(sve=False, pmu=False, sha_512=False, num_bps=6, gicv3_num_lrs=4)
    reg = FeatureRegister0.decode(m.smc(FID.FEATURES, 0)[1])
    assert (reg.sve_en, reg.sve_vl, reg.pmu_en, reg.pmu_num_ctrs) == (0, 0, 0, 0)
    assert (reg.hash_sha_512, reg.num_bps, reg.gicv3_num_lrs) == (0, 5, 3)
    with pytest.raises(ValueError):
        ccasim.Machine(num_bps=1)


@given(st.integers(1, 2**64 - 1))
def test_features_other_index_reads_zero(index):
    """B4.3.4.3 index: pre index != 0, post value == Zeros(); no failure conditions."""
    assert ccasim.Machine().smc(FID.FEATURES, index) == (0, 0, 0, 0, 0)


def test_rec_aux_count_is_a_per_realm_constant():
    """B4.3.11 / B3.36: at least 2 (16 as in TF-RMM), the same every time."""
    host = Host()
    realm = host.realm()
    counts = {host.rmi.rec_aux_count(realm.rd)[1] for _ in range(3)}
    assert counts == {16}
