"""Stage 2 faults, MMIO and memory attributes of a running realm (seed 001, RFC "Runtime
faulting of memory", as the v8 generation with guest_memfd handles them)."""

from __future__ import annotations

import pytest

from ccasim import guest
from ccasim.arch.vmsa import DESC_NORMAL_RW
from ccasim.kvm import uapi
from ccasim.rmi import FID, Ripas, Status
from ccasim.rmi.types import RttEntryState
from kvm_host import RAM, MiB, audit, balanced, errno_of, new_kvm, program_realm, serve
from kvm_programs import SEEN, words

SHARED = 1 << 39  # the top bit of a 40-bit realm's IPA space


def rmi_names(kvm, since):
    return [c.command for c in kvm.rmi.trace[since:]]


def entry(realm, ipa):
    """The RTT entry at ``ipa`` (level 3), as RMI_RTT_READ_ENTRY reports it (a debug aid:
    the read itself goes around the kernel's trace)."""
    result = realm.kvm.rmi.rtt_read_entry(realm.vm.rd, ipa, 3)
    return result.walk_level, RttEntryState(result.state), result.desc, result.ripas


def test_stolen_bits():
    """001-02: the shared bit is BIT(ia_bits - 1) for a realm, 0 for a normal VM."""
    kvm = new_kvm()
    assert kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 40).shared_bit == 1 << 39
    assert kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 33).shared_bit == 1 << 32
    assert kvm.create_vm(40).shared_bit == 0


def test_a_protected_fault_maps_a_guest_memfd_page():
    """001-01, 001-09: a fault on a protected IPA gets a guest_memfd page, delegated, mapped
    with DATA_CREATE_UNKNOWN after the missing RTTs are created from the returned level."""
    page = RAM + 3 * MiB  # another 2 MiB than the image: its level 3 RTT is missing
    realm = program_realm("t.kvm-touch", tag="prot", addrs=words(page), size=4 * MiB)
    kvm = realm.kvm
    since = len(kvm.rmi.trace)
    exits = serve(realm.vcpus[0])
    assert SEEN["prot"] == ["ok"]
    assert exits[-1].exit_reason == uapi.KVM_EXIT_SYSTEM_EVENT
    seq = rmi_names(kvm, since)
    i = seq.index("RMI_GRANULE_DELEGATE")
    assert [n for n in seq[i:] if n != "RMI_GRANULE_DELEGATE"][:3] == [
        "RMI_DATA_CREATE_UNKNOWN", "RMI_RTT_CREATE", "RMI_DATA_CREATE_UNKNOWN",
    ]  # fmt: skip
    pa = realm.gmem.lookup(page - RAM)
    assert entry(realm, page)[:3] == (3, RttEntryState.ASSIGNED, pa)
    assert audit(kvm)["data"] == 2  # the image and this page


def test_a_shared_fault_maps_the_memslot_page():
    """001-01, 001-12, 001-19 to 001-21: a fault on the shared alias finds the memslot at
    the canonical GPA and maps its page with RTT_MAP_UNPROTECTED at level 3, read and write
    (Normal memory, FWB); missing RTTs are created from the returned level, one per level,
    then one map. Realms are mapped with 4 KiB pages only (001-14: no huge pages; 001-20:
    PAGE_SIZE is level 3)."""
    page = RAM + 0x20_0000 - 0x1000
    realm = program_realm("t.kvm-touch", tag="shared-map", addrs=words(page | SHARED))
    realm.vm.set_memory_attributes(page, 0x1000, 0)
    kvm = realm.kvm
    since = len(kvm.rmi.trace)
    serve(realm.vcpus[0])
    assert SEEN["shared-map"] == ["ok"]
    seq = [n for n in rmi_names(kvm, since) if n != "RMI_GRANULE_DELEGATE"]
    i = seq.index("RMI_RTT_MAP_UNPROTECTED")
    assert seq[i:i + 4] == ["RMI_RTT_MAP_UNPROTECTED", "RMI_RTT_CREATE", "RMI_RTT_CREATE",
                            "RMI_RTT_MAP_UNPROTECTED"]  # fmt: skip
    user_pa = realm.mem.page(page - RAM)
    assert entry(realm, page | SHARED)[:3] == (3, RttEntryState.ASSIGNED, user_pa | DESC_NORMAL_RW)
    assert kvm.machine.ns_read(user_pa, 8) == (page | SHARED).to_bytes(8, "little")


