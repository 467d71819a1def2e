"""``ccasim run``: a realm booted end to end through the KVM uAPI, checked from its summary.

The RIM a run produces is the one ``ccasim measure kvmtool`` predicts from the same options
(one layout and device-tree implementation); every failure is one line and a non-zero exit
status, with the host's pages all back (or counted as leaked) afterwards.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvm_programs  # noqa: F401  (registers t.kvm-crash and friends)
from ccasim.cli import main
from ccasim.guest.image import kernel_image
from ccasim.trace import ANNOTATION, parse_log

#: The default platform's capabilities as ``ccasim measure`` options (RmmFeatures' defaults).
PLATFORM = ["--ipa-bits", "48", "--num-bps", "16", "--num-wps", "16", "--sve-vl", "2048",
            "--pmu-num-ctrs", "31", "--pmu", "true"]  # fmt: skip
QUICK = {"touch_mib": 0, "shares": 1, "bounce": 2}  # a guest that does every step, briefly


def cli(capsys, *argv: object) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys, *argv: object) -> tuple[int, dict, str]:
    status, out, err = cli(capsys, "run", "--json", *argv)
    return status, json.loads(out), err


def predicted_rim(capsys, *kvmtool_args: object, platform=PLATFORM) -> str:
    status, out, err = cli(capsys, "measure", *platform, "kvmtool", "--realm", *kvmtool_args)
    assert status == 0, err
    return re.search(r"^RIM: (\w+)$", out, re.M).group(1)


def image(tmp_path, name="ccasim-default", **params) -> str:
    path = tmp_path / f"{name}.img"
    path.write_bytes(kernel_image(name, **params))
    return str(path)


def assert_clean_run(report: dict) -> None:
    assert report["error"] is None
    assert report["ended"] == "power off"
    assert report["token"]["ok"], report["token"]
    assert report["rim_as_predicted"]
    assert report["pages"]["balanced"] and report["pages"]["leaked"] == 0
    assert report["pages"]["delegated"] == report["pages"]["returned"]


# -- the default realm --------------------------------------------------------------------


def test_the_default_realm_boots_attests_and_powers_off(capsys, tmp_path):
    challenge = bytes(range(100, 164))
    status, report, err = run_json(capsys, "--challenge", challenge.hex())
    assert (status, err) == (0, "")
    assert_clean_run(report)
    realm = report["realm"]
    assert (realm["ram_base"], realm["ram_size"], realm["vcpus"]) == (0x8000_0000, 256 << 20, 2)
    assert realm["hash_algo"] == "sha256" and realm["ipa_bits"] == 33
    assert realm["guest"] == {"program": "ccasim-default", "params": {}, "source": "embedded",
                              "in_place_of_aarch64": False}  # fmt: skip
    checks = {c["name"]: c for c in report["token"]["checks"]}
    assert (
        checks["realm challenge"]["ok"] and challenge.hex() in checks["realm challenge"]["detail"]
    )
    assert checks["realm initial measurement"]["detail"] == report["measurements"]["RIM"]
    assert checks["platform signature"]["ok"] and checks["binding"]["ok"]
    # The embedded default is the image `ccasim guest image` writes: measure predicts the run.
    written = tmp_path / "default.img"
    assert cli(capsys, "guest", "image", "-o", written)[0] == 0
    assert (
        predicted_rim(capsys, "-c", 2, "-m", "256M", "-k", written) == report["measurements"]["RIM"]
    )
    # REM0 holds the guest's extension; the console shows every step.
    assert report["measurements"]["REM0"] != "00" * 32
    for line in ("smp: brought up 1 of 1 secondary CPU(s)", "touched 512 page(s) of memory",
                 "shared and unshared 4 buffer(s)", "REM0 extended with 'ccasim'",
                 "reboot: Power down"):  # fmt: skip
        assert line in report["console"]
    # The exits: faults served in the kernel, PSCI for CPU_ON/AFFINITY_INFO, RIPAS changes.
    exits = report["rec_exits"]
    assert exits["SYNC (data abort)"] >= 1024 and exits["RIPAS_CHANGE"] >= 9 and exits["PSCI"] >= 2
    assert exits["HOST_CALL"] == 2  # the challenge and the token handed over
    assert report["vmm_exits"]["SYSTEM_EVENT"] == 1 and report["vmm_exits"]["MMIO"] >= 7
    assert report["rmi_calls"]["RMI_REC_CREATE"] == 2 == report["rmi_calls"]["RMI_REC_DESTROY"]


def test_the_default_realm_as_a_user_runs_it(tmp_path):
    """`ccasim run` in a subprocess: the console as it runs, then the summary."""
    proc = subprocess.run([sys.executable, "-m", "ccasim", "run"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == ""
    out = proc.stdout
    assert out.index("ccasim realm kernel: 2 CPU(s)") < out.index("== realm: 256 MiB")
    assert re.search(r"== attestation token: \d+ bytes, verified", out)
    assert "RIM = ccasim measure's prediction" in out
    assert re.search(r"== host pages: delegated (\d+), mapped \d+, returned \1, leaked 0", out)
    assert re.search(r"== power off after [\d.]+ s", out)


def test_a_multi_vcpu_2_gib_realm_as_a_script_runs_it(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ccasim", "run", "-c", "4", "-m", "2G", "--json",
         "--guest-arg", "touch_mib=1"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert_clean_run(report)
    assert report["realm"]["vcpus"] == 4 and report["realm"]["ram_size"] == 2 << 30
    assert report["realm"]["ipa_bits"] == 33  # kvmtool: RAM ends at 0x1_0000_0000
    assert "smp: brought up 3 of 3 secondary CPU(s)" in report["console"]
    per_vcpu = report["rec_exits_per_vcpu"]
    assert sorted(per_vcpu) == ["0", "1", "2", "3"]
    assert all(v.get("SYNC (data abort)", 0) >= 256 for v in per_vcpu.values())


# -- measure predicts run ----------------------------------------------------------------


LAYOUTS = {
    "64 MiB, 1 vCPU": ["-c", 1, "-m", "64M"],
    "1 GiB, 3 vCPUs, SHA-512": ["-c", 3, "-m", "1G", "--measurement-algo", "sha512"],
    "initrd and bootargs": ["-c", 2, "-m", "128M", "-i", "{initrd}", "-p", "console=hvc0 quiet"],
    "firmware at an address": [
        "-c",
        2,
        "-m",
        "256M",
        "-f",
        "{firmware}",
        "--firmware-address",
        "0x80200000",
    ],
    "RPV, measurement log": [
        "-c",
        1,
        "-m",
        "32M",
        "--realm-pv",
        "tenant-7",
        "--measurement-log",
    ],
    "3 GiB, no SVE, PMU": ["-c", 2, "-m", "3G", "--disable-sve", "--pmu", "--pmu-counters", 4],
}


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_the_rim_measure_predicts_is_the_rim_run_produces(capsys, tmp_path, layout):
    files = {
        "initrd": tmp_path / "initrd",
        "firmware": tmp_path / "fw.bin",
    }
    files["initrd"].write_bytes(bytes(range(256)) * 300)
    files["firmware"].write_bytes(b"\x1f\x20\x03\xd5" * 3000)  # AArch64 NOPs, not a guest image
    args = [str(a).format(**files) for a in LAYOUTS[layout]]
    kernel = [] if "-f" in args else ["-k", image(tmp_path, **QUICK)]
    status, report, err = run_json(capsys, *kernel, *args)
    assert status == 0, err
    assert_clean_run(report)
    assert report["measurements"]["RIM"] == predicted_rim(capsys, *kernel, *args)
    if "-f" in args:
        assert report["realm"]["guest"]["in_place_of_aarch64"]
        assert any(i["name"] == "firmware" and i["ipa"] == 0x8020_0000
                   for i in report["realm"]["images"])  # fmt: skip


@settings(max_examples=12, deadline=None)
@given(
    mem_mib=st.sampled_from([16, 34, 128, 510, 2048]),
    cpus=st.integers(1, 4),
    algo=st.sampled_from(["sha256", "sha512"]),
    rpv=st.text("abcxyz0129", max_size=20),
    params=st.text("abc =", max_size=30),
    initrd=st.binary(max_size=9000),
)
def test_any_layout_both_accept_has_one_rim(tmp_path_factory, mem_mib, cpus, algo, rpv,
                                            params, initrd):  # fmt: skip
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    tmp = tmp_path_factory.mktemp("layout")
    kernel = image(tmp, **QUICK)
    args = ["-c", str(cpus), "-m", f"{mem_mib}M", "--measurement-algo", algo, "-k", kernel]
    if rpv:
        args += ["--realm-pv", rpv]
    if params.strip():
        args += ["-p", params]
    if initrd:
        (tmp / "initrd").write_bytes(initrd)
        args += ["-i", str(tmp / "initrd")]
    outputs = []
    for argv in (["measure", *PLATFORM, "kvmtool", "--realm", *args], ["run", "--json", *args]):
        out = StringIO()
        with redirect_stdout(out), redirect_stderr(StringIO()):
            assert main(argv) == 0
        outputs.append(out.getvalue())
    report = json.loads(outputs[1])
    assert_clean_run(report)
    assert f"RIM: {report['measurements']['RIM']}" in outputs[0]


# -- what runs ---------------------------------------------------------------------------


def test_a_real_kernel_image_is_measured_and_the_default_runs_in_its_place(capsys):
    status, report, err = run_json(capsys, "-k", "examples/Image", "--guest-arg", "shares=2")
    assert status == 0
    assert "examples/Image is an arm64 Image" in err and "not AArch64 code" in err
    assert report["realm"]["guest"]["in_place_of_aarch64"]
    assert report["realm"]["guest"]["params"] == {"shares": 2}
    assert "shared and unshared 2 buffer(s)" in report["console"]
    assert report["measurements"]["RIM"] == predicted_rim(
        capsys, "-c", 2, "-m", "256M", "-k", "examples/Image"
    )


def test_guest_and_guest_arg_choose_the_embedded_program(capsys):
    status, report, _ = run_json(capsys, "--guest-arg", "touch_mib=0", "--guest-arg", "rem=")
    assert status == 0 and report["realm"]["guest"]["params"] == {"touch_mib": 0, "rem": ""}
    assert "touched 0 page(s)" in report["console"]
    assert report["measurements"]["REM0"] == "00" * 32  # nothing extended


def test_a_launch_file_gives_the_whole_launch_and_options_win(capsys, tmp_path):
    (tmp_path / "initrd").write_bytes(b"initrd" * 100)
    launch = tmp_path / "realm.toml"
    launch.write_text(
        'mem = "64M"\ncpus = 3\ninitrd = "initrd"\nmeasurement-algo = "sha512"\n'
        'guest = "ccasim-default"\n[guest-args]\ntouch_mib = 0\n[caps]\nsve-vl = 256\n'
    )
    status, report, err = run_json(capsys, "--launch", launch, "-c", 1)
    assert status == 0, err
    assert report["realm"]["vcpus"] == 1 and report["realm"]["hash_algo"] == "sha512"
    assert report["platform"]["sve_vl"] == 256
    assert any(i["name"] == "initrd" for i in report["realm"]["images"])


def test_a_launch_file_sets_the_host_and_the_rmm(capsys, tmp_path):
    launch = tmp_path / "realm.toml"
    launch.write_text('mem = "64M"\nrmm-profile = "tfrmm-1.0"\nhpmn0 = true\nhost-tick-hz = 1000\n')
    status, report, err = run_json(capsys, "--launch", launch)
    assert status == 0, err
    assert report["platform"]["rmm_profile"] == "tfrmm-1.0" and report["rec_exits"]["IRQ"] >= 1


@pytest.mark.parametrize(
    "line, message",
    [('seed = "abc"', "seed: 'abc' is not a decimal"), ("seed = 1.5", "seed: '1.5' is not"),
     ("timeout = -3", "timeout: '-3' is negative"), ('timeout = "x"', "timeout: 'x' is not"),
     ("hpmn0 = 3", "hpmn0: '3' is not true or false"), ("host-tick-hz = true", "host-tick-hz"),
     ('rmm-profile = "x"', "rmm-profile: 'x' is not one of"), ("seed = [1]", "seed must be")],
)  # fmt: skip
def test_a_launch_file_value_is_checked_as_its_option(capsys, tmp_path, line, message):
    """Each value of a launch file passes the check its command-line option does (before,
    a timeout that was not a number stopped the run with an internal error)."""
    launch = tmp_path / "realm.toml"
    launch.write_text(line + "\n")
    status, out, err = cli(capsys, "run", "--launch", launch)
    assert status != 0 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"ccasim: error: {launch}: ") and message in err, err


# -- errors ------------------------------------------------------------------------------


ERRORS = {
    "bad size": (["-m", "3M"], "the RAM size must be a non-zero multiple of 2 MiB"),
    "missing image": (["-k", "/nonexistent/Image"], "cannot read kernel /nonexistent/Image"),
    "IPA width above the RMM's": (["--ipa-bits", "32", "-m", "4G"], "needs a 34-bit IPA"),
    "hash the RMM lacks": (
        ["--hash-algo", "sha256", "--measurement-algo", "sha512"],
        "hash algorithm sha512) failed: EINVAL",
    ),
    "unknown program": (["--guest", "nope"], "no program 'nope'"),
    "bad guest argument": (["--guest-arg", "touch_mib"], "is not KEY=VALUE"),
    "unknown parameter": (["--guest-arg", "colour=1"], "takes touch_mib, shares, challenge"),
    "parameter of the wrong type": (["--guest-arg", "touch_mib=lots"], "'lots' is not a number"),
    "impossible RMI_FEATURES": (["--rmi-features", "0"], "--rmi-features 0x0: num_bps=1"),
    "bad challenge": (["--challenge", "abcd"], "2 bytes: give 32 to 64"),
    "bad launch file": (["--launch", "/nonexistent.toml"], "cannot read launch file"),
    "unknown kvmtool option": (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    "no host tick": (["--host-tick-hz", "0"], "--host-tick-hz: a tick of 0 Hz"),
    "a tick faster than the counter": (["--host-tick-hz", "1000000000"], "of 1000000000 Hz"),
}


@pytest.mark.parametrize("case", ERRORS, ids=list(ERRORS))
def test_every_error_is_one_line_and_a_failing_status(capsys, case):
    argv, message = ERRORS[case]
    status, out, err = cli(capsys, "run", *argv)
    assert status != 0 and err.count("\n") == 1 and err.startswith("ccasim: error:"), err
    assert message in err and "Traceback" not in err + out


def test_a_launch_file_with_an_impossible_platform_is_one_line(capsys, tmp_path):
    launch = tmp_path / "realm.toml"
    launch.write_text("[caps]\nnum-bps = 99\n")
    status, out, err = cli(capsys, "run", "--launch", launch)
    assert status == 1 and out == "" and err.count("\n") == 1
    assert f"{launch} [caps]: num_bps=99 is outside 2..64" in err


def test_guest_arguments_in_a_launch_file_are_checked_like_options(capsys, tmp_path):
    launch = tmp_path / "realm.toml"
    launch.write_text("[guest-args]\ntouch_mib = true\n")
    status, _, err = cli(capsys, "run", "--launch", launch)
    assert status == 2 and err.count("\n") == 1 and "touch_mib=True is not a number or text" in err
    status, _, err = cli(
        capsys, "guest", "image", "ccasim-default", "colour=1", "-o", tmp_path / "x"
    )
    assert status == 2 and "takes touch_mib" in err and not (tmp_path / "x").exists()


def test_a_refused_realm_leaves_the_host_balanced(capsys):
    status, report, err = run_json(capsys, "--hash-algo", "sha256", "--measurement-algo", "sha512")
    assert status == 1 and err.count("\n") == 1 and report["refused"]
    assert report["pages"]["balanced"] and report["pages"]["host"]["leaked"] == 0


def test_a_guest_that_crashes_is_named_with_its_line(capsys, tmp_path):
    status, report, err = run_json(capsys, "-k", image(tmp_path, "t.kvm-crash"))
    assert status == 1 and err.count("\n") == 1
    assert "the guest crashed on vCPU 0 at" in err and "kvm_programs.py" in err
    assert "RuntimeError: the realm kernel panics" in err
    assert report["ended"] == "reset" and report["pages"]["balanced"]


def test_guest_options_do_not_apply_to_a_guest_image(capsys, tmp_path):
    status, _, err = cli(capsys, "run", "-k", image(tmp_path), "--guest-arg", "shares=1")
    assert status == 1 and "is a ccasim guest image of 'ccasim-default'" in err


# -- the trace -----------------------------------------------------------------------------


def test_the_trace_at_level_all_has_every_rmi_rsi_and_psci_call(capsys, tmp_path):
    """``--trace-level all``: every call, each a record TF-RMM's format would hold, and the
    measurement hashes (TF-RMM's at level 50), the rest ccasim's notes; as many RMI records
    as KVM made RMI calls."""
    trace = tmp_path / "rmm.log"
    status, report, _ = run_json(
        capsys, "--trace", trace, "--trace-level", "all", "--guest-arg", "touch_mib=0"
    )
    assert status == 0
    lines = trace.read_text().splitlines()
    records = list(parse_log(lines, measurements=True))
    assert len(records) == len([t for t in lines if not t.startswith(ANNOTATION)])
    assert any(r.interface == "MEASUREMENT" for r in records)  # level all: VERBOSE's too
    assert len([r for r in records if r.interface == "RMI"]) == sum(report["rmi_calls"].values())
    names = {r.name for r in records}
    for call in ("RSI_VERSION", "RSI_REALM_CONFIG", "RSI_IPA_STATE_SET",
                 "RSI_ATTEST_TOKEN_INIT", "RSI_MEASUREMENT_EXTEND", "RSI_HOST_CALL",
                 "PSCI_c4000003", "PSCI_84000008"):  # CPU_ON, SYSTEM_OFF  # fmt: skip
        assert call in names, call


def test_the_host_tick_interrupts_the_realm_and_its_token_signing(capsys, tmp_path):
    """--host-tick-hz: KVM arms the host's EL2 timer for the next tick at each REC entry. At
    1000 Hz the 2 ms of a token's signing meets a tick: RSI_INCOMPLETE with nothing copied
    and a REC exit due to IRQ (A7.2.2), the guest calls again, and the token still verifies.
    Without the tick no CONTINUE is interrupted."""
    counts = {}
    for hz in (None, 1000):
        trace = tmp_path / f"{hz}.log"
        tick = [] if hz is None else ["--host-tick-hz", hz]
        status, report, err = run_json(
            capsys, *tick, "--trace", trace, "--guest-arg", "touch_mib=8"
        )
        assert status == 0, err
        assert_clean_run(report)
        counts[hz] = report["rec_exits"].get("IRQ", 0), trace.read_text().count("INCOMPLETE 0")
    (irqs_off, incomplete_off), (irqs_on, incomplete_on) = counts[None], counts[1000]
    assert incomplete_off == 0 and incomplete_on >= 1
    assert irqs_on >= irqs_off + incomplete_on
