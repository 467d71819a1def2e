"""CCA token claim sets (A7.2.3.1 realm claims, A7.2.3.2 platform claims): names, the
mandatory claims and the types and sizes the spec's CDDL gives them.

Unknown claims are kept and ignored. A claim map with a repeated key is rejected (CBOR maps
must not repeat keys, RFC 8949 section 5.6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cbor2

from ccasim import ccatoken as t


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


REALM_CLAIMS = [
    Claim(t.REALM_CHALLENGE, "challenge", bytes, (64,)),
    Claim(t.REALM_PROFILE_CLAIM, "profile", str, mandatory=False),
    Claim(t.REALM_RPV, "personalization-value", bytes, (64,)),
    Claim(t.REALM_RIM, "initial-measurement", bytes, (32, 48, 64)),
    Claim(t.REALM_REMS, "extensible-measurements", ARRAY),
    Claim(t.REALM_HASH_ALGO, "hash-algo-id", str),
    Claim(t.REALM_RAK, "public-key", bytes),
    Claim(t.REALM_RAK_HASH_ALGO, "public-key-hash-algo-id", str),
]

PLATFORM_CLAIMS = [
    Claim(t.PLATFORM_PROFILE_CLAIM, "profile", str),
    Claim(t.PLATFORM_CHALLENGE, "challenge", bytes, (32, 48, 64)),
    Claim(t.PLATFORM_IMPLEMENTATION_ID, "implementation-id", bytes, (32,)),
    Claim(t.PLATFORM_INSTANCE_ID, "instance-id", bytes, (33,)),
    Claim(t.PLATFORM_CONFIG, "config", bytes),
    Claim(t.PLATFORM_LIFECYCLE, "lifecycle", int),
    Claim(t.PLATFORM_SW_COMPONENTS, "sw-components", ARRAY),
    Claim(t.PLATFORM_VERIFICATION_SERVICE, "verification-service", str, mandatory=False),
    Claim(t.PLATFORM_HASH_ALGO, "hash-algo-id", str),
]

SW_COMPONENT_FIELDS = {
    t.SW_MEASUREMENT_TYPE: "measurement-type",
    t.SW_MEASUREMENT_VALUE: "measurement-value",
    t.SW_VERSION: "version",
    t.SW_SIGNER_ID: "signer-id",
    t.SW_HASH_ALGO: "hash-algo-id",
}

REALM_PROFILE = t.REALM_PROFILE
PLATFORM_PROFILES = (t.PLATFORM_PROFILE, t.PLATFORM_PROFILE_LEGACY)

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
    rems = claims[t.REALM_REMS]
    if len(rems) != 4 or any(not isinstance(r, bytes) or len(r) not in (32, 48, 64) for r in rems):
        raise ClaimsError(
            "realm claim extensible-measurements must be 4 byte strings of 32, 48 or 64 bytes"
        )
    return claims


def decode_platform_claims(data: bytes) -> dict:
    """A CCA platform claim map, checked against A7.2.3.2 (raises ClaimsError)."""
    claims = _decode_map(data, "platform")
    _check(claims, PLATFORM_CLAIMS, "platform")
    if claims[t.PLATFORM_INSTANCE_ID][0] != 0x01:
        raise ClaimsError("platform claim instance-id must start with 0x01 (a RAND UEID)")
    for i, component in enumerate(claims[t.PLATFORM_SW_COMPONENTS]):
        if not isinstance(component, Mapping) or not isinstance(
            component.get(t.SW_MEASUREMENT_VALUE), bytes
        ):
            raise ClaimsError(f"platform sw-components[{i}] has no measurement-value")
    return claims
