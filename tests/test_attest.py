"""Token decoding and verification (ccasim.attest, `ccasim token`) against the public vectors
in ../shared/vectors (their README states what each must give), and ccasim's own tokens."""

import contextlib
import io
import json
import re
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from ccasim import attest
from ccasim.cli import main
from support import Host
from test_realm_exec import SEEN

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
pytestmark = pytest.mark.skipif(not VECTORS.is_dir(), reason="shared/vectors not available")

CPAK = "keys/cpak-p384-tfm-cca_platform.pub.pem"
CASES = [
    # token, key, verified?, the failing check
    ("tfm-cca_token-legacy-tag399.cbor", CPAK, True, None),
    ("draft-ffm-00-example-tag399.cbor", CPAK, True, None),
    ("rust-ccatoken-cca-token-02-tag399-es256.cbor", "keys/ta-02-ok.json", True, None),
    ("rust-ccatoken-bug-33-bad-binding-tag399.cbor", CPAK, False, "binding"),
    (
        "go-ccatoken-testGoodCCAToken-tag907.cbor",
        "keys/iak-p256-go-ccatoken-testIAK.pub.jwk.json",
        True,
        None,
    ),
    (
        "go-ccatoken-testGoodLegacyCCAToken-tag399.cbor",
        "keys/iak-p256-go-ccatoken-testIAK.pub.jwk.json",
        True,
        None,
    ),
    ("go-ccatoken-testRMMLegacyEvidence-tag907.cbor", CPAK, True, None),
    ("go-ccatoken-testBadUnwrappedTokens-tag907-INVALID.cbor", CPAK, False, "format"),
    ("tfm-717bda3-cca_example_token-realm2.0-tag907.cbor", CPAK, True, None),
]


def load(rel: str) -> bytes:
    return (VECTORS / rel).read_bytes()


@pytest.mark.parametrize("token, key, ok, failing", CASES)
def test_public_vectors(token, key, ok, failing):
    report = attest.verify_token(load(f"tokens/{token}"), attest.load_public_key(load(key)))
    assert report.ok is ok, report.lines()
    failed = [c.name for c in report.checks if not c.ok]
    assert failed == ([] if failing is None else [failing])


def test_the_platform_key_can_be_pem_jwk_or_cose_key():
    pem = attest.load_public_key(load(CPAK))
    jwk = attest.load_public_key(load("keys/cpak-p384-tfm-cca_platform.jwk.json"))
    private = attest.load_public_key(load("keys/cpak-p384-tfm-cca_platform.PRIVATE.pem"))
    n = pem.public_numbers()
    cose_key = cbor2.dumps({1: 2, -1: 2, -2: n.x.to_bytes(48, "big"), -3: n.y.to_bytes(48, "big")})
    assert pem == jwk == private == attest.load_public_key(cose_key)


def test_a_key_not_on_its_curve_is_rejected():
    with pytest.raises(attest.KeyError_, match="not on"):
        attest.load_public_key(load("keys/ta-02-bad-INVALID-POINT.json"))


def test_the_wrong_platform_key_fails_the_platform_signature():
    wrong = attest.load_public_key(load("keys/iak-p256-go-ccatoken-testIAK.pub.jwk.json"))
    report = attest.verify_token(load("tokens/tfm-cca_token-legacy-tag399.cbor"), wrong)
    assert [c.name for c in report.checks if not c.ok] == ["platform signature"]


@pytest.mark.parametrize(
    "name",
    [
        "realm-claims.cbor",
        "realm-claims+spurious-numeric-key.cbor",
        "realm-claims+spurious-text-key.cbor",
    ],
)
def test_realm_claim_sets_decode(name):
    assert 10 in attest.decode_realm_claims(load(f"claims/{name}"))


def test_platform_claim_set_decodes():
    assert 2396 in attest.decode_platform_claims(load("claims/platform-claims.cbor"))


