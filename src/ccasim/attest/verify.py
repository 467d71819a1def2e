"""Verifying a CCA attestation token: both signatures, the binding, the claims, and the
values a relying party expects. Every check yields one line of the report."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from ccasim import ccatoken as t
from ccasim import cose
from ccasim.attest.claims import PLATFORM_PROFILES, REALM_PROFILE, ClaimsError
from ccasim.attest.keys import KeyError_, rak_public_key
from ccasim.attest.token import CcaToken, Sign1, TokenError, decode_token

HASHES = {"sha-256": hashlib.sha256, "sha-384": hashlib.sha384, "sha-512": hashlib.sha512}
ALG_NAMES = {-7: "ES256", -35: "ES384", -36: "ES512"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    token: CcaToken | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def lines(self) -> list[str]:
        return [str(c) for c in self.checks]


def _signature(report: Report, name: str, sign1: Sign1, key: ec.EllipticCurvePublicKey) -> None:
    alg = ALG_NAMES.get(sign1.alg or 0, f"alg {sign1.alg}")
    if sign1.alg not in cose.ALGORITHMS:
        report.add(name, False, f"unsupported COSE algorithm {sign1.alg}")
        return
    curve = key.curve.name
    wanted = cose.ALGORITHMS[sign1.alg][0]
    if not isinstance(key.curve, wanted):
        report.add(name, False, f"{alg} needs a {wanted.name} key, not {curve}")
        return
    ok = cose.verify1(sign1.protected, sign1.payload, sign1.signature, key)
    report.add(name, ok, f"{alg} with a {curve} key: " + ("valid" if ok else "INVALID"))


def _expect(report: Report, name: str, actual: bytes, expected: bytes | None) -> None:
    if expected is not None:
        ok = actual == expected
        report.add(name, ok, actual.hex() + ("" if ok else f" != expected {expected.hex()}"))


def verify_token(
    data: bytes,
    cpak: ec.EllipticCurvePublicKey | None,
    *,
    expect_rim: bytes | None = None,
    expect_rpv: bytes | None = None,
    challenge: bytes | None = None,
) -> Report:
    """Check a CCA token; ``report.ok`` only if every check passed."""
    report = Report()
    try:
        token = decode_token(data)
    except (TokenError, ClaimsError) as e:
        report.add("format", False, str(e))
        return report
    report.token = token
    realm, platform = token.realm_claims, token.platform_claims
    report.add("format", True, f"{token.form}, platform and realm claims complete")

    profile = platform[t.PLATFORM_PROFILE_CLAIM]
    known = profile in PLATFORM_PROFILES
    report.add("platform profile", True, profile + ("" if known else " (unrecognised)"))
    realm_profile = realm.get(t.REALM_PROFILE_CLAIM)
    if realm_profile is not None:
        note = "" if realm_profile == REALM_PROFILE else " (not RMM 1.0; checked as 1.0 claims)"
        report.add("realm profile", True, realm_profile + note)

    try:
        rak, rak_form = rak_public_key(realm[t.REALM_RAK])
    except KeyError_ as e:
        report.add("realm signature", False, str(e))
    else:
        _signature(report, f"realm signature (RAK as {rak_form})", token.realm, rak)

    if cpak is None:
        report.add("platform signature", False, "no platform key given")
    else:
        _signature(report, "platform signature", token.platform, cpak)

    hash_name = realm[t.REALM_RAK_HASH_ALGO]
    hash_fn = HASHES.get(hash_name)
    if hash_fn is None:
        report.add("binding", False, f"unknown RAK hash algorithm {hash_name!r}")
    else:
        digest = hash_fn(realm[t.REALM_RAK]).digest()
        bound = platform[t.PLATFORM_CHALLENGE]
        ok = digest == bound
        detail = f"{hash_name}(RAK) {'=' if ok else '!='} platform challenge {bound.hex()}"
        report.add("binding", ok, detail)

    _expect(report, "realm initial measurement", realm[t.REALM_RIM], expect_rim)
    _expect(report, "realm personalization value", realm[t.REALM_RPV], expect_rpv)
    if challenge is not None:
        _expect(report, "realm challenge", realm[t.REALM_CHALLENGE], challenge.ljust(64, b"\0"))
    return report
