"""The tools' speed: tokens verified per second and ``ccasim measure`` for a 64 MiB initrd.

    python bench/bench_tools.py

Figures printed, each with a baseline measured in the same run:
- token verification (``ccasim.attest.verify_token``) of the public vectors in
  ../shared/vectors, per second, against the two raw ECDSA verifications each token needs
  (``cryptography``) on the same curves;
- predicting the RIM of a kvmtool realm (1 GiB of RAM, a 16 MiB kernel, a 64 MiB initrd)
  in-process, against hashlib SHA-256 of the same bytes page by page;
- the same through the command line (a new Python process, as a user runs it).
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ccasim import attest
from ccasim.measure import Capabilities, RimCalculator
from ccasim.vmm import kvmtool

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
TOKENS = [
    ("tokens/tfm-cca_token-legacy-tag399.cbor", "keys/cpak-p384-tfm-cca_platform.pub.pem"),
    ("tokens/rust-ccatoken-cca-token-02-tag399-es256.cbor", "keys/ta-02-ok.json"),
    (
        "tokens/go-ccatoken-testGoodCCAToken-tag907.cbor",
        "keys/iak-p256-go-ccatoken-testIAK.pub.jwk.json",
    ),
]
HOST = Capabilities(ipa_bits=48, num_bps=6, num_wps=4, sve_vl=0, pmu=False, pmu_num_ctrs=0)
GRANULE = 4096


def rate(fn, seconds: float = 1.0) -> float:
    """Calls per second of fn over about ``seconds``."""
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def ecdsa_pair_rate(curves: tuple[ec.EllipticCurve, ec.EllipticCurve]) -> float:
    """Two raw ECDSA verifications (a realm and a platform signature) per second."""
    pairs = []
    for curve in curves:
        key = ec.generate_private_key(curve)
        algo = ec.ECDSA(hashes.SHA384() if curve.key_size > 256 else hashes.SHA256())
        sig = key.sign(b"payload" * 40, algo)
        pairs.append((key.public_key(), sig, algo))

    def verify() -> None:
        for public, sig, algo in pairs:
            public.verify(sig, b"payload" * 40, algo)

    return rate(verify)


def bench_tokens() -> None:
    if not VECTORS.is_dir():
        print("token verification: skipped (../shared/vectors not found)")
        return
    for token_path, key_path in TOKENS:
        token = (VECTORS / token_path).read_bytes()
        key = attest.load_public_key((VECTORS / key_path).read_bytes())
        assert attest.verify_token(token, key).ok
        decoded = attest.decode_token(token)
        curves = tuple(
            ec.SECP384R1() if len(sign1.signature) == 96 else ec.SECP256R1()
            for sign1 in (decoded.realm, decoded.platform)
        )
        tokens = rate(lambda: attest.verify_token(token, key))  # noqa: B023
        raw = ecdsa_pair_rate(curves)  # type: ignore[arg-type]
        name = Path(token_path).name
        print(f"{name}: {tokens:,.0f} tokens/s; raw ECDSA pairs {raw:,.0f}/s; "
              f"ratio {raw / tokens:.2f}")  # fmt: skip


def arm64_image(size: int) -> bytes:
    header = struct.pack("<IIQQQQQQ4sI", 0, 0, 0, size, 0xA, 0, 0, 0, b"ARM\x64", 0)
    return header + os.urandom(size - len(header))


def bench_measure() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        kernel, initrd = Path(tmp, "Image"), Path(tmp, "initrd")
        kernel.write_bytes(arm64_image(16 << 20))
        initrd.write_bytes(os.urandom(64 << 20))
        argv = ["--realm", "-c", "2", "-m", "1G", "-k", str(kernel), "-i", str(initrd)]

        data = kernel.read_bytes() + initrd.read_bytes()
        start = time.perf_counter()
        for off in range(0, len(data), GRANULE):
            hashlib.sha256(data[off : off + GRANULE]).digest()
        baseline = time.perf_counter() - start

        start = time.perf_counter()
        rim = RimCalculator(kvmtool.launch(HOST, argv, None)).compute()[0]
        inproc = time.perf_counter() - start

        caps = ["--ipa-bits", "48", "--num-bps", "6", "--num-wps", "4", "--sve-vl", "0"]
        command = [sys.executable, "-m", "ccasim", "measure", *caps, "--pmu", "false", "kvmtool"]
        start = time.perf_counter()
        out = subprocess.run([*command, *argv], capture_output=True, text=True, check=True)
        cli = time.perf_counter() - start
        assert f"RIM: {rim[:32].hex()}" in out.stdout

    print(f"hashlib SHA-256 of the 80 MiB of images, page by page: {baseline:.3f} s")
    print(f"measure kvmtool (1 GiB RAM, 16 MiB kernel, 64 MiB initrd), in-process: "
          f"{inproc:.3f} s (ratio {inproc / baseline:.2f})")  # fmt: skip
    print(f"ccasim measure kvmtool ..., command line: {cli:.3f} s")


if __name__ == "__main__":
    bench_tokens()
    bench_measure()