@pytest.mark.parametrize(
    "data, message",
    [
        (None, "challenge (10) is missing"),
        (bytes.fromhex("a0"), "challenge (10) is missing"),
        (bytes.fromhex("a10a48deadbeefdeadbeef"), "8 bytes, not 64"),
        (bytes.fromhex("ffffffff"), "not valid CBOR"),
        (bytes.fromhex("a10a0a"), "must be a byte string"),
    ],
)
def test_bad_realm_claim_sets_are_rejected(data, message):
    data = data if data is not None else load("claims/realm-claims-missing-challenge.cbor")
    with pytest.raises(attest.ClaimsError, match=re.escape(message)):
        attest.decode_realm_claims(data)


def test_a_repeated_platform_claim_is_rejected():
    with pytest.raises(attest.ClaimsError, match="repeat"):
        attest.decode_platform_claims(bytes.fromhex("a219096061781909606178"))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(data):
    """Any input either decodes or raises the decoder's own errors (nothing else)."""
    with contextlib.suppress(attest.TokenError, attest.ClaimsError):
        attest.decode_token(data)


@pytest.mark.parametrize("cut", [1, 10, 100, 1000])
def test_truncated_tokens_are_rejected(cut):
    data = load("tokens/draft-ffm-00-example-tag399.cbor")
    report = attest.verify_token(data[:-cut], None)
    assert not report.ok and report.checks[0].name == "format"


def test_a_wrong_tag_is_named():
    data = cbor2.dumps(cbor2.CBORTag(400, {}))
    with pytest.raises(attest.TokenError, match="found tag 400"):
        attest.decode_token(data)


# -- ccasim's own tokens verify under the same rules ----------------------------------------


def ccasim_token(challenge: bytes) -> tuple[bytes, Host, object]:
    host = Host()
    launched = host.launch("t.attest", tag=f"self-{challenge.hex()}", challenge=challenge)
    host.enter(launched.recs[0], launched.run)
    return SEEN[f"self-{challenge.hex()}"][0], host, launched


def test_ccasim_tokens_verify(tmp_path):
    token, host, launched = ccasim_token(b"\x42" * 32)
    cpak = host.m.attestation.cpak.public_key()
    rim = host.m.realm_measurements(launched.rd)[0]
    report = attest.verify_token(
        token, cpak, expect_rim=rim, challenge=b"\x42" * 32, expect_rpv=bytes(64)
    )
    assert report.ok, report.lines()
    assert not attest.verify_token(token, cpak, expect_rim=bytes(32)).ok


# -- the command line -----------------------------------------------------------------------


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_verify_and_show(capsys):
    token = str(VECTORS / "tokens/draft-ffm-00-example-tag399.cbor")
    status, out, _ = run(capsys, "token", "verify", token, "--cpak", str(VECTORS / CPAK))
    assert status == 0 and out.splitlines()[-1] == "token verified"
    status, out, _ = run(capsys, "token", "show", token)
    assert status == 0 and "initial-measurement (44238): 311314ab" in out
    status, out, _ = run(capsys, "token", "show", "--json", token)
    assert status == 0 and '"44238": "311314ab' in out


def test_cli_verify_expected_values(capsys):
    token = str(VECTORS / "tokens/draft-ffm-00-example-tag399.cbor")
    rim = "311314ab73620350cf758834ae5c65d9e8c2dc7febe6e7d9654bbe864e300d49"
    argv = ["token", "verify", token, "--cpak", str(VECTORS / CPAK), "--expect-rim", rim]
    assert run(capsys, *argv)[0] == 0
    status, out, _ = run(capsys, *argv[:-1], "00" * 32)
    assert status == 1 and "FAIL  realm initial measurement" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["token", "show", "/nonexistent"], "cannot read token /nonexistent"),
        (["token", "verify", "TOKEN"], "Missing option '--cpak'"),
        (["token", "verify", "TOKEN", "--cpak", "KEY", "--expect-rim", "zz"], "not hexadecimal"),
        (["token", "verify", "TOKEN", "--cpak", "TOKEN"], "not a PEM, JWK or COSE_Key"),
        (["token", "show", "KEY"], "not a CCA token"),
        (["token", "frobnicate"], "No such command"),
    ],
)
def test_cli_errors_are_one_line(capsys, argv, message):
    token = str(VECTORS / "tokens/tfm-cca_token-legacy-tag399.cbor")
    argv = [token if a == "TOKEN" else str(VECTORS / CPAK) if a == "KEY" else a for a in argv]
    status, out, err = run(capsys, *argv)
    assert status != 0 and message in err and len(err.strip().splitlines()) == 1, err


