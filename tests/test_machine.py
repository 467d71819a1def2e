"""The machine layer: memory map, sparse memory, GPT checks, and the SMC boundary."""

import pytest

import ccasim
from ccasim.hw import GiB, Pas, fvp_base
from ccasim.hw.platform import MemoryRegion, Platform
from ccasim.rmi import FID, SMCCC_NOT_SUPPORTED
from support import DEVICE, DRAM0, DRAM1, SECURE, UNPOPULATED, Host


def test_default_memory_map_is_fvp_base():
    m = ccasim.Machine()
    assert m.platform.is_delegable(DRAM0) and m.platform.is_delegable(DRAM0 + 2 * GiB - 4096)
    assert not m.platform.is_delegable(DRAM0 + 2 * GiB)
    assert m.platform.is_delegable(DRAM1) and m.platform.is_delegable(DRAM1 + 2 * GiB - 4096)
    assert not m.platform.is_delegable(SECURE)
    assert m.granule_pas(SECURE) is Pas.SECURE
    assert not m.platform.is_delegable(DEVICE)
    assert m.platform.region_at(UNPOPULATED) is None


def test_ns_access_round_trip_and_zero_default():
    m = ccasim.Machine()
    assert m.ns_read(DRAM0 + 0x123, 8) == bytes(8)
    m.ns_write(DRAM0 + 0xFFC, b"abcdefgh")  # spans two granules
    assert m.ns_read(DRAM0 + 0xFFC, 8) == b"abcdefgh"


@pytest.mark.parametrize("pa", [SECURE, SECURE + 0x10])
def test_ns_access_to_secure_memory_faults(pa):
    m = ccasim.Machine()
    with pytest.raises(ccasim.GranuleProtectionFault):
        m.ns_read(pa, 4)
    with pytest.raises(ccasim.GranuleProtectionFault):
        m.ns_write(pa, b"x")


def test_ns_access_to_a_delegated_granule_faults_and_changes_nothing():
    host = Host()
    pa = host.delegated()
    with pytest.raises(ccasim.GranuleProtectionFault) as info:
        host.m.ns_write(pa - 2, b"abcd")  # straddles into the delegated granule
    assert info.value.pa == pa and info.value.granule_pas is Pas.REALM
    assert host.m.ns_read(pa - 2, 2) == bytes(2)


@pytest.mark.parametrize("pa", [UNPOPULATED, 1 << 48, -4096])
def test_ns_access_to_unpopulated_memory_is_an_external_abort(pa):
    m = ccasim.Machine()
    with pytest.raises(ccasim.ExternalAbort):
        m.ns_read(pa, 4)


def test_a_one_tib_platform_stores_only_what_was_written():
    """Memory is sparse: a 1 TiB platform holds one granule after one write."""
    m = ccasim.Machine(fvp_base(dram1_size=1024 * GiB))
    m.ns_write(DRAM1 + 1000 * GiB, b"x")
    assert list(m.debug_state().memory) == [DRAM1 + 1000 * GiB]
    assert m.debug_read(DRAM1 + 1000 * GiB, 2) == b"x\0"


def test_platform_rejects_overlapping_or_unaligned_regions():
    with pytest.raises(ValueError, match="overlap"):
        Platform([MemoryRegion("a", 0x1000, 0x2000), MemoryRegion("b", 0x2000, 0x1000)])
    with pytest.raises(ValueError, match="4 KiB"):
        MemoryRegion("a", 0x1001, 0x1000)
    with pytest.raises(ValueError, match="delegable"):
        MemoryRegion("s", 0x1000, 0x1000, pas=Pas.SECURE)


def test_unknown_fids_return_smccc_not_supported():
    m = ccasim.Machine()
    for fid in (0xC400_0156, 0xC400_0160, 0xC400_0163, 0xC400_016A, 0xC400_018F, 0x1234, 0):
        assert m.smc(fid, 1, 2, 3) == (SMCCC_NOT_SUPPORTED, 0, 0, 0, 0)


def test_smccc_version_is_answered_by_el3():
    assert ccasim.Machine().smc(0x8000_0000)[0] == 0x1_0003


def test_fid_sve_hint_bit_and_upper_bits_are_ignored():
    """SMCCC 1.3: bit 16 of the FID is a hint; an SMC FID is the low 32 bits of X0."""
    m = ccasim.Machine()
    assert m.smc(FID.VERSION | 1 << 16, 0x10000)[0] == 0
    assert m.smc(FID.VERSION | 0xFFFF << 32, 0x10000)[0] == 0


def test_register_values_are_64_bit():
    m = ccasim.Machine()
    assert m.smc(FID.VERSION, 0x10000 + (1 << 64))[0] == 0
    assert m.smc(FID.FEATURES, -1)[1] == 0  # index 2^64 - 1 is not register 0


def test_smc_argument_count_and_types():
    m = ccasim.Machine()
    with pytest.raises(TypeError):
        m.smc(FID.VERSION, *range(18))
    with pytest.raises(TypeError):
        m.smc(FID.VERSION, 1.5)
