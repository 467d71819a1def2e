"""Reading and verifying CCA attestation tokens (A7.2.3) from any source.

from ccasim import attest
token = attest.decode_token(data)            # structure, claims, COSE_Sign1 parts
report = attest.verify_token(data, cpak=attest.load_public_key(pem_bytes))
print("\\n".join(report.lines())); report.ok
"""

from ccasim.attest.claims import (
    ClaimsError,
    decode_platform_claims,
    decode_realm_claims,
)
from ccasim.attest.keys import KeyError_, dump_public_key, load_public_key, rak_public_key
from ccasim.attest.token import CcaToken, Sign1, TokenError, decode_token
from ccasim.attest.verify import Check, Report, verify_token

__all__ = [
    "CcaToken",
    "Check",
    "ClaimsError",
    "KeyError_",
    "Report",
    "Sign1",
    "TokenError",
    "decode_platform_claims",
    "decode_realm_claims",
    "decode_token",
    "dump_public_key",
    "load_public_key",
    "rak_public_key",
    "verify_token",
]