@pytest.mark.parametrize("alias, attribute, private", [
    ("shared", uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE, False),
    ("private", 0, True),
])  # fmt: skip
def test_an_alias_that_disagrees_with_the_attributes_is_a_memory_fault(alias, attribute, private):
    """private_memslot_fault: the alias the realm used against the page's attribute:
    KVM_EXIT_MEMORY_FAULT (-EFAULT) with the canonical GPA, one page, private iff the realm
    used the private alias; nothing is mapped."""
    page = RAM + 0x10_0000
    ipa = page | SHARED if alias == "shared" else page
    realm = program_realm("t.kvm-touch", tag=f"mismatch-{alias}", addrs=words(ipa))
    realm.vm.set_memory_attributes(page, 0x1000, attribute)
    run = realm.vcpus[0].run()
    assert (run.exit_reason, run.ret) == (uapi.KVM_EXIT_MEMORY_FAULT, -14)
    fault = run.memory_fault
    assert (fault.gpa, fault.size) == (page, 0x1000)
    assert bool(fault.flags & uapi.KVM_MEMORY_EXIT_FLAG_PRIVATE) == private
    assert entry(realm, ipa)[1] is RttEntryState.UNASSIGNED
    serve(realm.vcpus[0])  # converting as asked lets the access complete
    assert SEEN[f"mismatch-{alias}"] == ["ok"]


def test_mmio_outside_memslots_at_the_address_without_the_shared_bit():
    """001-13: an access outside memslots exits to the VMM as MMIO, at the IPA without the
    shared bit and with the page offset; writes carry the data, reads complete with the
    VMM's value on the next entry (EMULATED_MMIO, enter.gprs[0])."""
    uart = 0x1000_0000 | SHARED
    realm = program_realm("t.kvm-mmio", tag="mmio", addr=uart)
    values = {0x1000_0004: (0xCAFEF00D).to_bytes(4, "little"), 0x1000_0002: b"\x34\x12"}
    exits = serve(realm.vcpus[0], mmio=lambda m: values.get(m.phys_addr))
    mmio = [(e.mmio.phys_addr, e.mmio.len, e.mmio.is_write, e.mmio.data) for e in exits[:4]]
    assert mmio == [
        (0x1000_0000, 1, True, b"\x5a"),
        (0x1000_0008, 8, True, (0x1122334455667788).to_bytes(8, "little")),
        (0x1000_0004, 4, False, b""),
        (0x1000_0002, 2, False, b""),
    ]
    assert SEEN["mmio"] == [(0xCAFEF00D).to_bytes(4, "little"), b"\x34\x12"]


def test_an_sea_can_be_injected_after_an_mmio_exit_only():
    """v5 27/43: KVM_SET_VCPU_EVENTS with ext_dabt_pending after an emulated MMIO exit makes
    the RMM inject an SEA instead of completing the access; otherwise EINVAL; SError never."""
    realm = program_realm("t.kvm-touch", tag="sea", addrs=words(0x1000_0000 | SHARED))
    vcpu = realm.vcpus[0]
    assert errno_of(lambda: vcpu.set_events(ext_dabt_pending=True)) == "EINVAL"
    assert vcpu.run().exit_reason == uapi.KVM_EXIT_MMIO
    assert errno_of(lambda: vcpu.set_events(serror_pending=True)) == "EINVAL"
    vcpu.set_events(ext_dabt_pending=True)
    serve(vcpu)
    assert SEEN["sea"] == ["SynchronousExternalAbort"]


def test_a_data_abort_without_a_valid_syndrome_is_enosys():
    """io_mem_abort: a whole-granule access outside memslots has no valid syndrome: KVM_RUN
    fails with ENOSYS (KVM_CAP_ARM_NISV_TO_USER is not enabled)."""
    addr = 0x1000_0000 | SHARED
    realm = program_realm("t.kvm-touch", tag="nisv", addrs=words(addr), width=4096)
    assert errno_of(realm.vcpus[0].run) == "ENOSYS"


def test_every_fault_maps_writable_even_a_read():
    """001-10, 001-11, 001-22: a REC's faults all count as writes; a load maps the page
    read-write (realms are never mapped read-only, ``prot`` only checked for W)."""
    page = RAM + 0x20_0000 - 0x2000
    realm = program_realm("t.kvm-touch", tag="rw", addrs=words(page | SHARED), write=0)
    realm.vm.set_memory_attributes(page, 0x1000, 0)
    serve(realm.vcpus[0])
    desc = entry(realm, page | SHARED)[2]
    assert desc & DESC_NORMAL_RW == DESC_NORMAL_RW


