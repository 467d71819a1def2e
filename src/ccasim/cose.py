"""COSE_Sign1 (RFC 9052) with ECDSA, and COSE_Key for EC2 public keys, over cbor2 and
cryptography. Used to produce CCA attestation tokens and, later, to verify them."""

from __future__ import annotations

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

COSE_SIGN1_TAG = 18
HEADER_ALG = 1
KTY_EC2 = 2

#: COSE algorithm -> (curve, hash); ES256/ES384/ES512 (RFC 9053)
ALGORITHMS: dict[int, tuple[type[ec.EllipticCurve], type[hashes.HashAlgorithm]]] = {
    -7: (ec.SECP256R1, hashes.SHA256),
    -35: (ec.SECP384R1, hashes.SHA384),
    -36: (ec.SECP521R1, hashes.SHA512),
}
#: COSE EC2 curve identifiers (crv)
CURVES: dict[type[ec.EllipticCurve], int] = {ec.SECP256R1: 1, ec.SECP384R1: 2, ec.SECP521R1: 3}


def algorithm_for(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> int:
    """The ECDSA COSE algorithm that matches the key's curve."""
    for alg, (curve, _) in ALGORITHMS.items():
        if isinstance(key.curve, curve):
            return alg
    raise ValueError(f"unsupported curve {key.curve.name}")


def _coordinate_size(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 7) // 8


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The Sig_structure a COSE_Sign1 signature covers (RFC 9052 section 4.4)."""
    return cbor2.dumps(["Signature1", protected, b"", payload])


def sign1(payload: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A tagged COSE_Sign1 of ``payload`` signed with ``key`` (deterministic ECDSA)."""
    alg = algorithm_for(key)
    protected = cbor2.dumps({HEADER_ALG: alg})
    hash_type = ALGORITHMS[alg][1]
    der = key.sign(
        sig_structure(protected, payload), ec.ECDSA(hash_type(), deterministic_signing=True)
    )
    r, s = decode_dss_signature(der)
    n = _coordinate_size(key.curve)
    signature = r.to_bytes(n, "big") + s.to_bytes(n, "big")
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))


def verify1(
    protected: bytes, payload: bytes, signature: bytes, key: ec.EllipticCurvePublicKey
) -> bool:
    """Whether ``signature`` is a valid COSE_Sign1 signature of ``payload`` by ``key``."""
    from cryptography.exceptions import InvalidSignature

    alg = cbor2.loads(protected).get(HEADER_ALG) if protected else None
    if alg not in ALGORITHMS or not isinstance(key.curve, ALGORITHMS[alg][0]):
        return False
    n = _coordinate_size(key.curve)
    if len(signature) != 2 * n:
        return False
    der = encode_dss_signature(
        int.from_bytes(signature[:n], "big"), int.from_bytes(signature[n:], "big")
    )
    try:
        key.verify(der, sig_structure(protected, payload), ec.ECDSA(ALGORITHMS[alg][1]()))
    except InvalidSignature:
        return False
    return True


def cose_key(public: ec.EllipticCurvePublicKey) -> bytes:
    """The EC2 COSE_Key of ``public`` (kty, crv, x, y), deterministically encoded."""
    numbers = public.public_numbers()
    n = _coordinate_size(public.curve)
    curve_id = CURVES[type(public.curve)]
    return cbor2.dumps(
        {
            1: KTY_EC2,
            -1: curve_id,
            -2: numbers.x.to_bytes(n, "big"),
            -3: numbers.y.to_bytes(n, "big"),
        },
        canonical=True,
    )
