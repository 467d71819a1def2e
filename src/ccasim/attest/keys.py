"""Loading verification keys: the platform key (PEM, JWK, a trust-anchor list of JWKs, or a
COSE_Key) and the RAK from the realm token (a COSE_Key, or a raw SEC1 point in older tokens)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

import cbor2
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ccasim import cose

P256, P384, P521 = ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()
JWK_CURVES = {"P-256": P256, "P-384": P384, "P-521": P521}
COSE_CURVES = {1: P256, 2: P384, 3: P521}
RAW_POINT_CURVES = {65: P256, 97: P384, 133: P521}


class KeyError_(ValueError):
    """A key that cannot be loaded (wrong format, wrong type, not on its curve)."""


def _point(curve: ec.EllipticCurve, x: bytes, y: bytes) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
        ).public_key()
    except ValueError as e:
        raise KeyError_(f"the key's point is not on {curve.name}: {e}") from None


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def from_jwk(jwk: Mapping) -> ec.EllipticCurvePublicKey:
    if jwk.get("kty") != "EC" or jwk.get("crv") not in JWK_CURVES:
        kty, crv = jwk.get("kty"), jwk.get("crv")
        raise KeyError_(f"unsupported JWK (kty {kty!r}, crv {crv!r}): need EC P-256/384/521")
    try:
        return _point(JWK_CURVES[jwk["crv"]], _b64url(jwk["x"]), _b64url(jwk["y"]))
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, KeyError_):
            raise
        raise KeyError_(f"malformed JWK: {e}") from None


def from_cose_key(key: Mapping) -> ec.EllipticCurvePublicKey:
    if key.get(1) != 2 or key.get(-1) not in COSE_CURVES:
        raise KeyError_("unsupported COSE_Key: need kty EC2 with crv P-256, P-384 or P-521")
    x, y = key.get(-2), key.get(-3)
    if not isinstance(x, bytes) or not isinstance(y, bytes):
        raise KeyError_("malformed COSE_Key: x and y must be byte strings")
    return _point(COSE_CURVES[key[-1]], x, y)


def load_public_key(data: bytes) -> ec.EllipticCurvePublicKey:
    """An EC public key from PEM (public or private key), a JWK, a JSON list of trust anchors
    with a "pkey" JWK (the first one), or a CBOR COSE_Key."""
    stripped = data.strip()
    if stripped.startswith(b"-----BEGIN"):
        try:
            if b"PRIVATE KEY" in stripped:
                key = serialization.load_pem_private_key(stripped, password=None).public_key()
            else:
                key = serialization.load_pem_public_key(stripped)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise KeyError_(f"unreadable PEM key: {e}") from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise KeyError_("the PEM key is not an elliptic-curve key")
        return key
    if stripped[:1] in (b"{", b"[") and _is_text(stripped):
        try:
            obj = json.loads(stripped)
        except ValueError as e:
            raise KeyError_(f"unreadable JSON key: {e}") from None
        if isinstance(obj, list):
            if not obj or not isinstance(obj[0], Mapping) or "pkey" not in obj[0]:
                raise KeyError_("a trust-anchor list must hold objects with a 'pkey' JWK")
            obj = obj[0]["pkey"]
        if not isinstance(obj, Mapping):
            raise KeyError_("a JWK must be a JSON object")
        return from_jwk(obj)
    return _cbor_cose_key(data, "not a PEM, JWK or COSE_Key (nor a CBOR map)")


def _is_text(data: bytes) -> bool:
    """UTF-8 without control characters other than white space: a JSON key, not CBOR."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def _cbor_cose_key(data: bytes, not_a_key: str) -> ec.EllipticCurvePublicKey:
    """A CBOR-encoded COSE_Key; ``not_a_key`` is the error when the bytes are not a map."""
    try:
        key = cbor2.loads(data)
    except Exception:  # cbor2 raises several types on malformed input
        raise KeyError_(not_a_key) from None
    if not isinstance(key, Mapping):
        raise KeyError_(not_a_key)
    return from_cose_key(key)


def rak_public_key(claim: bytes) -> tuple[ec.EllipticCurvePublicKey, str]:
    """The RAK from realm claim 44237: (key, "COSE_Key" or "raw SEC1 point")."""
    if len(claim) in RAW_POINT_CURVES and claim[0] == 0x04:
        curve = RAW_POINT_CURVES[len(claim)]
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, claim), "raw SEC1 point"
        except ValueError as e:
            raise KeyError_(f"the RAK point is not on {curve.name}: {e}") from None
    return _cbor_cose_key(claim, "the RAK is neither a COSE_Key nor a raw SEC1 point"), "COSE_Key"


KEY_FORMATS = ("pem", "jwk", "cose")


def dump_public_key(key: ec.EllipticCurvePublicKey, fmt: str = "pem") -> bytes:
    """``key`` as a file :func:`load_public_key` reads: PEM (SubjectPublicKeyInfo), a JWK
    (JSON) or a COSE_Key (CBOR)."""
    if fmt == "pem":
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if fmt == "cose":
        return cose.cose_key(key)
    if fmt == "jwk":
        size = (key.curve.key_size + 7) // 8
        numbers = key.public_numbers()
        crv = next(name for name, curve in JWK_CURVES.items() if curve.name == key.curve.name)
        b64 = lambda n: base64.urlsafe_b64encode(n.to_bytes(size, "big")).rstrip(b"=").decode()  # noqa: E731
        jwk = {"kty": "EC", "crv": crv, "x": b64(numbers.x), "y": b64(numbers.y)}
        return json.dumps(jwk, indent=2).encode() + b"\n"
    raise ValueError(f"unknown key format {fmt!r}: {', '.join(KEY_FORMATS)}")