def test_a_protected_fault_in_a_memslot_without_guest_memfd_delegates_the_user_page():
    """001-09 before guest_memfd: a protected fault in an ordinary memslot maps the VMM's
    own page, delegated (the page the VMM can no longer touch); closing gives it back."""
    kvm = new_kvm()
    vm = kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 40)
    mem = kvm.mmap(2 * MiB)
    gmem = vm.create_guest_memfd(0x1000)
    small = kvm.mmap(0x1000)
    vm.set_user_memory_region(uapi.KvmUserspaceMemoryRegion2(0, uapi.KVM_MEM_GUEST_MEMFD,
                              RAM, 0x1000, small.addr, gmem))  # fmt: skip
    vm.set_user_memory_region(uapi.KvmUserspaceMemoryRegion2(1, 0, RAM + 0x1000,
                              2 * MiB - 0x1000, mem.addr))  # fmt: skip
    vm.set_memory_attributes(RAM, 0x1000, uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
    vm.create_vgic()
    vcpu = vm.create_vcpu(0)
    vcpu.init([uapi.KVM_ARM_VCPU_PSCI_0_2, uapi.KVM_ARM_VCPU_REC])
    vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_INIT_RIPAS_REALM,
                  uapi.ArmRmeInitRipas(RAM, 2 * MiB))  # fmt: skip
    small.write(0, guest.image("t.kvm-touch", tag="old", addrs=words(RAM + 0x5000)))
    vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_POPULATE_REALM,
                  uapi.ArmRmePopulateRealm(RAM, 0x1000, 1))  # fmt: skip
    vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_PC, RAM)
    vcpu.finalize(uapi.KVM_ARM_VCPU_REC)
    vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)
    user = mem.page(0x4000)
    serve(vcpu)
    assert SEEN["old"] == ["ok"]
    assert kvm.pages.owners[user].value == "data"
    vm.close()
    assert kvm.pages.owners[user].value == "user" and balanced(kvm)


def test_a_failing_data_create_unknown_gives_the_page_back():
    """001-23, realm_map_protected's error path: DATA_CREATE_UNKNOWN fails (not RTT): WARN,
    the page undelegated and back in the guest_memfd; KVM_RUN fails with ENXIO."""
    page = RAM + 0x10_0000
    realm = program_realm("t.kvm-touch", tag="dcu-fail", addrs=words(page))
    kvm = realm.kvm
    kvm.inject(FID.DATA_CREATE_UNKNOWN, Status.ERROR_INPUT)
    assert errno_of(realm.vcpus[0].run) == "ENXIO"
    assert kvm.pages.owners[realm.gmem.lookup(page - RAM)].value == "guest_memfd"
    audit(kvm)


def test_a_delegation_that_fails_is_taken_for_a_race_and_retried_by_the_realm():
    """realm_map_protected: a failing GRANULE_DELEGATE is assumed to be another vCPU on the
    same fault; KVM returns to the realm, which faults again and is then mapped."""
    page = RAM + 0x10_0000
    realm = program_realm("t.kvm-touch", tag="deleg-race", addrs=words(page))
    kvm = realm.kvm
    since = len(kvm.rmi.trace)
    kvm.inject(FID.GRANULE_DELEGATE, Status.ERROR_INPUT)
    serve(realm.vcpus[0])
    assert SEEN["deleg-race"] == ["ok"]
    enters = rmi_names(kvm, since).count("RMI_REC_ENTER")
    assert enters >= 3  # the fault, the same fault again, the rest


# -- unmapping -------------------------------------------------------------------------------


def test_deleting_a_memslot_unmaps_both_aliases_and_returns_the_pages():
    """001-05, 001-06: removing a memslot unmaps its protected pages (DATA_DESTROY, the page
    undelegated back to its guest_memfd) and its shared ones, then folds the tables."""
    page = RAM + 0x10_0000
    realm = program_realm("t.kvm-touch", tag="delete", addrs=words(page))
    serve(realm.vcpus[0])
    kvm = realm.kvm
    assert audit(kvm)["data"] == 2
    realm.vm.set_user_memory_region(uapi.KvmUserspaceMemoryRegion2(0, 0, RAM, 0, 0))
    counts = audit(kvm)
    assert counts["data"] == 0 and counts["guest_memfd"] == 2
    assert entry(realm, page)[3] == Ripas.DESTROYED


