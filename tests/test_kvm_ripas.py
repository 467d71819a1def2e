"""A realm changing the RIPAS of its memory (seed 000, v7 "Handle RMI_EXIT_RIPAS_CHANGE",
with the v9 progress fix of seed 004): the VMM is told, the change is committed on the next
entry with the RTT_SET_RIPAS loop, and pages made EMPTY are given back."""

from __future__ import annotations

from ccasim.kvm import uapi
from ccasim.rmi import FID, Ripas, Status
from ccasim.rmi.types import RttEntryState
from ccasim.rsi import RsiRipas, RsiStatus
from kvm_host import RAM, MiB, audit, program_realm, serve
from kvm_programs import SEEN, words

SHARED = 1 << 39


def ripas_realm(tag, changes, before=(), after=(), size=4 * MiB):
    flat = [v for change in changes for v in change]
    return program_realm(
        "t.kvm-ripas", tag=tag, changes=words(*flat), before=words(*before),
        after=words(*after), size=size,
    )  # fmt: skip


def trace(kvm, since=0):
    return kvm.rmi.trace[since:]


def set_ripas_calls(kvm, since=0):
    return [c for c in trace(kvm, since) if c.command == "RMI_RTT_SET_RIPAS"]


def entry(realm, ipa):
    result = realm.kvm.rmi.rtt_read_entry(realm.vm.rd, ipa, 3)
    return RttEntryState(result.state), Ripas(result.ripas)


def test_the_change_is_applied_on_the_next_entry_not_at_the_exit():
    """000-01, 000-10: the exit becomes a memory fault for the VMM (base, size, private iff
    RAM) and no RTT_SET_RIPAS is made; on the next KVM_RUN every RTT_SET_RIPAS comes before
    RMI_REC_ENTER."""
    base, top = RAM + 2 * MiB, RAM + 3 * MiB
    realm = ripas_realm("next-entry", [(base, top, RsiRipas.EMPTY)])
    vcpu, kvm = realm.vcpus[0], realm.kvm
    run = vcpu.run()
    assert (run.exit_reason, run.ret) == (uapi.KVM_EXIT_MEMORY_FAULT, -14)
    fault = run.memory_fault
    assert (fault.gpa, fault.size, fault.flags) == (base, top - base, 0)
    assert set_ripas_calls(kvm) == []
    since = len(kvm.rmi.trace)
    vcpu.run()
    commands = [c.command for c in trace(kvm, since)]
    first_enter = commands.index("RMI_REC_ENTER")
    assert "RMI_RTT_SET_RIPAS" in commands[:first_enter]
    assert "RMI_RTT_SET_RIPAS" not in commands[first_enter:]
    assert SEEN["next-entry"][0] == (top, False)


def test_a_vcpu_never_resumed_changes_nothing():
    """000-02: the VMM rejects a change only by never running the vCPU again: no
    RTT_SET_RIPAS is ever made, and the realm's RIPAS is unchanged."""
    base = RAM + 2 * MiB
    realm = ripas_realm("never", [(base, base + MiB, RsiRipas.EMPTY)])
    assert realm.vcpus[0].run().exit_reason == uapi.KVM_EXIT_MEMORY_FAULT
    realm.vm.close()
    assert set_ripas_calls(realm.kvm) == []


def test_the_loop_advances_by_out_top_and_creates_missing_tables():
    """000-03, 000-04, 000-05: RTT_SET_RIPAS(rd, rec, ipa, end) with ``top`` always the end and
    each base the previous ``out_top``; RMI_ERROR_RTT below ``find_map_level`` creates the
    tables and retries the same IPA; the realm is never told REJECT (000-02)."""
    base, top = RAM + MiB, RAM + 3 * MiB  # a level 3 RTT exists for the first 2 MiB only
    realm = ripas_realm("loop", [(base, top, RsiRipas.EMPTY)])
    serve(realm.vcpus[0])
    kvm, rec = realm.kvm, realm.vcpus[0]
    calls = set_ripas_calls(kvm)
    assert all(c.args[:2] == (realm.vm.rd, realm.vcpus[0].rec.rec) for c in calls)
    assert all(c.args[3] == top for c in calls)
    ok = [c for c in calls if c.regs[0] == 0]
    bases = [c.args[2] for c in ok]
    assert bases[0] == base and bases[1:] == [c.regs[1] for c in ok[:-1]]
    assert ok[-1].regs[1] == top
    failed = [c for c in calls if c.regs[0] != 0]
    assert failed and all(c.regs[0] & 0xFF == Status.ERROR_RTT for c in failed)
    i = kvm.rmi.trace.index(failed[0])
    assert kvm.rmi.trace[i + 1].command == "RMI_GRANULE_DELEGATE"
    assert kvm.rmi.trace[i + 2].command == "RMI_RTT_CREATE"
    assert kvm.rmi.trace[i + 3].args[2] == failed[0].args[2]  # the same IPA again
    assert SEEN["loop"][0] == (top, False)
    assert entry(realm, base)[1] is Ripas.EMPTY and entry(realm, top - 0x1000)[1] is Ripas.EMPTY
    assert rec is realm.vcpus[0]


