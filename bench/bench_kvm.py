"""The KVM host's speed, with a hashlib baseline measured in the same run.

    python bench/bench_kvm.py            # populate 1 GiB through KVM
    python bench/bench_kvm.py --mib 64   # a smaller populate, for a quick look

Figures printed:
- stage 2 faults handled per second: a realm touching fresh private pages, each a REC exit,
  a guest_memfd page delegated and mapped with RMI_DATA_CREATE_UNKNOWN, and a re-entry;
- realm VMs created and destroyed per second (create the RD, one REC, activate, close);
- POPULATE_REALM of the VMM's memory into a realm (measured), against hashlib SHA-256 of
  the same pages: the ratio is the cost of the whole path per hashed page.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import ccasim
from ccasim import guest
from ccasim.kvm import Kvm, uapi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from kvm_host import realm_vm  # the tests' way of building a realm VM

RAM = 0x8000_0000
MiB = 1 << 20
PAGE = 4096


@guest.program("bench.touch")
def touch(cpu, base, pages):
    for i in range(pages):
        yield guest.Store(base + i * PAGE, b"touched!")
    yield guest.Smc(0x8400_0008)  # PSCI_SYSTEM_OFF


def realm(kvm: Kvm, size: int):
    """A realm VM created (RD and PGD delegated) with RAM at RAM, as the tests build one."""
    built = realm_vm(kvm, ipa_bits=40, base=RAM, size=size)
    built.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    return built.vm, built.mem, built.vcpus


def faults_per_second(pages: int) -> float:
    kvm = Kvm(ccasim.Machine())
    size = 4 * MiB + pages * PAGE
    vm, mem, (vcpu,) = realm(kvm, size)
    vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_INIT_RIPAS_REALM,
                  uapi.ArmRmeInitRipas(RAM, size))  # fmt: skip
    mem.write(0, guest.image("bench.touch", base=RAM + 4 * MiB, pages=pages))
    vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_POPULATE_REALM,
                  uapi.ArmRmePopulateRealm(RAM, PAGE, 1))  # fmt: skip
    vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_PC, RAM)
    vcpu.finalize(uapi.KVM_ARM_VCPU_REC)
    vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)
    start = time.perf_counter()
    run = vcpu.run()
    elapsed = time.perf_counter() - start
    assert run.exit_reason == uapi.KVM_EXIT_SYSTEM_EVENT, run.exit_name
    assert kvm.page_counts()["data"] == pages + 1
    return pages / elapsed


def create_destroy_per_second(count: int) -> float:
    kvm = Kvm(ccasim.Machine())
    start = time.perf_counter()
    for _ in range(count):
        vm, mem, (vcpu,) = realm(kvm, 2 * MiB)
        vcpu.finalize(uapi.KVM_ARM_VCPU_REC)
        vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)
        vm.close()
        kvm.munmap(mem)
    elapsed = time.perf_counter() - start
    assert not kvm.leaked()
    return count / elapsed


def populate(mib: int) -> tuple[float, float]:
    """(seconds to populate ``mib`` MiB through KVM, seconds to SHA-256 the same pages)."""
    kvm = Kvm(ccasim.Machine())
    size = mib * MiB
    vm, mem, _ = realm(kvm, size)
    vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_INIT_RIPAS_REALM,
                  uapi.ArmRmeInitRipas(RAM, size))  # fmt: skip
    contents = [bytes([i % 251]) * PAGE for i in range(64)]
    for i in range(size // PAGE):
        mem.write(i * PAGE, contents[i % 64])
    start = time.perf_counter()
    measured = uapi.ArmRmePopulateRealm(RAM, size, uapi.KVM_ARM_RME_POPULATE_FLAGS_MEASURE)
    vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_POPULATE_REALM, measured)
    through_kvm = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(size // PAGE):
        hashlib.sha256(contents[i % 64]).digest()
    hashed = time.perf_counter() - start
    assert kvm.page_counts()["data"] == size // PAGE
    return through_kvm, hashed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="MiB to populate (default 1024)")
    parser.add_argument("--faults", type=int, default=4000, help="pages to fault in")
    parser.add_argument("--realms", type=int, default=200, help="realms to create and destroy")
    args = parser.parse_args()
    print(f"stage 2 faults handled:      {faults_per_second(args.faults):10,.0f} /s")
    print(f"realm create + destroy:      {create_destroy_per_second(args.realms):10,.0f} /s")
    through_kvm, hashed = populate(args.mib)
    print(f"hashlib SHA-256 of {args.mib} MiB:  {hashed:10.3f} s")
    print(f"POPULATE of {args.mib} MiB via KVM:  {through_kvm:10.3f} s")
    print(f"ratio to hashlib:            {through_kvm / hashed:10.2f}")


if __name__ == "__main__":
    main()
