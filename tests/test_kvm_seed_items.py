"""The seed catalogue (``shared/research/seed-review-points.md``): every one of its 84 items
is either named by a KVM or guest kernel test or listed, with the reason, among the items the model does not
model in ``docs/decisions.md``. And the items no other test file covers."""

from __future__ import annotations

import re
from pathlib import Path

from ccasim.kvm import uapi
from ccasim.kvm.memory import Owner
from kvm_host import RAM, MiB, errno_of, new_kvm, program_realm, realm_vm

ROOT = Path(__file__).resolve().parent.parent
#: The catalogue's item numbers: 15 in seed 000, 23 in 001, 25 in 002, 10 in 003, 11 in 004.
ITEMS = [f"{seed:03d}-{n:02d}" for seed, count in ((0, 15), (1, 23), (2, 25), (3, 10), (4, 11))
         for n in range(1, count + 1)]  # fmt: skip


def test_every_seed_item_is_tested_or_explained():
    files = [*sorted(ROOT.glob("tests/test_kvm_*.py")), ROOT / "tests" / "test_guest_kernel.py"]
    tests = "".join(p.read_text() for p in files)
    decisions = (ROOT / "docs" / "decisions.md").read_text()
    section = decisions.split("## Seed items the KVM model does not model", 1)
    assert len(section) == 2, "docs/decisions.md has no section for the items left out"
    explained = set(re.findall(r"\b\d{3}-\d{2}\b", section[1].split("\n## ", 1)[0]))
    tested = set(re.findall(r"\b\d{3}-\d{2}\b", tests))
    missing = [item for item in ITEMS if item not in tested | explained]
    assert not missing, f"seed items neither tested nor explained: {missing}"
    assert len(ITEMS) == 84


def test_realm_actions_are_serialised_under_kvm_lock():
    """002-08: KVM_ENABLE_CAP(KVM_CAP_ARM_RME) runs under kvm->lock: an ACTIVATE from another
    thread waits for a POPULATE that is between its chunks, so the populate completes."""
    realm = realm_vm(size=4 * MiB)
    realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    realm.cap(uapi.KVM_CAP_ARM_RME_INIT_RIPAS_REALM, uapi.ArmRmeInitRipas(RAM, 4 * MiB))
    realm.vcpus[0].finalize(uapi.KVM_ARM_VCPU_REC)
    scheduler = realm.kvm.schedule(seed=0, switch=1.0)
    populate = uapi.ArmRmePopulateRealm(RAM, 4 * MiB, uapi.KVM_ARM_RME_POPULATE_FLAGS_MEASURE)
    scheduler.spawn("populate", realm.cap, uapi.KVM_CAP_ARM_RME_POPULATE_REALM, populate)
    scheduler.spawn("activate", realm.cap, uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)
    scheduler.run()
    names = [c.command for c in realm.kvm.rmi.trace]
    created = [c for c in realm.kvm.rmi.trace if c.command == "RMI_DATA_CREATE" and not c.regs[0]]
    assert len(created) == 1024
    assert names.index("RMI_REALM_ACTIVATE") > max(
        i for i, n in enumerate(names) if n == "RMI_DATA_CREATE"
    )
    assert any(s.point == "block" and s.left == "activate" for s in scheduler.trace)


def test_vm_creation_fails_when_the_params_page_cannot_be_allocated():
    """002-09 (and §2.1 X5): kvm_init_realm_vm allocates a zeroed page for the parameters;
    without it KVM_CREATE_VM fails with ENOMEM and the PGD is given back."""
    kvm = new_kvm()
    before = kvm.page_counts()
    kvm.pages.inject_failure(2)  # the PGD first, then the parameters
    assert errno_of(lambda: kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 40)) == "ENOMEM"
    assert kvm.page_counts() == before


def test_pages_given_back_are_cleared_before_reuse():
    """002-04 (v3: the PGD's contents cleared after undelegation) and L6: a page that comes
    back to the host is zeroed before KVM hands it out again as a table or a parameter page."""
    realm = program_realm("t.kvm-idle")
    kvm = realm.kvm
    pgd = [realm.vm.pgd + i * 0x1000 for i in range(realm.vm.pgd_pages)]
    realm.vm.close()
    kvm.machine.ns_write(pgd[0], b"stale RTT entries")
    reused = [kvm.pages.alloc(Owner.KERNEL, zero=True) for _ in range(8)]
    assert pgd[0] in reused
    assert kvm.machine.ns_read(pgd[0], 17) == bytes(17)


def test_realm_structure_fields():
    """002-07: ``struct realm`` holds the state, the RD, the parameters until the RD exists,
    the aux count, the VMID and the IPA size."""
    realm = realm_vm(ipa_bits=42)
    r = realm.vm.realm
    assert (r.state.value, r.rd, r.vmid, r.ia_bits) == ("none", None, None, 42)
    assert r.params_page is not None
    realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    assert r.rd is not None and r.params_page is None and r.num_aux == 16 and r.vmid == 0
