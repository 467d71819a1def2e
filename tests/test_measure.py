"""``ccasim measure``: RIM prediction (A7.1.1) for kvmtool, QEMU and custom realms.

The central claim is agreement: building the realm with the RMI calls KVM makes
(:mod:`kvm_build`) gives the RMM model the same RIM the calculator predicts, for the VMMs'
layouts and for arbitrary ones (property test).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import itertools
import json
import re
import struct
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import ccasim
from ccasim import guest
from ccasim.cli import main
from ccasim.measure import (
    Blob,
    Capabilities,
    CapabilityError,
    Launch,
    LaunchError,
    Region,
    RimCalculator,
)
from ccasim.rmi import levels
from ccasim.rmm.features import RmmFeatures
from ccasim.vmm import fdt, kvmtool, qemu
from ccasim.vmm.capabilities import load_toml
from kvm_build import KvmRealm
from strategies import host_capabilities
from support import Host
from test_measurement import KAT_DATA, KAT_REALM_SHA256, KAT_REALM_SHA512, KAT_REC, KAT_RIPAS
from test_realm_exec import SEEN

MiB, GiB = 1 << 20, 1 << 30
HOST = Capabilities(ipa_bits=48, num_bps=6, num_wps=4, sve_vl=0, pmu=False, pmu_num_ctrs=0)


def arm64_image(size: int, text_offset: int = 0, seed: bytes = b"kernel") -> bytes:
    """A stand-in arm64 Image: a valid header, then deterministic non-zero bytes."""
    header = struct.pack("<IIQQQQQQ4sI", 0, 0, text_offset, size, 0xA, 0, 0, 0, b"ARM\x64", 0)
    body = b"".join(
        hashlib.sha256(seed + i.to_bytes(4, "little")).digest() for i in range(size // 32 + 1)
    )
    return header + body[: size - len(header)]


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def rim_lines(out: str) -> dict[str, str]:
    """The RIM: and REMn: lines of ``ccasim measure``'s output."""
    pairs = (line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return {k: v for k, v in pairs if re.fullmatch(r"RIM|REM\d", k)}


def built(image: Launch, vcpus: int = 1) -> list[bytes]:
    """The realm built through Machine.smc as KVM would; its RIM and REMs."""
    return KvmRealm(Host(), image).build(vcpus)


def predicted(image: Launch) -> list[bytes]:
    size = 32 if image.caps.hash_algo == "sha256" else 64
    return [m[:size] for m in RimCalculator(image).compute()]


@pytest.fixture
def files(tmp_path):
    kernel = tmp_path / "Image"
    kernel.write_bytes(arm64_image(300_000))
    initrd = tmp_path / "initrd"
    initrd.write_bytes(hashlib.sha512(b"initrd").digest() * 1000 + b"tail")
    firmware = tmp_path / "firmware"
    firmware.write_bytes(b"\x1f\x20\x03\xd5" * 5000)
    return kernel, initrd, firmware


# -- known answers -----------------------------------------------------------------------


def test_rim_known_answers_through_the_cli(capsys, tmp_path):
    """The RMM core's KATs (test_measurement), step by step, from ``ccasim measure custom``."""
    page = tmp_path / "page"
    page.write_bytes(b"\xa5" * 4096)
    caps = ["--ipa-bits", 48, "--num-bps", 2, "--num-wps", 2, "--sve-vl", 0, "--pmu", "false"]
    argv = ["measure", "-v", *caps, "--hash-algo", "sha256", "custom", "--ram", "0x1000:0x1000"]
    status, out, err = run(capsys, *argv, "--load", f"{page}@0x1000", "--pc", 0x5555555611A5)
    assert (status, err) == (0, "")
    steps = [line.split()[0] for line in out.splitlines()[:4]]
    assert steps == [KAT_REALM_SHA256, KAT_RIPAS, KAT_DATA, KAT_REC]
    assert rim_lines(out) == {"RIM": KAT_REC, **{f"REM{i}": "0" * 64 for i in range(4)}}


def test_sha512_realm_create_known_answer():
    caps = Capabilities(ipa_bits=48, num_bps=2, num_wps=2, sve_vl=0, pmu=False, hash_algo="sha512")
    calc = RimCalculator(Launch(caps, [], [], pc=0, x0=0))
    calc.compute()
    assert calc.steps[0].rim.hex() == KAT_REALM_SHA512


# -- RIPAS granularity -------------------------------------------------------------------


@pytest.mark.parametrize(
    "ipa_bits, level",
    [(32, 2), (33, 2), (34, 2), (35, 1), (39, 1), (40, 1), (43, 1), (44, 0), (48, 0)],
)
def test_rtt_start_level_follows_kvm(ipa_bits, level):
    assert levels.start_level(ipa_bits) == level


@pytest.mark.parametrize(
    "base, top, ipa_bits, sizes",
    [
        (0x8000_0000, 0xA000_0000, 33, [2 * MiB] * 256),  # kvmtool 512 MiB: no 1 GiB level
        (0x4000_0000, 0x8000_0000, 41, [GiB]),  # QEMU 1 GiB
        (0x4000_0000, 0x8000_0000, 33, [2 * MiB] * 512),
        (0x8000_1000, 0x8040_0000, 40, [4096] * 511 + [2 * MiB]),
        (0x3FE0_0000, 0x8000_1000, 40, [2 * MiB, GiB, 4096]),
        (GiB, 1 << 40, 48, [GiB] * 511 + [512 * GiB]),
    ],
)
def test_ripas_blocks(base, top, ipa_bits, sizes):
    blocks = levels.blocks(base, top, levels.start_level(ipa_bits))
    assert [t - b for b, t in blocks] == sizes


@given(
    ipa_bits=st.integers(32, 48),
    base=st.integers(0, 1 << 20).map(lambda g: g * 4096),
    pages=st.integers(1, 1 << 19),
)
def test_ripas_blocks_are_maximal_rtt_entries(ipa_bits, base, pages):
    """Each block is one RTT entry at a level KVM uses, aligned, tiling the range, and the
    next level up would not have been aligned or fitted (the greedy choice)."""
    top = base + pages * 4096
    blocks = levels.blocks(base, top, levels.start_level(ipa_bits))
    assert blocks[0][0] == base and blocks[-1][1] == top
    allowed = [levels.level_size(lv) for lv in range(levels.start_level(ipa_bits), 4)]
    for (start, end), nxt in zip(blocks, [*blocks[1:], (top, None)], strict=True):
        size = end - start
        assert size in allowed and start % size == 0 and end == nxt[0]
        bigger = [s for s in allowed if s > size]
        if bigger:
            larger = min(bigger)
            assert start % larger or start + larger > top


# -- agreement with the RMM model ----------------------------------------------------------


def test_kvmtool_realm_agrees_with_rmi_construction(files):
    kernel, initrd, _ = files
    argv = ["--realm", "-c", "2", "-m", "512M", "-k", str(kernel), "-i", str(initrd), "-p", "quiet"]
    image = kvmtool.launch(HOST, argv, None)
    assert image.caps.ipa_bits == 33 and image.caps.hash_algo == "sha256"
    dtb = next(b for b in image.blobs if b.name == "dtb")
    # as a real kvmtool populated it for -m 512 (../shared/rmm-logs/opencca-fosdem2026-demo.txt:
    # "Populated Realm memory area : 8fe00000 - 8fe10000")
    assert (dtb.ipa, len(dtb.data)) == (0x8FE0_0000, 64 * 1024)
    init = next(b for b in image.blobs if b.name == "initrd")
    assert init.ipa % 4 == 0 and dtb.ipa - 8 < init.ipa + len(init.data) <= dtb.ipa
    assert (image.pc, image.x0) == (0x8000_0000, dtb.ipa)
    assert built(image, vcpus=2) == predicted(image)


def test_arm_cca_forge_kvmtool_command_line(files):
    """The lkvm command line of Arm's CCA FVP stack README (../shared/rmm-logs/
    arm-cca-forge-readme-fvp-tfrmm-v0.8.0.txt), with its options that do not touch realm
    memory, is understood."""
    _, _, firmware = files
    argv = ["--realm", "--disable-sve", "--irqchip=gicv3-its", "--firmware", str(firmware)]
    argv += ["-c", "1", "-m", "512", "--no-pvtime", "--force-pci", "--disk", "guest-disk.img"]
    argv += ["--measurement-algo=sha256", "--restricted_mem"]
    image = kvmtool.launch(HOST, argv, None)
    assert [b.name for b in image.blobs] == ["firmware", "dtb"]
    assert image.caps.hash_algo == "sha256" and image.realm_params().sve_vl == 0
    assert built(image) == predicted(image)


def test_small_kvmtool_realm_puts_the_dtb_2mib_below_the_end_of_ram(files):
    kernel, _, _ = files
    image = kvmtool.launch(HOST, ["--realm", "-c", "1", "-m", "64", "-k", str(kernel)], None)
    assert next(b for b in image.blobs if b.name == "dtb").ipa == 0x8000_0000 + 62 * MiB
    assert built(image) == predicted(image)


def test_kvmtool_firmware_realm_agrees(files):
    _, _, firmware = files
    argv = ["--realm", "-c", "1", "-m", "1G", "--firmware", str(firmware)]
    argv += ["--measurement-algo", "sha512"]
    image = kvmtool.launch(HOST, argv, None)
    assert image.pc == 0x8000_0000 and image.caps.hash_algo == "sha512" and not image.notes
    assert next(b for b in image.blobs if b.name == "dtb").ipa == 0x8000_0000 + GiB - 2 * MiB
    assert built(image) == predicted(image)


def test_qemu_realm_agrees_with_rmi_construction(files):
    kernel, initrd, _ = files
    rpv = base64.b64encode(bytes(range(64))).decode()
    argv = ["-M", "virt", "-cpu", "host", "-enable-kvm", "-m", "1G", "-smp", "2"]
    argv += ["-kernel", str(kernel), "-initrd", str(initrd), "-append", "console=hvc0"]
    argv += ["-object", f"rme-guest,id=r0,personalization-value={rpv}"]
    image = qemu.launch(HOST, argv, None)
    assert image.caps.ipa_bits == 41 and image.caps.hash_algo == "sha512"
    assert image.rpv == bytes(range(64))
    by_name = {b.name: b for b in image.blobs}
    assert by_name["initrd"].ipa == 0x4800_0000
    assert by_name["dtb"].ipa == 0x4820_0000  # after the initrd, 2 MiB aligned
    assert (image.pc, image.x0) == (0x4000_0000, 0x4820_0000)
    assert built(image, vcpus=2) == predicted(image)


def test_qemu_firmware_realm_agrees(files):
    kernel, _, firmware = files
    argv = ["-m", "256M", "-bios", str(firmware), "-kernel", str(kernel)]
    argv += ["-object", "rme-guest,id=r0,measurement-algorithm=sha256"]
    image = qemu.launch(HOST, argv, None)
    assert image.notes == [
        "with -bios, QEMU hands -kernel and -initrd to the firmware (fw_cfg): not in the RIM"
    ]
    assert [b.name for b in image.blobs] == ["firmware", "dtb"]  # -kernel goes over fw_cfg
    assert (image.pc, image.x0) == (0, 0)
    assert next(b for b in image.blobs if b.name == "dtb").ipa == 0x4000_0000
    assert built(image) == predicted(image)


def test_measurement_logs_are_populated_unmeasured_after_the_rec(files):
    kernel, initrd, _ = files
    kvm_argv = ["--realm", "-c", "1", "-m", "512M", "-k", str(kernel), "-i", str(initrd)]
    plain = kvmtool.launch(HOST, kvm_argv, None)
    logged = kvmtool.launch(HOST, [*kvm_argv, "--measurement-log"], None)
    assert [(r.ipa, r.size) for r in logged.unmeasured] == [(0x8FFF_0000, 64 * 1024)]
    assert predicted(plain) != predicted(logged) == built(logged)
    qemu_argv = ["-m", "1G", "-kernel", str(kernel), "-object", "rme-guest,measurement-log=on"]
    image = qemu.launch(HOST, qemu_argv, None)
    dtb = next(b for b in image.blobs if b.name == "dtb")
    assert [b.ipa for b in image.unmeasured] == [dtb.ipa + MiB]
    assert predicted(image) == built(image)


@st.composite
def realm_images(draw):
    ipa_bits = draw(st.integers(32, 44))
    limit = 1 << (ipa_bits - 1)
    unit = draw(st.sampled_from([4096, 2 * MiB, GiB]))
    base = draw(st.integers(0, min(limit - unit, 64 * GiB) // unit)) * unit
    base += draw(st.integers(0, 3)) * 4096
    size = draw(st.integers(1, 3)) * unit + draw(st.integers(-3, 3)) * 4096
    assume(size > 0 and base + size <= limit)
    blobs = []
    for i in range(draw(st.integers(0, 3))):
        ipa = base + draw(st.integers(0, size - 1))
        length = draw(st.integers(1, 3 * 4096))
        if ipa + length > limit:
            continue
        blobs.append(
            Blob(f"blob{i}", ipa, hashlib.sha256(bytes([i])).digest() * (length // 32 + 1))
        )
    unmeasured = []
    if draw(st.booleans()):
        ipa = base + draw(st.integers(0, size - 1)) // 4096 * 4096
        unmeasured.append(Region("log", ipa, 4096 * draw(st.integers(1, 2))))
    ranges = sorted((b.first_granule, b.end) for b in blobs + unmeasured)
    assume(all(a[1] <= b[0] for a, b in itertools.pairwise(ranges)))
    assume(all(end <= limit for _, end in ranges))
    caps = draw(host_capabilities(ipa_bits))
    registers = st.integers(0, (1 << 64) - 1)
    return Launch(caps, [(base, size)], blobs, draw(registers), draw(registers), bytes(64),
                      unmeasured)  # fmt: skip


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(image=realm_images(), vcpus=st.integers(1, 3))
def test_any_realm_agrees_with_rmi_construction(image, vcpus):
    """Whatever the IPA size, RAM range, blob placement and hash: the RMM's RIM after KVM's
    construction equals the prediction."""
    assert built(image, vcpus) == predicted(image)


def test_the_cli_prints_what_the_rmm_computes(capsys, files):
    kernel, initrd, _ = files
    argv = ["--realm", "-c", "1", "-m", "256M", "-k", kernel, "-i", initrd]
    status, out, err = run(capsys, "measure", "-c", "/dev/null", "--ipa-bits", 48,
                           "--num-bps", 6, "--num-wps", 4, "--sve-vl", 0, "--pmu", "false",
                           "kvmtool", *argv)  # fmt: skip
    assert (status, err) == (0, "")
    rim = built(kvmtool.launch(HOST, [str(a) for a in argv], None))[0]
    assert rim_lines(out)["RIM"] == rim.hex()


def test_a_predicted_rim_verifies_the_running_realms_token(capsys, tmp_path):
    """The whole relying-party story: predict the RIM, build and run the realm, have it ask
    for a token (RSI 1.0 A7.2), verify the token against the prediction."""
    challenge = bytes(range(64))
    program = guest.image("t.attest", tag="measure-e2e", challenge=challenge)
    page = tmp_path / "guest.img"
    page.write_bytes(program.ljust(0x8000, b"\0"))
    caps = Capabilities(ipa_bits=33, num_bps=6, num_wps=4, sve_vl=0, pmu=False,
                        hash_algo="sha512")  # fmt: skip
    image = Launch(caps, [(0x8000_0000, 2 * MiB)], [Blob("guest", 0x8000_0000,
                       page.read_bytes())], pc=0x8000_0000, x0=0, rpv=b"r" * 64)  # fmt: skip
    host = Host()
    kvm = KvmRealm(host, image)
    kvm.build()
    host.enter(kvm.recs[0], host.ns_page())
    token = tmp_path / "token.cbor"
    token.write_bytes(SEEN["measure-e2e"][0])
    cpak = tmp_path / "cpak.pem"
    cpak.write_bytes(
        host.m.attestation.cpak.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    status, out, _ = run(capsys, "measure", "--ipa-bits", 33, "--num-bps", 6, "--num-wps", 4,
                         "--sve-vl", 0, "--pmu", "false", "--hash-algo", "sha512", "custom",
                         "--ram", "0x80000000:2M", "--load", f"{page}@0x80000000",
                         "--pc", "0x80000000")  # fmt: skip
    rim = rim_lines(out)["RIM"]
    verify = ["token", "verify", token, "--cpak", cpak, "--expect-rim", rim]
    verify += ["--challenge", challenge.hex(), "--expect-rpv", (b"r" * 64).hex()]
    status, out, _ = run(capsys, *verify)
    assert status == 0, out
    status, out, _ = run(capsys, *verify[:5], "--expect-rim", "00" * 64)
    assert status == 1 and "FAIL  realm initial measurement" in out


# -- capabilities --------------------------------------------------------------------------


def test_config_files_only_lower_what_earlier_ones_allowed():
    first = load_toml("a", "ipa_bits = 52\nnum_bps = 6\npmu = true\nlpa2 = false\n")
    second = load_toml("b", "ipa_bits = 48\nnum_bps = 16\npmu = false\nlpa2 = true\nnum_wps=4")
    caps = Capabilities().restrict(first).restrict(second)
    assert (caps.ipa_bits, caps.num_bps, caps.num_wps) == (48, 6, 4)
    assert (caps.pmu, caps.lpa2) == (False, False)
    # Options set, whatever the files allowed.
    assert caps.update(Capabilities(num_bps=16, pmu=True)).num_bps == 16


@pytest.mark.parametrize(
    "text, message",
    [
        ("ipa_bits = ", "not valid TOML"),
        ("colour = 3", "unknown key 'colour'"),
        ("pmu = 1", "pmu must be bool"),
        ("num_bps = true", "num_bps must be int"),
        ("num_bps = 1", "num_bps=1 is outside 2..64"),
        ("sve_vl = 100", "sve_vl=100 must be 0 or a multiple of 128"),
        ('hash_algo = "md5"', "must be sha256 or sha512"),
    ],
)
def test_bad_config_files(capsys, tmp_path, text, message):
    config = tmp_path / "host.toml"
    config.write_text(text)
    with pytest.raises(CapabilityError, match=message):
        load_toml(str(config), text)
    status, out, err = run(capsys, "measure", "-c", config, "kvmtool", "--realm")
    assert status == 1 and out == ""
    assert err.startswith(f"ccasim: error: {config}: ") and err.count("\n") == 1


def test_kvmtool_options_lower_the_host_capabilities(files):
    kernel, _, _ = files
    host = Capabilities(ipa_bits=48, num_bps=6, num_wps=4, sve_vl=512, pmu=True, pmu_num_ctrs=8)
    base = ["--realm", "-c", "1", "-m", "128M", "-k", str(kernel)]
    plain = kvmtool.launch(host, base, None).realm_params()
    assert (plain.sve_vl, plain.flags & 0b110) == (3, 0b010)  # PMU only with --pmu
    lowered = kvmtool.launch(
        host, [*base, "--pmu", "--pmu-counters", "4", "--sve-max-vl", "256"], None
    ).realm_params()
    assert (lowered.sve_vl, lowered.pmu_num_ctrs, lowered.flags & 0b110) == (1, 4, 0b110)
    raised = kvmtool.launch(host, [*base, "--pmu-counters", "31", "--sve-max-vl", "2048"], None)
    assert (raised.caps.pmu_num_ctrs, raised.caps.sve_vl) == (8, 512)
    assert kvmtool.launch(host, [*base, "--disable-sve"], None).realm_params().sve_vl == 0


def test_qemu_cpu_properties_lower_the_host_capabilities(files):
    kernel, _, _ = files
    host = Capabilities(ipa_bits=48, num_bps=6, num_wps=4, sve_vl=512, pmu=True, pmu_num_ctrs=8)
    argv = ["-kernel", str(kernel), "-object", "rme-guest,id=r0"]
    argv += ["-cpu", "host,num-breakpoints=3,num-watchpoints=2,sve=off,num-pmu-counters=2"]
    params = qemu.launch(host, argv, None).realm_params()
    assert (params.num_bps, params.num_wps, params.sve_vl, params.pmu_num_ctrs) == (2, 1, 0, 2)
    off = qemu.launch(host, [*argv, "-cpu", "host,pmu=off"], None).realm_params()
    assert off.flags & 0b100 == 0 and off.pmu_num_ctrs == 0


def test_personalisation_value_is_not_measured(files):
    kernel, _, _ = files
    argv = ["--realm", "-c", "1", "-m", "32M", "-k", str(kernel)]
    plain = kvmtool.launch(HOST, argv, None)
    personal = kvmtool.launch(HOST, [*argv, "--realm-pv", "tenant-42"], None)
    assert personal.rpv == b"tenant-42".ljust(64, b"\0")
    assert predicted(plain) == predicted(personal)


# -- output --------------------------------------------------------------------------------


def test_output_formats_dtb_and_corim(capsys, tmp_path, files):
    kernel, _, _ = files
    caps = ["--ipa-bits", 48, "--num-bps", 6, "--num-wps", 4, "--sve-vl", 0, "--pmu", "false"]
    vmm = ["kvmtool", "--realm", "-c", "4", "-m", "256M", "-k", kernel, "--realm-pv", "x"]
    dtb, corim = tmp_path / "out.dtb", tmp_path / "comid.json"
    status, out, _ = run(capsys, "measure", *caps, "--output-dtb", dtb, "--corim", corim, *vmm)
    assert status == 0
    hex_values = rim_lines(out)
    _, b64, _ = run(capsys, "measure", *caps, "--format", "base64", *vmm)
    assert {k: base64.b64decode(v).hex() for k, v in rim_lines(b64).items()} == hex_values
    _, js, _ = run(capsys, "measure", *caps, "--format", "json", *vmm)
    assert json.loads(js) == {**hex_values, "hash-algo": "sha256"}
    # The DTB that was measured, given back with --dtb, gives the same RIM.
    _, again, _ = run(capsys, "measure", *caps, "--dtb", dtb, *vmm)
    assert rim_lines(again) == hex_values
    assert dtb.read_bytes()[:4] == b"\xd0\x0d\xfe\xed"
    comid = json.loads(corim.read_text())
    value = comid["triples"]["reference-values"][0]["measurement"]["value"]
    rim = value["integrity-registers"]["rim"]["value"][0]
    assert rim == "sha-256;" + base64.b64encode(bytes.fromhex(hex_values["RIM"])).decode()
    assert base64.b64decode(value["raw-value"]["value"]) == b"x".ljust(64, b"\0")


def test_a_corim_template_keeps_its_identity_and_class(capsys, tmp_path, files):
    kernel, _, _ = files
    template = {
        "tag-identity": {"id": "366d0a0a-5988-45ed-8488-2f2a544f6242", "version": 3},
        "triples": {"reference-values": [{"environment": {"class": {"vendor": "ACME"}}}]},
    }
    path, out_path = tmp_path / "template.json", tmp_path / "comid.json"
    path.write_text(json.dumps(template))
    vmm = ["kvmtool", "--realm", "-c", "1", "-m", "64M", "-k", kernel]
    status, out, _ = run(capsys, "measure", *CAPS, "--corim", out_path, "--corim-template", path,
                         *vmm)  # fmt: skip
    assert status == 0
    comid = json.loads(out_path.read_text())
    assert comid["tag-identity"] == template["tag-identity"]
    environment = comid["triples"]["reference-values"][0]["environment"]
    assert environment["class"] == {"vendor": "ACME"}
    assert base64.b64decode(environment["instance"]["value"]).hex() == rim_lines(out)["RIM"]
    path.write_text("[1, 2]")
    status, out, err = run(capsys, "measure", *CAPS, "--corim", out_path, "--corim-template",
                           path, *vmm)  # fmt: skip
    assert status == 1 and out == "" and "not a CoMID template" in err


def test_qemu_inflates_a_gzip_kernel_and_kvmtool_takes_dtb_after_its_options(tmp_path, files):
    kernel, _, _ = files
    gz = tmp_path / "Image.gz"
    gz.write_bytes(gzip.compress(kernel.read_bytes()))
    argv = ["-M", "virt,gic-version=3", "-object", "rme-guest", "-kernel"]
    plain = qemu.launch(HOST, [*argv, str(kernel)], None)
    assert predicted(qemu.launch(HOST, [*argv, str(gz)], None)) == predicted(plain)
    dtb = tmp_path / "given.dtb"
    given = fdt.build(fdt.GuestDescription(0x1000, 0x1000, 1, fdt.GicLayout(0, 0, 0)))
    dtb.write_bytes(given)
    kvm = ["--realm", "-c", "1", "-m", "64M", "-k", str(kernel)]
    after = kvmtool.launch(HOST, [*kvm, "--dtb", str(dtb)], None)
    before = kvmtool.launch(HOST, kvm, dtb.read_bytes())
    assert predicted(after) == predicted(before)
    assert next(b for b in after.blobs if b.name == "dtb").data == given.ljust(64 * 1024, b"\0")


def test_qemu_takes_the_older_measurement_algo_spelling(files):
    """As in the launches in ../shared/rmm-logs (qemu-devel-gshan-2024-06-01-smc_rmm_prefix)."""
    kernel, _, _ = files
    argv = ["-kernel", str(kernel), "-object", "rme-guest,id=r0,measurement-algo=sha256"]
    assert qemu.launch(HOST, argv, None).caps.hash_algo == "sha256"


def test_qemu_sve_lengths_lower_the_vector_length(files):
    kernel, _, _ = files
    host = Capabilities(ipa_bits=48, num_bps=6, num_wps=4, sve_vl=2048, pmu=False)
    argv = ["-object", "rme-guest", "-kernel", str(kernel), "-cpu", "host,sve128=on,sve512=on"]
    assert qemu.launch(host, argv, None).realm_params().sve_vl == 512 // 128 - 1


def test_verbose_lists_every_construction_step(capsys, files):
    kernel, initrd, _ = files
    caps = ["--ipa-bits", 48, "--num-bps", 6, "--num-wps", 4, "--sve-vl", 0, "--pmu", "false"]
    vmm = ["kvmtool", "--realm", "-c", "1", "-m", "128M", "-k", kernel, "-i", initrd]
    _, out, _ = run(capsys, "measure", "-v", *caps, *vmm)
    steps = [line.split("  ", 1)[1].split()[0] for line in out.splitlines()[:6]]
    assert steps == ["REALM_CREATE", "RTT_INIT_RIPAS", "DATA_CREATE", "DATA_CREATE",
                     "DATA_CREATE", "REC_CREATE"]  # fmt: skip
    assert out.splitlines()[5].split()[0] == rim_lines(out)["RIM"]


# -- errors --------------------------------------------------------------------------------

CAPS = ["--ipa-bits", "48", "--num-bps", "6", "--num-wps", "4", "--sve-vl", "0", "--pmu", "0"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["kvmtool", "-c", "1", "-m", "64M", "-k", "{kernel}"], "--realm is missing"),
        (["kvmtool", "--realm", "-m", "64M", "-k", "{kernel}"], "number of vCPUs"),
        (["kvmtool", "--realm", "-c", "1", "-m", "63M", "-k", "{kernel}"], "multiple of 2 MiB"),
        (["kvmtool", "--realm", "-c", "1", "-m", "6Q", "-k", "{kernel}"], "not a size"),
        (["kvmtool", "--realm", "-c", "x", "-m", "64M"], "invalid int value"),
        (["kvmtool", "--realm", "-c", "1", "-m", "64M", "-k", "{initrd}"], "arm64 Image magic"),
        (["kvmtool", "--realm", "-c", "1", "-m", "64M", "-k", "/nonexistent"], "cannot read"),
        (["kvmtool", "--realm", "-c", "1", "-m", "64M", "-k", "{kernel}", "--frob"], "unrecog"),
        (["qemu", "-kernel", "{kernel}"], "no -object rme-guest"),
        (["qemu", "-kernel", "{kernel}", "-object", "rme-guest,colour=red"], "colour"),
        (["qemu", "-object", "rme-guest,personalization-value=!!", "-kernel", "{kernel}"], "base64"),
        (["qemu", "-object", "rme-guest", "-kernel", "{kernel}", "-smp", "two"], "not a number"),
        (["qemu", "-object", "rme-guest", "-kernel", "{kernel}", "-m", "1G,slots=2"], "-m"),
        (["qemu", "-object", "rme-guest"], "give -kernel or -bios"),
        (["qemu", "-object", "rme-guest", "-kernel", "{kernel}", "-M", "sbsa-ref"], "only virt"),
        (["qemu", "-object", "rme-guest", "-kernel", "{kernel}", "-M", "virt,gic-version=2"],
         "GICv3"),
        (["qemu", "-object", "rme-guest", "-kernel", "{kernel}", "-M", "virt,highmem=off"],
         "highmem"),
        (["qemu", "-object", "rme-guest", "-kernel", "{kernel}", "-cpu", "host,sve256=off"],
         "sve256=off"),
        (["qemu", "-object", "rme-guest", "-kernel", "{gz}"], "not a valid gzip file"),
        (["kvmtool", "--realm", "-c", "1", "-m", "64M@0x80000000", "-k", "{kernel}"], "@"),
        (["kvmtool", "--realm", "-c", "0", "-m", "64M", "-k", "{kernel}"], "-c 0"),
        (["kvmtool", "--realm", "--aarch32", "-c", "1", "-m", "64M", "-k", "{kernel}"], "AArch64"),
        (["custom", "--ram", "0x80000000:1G"], "hash_algo is not known"),
        (["--hash-algo", "sha256", "--ipa-bits", "32", "custom", "--ram", "0x80000000:1G"],
         "outside the protected IPA space"),
        (["--hash-algo", "sha256", "custom", "--ram", "0x1000:0x800"], "size 0x800 is not a multiple of 4 KiB"),
        (["--hash-algo", "sha256", "custom", "--ram", "0x1800:4K"], "base 0x1800 is not a multiple of 4 KiB"),
        (["--hash-algo", "sha256", "custom", "--ram", "0x1000:0"], "the size is zero"),
        (["--hash-algo", "sha256", "custom", "--ram", "0x1000"], "BASE:SIZE"),
        (["--hash-algo", "sha256", "custom", "--load", "{kernel}@0x1000",
          "--load", "{initrd}@0x2000"], "overlap"),
        (["--hash-algo", "sha256", "custom", "--pc", "0x1" + "0" * 16], "64 bits"),
        (["--hash-algo", "sha256", "custom", "--ram=-4096:4096"], "'-4096' is negative"),
        (["--hash-algo", "sha256", "custom", "--load", "{kernel}@-4096"], "'-4096' is negative"),
        (["--hash-algo", "sha256", "custom", "--load", "{kernel}@0x1Q"], "'0x1Q' is not a number or a size"),
        (["--hash-algo", "sha256", "custom", "--x0", "1M"], "'1M' is not a decimal or 0x-hex number"),
        (["--num-bps", "99", "custom"], "num_bps=99 is outside"),
        # sizes and addresses the IPA space or the platform cannot hold
        (["kvmtool", "--realm", "-c", "1", "-m", "99999999999999999999G", "-k", "{kernel}"],
         "needs a 98-bit IPA space; the host offers 48 bits"),
        (["qemu", "-m", "999999999999T", "-kernel", "{kernel}", "-object", "rme-guest"],
         "holds up to 255 GiB of RAM"),
        (["kvmtool", "--realm", "-c", "1", "-m", "64M", "-f", "{firmware}",
          "--firmware-address", "0x" + "f" * 20], "does not fit in 64 bits"),
        (["kvmtool", "--realm", "-c", "1", "-m", "64M", "-f", "{firmware}",
          "--firmware-address", "0x83fff000"], "is not inside guest RAM"),
        (["--hash-algo", "sha256", "custom", "--ram", "0xffffffffffff0000:64K"],
         "outside the protected IPA space"),
        (["--hash-algo", "sha256", "--ipa-bits", "50", "custom"], "needs LPA2"),
        (["kvmtool", "--realm", "-c", "1", "-m", "64M", "-k", "{kernel}", "--pmu",
          "--pmu-counters", "99999999999999999999"], "kvmtool: pmu_num_ctrs=99999999999999999999 is outside 0..31"),
        (["kvmtool", "--realm", "-c", "1", "-m", "64M", "-k", "{kernel}", "--sve-max-vl", "100"],
         "kvmtool: sve_vl=100 must be 0 or a multiple of 128"),
        (["qemu", "-kernel", "{kernel}", "-object", "rme-guest", "-cpu", "host,num-breakpoints=1"],
         "qemu: num_bps=1 is outside 2..64"),
        # negative values after an option are values, not options
        (["kvmtool", "--realm", "-c", "1", "-m", "-512M", "-k", "{kernel}"],
         "kvmtool: -m: '-512M' is not a size"),
        (["qemu", "-m", "-1G", "-kernel", "{kernel}", "-object", "rme-guest"],
         "qemu: -m: '-1G' is not a size"),
        (["qemu", "-kernel", "{kernel}", "-object", "rme-guest,measurement-algorithm=md5"],
         "'md5': the RMM measures with sha256 or sha512"),
        # files that cannot be what they are given as
        (["--dtb", "{initrd}", "kvmtool", "--realm", "-c", "1", "-m", "64M", "-k", "{kernel}"],
         "initrd: not a flattened device tree (no 0xd00dfeed magic)"),
        (["kvmtool", "--realm", "-c", "1", "-m", "64M", "-k", "{kernel}", "--dtb", "{dtb}"],
         "not a valid flattened device tree: shorter than its header says"),
        (["qemu", "-kernel", "{kernel}", "-object", "rme-guest", "-dtb", "{kernel}"],
         "Image: not a flattened device tree"),
        (["--pmu", "maybe", "custom"], "not true or false"),
    ],
)  # fmt: skip
def test_bad_input_gives_one_line_errors(capsys, tmp_path, files, argv, message):
    kernel, initrd, firmware = files
    gz = tmp_path / "bad.gz"
    gz.write_bytes(b"\x1f\x8b" + bytes(30))
    truncated = tmp_path / "truncated.dtb"
    truncated.write_bytes(
        fdt.build(fdt.GuestDescription(0, 1 << 20, 1, fdt.GicLayout(0, 0, 0)))[:-9]
    )
    fmt = {"kernel": kernel, "initrd": initrd, "firmware": firmware, "gz": gz, "dtb": truncated}
    argv = [a.format(**fmt) for a in argv]
    status, out, err = run(capsys, "measure", *CAPS, *argv)
    assert status != 0 and out == ""
    assert err.startswith("ccasim: error: ") and err.count("\n") == 1, err
    assert message in err


def test_an_oversized_dtb_is_refused(capsys, tmp_path, files):
    kernel, _, _ = files
    big = tmp_path / "big.dtb"
    gic = fdt.GicLayout(0x3FFF_0000, 0x1_0000, 0x3FFD_0000)
    big.write_bytes(fdt.build(fdt.GuestDescription(0x8000_0000, 1 << 26, 1, gic, "x" * 66_000)))
    vmm = ["kvmtool", "--realm", "-c", "1", "-m", "64M", "-k", kernel]
    status, _, err = run(capsys, "measure", *CAPS, "--dtb", big, *vmm)
    assert status == 1 and re.search(r"the DTB is 66\d\d\d bytes; the VMM allows 65536", err)


@given(offset=st.integers(0, 3 * 4096), data=st.binary(min_size=1, max_size=3 * 4096))
def test_blobs_are_measured_as_zero_filled_granules(offset, data):
    """The bytes the VMM copies, with zeros from the granule start and up to the granule end."""
    blob = Blob("b", 0x8000_0000 + offset, data)
    pages = list(blob.granules())
    assert [ipa for ipa, _ in pages] == list(range(blob.first_granule, blob.end, 4096))
    flat = b"".join(bytes(page) for _, page in pages)
    lead = offset % 4096
    assert flat == bytes(lead) + data + bytes(len(flat) - lead - len(data))
    assert all(len(page) == 4096 for _, page in pages)


WORDS = ["--realm", "-c", "-m", "-k", "-i", "-p", "--firmware", "--firmware-address", "--pmu",
         "--pmu-counters", "--sve-max-vl", "--disable-sve", "--realm-pv", "--measurement-algo",
         "-kernel", "-initrd", "-bios", "-smp", "-cpu", "-object", "-M", "-append", "-dtb",
         "0", "1", "-1", "2", "64", "0x80000000", "512M", "3G", "1T", "sha512", "md5", "",
         "rme-guest", "rme-guest,measurement-algorithm=sha256", "host,pmu=maybe",
         "host,num-breakpoints=x", "host,sve=off", "{kernel}", "{initrd}", "{firmware}",
         "/nonexistent", "cpus=2", "A" * 70, "--ram", "--load", "--unmeasured", "--pc", "--x0",
         "--rpv", "-4096", "--ram=-4096:8K", "--load={kernel}@-1", "0x1000:4K", "0x80000000:2M", "0:0", "{kernel}@0x1000",
         "{initrd}@0x80000010", "@0x1000", "{kernel}@", "ff" * 65, "0x" + "f" * 17,
         "99999999999999999999G", "999999999999T", "0x8000AFFF", "-512M", "255G", "0x10M",
         "--dtb", "{dtb}", "{initrd}"]  # fmt: skip


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    vmm=st.sampled_from(["kvmtool", "qemu", "custom"]),
    valid_start=st.booleans(),
    words=st.lists(st.sampled_from(WORDS)),
)
def test_any_vmm_command_line_gives_a_result_or_one_error_line(
    capsys, files, vmm, valid_start, words
):
    """Whatever the VMM arguments: RIM lines, or one error line and a non-zero status."""
    kernel, initrd, firmware = files
    if valid_start:
        start = {"kvmtool": ["--realm", "-c", "1", "-m", "64M", "-k", "{kernel}"],
                 "qemu": ["-object", "rme-guest", "-kernel", "{kernel}"],
                 "custom": ["--ram", "0x80000000:64M"]}  # fmt: skip
        words = start[vmm] + words
    dtb = kernel.parent / "fuzz.dtb"
    dtb.write_bytes(fdt.build(fdt.GuestDescription(0, 1 << 20, 1, fdt.GicLayout(0, 0, 0))))
    argv = [w.format(kernel=kernel, initrd=initrd, firmware=firmware, dtb=dtb) for w in words]
    capsys.readouterr()
    status, out, err = run(capsys, "measure", *CAPS, "--hash-algo", "sha256", vmm, *argv)
    if status == 0:
        assert set(rim_lines(out)) == {"RIM", "REM0", "REM1", "REM2", "REM3"}
    else:
        assert out == "" and err.startswith("ccasim: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("vmm, option", [("kvmtool", "--measurement-log"), ("qemu", "-bios")])
def test_vmm_help_lists_the_options_that_are_measured(capsys, vmm, option):
    status, out, _ = run(capsys, "measure", vmm, "--help")
    assert status == 0 and option in out


def test_images_a_vmm_would_not_load_are_named(capsys, files):
    kernel, initrd, firmware = files
    vmm = ["kvmtool", "--realm", "-c", "1", "-m", "64M", "-f", firmware, "-k", kernel, "-i", initrd]
    status, out, err = run(capsys, "measure", *CAPS, *vmm)
    assert status == 0 and "RIM: " in out
    assert err == "ccasim: note: kvmtool does not load -k or -i with --firmware: not measured\n"


def test_capabilities_from_the_rmms_own_feature_register(capsys, files):
    """B4.4.6: RMI_FEATURES(0) of the machine the realm will run on gives its capabilities;
    a prediction from them matches the realm built there."""
    host = Host(ccasim.Machine(features=RmmFeatures(num_bps=6, num_wps=4, max_sve_vl=3)))
    register0 = host.rmi.features(0).check().value
    caps = Capabilities.from_rmi_features(register0)
    assert caps == Capabilities(ipa_bits=48, lpa2=False, sve_vl=512, num_bps=6, num_wps=4,
                                pmu=True, pmu_num_ctrs=31)  # fmt: skip
    kernel, initrd, _ = files
    argv = ["--realm", "-c", "1", "-m", "128M", "-k", str(kernel), "-i", str(initrd), "--pmu"]
    image = kvmtool.launch(caps, argv, None)
    assert image.realm_params().flags & 0b110 == 0b110  # SVE and PMU
    assert KvmRealm(host, image).build() == predicted(image)
    status, out, _ = run(capsys, "measure", "--rmi-features", hex(register0), "kvmtool", *argv)
    assert status == 0 and rim_lines(out)["RIM"] == predicted(image)[0].hex()


@given(register0=st.integers(0, (1 << 64) - 1))
def test_any_feature_register_value_gives_capabilities_or_a_clear_error(register0):
    try:
        caps = Capabilities.from_rmi_features(register0).validate()
    except CapabilityError as e:
        # S2SZ outside 32..52 or a single breakpoint/watchpoint (the architecture has 2+)
        assert re.match(r"(ipa_bits|num_bps|num_wps)=\d+ is outside", str(e)), e
    else:
        assert 2 <= caps.num_bps <= 64 and caps.sve_vl % 128 == 0


@pytest.mark.parametrize(
    "image, message",
    [
        (Launch(HOST, [(-4096, 8192)], [], 0, 0), "outside the protected IPA space"),
        (Launch(HOST, [], [Blob("b", -1, b"x")], 0, 0), "outside the protected IPA space"),
        (Launch(HOST, [], [], -1, 0), "pc=-0x1 does not fit"),
        (Launch(HOST, [], [], 0, 1 << 64), "x0=0x10000000000000000 does not fit"),
    ],
)
def test_the_calculator_refuses_what_no_vmm_could_build(image, message):
    with pytest.raises(LaunchError, match=message):
        RimCalculator(replace(image, caps=replace(HOST, hash_algo="sha256"))).compute()
