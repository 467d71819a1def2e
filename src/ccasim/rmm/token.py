"""The CCA attestation token (A7.2.3): the realm token the RMM signs with the RAK, bound to
the platform token EL3 provides, in a tag 399 collection."""

from __future__ import annotations

import hashlib

import cbor2

from ccasim import cose
from ccasim.el3.attestation import PlatformAttestation
from ccasim.rmi.types import HashAlgorithm
from ccasim.rmm.realm import Realm

CCA_TOKEN_TAG = 399
CLAIM_PLATFORM_TOKEN = 44234
CLAIM_REALM_TOKEN = 44241

REALM_PROFILE = "tag:arm.com,2023:realm#1.0.0"
# Realm token claim keys (A7.2.3.1)
CLAIM_CHALLENGE = 10
CLAIM_PROFILE = 265
CLAIM_RPV = 44235
CLAIM_HASH_ALGO = 44236
CLAIM_RAK = 44237
CLAIM_RIM = 44238
CLAIM_REMS = 44239
CLAIM_RAK_HASH_ALGO = 44240

HASH_NAMES = {HashAlgorithm.SHA_256: "sha-256", HashAlgorithm.SHA_512: "sha-512"}
#: The algorithm used for H(RAK_pub), the platform challenge.
RAK_HASH_ALGO = "sha-256"


def realm_claims(realm: Realm, challenge: bytes, rak_key: bytes) -> dict[int, object]:
    """The realm claim map, in the order the reference RMM emits the claims."""
    size = realm.hash_algo.digest_size
    return {
        CLAIM_CHALLENGE: challenge,
        CLAIM_RPV: realm.rpv,
        CLAIM_RAK: rak_key,
        CLAIM_HASH_ALGO: HASH_NAMES[realm.hash_algo],
        CLAIM_RAK_HASH_ALGO: RAK_HASH_ALGO,
        CLAIM_PROFILE: REALM_PROFILE,
        CLAIM_RIM: realm.measurements[0][:size],
        CLAIM_REMS: [m[:size] for m in realm.measurements[1:]],
    }


def cca_token(realm: Realm, challenge: bytes, platform: PlatformAttestation) -> bytes:
    """The whole CCA attestation token for ``realm`` and a 64-byte ``challenge``."""
    rak_key = cose.cose_key(platform.rak.public_key())
    realm_token = cose.sign1(cbor2.dumps(realm_claims(realm, challenge, rak_key)), platform.rak)
    platform_token = platform.platform_token(hashlib.sha256(rak_key).digest())
    collection = {CLAIM_PLATFORM_TOKEN: platform_token, CLAIM_REALM_TOKEN: realm_token}
    return cbor2.dumps(cbor2.CBORTag(CCA_TOKEN_TAG, collection))