def test_any_claim_value_has_a_json_form():
    """Unknown claims may hold any CBOR item; --json must still print valid JSON."""
    from ccasim.cli.token import jsonable

    claims = {
        1: cbor2.CBORSimpleValue(99),
        2: cbor2.CBORTag(1234, [b"\x01", float("nan")]),
        3: cbor2.undefined,
        b"\xff": {4: float("inf"), 5: 1.5, 6: None, 7: True},
    }
    out = json.loads(json.dumps(jsonable(claims), allow_nan=False))
    assert out["2"] == {"tag": 1234, "value": ["01", "nan"]}
    assert out["ff"] == {"4": "inf", "5": 1.5, "6": None, "7": True}


@given(
    vector=st.sampled_from([c[0] for c in CASES]),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1,
                   max_size=4),
    as_json=st.booleans(),
)  # fmt: skip
def test_corrupted_tokens_give_claims_or_one_error_line(tmp_path_factory, vector, edits, as_json):
    """Byte edits anywhere in a real token: `token show` prints or names the problem, and
    `token verify` reports; neither raises."""
    data = bytearray(load(f"tokens/{vector}"))
    for where, byte in edits:
        data[int(where * len(data))] = byte
    path = tmp_path_factory.mktemp("t") / "token.cbor"
    path.write_bytes(bytes(data))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["token", "show", *(["--json"] if as_json else []), str(path)])
    if status == 0:
        assert err.getvalue() == "" and (not as_json or json.loads(out.getvalue()))
    else:
        assert err.getvalue().startswith("ccasim: error: ") and err.getvalue().count("\n") == 1
    key = attest.load_public_key(load(CPAK))
    assert attest.verify_token(bytes(data), key).lines()


def test_a_platform_key_on_the_wrong_curve_is_named(tmp_path):
    """ES384 needs a P-384 key: a P-256 or secp256k1 key fails with that reason."""
    token = load("tokens/draft-ffm-00-example-tag399.cbor")
    for curve in (ec.SECP256R1(), ec.SECP256K1()):
        key = ec.generate_private_key(curve).public_key()
        report = attest.verify_token(token, key)
        failed = [c for c in report.checks if not c.ok]
        assert [c.name for c in failed] == ["platform signature"]
        assert failed[0].detail == f"ES384 needs a secp384r1 key, not {curve.name}"


def test_an_unsupported_curve_in_a_pem_key_is_a_key_error():
    pem = load(CPAK).replace(b"CAQYFK4EEACID", b"CAQYFK4EfACID")  # the curve OID altered
    with pytest.raises(attest.KeyError_, match="unreadable PEM key"):
        attest.load_public_key(pem)


def test_a_bug_is_still_one_line_unless_debugging(capsys, monkeypatch):
    """The CLI's last resort: an exception ccasim did not expect (simulated here, as no input
    is known to cause one) is one line and exit status 70; CCASIM_DEBUG=1 re-raises it."""

    def broken(data):
        raise RuntimeError("simulated")

    monkeypatch.setattr(attest, "decode_token", broken)
    token = str(VECTORS / "tokens/tfm-cca_token-legacy-tag399.cbor")
    status, out, err = run(capsys, "token", "show", token)
    assert status == 70 and out == ""
    assert (
        err.startswith("ccasim: internal error: RuntimeError: simulated") and err.count("\n") == 1
    )
    monkeypatch.setenv("CCASIM_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["token", "show", token])
