"""What a new user of the ``ccasim`` command meets: the sample capabilities file, help that
lists its keys, every missing capability at once, the platform key as a file, and messages
that say what is wrong (never a traceback, never an empty name)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ccasim
from ccasim import attest, guest
from ccasim.cli import main
from ccasim.guest import rsi
from ccasim.measure import Capabilities
from ccasim.rmi import Rmi
from ccasim.vmm.capabilities import load_toml
from support import RAM_BASE, Host
from test_attest import ccasim_token

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "host-caps.toml"
SEEN: dict[str, bytes] = {}


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_sample_capabilities_file_only_lowers_what_the_default_machine_offers():
    sample = load_toml(str(SAMPLE), SAMPLE.read_text())
    assert all(value is not None for value in vars(sample).values())  # it shows every key
    offered = Capabilities.from_rmi_features(Rmi(ccasim.Machine()).features(0).check().value)
    assert offered.restrict(sample) == sample  # every value is allowed on the default machine


def test_help_lists_the_configuration_keys(capsys):
    status, out, _ = run(capsys, "measure", "--help")
    keys = [name for name in vars(Capabilities())]
    assert status == 0 and all(key in " ".join(out.split()) for key in keys)
    assert "examples/host-caps.toml" in out


def test_every_missing_capability_in_one_message(capsys):
    status, out, err = run(capsys, "measure", "--pmu", "true", "custom")
    assert status == 1 and out == "" and err.count("\n") == 1
    for name in ("ipa_bits", "num_bps", "num_wps", "sve_vl", "hash_algo", "pmu_num_ctrs"):
        assert name in err and f"--{name.replace('_', '-')}" in err


def test_an_unknown_key_lists_the_known_ones(capsys, tmp_path):
    bad = tmp_path / "caps.toml"
    bad.write_text("num-bps = 4\n")
    status, _, err = run(capsys, "measure", "-c", bad, "custom")
    assert status == 1 and "unknown key 'num-bps' (keys: ipa_bits, num_bps," in err


@pytest.mark.parametrize("fmt", ["pem", "jwk", "cose"])
def test_ccasim_tokens_verify_with_the_exported_platform_key(capsys, tmp_path, fmt):
    """``ccasim token cpak`` writes the key that the default platform's tokens verify with."""
    token, host, launched = ccasim_token(b"\x07" * 64)
    (tmp_path / "token.cbor").write_bytes(token)
    key = tmp_path / f"cpak.{fmt}"
    assert run(capsys, "token", "cpak", "--format", fmt, "-o", key)[0] == 0
    rim = host.m.realm_measurements(launched.rd)[0].hex()
    argv = ["token", "verify", tmp_path / "token.cbor", "--cpak", key, "--expect-rim", rim]
    status, out, _ = run(capsys, *argv)
    assert status == 0 and out.splitlines()[-1] == "token verified", out
    # and the key is what the platform signs with, not merely a key that loads
    signer = host.m.attestation.cpak.public_key()
    assert attest.load_public_key(key.read_bytes()).public_numbers() == signer.public_numbers()


def test_the_platform_key_on_standard_output(capsys):
    status, out, _ = run(capsys, "token", "cpak")
    assert status == 0 and out.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert attest.load_public_key(out.encode())


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{" + bytes(range(128, 200)), "not a PEM, JWK or COSE_Key (nor a CBOR map)"),
        (b"[\x00\x01\x02", "not a PEM, JWK or COSE_Key (nor a CBOR map)"),
        (b'{"kty": "EC", ', "unreadable JSON key: Expecting property name"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "unreadable PEM key"),
    ],
)
def test_a_key_file_that_is_not_a_key_says_what_it_is_not(capsys, tmp_path, content, message):
    key = tmp_path / "key"
    key.write_bytes(content)
    token = tmp_path / "token"
    token.write_bytes(ccasim_token(b"\x01" * 64)[0])
    status, out, err = run(capsys, "token", "verify", token, "--cpak", key)
    assert status == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"ccasim: error: {key}: {message}"), err


def ccasim_cli(*argv: str, stdout=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-m", "ccasim", *argv],
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        check=False,
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_output_to_a_full_device_names_standard_output():
    with open("/dev/full", "w") as full:
        done = ccasim_cli("token", "cpak", stdout=full)
    assert done.returncode == 1
    assert done.stderr == "ccasim: error: cannot write standard output: No space left on device\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_file_on_a_full_device_is_named():
    done = ccasim_cli("token", "cpak", "-o", "/dev/full")
    assert done.returncode == 1
    assert done.stderr == "ccasim: error: cannot write key /dev/full: No space left on device\n"


def test_machine_reads_of_a_negative_size_are_value_errors():
    m = ccasim.Machine()
    with pytest.raises(ValueError, match="ns_read of -1 bytes: a size is not negative"):
        m.ns_read(0x8000_0000, -1)


@guest.program("usability.rem")
def extend_then_attest(cpu, tag):
    yield from rsi.measurement_extend(2, b"REM1 is RSI index 2")
    SEEN[tag] = yield from rsi.attestation_token(b"\x02" * 64, RAM_BASE + 0x4000)


def test_rems_are_numbered_rem0_to_rem3_everywhere(capsys, tmp_path):
    """REMn is RSI measurement index n + 1, element n of the token's claim 44239 and of
    Machine.realm_measurements()[1:], and the line REMn of `token show` and `measure`."""
    host = Host()
    launched = host.launch("usability.rem", tag="rem")
    host.enter(launched.recs[0], launched.run)
    measurements = host.m.realm_measurements(launched.rd)
    rem1 = measurements[2]
    assert rem1 != bytes(32) and measurements[1] == measurements[3] == bytes(32)
    token = tmp_path / "token.cbor"
    token.write_bytes(SEEN["rem"])
    assert attest.decode_token(SEEN["rem"]).realm_claims[44239][1] == rem1
    status, out, _ = run(capsys, "token", "show", token)
    assert status == 0 and f"REM1 {rem1.hex()}" in out and "REM0 " + "00" * 32 in out
    caps = ["--ipa-bits", 48, "--num-bps", 2, "--num-wps", 2, "--sve-vl", 0, "--pmu", "false"]
    status, out, _ = run(capsys, "measure", *caps, "--hash-algo", "sha256", "custom")
    assert [line.split(":")[0] for line in out.splitlines()] == [
        "RIM",
        "REM0",
        "REM1",
        "REM2",
        "REM3",
    ]
