"""Every input parser, fed random and mutated input: a clear error, no traceback, no change.

The RMM's parameter pages (RmiRealmParams, RmiRecParams, RmiRecRun) as random pages, guest
images and device trees as random bytes, the command line's configuration files, launch
files (each key alone too), VMM command lines, device trees, key files and RMM logs (for
``ccasim trace diff``) as random or mutated text. (Tokens,
random and mutated CBOR/COSE, are fuzzed in test_attest.py.) A CLI failure is one line on
standard error and status 1 or 2; status 70 would be ccasim's own crash.
"""

from __future__ import annotations

import contextlib
import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ccasim
from ccasim.check import InvariantChecker
from ccasim.cli import main
from ccasim.cli.launchfile import CCASIM_KEYS, KVMTOOL_KEYS
from ccasim.guest.kernel import KernelPanic, parse_device_tree
from ccasim.guest.runtime import find_image
from ccasim.isa import LoadError
from ccasim.rmi import FID
from support import GRANULE, Host, snapshot

PAGE = st.binary(min_size=GRANULE, max_size=GRANULE) | st.builds(
    lambda head, fill: (head + bytes([fill]) * GRANULE)[:GRANULE],
    st.binary(max_size=0x900), st.integers(0, 255),
)  # fmt: skip
VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
FUZZ = settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
)


def one_line_error(status: int, err: str) -> None:
    assert status in (1, 2), (status, err)
    assert err.startswith("ccasim: error:") and len(err.strip().splitlines()) == 1, err


# -- the RMM's parameter pages ----------------------------------------------------------------


@FUZZ
@given(page=PAGE)
def test_random_realm_params_pages(page):
    """B4.3.9: any RmiRealmParams gives a return code; on failure nothing changes."""
    m = ccasim.Machine()
    InvariantChecker(m)
    host = Host(machine=m)
    rd, ptr = host.delegated(), host.ns_page(page)
    host.delegated(16)  # granules a random rtt_base may name
    before = snapshot(m)
    x0 = m.smc(FID.REALM_CREATE, rd, ptr)[0]
    if x0:
        assert snapshot(m) == before


@FUZZ
@given(page=PAGE)
def test_random_rec_params_pages(page):
    """B4.3.12: any RmiRecParams gives a return code; on failure nothing changes."""
    m = ccasim.Machine()
    InvariantChecker(m)
    host = Host(machine=m)
    realm = host.realm()
    rec, ptr = host.delegated(), host.ns_page(page)
    before = snapshot(m)
    if m.smc(FID.REC_CREATE, realm.rd, rec, ptr)[0]:
        assert snapshot(m) == before


@FUZZ
@given(page=PAGE)
def test_random_rec_run_pages(page):
    """B4.3.14: any RmiRecRun (its entry half from the host) gives a return code, and the
    RMM either runs the REC or changes nothing."""
    m = ccasim.Machine()
    InvariantChecker(m)
    host = Host(machine=m)
    launched = host.launch("t.attest", tag="fuzz-run", challenge=bytes(64))
    m.ns_write(launched.run, page)
    before = snapshot(m)
    x0 = m.smc(FID.REC_ENTER, launched.recs[0], launched.run)[0]
    if x0:
        assert snapshot(m) == before


# -- what realm software parses --------------------------------------------------------------


@FUZZ
@given(blob=st.binary(max_size=3 * GRANULE))
def test_random_guest_images(blob):
    """A REC whose PC holds anything but a guest image does not start (LoadError), as a PE
    would fault: no other exception."""
    memory = blob.ljust(4 * GRANULE, b"\0")

    def fetch(ipa: int, size: int) -> bytes:
        if ipa + size > len(memory):
            raise LoadError("beyond the image")
        return memory[ipa : ipa + size]

    with contextlib.suppress(LoadError):
        find_image(0, fetch)


@FUZZ
@given(blob=st.binary(max_size=2048))
def test_random_device_trees_panic_the_guest_kernel_cleanly(blob):
    """An unusable device tree is a kernel panic (as for Linux), never another exception."""
    with contextlib.suppress(KernelPanic):
        parse_device_tree(blob, 0x8000_0000)


# -- the command line ------------------------------------------------------------------------

TEXT = st.text(string.printable, max_size=300)
TOML_KEYS = ["ipa_bits", "num_bps", "num_wps", "sve_vl", "pmu", "pmu_num_ctrs", "lpa2",
             "hash_algo", "mem", "cpus", "kernel", "guest", "caps", "guest-args"]  # fmt: skip
TOML_VALUES = st.one_of(st.integers(-5, 2**70), st.booleans(), TEXT.map(repr), st.just("[1, 2]"))
TOML = st.one_of(
    TEXT,
    st.lists(st.tuples(st.sampled_from(TOML_KEYS), TOML_VALUES), max_size=6).map(
        lambda kv: "\n".join(f"{k} = {v}" for k, v in kv)
    ),
)


@FUZZ
@given(text=TOML)
def test_random_capability_files(tmp_path, capsys, text):
    path = tmp_path / "caps.toml"
    path.write_text(text)
    status = main(["measure", "-c", str(path), "custom", "--ram", "0x80000000:2M"])
    out, err = capsys.readouterr()
    if status:
        one_line_error(status, err)


LAUNCH_KEYS = [*KVMTOOL_KEYS, *CCASIM_KEYS, "caps", "guest-args"]
LAUNCH = st.one_of(
    TEXT,
    st.lists(
        st.tuples(st.sampled_from(LAUNCH_KEYS), TOML_VALUES), max_size=6, unique_by=lambda kv: kv[0]
    ).map(lambda kv: "\n".join(f"{k} = {v}" for k, v in kv)),
)


