"""CCA token claim sets (A7.2.3.1 realm claims, A7.2.3.2 platform claims): names, the
mandatory claims and the types and sizes the spec's CDDL gives them.

Unknown claims are kept and ignored. A claim map with a repeated key is rejected (CBOR maps
must not repeat keys, RFC 8949 section 5.6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cbor2


class ClaimsError(ValueError):
    """A claim set that is malformed or lacks a mandatory claim."""


#: A CBOR array decodes to a list, or to a tuple inside tagged items.
ARRAY = (list, tuple)
KIND_NAMES = {bytes: "a byte string", str: "a text string", int: "an integer", ARRAY: "an array"}


@dataclass(frozen=True)
class Claim:
    key: int
    name: str
    kind: type | tuple[type, ...]
    sizes: tuple[int, ...] = ()
    mandatory: bool = True


#: The realm's extensible measurements: REM0..REM3, which RSI indexes 1..4 (A7.2.3.1.6).
CLAIM_REMS = 44239

REALM_CLAIMS = [
    Claim(10, "challenge", bytes, (64,)),
    Claim(265, "profile", str, mandatory=False),
    Claim(44235, "personalization-value", bytes, (64,)),
    Claim(44238, "initial-measurement", bytes, (32, 48, 64)),
    Claim(CLAIM_REMS, "extensible-measurements", ARRAY),
    Claim(44236, "hash-algo-id", str),
    Claim(44237, "public-key", bytes),
    Claim(44240, "public-key-hash-algo-id", str),
]

PLATFORM_CLAIMS = [
    Claim(265, "profile", str),
    Claim(10, "challenge", bytes, (32, 48, 64)),
    Claim(2396, "implementation-id", bytes, (32,)),
    Claim(256, "instance-id", bytes, (33,)),
    Claim(2401, "config", bytes),
    Claim(2395, "lifecycle", int),
    Claim(2399, "sw-components", ARRAY),
    Claim(2400, "verification-service", str, mandatory=False),
    Claim(2402, "hash-algo-id", str),
]

SW_COMPONENT_FIELDS = {
    1: "measurement-type",
    2: "measurement-value",
    4: "version",
    5: "signer-id",
    6: "hash-algo-id",
}

REALM_PROFILE = "tag:arm.com,2023:realm#1.0.0"
PLATFORM_PROFILES = ("tag:arm.com,2023:cca_platform#1.0.0", "http://arm.com/CCA-SSD/1.0.0")

NAMES = {
    "realm": {c.key: c.name for c in REALM_CLAIMS},
    "platform": {c.key: c.name for c in PLATFORM_CLAIMS},
}


def _map_length(data: bytes) -> int | None:
    """The item count of a definite-length CBOR map at the start of ``data``."""
    if not data or data[0] >> 5 != 5:
        return None
    info = data[0] & 0x1F
    if info < 24:
        return info
    sizes = {24: 1, 25: 2, 26: 4, 27: 8}
    if info in sizes and len(data) > sizes[info]:
        return int.from_bytes(data[1 : 1 + sizes[info]], "big")
    return None


def _decode_map(data: bytes, what: str) -> dict:
    try:
        claims = cbor2.loads(data)
    except Exception as e:
        raise ClaimsError(f"{what} claims are not valid CBOR ({e})") from None
    if not isinstance(claims, Mapping):
        raise ClaimsError(f"{what} claims are not a map")
    count = _map_length(data)
    if count is not None and count != len(claims):
        raise ClaimsError(f"{what} claims repeat a key")
    return dict(claims)


def _check(claims: dict, schema: list[Claim], what: str) -> None:
    for claim in schema:
        if claim.key not in claims:
            if claim.mandatory:
                raise ClaimsError(f"{what} claim {claim.name} ({claim.key}) is missing")
            continue
        value = claims[claim.key]
        if not isinstance(value, claim.kind) or isinstance(value, bool):
            raise ClaimsError(
                f"{what} claim {claim.name} ({claim.key}) must be {KIND_NAMES[claim.kind]}, "
                f"not {type(value).__name__}"
            )
        if claim.sizes and isinstance(value, bytes) and len(value) not in claim.sizes:
            sizes = " or ".join(map(str, claim.sizes))
            raise ClaimsError(
                f"{what} claim {claim.name} ({claim.key}) is {len(value)} bytes, not {sizes}"
            )


def decode_realm_claims(data: bytes) -> dict:
    """A realm claim map, checked against A7.2.3.1 (raises ClaimsError)."""
    claims = _decode_map(data, "realm")
    _check(claims, REALM_CLAIMS, "realm")
    rems = claims[CLAIM_REMS]
    if len(rems) != 4 or any(not isinstance(r, bytes) or len(r) not in (32, 48, 64) for r in rems):
        raise ClaimsError(
            "realm claim extensible-measurements must be 4 byte strings of 32, 48 or 64 bytes"
        )
    return claims


def decode_platform_claims(data: bytes) -> dict:
    """A CCA platform claim map, checked against A7.2.3.2 (raises ClaimsError)."""
    claims = _decode_map(data, "platform")
    _check(claims, PLATFORM_CLAIMS, "platform")
    if claims[256][0] != 0x01:
        raise ClaimsError("platform claim instance-id must start with 0x01 (a RAND UEID)")
    for i, component in enumerate(claims[2399]):
        if not isinstance(component, Mapping) or not isinstance(component.get(2), bytes):
            raise ClaimsError(f"platform sw-components[{i}] has no measurement-value")
    return claims
