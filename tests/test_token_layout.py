"""The CCA token ccasim makes has the reference RMM's layout (A7.2.3).

The reference is the token TF-RMM (rmm-spec-v1.0-rel0, fake host) printed in
../shared/rmm-logs/GENERATED-tfrmm-v1.0-rel0-fakehost-cca-token.hex.txt: the same collection
tag and keys, the same COSE headers, the same claims in the same order with the same types and
sizes. Values differ (keys, measurements, platform claims).
"""

import re
from pathlib import Path

import cbor2
import pytest

from support import Host
from test_realm_exec import SEEN

LOG = Path(__file__).resolve().parents[2] / "shared" / "rmm-logs"
REFERENCE = LOG / "GENERATED-tfrmm-v1.0-rel0-fakehost-cca-token.hex.txt"


def skeleton(value):
    """The shape of a CBOR value: types, map keys in order, lengths; not the contents."""
    if isinstance(value, cbor2.CBORTag):
        return ("tag", value.tag, skeleton(value.value))
    if isinstance(value, dict):
        return ("map", [(k, skeleton(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("array", [skeleton(v) for v in value])
    if isinstance(value, bytes):
        return ("bytes", len(value))
    return (type(value).__name__,)


def expand(token: bytes):
    """Decode the collection, each COSE_Sign1 in it, its protected header and its claims."""
    outer = cbor2.loads(token)
    parts = {}
    for key, sign1_bytes in outer.value.items():
        sign1 = cbor2.loads(sign1_bytes)
        protected, unprotected, payload, signature = sign1.value
        claims = cbor2.loads(payload)
        parts[key] = (sign1.tag, cbor2.loads(protected), dict(unprotected), claims, len(signature))
    return outer.tag, list(outer.value), parts


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference token not available")
def test_token_layout_matches_the_reference_rmm():
    text = "".join(line for line in REFERENCE.read_text().splitlines() if not line.startswith("#"))
    reference = bytes.fromhex("".join(re.findall(r"[0-9a-fA-F]{2}", text)))
    host = Host()
    launched = host.launch("t.attest", tag="layout", challenge=bytes(64))
    host.enter(launched.recs[0], launched.run)
    ours = SEEN["layout"][0]

    ref_tag, ref_keys, ref_parts = expand(reference)
    our_tag, our_keys, our_parts = expand(ours)
    assert (our_tag, our_keys) == (ref_tag, ref_keys) == (399, [44234, 44241])
    for key in (44234, 44241):
        ref_sign1_tag, ref_prot, ref_unprot, ref_claims, ref_sig = ref_parts[key]
        tag, prot, unprot, claims, sig = our_parts[key]
        assert (tag, prot, unprot, sig) == (ref_sign1_tag, ref_prot, ref_unprot, ref_sig)
        assert list(claims) == list(ref_claims)
    # the realm claims have the same shapes, and the RAK is a P-384 COSE_Key like the reference's
    assert skeleton(our_parts[44241][3]) == skeleton(ref_parts[44241][3])
    assert list(cbor2.loads(our_parts[44241][3][44237])) == [1, -1, -2, -3]