def test_next_is_only_used_on_success():
    """000-07 (Gavin Shan; accepted as a rework in v8): an error that leaves junk in X1 does
    not move the IPA: after creating the tables the same IPA is tried again."""
    base, top = RAM + 2 * MiB, RAM + 3 * MiB
    realm = ripas_realm("junk", [(base, top, RsiRipas.EMPTY)])
    vcpu, kvm = realm.vcpus[0], realm.kvm
    vcpu.run()
    kvm.inject(FID.RTT_SET_RIPAS, Status.ERROR_RTT, index=1, outputs=(0xDEAD_0000, 0, 0, 0))
    serve(vcpu)
    calls = set_ripas_calls(kvm)
    assert calls[0].regs == (Status.ERROR_RTT | 1 << 8, 0xDEAD_0000, 0, 0, 0)
    assert calls[1].args[2] == base
    assert 0xDEAD_0000 not in [c.args[2] for c in calls]
    assert SEEN["junk"][0] == (top, False)


def test_an_rtt_error_at_or_below_the_map_level_is_einval_and_the_realm_retries():
    """000-05: RMI_ERROR_RTT with a walk level already at ``find_map_level``: -EINVAL, a WARN,
    and the REC is entered anyway (000-11: no error reaches KVM_RUN); the realm sees how far
    the change got and asks again, which then completes."""
    base, top = RAM + 2 * MiB, RAM + 3 * MiB
    realm = ripas_realm("einval", [(base, top, RsiRipas.EMPTY)])
    vcpu, kvm = realm.vcpus[0], realm.kvm
    vcpu.run()
    kvm.inject(FID.RTT_SET_RIPAS, Status.ERROR_RTT, index=3)
    exits = serve(vcpu)
    assert any("Unable to satisfy RIPAS_CHANGE" in w for w in kvm.warnings())
    assert [e.exit_reason for e in exits].count(uapi.KVM_EXIT_MEMORY_FAULT) == 1
    assert SEEN["einval"][0] == (top, False)


def test_other_errors_are_enxio():
    """000-06 (Gavin Shan, accepted): any other failure WARNs "Unexpected error" and ends the
    pass (-ENXIO in v8, -EINVAL in v7)."""
    base, top = RAM + 2 * MiB, RAM + 3 * MiB
    realm = ripas_realm("enxio", [(base, top, RsiRipas.EMPTY)])
    vcpu, kvm = realm.vcpus[0], realm.kvm
    vcpu.run()
    kvm.inject(FID.RTT_SET_RIPAS, Status.ERROR_INPUT)
    serve(vcpu)
    assert any("Unexpected error in realm_set_ipa_state" in w for w in kvm.warnings())
    assert SEEN["enxio"][0] == (top, False)  # the realm asked again


def test_pages_made_empty_are_unmapped_up_to_where_the_change_got():
    """000-08, 000-09: EMPTY over [A, C) failing at B: the protected pages in [A, B) are
    unmapped and back in the guest_memfd; [B, C) is untouched. A change to RAM unmaps
    nothing."""
    a, b, c = RAM + MiB, RAM + 2 * MiB, RAM + 3 * MiB
    in_ab, in_bc = a + 0x5000, b + 0x5000
    realm = ripas_realm("partial", [(a, c, RsiRipas.EMPTY)], before=(in_ab, in_bc))
    vcpu, kvm = realm.vcpus[0], realm.kvm
    assert vcpu.run().exit_reason == uapi.KVM_EXIT_MEMORY_FAULT
    assert audit(kvm)["data"] == 3
    kvm.inject(FID.RTT_SET_RIPAS, Status.ERROR_INPUT, nth=2)
    realm.kvm.rmi.record = True
    since = len(kvm.rmi.trace)
    vcpu.run()  # completes [A, B), fails at B, enters the REC
    destroyed = [
        x.args[1] for x in trace(kvm, since) if x.command == "RMI_DATA_DESTROY" and not x.regs[0]
    ]
    assert destroyed == [in_ab]
    assert entry(realm, in_bc) == (RttEntryState.ASSIGNED, Ripas.RAM)
    assert kvm.pages.owners[realm.gmem.lookup(in_ab - RAM)].value == "guest_memfd"


