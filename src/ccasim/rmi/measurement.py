"""Realm measurements (A7.1): the RIM descriptors of C1.11-C1.13 and the REM extension.

Pure functions of bytes and integers, at the level of the ABI because both sides need them:
the RMM extends a realm's measurements with them, and a host or a verifier predicts the same
values (``ccasim measure``) with the very same code.

Every measurement is kept as 64 bytes (RmmRealmMeasurement, C1.17): a SHA-256 result is zero
filled in its upper 32 bytes.
"""

from __future__ import annotations

import hashlib
import struct

from ccasim.rmi.structs import RealmParams, RecParams
from ccasim.rmi.types import HashAlgorithm

MEASUREMENT_SIZE = 64
DESCRIPTOR_SIZE = 0x100

DESC_TYPE_DATA = 0x0
DESC_TYPE_REC = 0x1
DESC_TYPE_RIPAS = 0x2

# The 256-byte descriptors, unused bytes zero (MBZ).
# RmmMeasurementDescriptorData (C1.11): desc_type, len, rim, ipa, flags, content.
_DESC_DATA = struct.Struct("<B7xQ64sQQ64s96x")
# RmmMeasurementDescriptorRec (C1.12): desc_type, len, rim, content.
_DESC_REC = struct.Struct("<B7xQ64s64s112x")
# RmmMeasurementDescriptorRipas (C1.13): desc_type, len, rim, base, top.
_DESC_RIPAS = struct.Struct("<B7xQ64sQQ160x")
assert _DESC_DATA.size == _DESC_REC.size == _DESC_RIPAS.size == DESCRIPTOR_SIZE
#: RmmMeasurementDescriptorData's layout, for code that extends a RIM elsewhere.
DATA_DESCRIPTOR = _DESC_DATA


_HASH = {HashAlgorithm.SHA_256: hashlib.sha256, HashAlgorithm.SHA_512: hashlib.sha512}


def measure(algo: HashAlgorithm, data: bytes | memoryview) -> bytes:
    """Hash ``data`` with the realm hash algorithm, zero filled to 64 bytes."""
    return _HASH[algo](data).digest().ljust(MEASUREMENT_SIZE, b"\0")


def rim_init(algo: HashAlgorithm, params: RealmParams) -> bytes:
    """RimInit (B3.48, B4.3.9.4): hash of the measured subset of RmiRealmParams.

    flags, s2sz, sve_vl, num_bps, num_wps, pmu_num_ctrs and hash_algo are copied into a
    zero-filled RmiRealmParams, which is hashed whole (4096 bytes).
    """
    measured = RealmParams(
        flags=params.flags,
        s2sz=params.s2sz,
        sve_vl=params.sve_vl,
        num_bps=params.num_bps,
        num_wps=params.num_wps,
        pmu_num_ctrs=params.pmu_num_ctrs,
        hash_algo=params.hash_algo,
    )
    return measure(algo, measured.pack())


def data_descriptor(rim: bytes, ipa: int, flags: int, content_hash: bytes) -> bytes:
    """The 256-byte RmmMeasurementDescriptorData (C1.11)."""
    return _DESC_DATA.pack(DESC_TYPE_DATA, DESCRIPTOR_SIZE, rim, ipa, flags, content_hash)


def rim_extend_data(
    algo: HashAlgorithm, rim: bytes, ipa: int, flags: int, content: bytes | memoryview | None
) -> bytes:
    """RimExtendData (B3.44, B4.3.1.4). ``content`` is the granule if measured, else None."""
    content_hash = measure(algo, content) if content is not None else bytes(MEASUREMENT_SIZE)
    return measure(algo, data_descriptor(rim, ipa, flags, content_hash))


def rec_content_hash(algo: HashAlgorithm, params: RecParams) -> bytes:
    """The hash of RmiRecParams' measured fields (flags, pc, gprs; B4.3.12.4)."""
    measured = RecParams(flags=params.flags, pc=params.pc, gprs=list(params.gprs))
    return measure(algo, measured.pack())


def rim_extend_rec(algo: HashAlgorithm, rim: bytes, params: RecParams) -> bytes:
    """RimExtendRec (B3.45, B4.3.12.4): flags, pc and gprs of RmiRecParams, then the descriptor."""
    content = rec_content_hash(algo, params)
    return measure(algo, _DESC_REC.pack(DESC_TYPE_REC, DESCRIPTOR_SIZE, rim, content))


def rim_extend_ripas_entry(algo: HashAlgorithm, rim: bytes, base: int, top: int) -> bytes:
    """One step of RimExtendRipas (B3.46, B3.47, B4.3.18.4) for an entry covering [base, top)."""
    return measure(algo, _DESC_RIPAS.pack(DESC_TYPE_RIPAS, DESCRIPTOR_SIZE, rim, base, top))


def rim_extend_ripas(
    algo: HashAlgorithm, rim: bytes, base: int, top: int, entry_size: int
) -> bytes:
    """RimExtendRipas (B3.46): one descriptor per RTT entry of ``entry_size`` in [base, top)."""
    addr = base
    while addr < top:
        rim = rim_extend_ripas_entry(algo, rim, addr, min(addr + entry_size, top))
        addr += entry_size
    return rim


def rem_extend(algo: HashAlgorithm, rem: bytes, value: bytes) -> bytes:
    """RemExtend (B3.42, A7.1.2): REM = H(REM truncated to the hash size || value)."""
    return measure(algo, rem[: algo.digest_size] + value)
