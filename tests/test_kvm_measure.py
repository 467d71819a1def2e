"""A realm built through ccasim.kvm, the way kvmtool and QEMU drive the v8 uAPI, has the RIM
that ``ccasim measure`` predicts for the same command line."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccasim.measure import Blob, Launch, Region
from ccasim.vmm import kvmtool, qemu
from kvm_host import balanced, realm_from_launch
from strategies import host_capabilities
from test_measure import HOST, arm64_image, predicted

MiB = 1 << 20


@pytest.fixture
def files(tmp_path):
    kernel = tmp_path / "Image"
    kernel.write_bytes(arm64_image(300_000))
    initrd = tmp_path / "initrd"
    initrd.write_bytes(hashlib.sha512(b"initrd").digest() * 1000 + b"tail")
    return kernel, initrd


def rim_of(image: Launch) -> list[bytes]:
    realm = realm_from_launch(image)
    measurements = realm.kvm.machine.realm_measurements(realm.vm.rd)
    realm.vm.close()
    assert balanced(realm.kvm)
    return measurements


@pytest.mark.parametrize("argv", [
    ["--realm", "-c", "2", "-m", "512M", "-p", "quiet"],
    ["--realm", "-c", "1", "-m", "64", "--measurement-algo", "sha512"],
    ["--realm", "-c", "1", "-m", "256", "--measurement-log"],
    ["--realm", "-c", "3", "-m", "128", "--realm-pv", "personal", "--sve-max-vl", "256"],
    ["--realm", "-c", "1", "-m", "128", "--pmu", "--pmu-counters", "7"],
])  # fmt: skip
def test_a_kvmtool_realm_built_through_kvm_has_the_predicted_rim(files, argv):
    kernel, initrd = files
    image = kvmtool.launch(HOST, [*argv, "-k", str(kernel), "-i", str(initrd)], None)
    assert rim_of(image) == predicted(image)


def test_a_qemu_realm_built_through_kvm_has_the_predicted_rim(files):
    kernel, initrd = files
    argv = ["-m", "1G", "-smp", "2", "-kernel", str(kernel), "-initrd", str(initrd)]
    argv += ["-object", "rme-guest,id=r0,measurement-algorithm=sha256"]
    image = qemu.launch(HOST, argv, None)
    assert rim_of(image) == predicted(image)


@st.composite
def layouts(draw):
    ipa_bits = draw(st.integers(33, 44))
    base = draw(st.integers(1, 8)) * 256 * MiB
    size = draw(st.integers(1, 8)) * MiB + draw(st.integers(0, 3)) * 4096
    blobs, cursor = [], base
    for i in range(draw(st.integers(0, 3))):
        ipa = cursor + draw(st.integers(0, 64)) * 4
        length = draw(st.integers(1, 3 * 4096))
        if ipa + length > base + size:
            break
        blobs.append(Blob(f"b{i}", ipa, hashlib.sha256(bytes([i])).digest() * (length // 32 + 1)))
        cursor = -(-(ipa + len(blobs[-1].data)) // 4096) * 4096
    unmeasured = []
    if draw(st.booleans()) and cursor + 4096 <= base + size:
        unmeasured.append(Region("log", cursor, 4096))
    caps = draw(host_capabilities(ipa_bits))
    registers = st.integers(0, (1 << 64) - 1)
    return Launch(caps, [(base, size)], blobs, draw(registers), draw(registers),
                  draw(st.binary(min_size=64, max_size=64)), unmeasured,
                  vcpus=draw(st.integers(1, 3)))  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image=layouts())
def test_any_layout_built_through_kvm_has_the_predicted_rim(image):
    """Property: IPA size, RAM, images, unmeasured pages, debug, SVE, PMU, hash and RPV set
    through the uAPI (ID registers, CONFIG_REALM) reach the RMM as the prediction assumes."""
    assert rim_of(image) == predicted(image)
