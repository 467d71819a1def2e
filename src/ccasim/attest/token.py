"""Decoding the CCA token collection and its COSE_Sign1 members (A7.2.3).

Two collection forms exist: RMM 1.0's tag 399 map whose values are byte strings holding the
tagged COSE_Sign1, and the newer CMW collection (tag 907) whose values are ``[263, bstr]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cbor2

from ccasim import ccatoken as t
from ccasim.attest.claims import decode_platform_claims, decode_realm_claims

TAG_CCA_TOKEN = t.CCA_TOKEN_TAG
TAG_CMW_COLLECTION = t.CMW_COLLECTION_TAG
CMW_CONTENT_FORMAT_COSE_SIGN1 = 263  # application/eat+cwt; the media type of a COSE_Sign1 EAT
TAG_COSE_SIGN1 = 18
PLATFORM_KEY = t.COLLECTION_PLATFORM
REALM_KEY = t.COLLECTION_REALM


class TokenError(ValueError):
    """The bytes are not a well-formed CCA token."""


@dataclass(frozen=True)
class Sign1:
    """A COSE_Sign1 message: the encoded protected header, its map, the unprotected header,
    the payload and the signature."""

    protected: bytes
    headers: dict
    unprotected: dict
    payload: bytes
    signature: bytes

    @property
    def alg(self) -> int | None:
        value = self.headers.get(1)
        return value if isinstance(value, int) else None


@dataclass(frozen=True)
class CcaToken:
    form: str
    platform: Sign1
    realm: Sign1
    platform_claims: dict
    realm_claims: dict


def _loads(data: bytes, what: str):
    try:
        return cbor2.loads(data)
    except Exception as e:  # cbor2 raises several types for malformed input
        raise TokenError(f"{what} is not valid CBOR ({e})") from None


def decode_sign1(data: bytes, what: str) -> Sign1:
    """A tagged (18) or untagged COSE_Sign1."""
    value = _loads(data, what)
    if isinstance(value, cbor2.CBORTag):
        if value.tag != TAG_COSE_SIGN1:
            raise TokenError(f"{what}: CBOR tag {value.tag}, expected COSE_Sign1 (18)")
        value = value.value
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise TokenError(f"{what}: not a COSE_Sign1 array of 4 items")
    protected, unprotected, payload, signature = value
    if not isinstance(protected, bytes) or not isinstance(unprotected, Mapping):
        raise TokenError(f"{what}: malformed COSE_Sign1 headers")
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise TokenError(f"{what}: COSE_Sign1 payload and signature must be byte strings")
    headers = _loads(protected, f"{what} protected header") if protected else {}
    if not isinstance(headers, Mapping):
        raise TokenError(f"{what}: protected header is not a map")
    return Sign1(protected, dict(headers), dict(unprotected), payload, signature)


def _entry(collection: Mapping, key: int, form: int, what: str) -> bytes:
    if key not in collection:
        raise TokenError(f"the collection has no {what} ({key})")
    entry = collection[key]
    if form == TAG_CMW_COLLECTION:
        if not (
            isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[1], bytes)
        ):
            raise TokenError(f"{what}: a CMW collection entry must be [type, bstr]")
        if entry[0] != CMW_CONTENT_FORMAT_COSE_SIGN1:
            raise TokenError(f"{what}: CMW content type {entry[0]}, expected 263")
        return entry[1]
    if not isinstance(entry, bytes):
        raise TokenError(f"{what}: a tag 399 collection entry must be a byte string")
    return entry


def decode_token(data: bytes) -> CcaToken:
    """Decode a CCA token; raises TokenError (or ClaimsError) naming the first problem."""
    outer = _loads(data, "the token")
    if not isinstance(outer, cbor2.CBORTag) or outer.tag not in (TAG_CCA_TOKEN, TAG_CMW_COLLECTION):
        found = f"tag {outer.tag}" if isinstance(outer, cbor2.CBORTag) else type(outer).__name__
        raise TokenError(f"not a CCA token: expected CBOR tag 399 or 907, found {found}")
    if not isinstance(outer.value, Mapping):
        raise TokenError("the token collection is not a map")
    form = "tag 399 collection" if outer.tag == TAG_CCA_TOKEN else "tag 907 CMW collection"
    platform_bytes = _entry(outer.value, PLATFORM_KEY, outer.tag, "platform token")
    realm_bytes = _entry(outer.value, REALM_KEY, outer.tag, "realm token")
    platform = decode_sign1(platform_bytes, "platform token")
    realm = decode_sign1(realm_bytes, "realm token")
    return CcaToken(
        form,
        platform,
        realm,
        decode_platform_claims(platform.payload),
        decode_realm_claims(realm.payload),
    )
