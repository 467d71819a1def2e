"""The uAPI boundary: whatever a Python VMM passes to an ioctl, the kernel either does it or
refuses with an errno (``KvmError``), and a refusal changes nothing."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccasim.kvm import KvmError, uapi
from kvm_host import RAM, RME, realm_vm

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 70), 1 << 70),
    st.integers(0, 64),
    st.sampled_from([RAM, RAM + 0x1000, 1 << 39, 0xFFFF_FFFF_FFFF_F000]),
    st.text(max_size=3),
    st.binary(max_size=8),
    st.lists(st.integers(0, 12), max_size=3),
    st.floats(allow_nan=False),
)
STRUCTS = st.one_of(
    JUNK,
    st.builds(uapi.ArmRmeConfig, JUNK, JUNK, JUNK),
    st.builds(uapi.ArmRmeInitRipas, JUNK, JUNK),
    st.builds(uapi.ArmRmePopulateRealm, JUNK, JUNK, JUNK),
)

CALLS = [
    lambda r, a, b, c: r.kvm.create_vm(a),
    lambda r, a, b, c: r.kvm.mmap(a),
    lambda r, a, b, c: r.kvm.munmap(a),
    lambda r, a, b, c: r.vm.create_vcpu(a),
    lambda r, a, b, c: r.vm.enable_cap(a, b, c),
    lambda r, a, b, c: r.vm.enable_cap(RME, a % 5 if isinstance(a, int) else a, b),
    lambda r, a, b, c: r.vm.create_guest_memfd(a, b),
    lambda r, a, b, c: r.vm.set_user_memory_region(
        uapi.KvmUserspaceMemoryRegion2(a, b, c, a, b, c)),
    lambda r, a, b, c: r.vm.set_user_memory_region(a),
    lambda r, a, b, c: r.vm.set_memory_attributes(a, b, c),
    lambda r, a, b, c: r.vm.punch_hole(r.gmem, a, b),
    lambda r, a, b, c: r.vm.irq_line(a, b, c),
    lambda r, a, b, c: r.vm.set_smccc_filter(a, b, c),
    lambda r, a, b, c: r.vcpus[0].init(a),
    lambda r, a, b, c: r.vcpus[0].init([a, b]),
    lambda r, a, b, c: r.vcpus[0].finalize(a),
    lambda r, a, b, c: r.vcpus[0].get_one_reg(a),
    lambda r, a, b, c: r.vcpus[0].set_one_reg(a, b),
    lambda r, a, b, c: r.vcpus[0].set_one_reg(uapi.KVM_REG_ARM_CORE_PC, a),
    lambda r, a, b, c: r.vcpus[0].set_mp_state(a),
    lambda r, a, b, c: r.vcpus[0].psci_complete(a, b),
    lambda r, a, b, c: r.vcpus[0].set_events(ext_dabt_pending=a, serror_pending=b),
    lambda r, a, b, c: r.vcpus[0].run(),
    lambda r, a, b, c: r.mem.write(a, b),
    lambda r, a, b, c: r.mem.read(a, b),
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    call=st.sampled_from(range(len(CALLS))),
    a=STRUCTS,
    b=STRUCTS,
    c=STRUCTS,
    created=st.booleans(),
)
def test_any_arguments_get_an_errno_or_work(call, a, b, c, created):
    realm = realm_vm()
    if created:
        realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    before = (realm.kvm.page_counts(), realm.vm.realm.state, len(realm.kvm.rmi.trace))
    try:
        CALLS[call](realm, a, b, c)
    except KvmError as e:
        assert e.name.startswith("E")
        if call not in (22,):  # KVM_RUN may have entered the REC before failing
            after = (realm.kvm.page_counts(), realm.vm.realm.state, len(realm.kvm.rmi.trace))
            assert after == before
