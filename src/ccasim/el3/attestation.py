"""The platform's attestation service (the role of the RSE / TF-M in an Arm CCA system).

EL3 holds the CCA Platform Attestation Key (CPAK), the platform claims and the Realm
Attestation Key (RAK), and gives the RMM the RAK and a platform token bound to it
(RMM-EL3 interface: get realm key, get platform token).

The default keys are derived from fixed, published seeds so that runs are reproducible; they
are test keys. Give your own with ``Machine(attestation=PlatformAttestation(cpak=..., ...))``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from ccasim import ccatoken as t
from ccasim import cose

LIFECYCLE_SECURED = 0x3000


def key_from_seed(seed: str, curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A deterministic EC private key derived from ``seed`` (for reproducible test keys)."""
    curve = curve or ec.SECP384R1()
    order = {
        "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        "secp384r1": int(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
            "581A0DB248B0A77AECEC196ACCC52973",
            16,
        ),
    }[curve.name]
    scalar = int.from_bytes(hashlib.sha512(seed.encode()).digest(), "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, curve)


@dataclass(frozen=True)
class SoftwareComponent:
    """One entry of the CCA platform software components claim (A7.2.3.2.7)."""

    measurement_type: str
    measurement_value: bytes
    signer_id: bytes
    version: str = ""
    hash_algo: str = "sha-256"

    def claim(self) -> dict[int, object]:
        """The claim map, keys in the order the reference platform (TF-M) emits them."""
        c: dict[int, object] = {t.SW_MEASUREMENT_TYPE: self.measurement_type}
        if self.version:
            c[t.SW_VERSION] = self.version
        c[t.SW_SIGNER_ID] = self.signer_id
        c[t.SW_MEASUREMENT_VALUE] = self.measurement_value
        c[t.SW_HASH_ALGO] = self.hash_algo
        return c


def _default_components() -> list[SoftwareComponent]:
    signer = hashlib.sha256(b"ccasim firmware signer").digest()
    return [
        SoftwareComponent(name, hashlib.sha256(f"ccasim {name}".encode()).digest(), signer)
        for name in ("BL1", "BL2", "BL31", "RMM", "HW_CONFIG", "FW_CONFIG", "TB_FW_CONFIG")
    ]


@dataclass
class PlatformAttestation:
    """The CCA platform's identity and keys, and the platform token it issues."""

    cpak: ec.EllipticCurvePrivateKey = field(default_factory=lambda: key_from_seed("ccasim CPAK"))
    rak: ec.EllipticCurvePrivateKey = field(default_factory=lambda: key_from_seed("ccasim RAK"))
    implementation_id: bytes = hashlib.sha256(b"ccasim platform implementation").digest()
    config: bytes = b"\xcf\xcf\xcf\xcf"
    lifecycle: int = LIFECYCLE_SECURED
    sw_components: list[SoftwareComponent] = field(default_factory=_default_components)
    verification_service: str = "https://veraison.example/.well-known/veraison/verification"
    hash_algo: str = "sha-256"

    @property
    def instance_id(self) -> bytes:
        """The EAT UEID of the platform: 0x01 then the SHA-256 of the CPAK's COSE_Key."""
        return b"\x01" + hashlib.sha256(cose.cose_key(self.cpak.public_key())).digest()

    def claims(self, challenge: bytes) -> dict[int, object]:
        """The CCA platform claim map (A7.2.3.2) for a platform challenge, in the order the
        reference platform emits the claims."""
        return {
            t.PLATFORM_PROFILE_CLAIM: t.PLATFORM_PROFILE,
            t.PLATFORM_CHALLENGE: challenge,
            t.PLATFORM_IMPLEMENTATION_ID: self.implementation_id,
            t.PLATFORM_INSTANCE_ID: self.instance_id,
            t.PLATFORM_CONFIG: self.config,
            t.PLATFORM_LIFECYCLE: self.lifecycle,
            t.PLATFORM_HASH_ALGO: self.hash_algo,
            t.PLATFORM_VERIFICATION_SERVICE: self.verification_service,
            t.PLATFORM_SW_COMPONENTS: [c.claim() for c in self.sw_components],
        }

    def platform_token(self, challenge: bytes) -> bytes:
        """A COSE_Sign1-tagged CCA platform token whose challenge is ``challenge``."""
        return cose.sign1(cbor2.dumps(self.claims(challenge)), self.cpak)