def test_a_change_to_ram_unmaps_nothing():
    base = RAM + 2 * MiB
    realm = ripas_realm("to-ram", [(base, base + MiB, RsiRipas.RAM)], before=(base + 0x1000,))
    serve(realm.vcpus[0])
    destroys = [c for c in realm.kvm.rmi.trace if c.command == "RMI_DATA_DESTROY"]
    assert destroys == [] and SEEN["to-ram"][0] == (base + MiB, False)


def test_a_small_memory_cache_takes_several_passes():
    """000-11: -ENOMEM (no page could be delegated for an RTT) goes round again from where
    the pass got, with the cache topped up; the change completes, without a WARN."""
    base, top = RAM + 2 * MiB, RAM + 3 * MiB
    realm = ripas_realm("nomem", [(base, top, RsiRipas.EMPTY)])
    vcpu, kvm = realm.vcpus[0], realm.kvm
    vcpu.run()
    vcpu.free_memcache()
    kvm.inject(FID.GRANULE_DELEGATE, Status.ERROR_INPUT)  # the RTT page
    since = len(kvm.rmi.trace)
    serve(vcpu)
    calls = set_ripas_calls(kvm, since)
    assert [c.regs[0] & 0xFF for c in calls[:2]] == [Status.ERROR_RTT, Status.ERROR_RTT]
    assert calls[0].args[2] == calls[1].args[2] == base
    assert not kvm.warnings() and SEEN["nomem"][0] == (top, False)


def test_progress_is_kept_across_an_exit_to_user_space():
    """004-02 (v9): KVM_RUN interrupted by a signal after the change is committed but before
    the REC is entered: the next KVM_RUN makes no RTT_SET_RIPAS with a stale base (which the
    RMM would refuse, base_bound), and the realm's call completes."""
    base, top = RAM + 2 * MiB, RAM + 3 * MiB
    realm = ripas_realm("progress", [(base, top, RsiRipas.EMPTY)])
    vcpu, kvm = realm.vcpus[0], realm.kvm
    vcpu.run()
    original = kvm.rmi.smc

    def smc(fid, *args):
        regs = original(fid, *args)
        if fid == FID.RTT_SET_RIPAS:
            vcpu.signal()
        return regs

    kvm.rmi.smc = smc
    run = vcpu.run()
    assert (run.exit_reason, run.ret) == (uapi.KVM_EXIT_INTR, -4)
    kvm.rmi.smc = original
    since = len(kvm.rmi.trace)
    serve(vcpu)
    assert set_ripas_calls(kvm, since) == []
    assert not kvm.warnings() and SEEN["progress"][0] == (top, False)


def test_a_range_reaching_into_the_shared_half_never_reaches_the_host():
    """000-12 (Gavin Shan's point, settled): RSI_IPA_STATE_SET over any part of the shared
    half fails in the realm with RSI_ERROR_INPUT (rgn_bound) and no REC exit."""
    top_of_private = SHARED
    realm = ripas_realm("shared-half", [
        (top_of_private - 0x1000, top_of_private + 0x1000, RsiRipas.EMPTY),
        (SHARED | RAM, (SHARED | RAM) + 0x1000, RsiRipas.RAM),
    ], size=2 * MiB)  # fmt: skip
    exits = serve(realm.vcpus[0])
    assert SEEN["shared-half"][:2] == [("error", RsiStatus.ERROR_INPUT)] * 2
    assert uapi.KVM_EXIT_MEMORY_FAULT not in [e.exit_reason for e in exits]


def test_a_shared_page_round_trip():
    """003-08: the realm marks a page EMPTY (its protected alias then takes an SEA), uses the
    shared alias (the host maps the memslot page NS), and makes it RAM again."""
    page = RAM + MiB
    realm = program_realm("t.kvm-share", tag="share", page=page, shared_bit=SHARED)
    exits = serve(realm.vcpus[0])
    faults = [e.memory_fault for e in exits if e.exit_reason == uapi.KVM_EXIT_MEMORY_FAULT]
    assert [(f.gpa, f.flags) for f in faults] == [
        (page, 0),
        (page, uapi.KVM_MEMORY_EXIT_FLAG_PRIVATE),
    ]
    assert SEEN["share"] == ["SynchronousExternalAbort", b"shared!!", bytes(8)]
    assert realm.mem.read(page - RAM, 8) == b"shared!!"
