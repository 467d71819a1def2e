"""A7.1 Realm Initial Measurement: known answers taken from running the reference RMM.

The sequence is the one the issue gives: realm parameters (flags 0, s2sz 48, sve_vl 0,
num_bps 1, num_wps 1, pmu_num_ctrs 0), RTT_INIT_RIPAS over [0x1000, 0x2000) with tables to
level 3, a measured DATA_CREATE of 4096 bytes of 0xA5 at IPA 0x1000, and a runnable REC with
pc 0x5555555611a5 and zero GPRs. The first and fourth values also appear in the reference RMM's
log in ../shared/rmm-logs/.
"""

import hashlib

import pytest

from ccasim.rmi import RecParams, measurement
from ccasim.rmi.types import HashAlgorithm
from support import Host

KAT_REALM_SHA256 = "6739dfb22b75ee1268d08dfa8369f501bc0b066243553f069f560d1fa1172973"
KAT_REALM_SHA512 = (
    "799e434048fb57eb9d4f0e2a2b98158720377252deab2bdfcd69b5a8f82237f4"
    "34bd6bb1c75bf160a2d49382f733b3439a3ff769e4ea5dd9a6f72239d44bbbab"
)
KAT_RIPAS = "a94263b10417ac8dfa0692bd3fe944eb2566303fd73985e40d4ba5efa7934c7a"
KAT_DATA = "2816398e50c36bc3e7fe2449aa75c69d36bc2ea78d483010bff9223c065c6702"
KAT_REC = "3c302a1cfa50b1dca5cc4b0b174ed2f8403d17db99d26d11a49ffcc865b23982"


def rim(host, realm) -> str:
    return host.m.realm_measurements(realm.rd)[0].hex()


@pytest.mark.parametrize("algo, expected", [(0, KAT_REALM_SHA256), (1, KAT_REALM_SHA512)])
def test_rim_after_realm_create(algo, expected):
    """B4.3.9.4 RimInit."""
    host = Host()
    realm = host.realm(hash_algo=algo)
    assert rim(host, realm) == expected


def test_rim_known_answers_through_construction():
    """B4.3.18.4, B4.3.1.4, B4.3.12.4 in the reference RMM's order."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0x1000, 3)
    host.rmi.rtt_init_ripas(realm.rd, 0x1000, 0x2000).check()
    assert rim(host, realm) == KAT_RIPAS
    host.data(realm, 0x1000, b"\xa5" * 4096)
    assert rim(host, realm) == KAT_DATA
    params = host.rec_params(realm, pc=0x5555555611A5)
    host.rmi.rec_create(realm.rd, host.delegated(), host.ns_page(), params).check()
    assert rim(host, realm) == KAT_REC
    host.rmi.realm_activate(realm.rd).check()
    assert rim(host, realm) == KAT_REC
    assert host.m.realm_measurements(realm.rd)[1:] == [bytes(32)] * 4


def test_rim_is_immutable_once_active():
    """A7.1.1: commands that would extend the RIM are refused after activation."""
    host = Host()
    realm = host.realm()
    host.tables(realm, 0x1000, 3)
    host.rmi.realm_activate(realm.rd).check()
    before = rim(host, realm)
    assert not host.rmi.rtt_init_ripas(realm.rd, 0x1000, 0x2000).ok
    assert not host.rmi.data_create(realm.rd, host.delegated(), 0x1000, host.ns_page(), 1).ok
    assert rim(host, realm) == before


def test_descriptors_are_256_bytes_with_the_c1_layout():
    """C1.11-C1.13: desc_type at 0, len 0x100 at 8, RIM at 0x10, fields from 0x50."""
    rim_in = bytes(range(64))
    desc = measurement.data_descriptor(rim_in, 0x1000, 1, b"\xcc" * 64)
    assert len(desc) == 256 and desc[0] == 0 and desc[8:16] == (256).to_bytes(8, "little")
    assert desc[0x10:0x50] == rim_in and desc[0x50:0x58] == (0x1000).to_bytes(8, "little")
    assert desc[0x58:0x60] == (1).to_bytes(8, "little") and desc[0x60:0xA0] == b"\xcc" * 64
    assert desc[0xA0:] == bytes(0x60)


def test_rec_measurement_covers_flags_pc_and_gprs_only():
    """B4.3.12.4: mpidr and the aux list are not measured."""
    a = RecParams(flags=1, pc=0x80000000, gprs=[1, 2, 3, 4, 5, 6, 7, 8])
    b = RecParams(flags=1, pc=0x80000000, gprs=[1, 2, 3, 4, 5, 6, 7, 8], mpidr=5, num_aux=3)
    algo = HashAlgorithm.SHA_512
    assert measurement.rim_extend_rec(algo, bytes(64), a) == measurement.rim_extend_rec(
        algo, bytes(64), b
    )


def test_rem_extend():
    """B3.42 / A7.1.2: REM = H(REM || value)."""
    algo = HashAlgorithm.SHA_256
    rem = measurement.rem_extend(algo, bytes(64), b"\x01" * 32)
    assert rem[:32] == hashlib.sha256(bytes(32) + b"\x01" * 32).digest() and rem[32:] == bytes(32)