@FUZZ
@given(text=LAUNCH)
def test_random_launch_files(tmp_path, capsys, text):
    """Every key a launch file takes, with values of every kind (a timeout the file sets is
    its own: the run is bounded by one only when the file sets none)."""
    path = tmp_path / "launch.toml"
    path.write_text(text)
    bound = [] if re.search(r"^timeout\s*=", text, re.M) else ["--timeout", "5"]
    status = main(["run", "-q", "--json", "--launch", str(path), *bound])
    out, err = capsys.readouterr()
    if status:
        one_line_error(status, err)


OPTIONS = ["-c", "-m", "-k", "-i", "-p", "--firmware", "--dtb", "--realm", "--measurement-algo",
           "--realm-pv", "--console", "--disk", "--restricted_mem", "--pmu", "-M", "-object",
           "-kernel", "-initrd", "-append", "-smp", "--", "x", "0", "1G", "sha512"]  # fmt: skip


@FUZZ
@given(vmm=st.sampled_from(["kvmtool", "qemu"]),
       argv=st.lists(st.one_of(st.sampled_from(OPTIONS), TEXT), max_size=8))  # fmt: skip
def test_random_vmm_command_lines(capsys, vmm, argv):
    caps = ["--ipa-bits", "48", "--num-bps", "2", "--num-wps", "2", "--sve-vl", "0",
            "--pmu", "false", "--hash-algo", "sha256"]  # fmt: skip
    status = main(["measure", *caps, vmm, *argv])
    out, err = capsys.readouterr()
    if status:
        one_line_error(status, err)


@FUZZ
@given(blob=st.binary(max_size=600))
def test_random_dtb_files(tmp_path, capsys, blob):
    path = tmp_path / "given.dtb"
    path.write_bytes(blob)
    caps = ["--ipa-bits", "48", "--num-bps", "2", "--num-wps", "2", "--sve-vl", "0",
            "--pmu", "false", "--hash-algo", "sha256"]  # fmt: skip
    status = main(["measure", *caps, "--dtb", str(path), "kvmtool", "--realm", "-c", "1",
                   "-m", "64M", "--firmware", str(path)])  # fmt: skip
    out, err = capsys.readouterr()
    if status:
        one_line_error(status, err)


@FUZZ
@given(blob=st.one_of(st.binary(max_size=400), TEXT.map(str.encode),
                      st.just(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")))  # fmt: skip
def test_random_key_files(tmp_path, capsys, blob):
    """A key file that is no key: status 1 or 2, a message, never a traceback."""
    if not VECTORS.is_dir():
        pytest.skip("no token vectors in ../shared/vectors")
    token = sorted(VECTORS.glob("tokens/*.cbor"))[0]
    key = tmp_path / "cpak.pem"
    key.write_bytes(blob)
    status = main(["token", "verify", str(token), "--cpak", str(key)])
    out, err = capsys.readouterr()
    assert status in (1, 2), (status, err)
    assert "Traceback" not in err and "internal error" not in err


def test_control_characters_in_an_argument_stay_on_the_error_line(capsys):
    """Found by this file's fuzzing: an argument holding a carriage return or a newline split
    the one-line error; they are escaped now."""
    caps = ["--ipa-bits", "48", "--num-bps", "2", "--num-wps", "2", "--sve-vl", "0",
            "--pmu", "false", "--hash-algo", "sha256"]  # fmt: skip
    for bad in ("\r0", "a\nb", "\x1b[31mred"):
        status = main(["measure", *caps, "kvmtool", bad])
        one_line_error(status, capsys.readouterr().err)


@pytest.mark.parametrize("key", CCASIM_KEYS)
@settings(FUZZ, max_examples=8)
@given(value=TOML_VALUES)
def test_each_option_of_a_launch_file_with_any_value(tmp_path, capsys, key, value):
    """One ccasim option at a time, with a value of any kind: a run, or one error line."""
    path = tmp_path / "launch.toml"
    path.write_text(f"{key} = {value}\n")
    bound = [] if key == "timeout" else ["--timeout", "5"]
    status = main(["run", "-q", "--json", "--launch", str(path), "-m", "32M", *bound])
    out, err = capsys.readouterr()
    if status:
        one_line_error(status, err)


LOG_LINES = [
    "SMC_RMI_VERSION               10000 > RMI_SUCCESS 10000 10000",
    "[     rmm ] SMC_RMI_DATA_DESTROY              17ffb000 99600000 > RMI_ERROR_RTT 2 0 9d400000",
    "SMC_RSI_IPA_STATE_SET         80000000 90000000 1 0 > RSI_SUCCESS 90000000 0",
    "PSCI_8400000a                 80000000 0 0 0 0 0 0 > 0 0 0 0",
    "Measurement (SHA256): 0x" + "ab" * 32,
    "SMC_RSI_ATTEST_TOKEN_CONTINUE     1000 0 100",
]


def mutate(line: str, cut: int, junk: str) -> str:
    return line[:cut] + junk + line[cut + len(junk) :]


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            TEXT,
            st.builds(
                mutate, st.sampled_from(LOG_LINES), st.integers(0, 90), TEXT.map(lambda t: t[:8])
            ),
        ),
        max_size=12,
    ),
    measurements=st.booleans(),
)
def test_random_rmm_logs(tmp_path, capsys, lines, measurements):
    """ccasim trace diff reads any text: the same records (0), a divergence (1), never a
    traceback."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("\n".join(lines))
    b.write_text("\n".join(reversed(lines)))
    flags = ["--measurements"] if measurements else []
    assert main(["trace", "diff", *flags, str(a), str(a)]) == 0
    status = main(["trace", "diff", *flags, str(a), str(b)])
    out, err = capsys.readouterr()
    assert status in (0, 1) and err == "", err