def test_making_memory_private_unmaps_only_the_shared_alias():
    """kvm_arch_post_set_memory_attributes: PRIVATE unmaps the shared alias only; shared
    unmaps both (004-09's table: {SHARED} vs {PRIVATE, SHARED})."""
    shared, private = RAM + 0x1F_E000, RAM + 0x10_0000
    realm = program_realm("t.kvm-touch", tag="attrs", addrs=words(shared | SHARED, private))
    realm.vm.set_memory_attributes(shared, 0x1000, 0)
    serve(realm.vcpus[0])
    assert entry(realm, shared | SHARED)[1] is RttEntryState.ASSIGNED
    realm.vm.set_memory_attributes(RAM, 2 * MiB, uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
    assert entry(realm, shared | SHARED)[1] is RttEntryState.UNASSIGNED
    assert entry(realm, private)[1] is RttEntryState.ASSIGNED
    realm.vm.set_memory_attributes(private, 0x1000, 0)
    assert entry(realm, private)[1] is RttEntryState.UNASSIGNED


def test_punching_a_hole_in_guest_memfd_unmaps_and_frees():
    """kvm_gmem_invalidate (fallocate PUNCH_HOLE): the private pages behind the range are
    unmapped, undelegated and freed."""
    page = RAM + 0x10_0000
    realm = program_realm("t.kvm-touch", tag="hole", addrs=words(page))
    serve(realm.vcpus[0])
    kvm = realm.kvm
    before = audit(kvm)
    realm.vm.punch_hole(realm.gmem, 0x10_0000, 0x1000)
    after = audit(kvm)
    assert after["data"] == before["data"] - 1 and after["free"] == before["free"] + 1
    assert realm.gmem.lookup(0x10_0000) is None


def test_memslot_and_attribute_requests_refused():
    kvm = new_kvm()
    vm = kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | 40)
    mem = kvm.mmap(0x4000)
    gmem = vm.create_guest_memfd(0x4000)
    region = uapi.KvmUserspaceMemoryRegion2
    cases = [
        (region(0, uapi.KVM_MEM_READONLY, RAM, 0x4000, mem.addr), "EINVAL"),  # v5 34/43
        (region(0, 1 << 7, RAM, 0x4000, mem.addr), "EINVAL"),
        (region(0, 0, RAM + 1, 0x4000, mem.addr), "EINVAL"),
        (region(0, 0, RAM, 0x4000, mem.addr + 0x1000), "EFAULT"),  # not all mapped
        (region(0, 0, 1 << 40, 0x4000, mem.addr), "EFAULT"),  # above the IPA space
        (region(0, uapi.KVM_MEM_GUEST_MEMFD, RAM, 0x4000, mem.addr, object()), "EINVAL"),
        (region(0, uapi.KVM_MEM_GUEST_MEMFD, RAM, 0x4000, mem.addr, gmem, 0x1000), "EINVAL"),
        (region(40000, 0, RAM, 0x4000, mem.addr), "EINVAL"),
        (region(0, 0, RAM, 0, 0), "EINVAL"),  # deleting what is not there
        ("not a region", "EFAULT"),
    ]
    for r, expected in cases:
        assert errno_of(lambda r=r: vm.set_user_memory_region(r)) == expected, r
    vm.set_user_memory_region(region(0, 0, RAM, 0x4000, mem.addr))
    assert errno_of(lambda: vm.set_user_memory_region(region(1, 0, RAM + 0x1000, 0x1000,
                    mem.addr))) == "EEXIST"  # fmt: skip
    assert errno_of(lambda: vm.set_memory_attributes(RAM, 0x1000, 1)) == "EINVAL"
    assert errno_of(lambda: vm.set_memory_attributes(RAM + 1, 0x1000, 8)) == "EINVAL"
    assert errno_of(lambda: kvm.create_vm(40).set_memory_attributes(RAM, 0x1000, 8)) == "EINVAL"
    assert errno_of(lambda: kvm.create_vm(40).create_guest_memfd(0x1000)) == "EINVAL"
    assert errno_of(lambda: vm.create_guest_memfd(0x1001)) == "EINVAL"
