"""The CCA attestation token (A7.2.3): the realm token the RMM signs with the RAK, bound to
the platform token EL3 provides, in a tag 399 collection."""

from __future__ import annotations

import hashlib

import cbor2

from ccasim import ccatoken as t
from ccasim import cose
from ccasim.el3.attestation import PlatformAttestation
from ccasim.rmi.types import HashAlgorithm
from ccasim.rmm.realm import Realm

HASH_NAMES = {HashAlgorithm.SHA_256: "sha-256", HashAlgorithm.SHA_512: "sha-512"}
#: The algorithm used for H(RAK_pub), the platform challenge.
RAK_HASH_ALGO = "sha-256"


def realm_claims(realm: Realm, challenge: bytes, rak_key: bytes) -> dict[int, object]:
    """The realm claim map, in the order the reference RMM emits the claims."""
    size = realm.hash_algo.digest_size
    return {
        t.REALM_CHALLENGE: challenge,
        t.REALM_RPV: realm.rpv,
        t.REALM_RAK: rak_key,
        t.REALM_HASH_ALGO: HASH_NAMES[realm.hash_algo],
        t.REALM_RAK_HASH_ALGO: RAK_HASH_ALGO,
        t.REALM_PROFILE_CLAIM: t.REALM_PROFILE,
        t.REALM_RIM: realm.measured()[0][:size],
        t.REALM_REMS: [m[:size] for m in realm.measurements[1:]],
    }


def cca_token(realm: Realm, challenge: bytes, platform: PlatformAttestation) -> bytes:
    """The whole CCA attestation token for ``realm`` and a 64-byte ``challenge``."""
    rak_key = cose.cose_key(platform.rak.public_key())
    realm_token = cose.sign1(cbor2.dumps(realm_claims(realm, challenge, rak_key)), platform.rak)
    platform_token = platform.platform_token(hashlib.sha256(rak_key).digest())
    collection = {t.COLLECTION_PLATFORM: platform_token, t.COLLECTION_REALM: realm_token}
    return cbor2.dumps(cbor2.CBORTag(t.CCA_TOKEN_TAG, collection))
