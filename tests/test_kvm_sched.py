"""Several vCPU threads on the seeded scheduler: races the series handles become tests of
interleavings, each reproducible from its seed."""

from __future__ import annotations

import pytest

from ccasim.kvm import Scheduler, uapi
from ccasim.psci import PsciReturn
from kvm_host import RAM, balanced, new_kvm, program_realm, serve
from kvm_programs import SEEN, words

SHARED = 1 << 39
SEEDS = range(12)


def run_threads(realm, seed, switch=0.5):
    scheduler = realm.kvm.schedule(seed=seed, switch=switch)
    for vcpu in realm.vcpus:
        scheduler.spawn(f"vcpu{vcpu.vcpu_id}", serve, vcpu)
    return scheduler, scheduler.run()


def test_an_smp_realm_boots_its_secondaries():
    """PSCI_CPU_ON from vCPU 0 wakes each powered-off vCPU thread with the entry point and
    context id (completed with RMI_PSCI_COMPLETE before the target is runnable); the realm
    waits with AFFINITY_INFO until they are off again."""
    realm = program_realm("t.kvm-smp", tag="smp", vcpus=3, secondaries=words(1, 2), entry=RAM)
    _, results = run_threads(realm, seed=1)
    seen = SEEN["smp"]
    assert ("cpu_on", 1, 0) in seen and ("cpu_on", 2, 0) in seen
    assert ("secondary", 1, 101) in seen and ("secondary", 2, 102) in seen
    assert seen[-1] == "all off"
    assert results[0][-1].exit_reason == uapi.KVM_EXIT_SYSTEM_EVENT
    realm.vm.close()
    assert balanced(realm.kvm)


def interleaving(seed, tag):
    realm = program_realm("t.kvm-smp", tag=tag, vcpus=2, secondaries=words(1), entry=RAM)
    scheduler, _ = run_threads(realm, seed)
    return scheduler.trace, list(SEEN[tag])


def test_the_same_seed_gives_the_same_interleaving():
    first = interleaving(3, "seed-a")
    second = interleaving(3, "seed-b")
    assert first == second and first[0]
    others = {tuple(interleaving(seed, f"seed-{seed}")[0]) for seed in SEEDS}
    assert len(others) > 1


def test_cpu_on_of_a_vcpu_that_is_on():
    """kvm_psci_vcpu_on: a target that is not stopped gets ALREADY_ON, completed to the RMM as
    SUCCESS (the RMM then answers ALREADY_ON itself); if the target turned off meanwhile,
    the second CPU_ON starts it again.

    A third interleaving is a race in the series: the target's PSCI_CPU_OFF has left the
    REC but its thread has not handled the exit yet, so KVM still sees it on and completes
    the CPU_ON as SUCCESS; the RMM restarts the REC, then the thread handles the old exit and
    stops the vCPU. The REC is runnable, the vCPU sleeps: AFFINITY_INFO says ON for ever."""
    outcomes = set()
    for seed in range(24):
        tag = f"again-{seed}"
        realm = program_realm("t.kvm-smp", tag=tag, vcpus=2, secondaries=words(1), entry=RAM)
        run_threads(realm, seed)
        seen = SEEN[tag]
        again = next(x[1] for x in seen if x[0] == "again")
        runs = sum(1 for x in seen if x[0] == "secondary")
        lost = ("still on", 1) in seen
        assert (again, runs, lost) in (
            (PsciReturn.ALREADY_ON, 1, False),
            (PsciReturn.SUCCESS, 2, False),
            (PsciReturn.SUCCESS, 1, True),
        ), seen
        if lost:
            assert realm.vcpus[1].stopped
            state = realm.kvm.machine.debug_state().rmm.recs[realm.vcpus[1].rec.rec]
            assert state.runnable
        outcomes.add((again, runs, lost))
    assert len(outcomes) == 3


def test_two_vcpus_faulting_the_same_private_page():
    """realm_map_protected: the vCPU that finds the page delegated already (another is
    between delegating and mapping it) takes it for a race and goes back to the realm; the
    page ends up mapped once, and every page is accounted for."""
    page = RAM + 0x10_0000
    raced = 0
    for seed in SEEDS:
        tag = f"same-page-{seed}"
        realm = program_realm("t.kvm-race", tag=tag, vcpus=2, page=page, count=2)
        run_threads(realm, seed, switch=0.7)
        assert sorted(SEEN[tag]) == [0, 1]
        trace = realm.kvm.rmi.trace
        gmem_pa = realm.gmem.lookup(page - RAM)
        delegations = [
            c for c in trace if c.command == "RMI_GRANULE_DELEGATE" and c.args == (gmem_pa,)
        ]
        failed = [c for c in delegations if c.regs[0]]
        raced += bool(failed)
        creates = [
            c
            for c in trace
            if c.command == "RMI_DATA_CREATE_UNKNOWN" and c.args[2] == page and not c.regs[0]
        ]
        assert len(creates) == 1
        realm.vm.close()
        assert balanced(realm.kvm)
    assert raced  # some seed made the vCPUs race


def test_two_vcpus_faulting_the_same_shared_page():
    """realm_map_non_secure: the second RTT_MAP_UNPROTECTED of a page the other vCPU mapped
    first is RMI_ERROR_RTT, which the v8 generation ignores: both vCPUs carry on."""
    page = RAM + 0x1F_F000
    raced = 0
    for seed in SEEDS:
        tag = f"shared-page-{seed}"
        realm = program_realm("t.kvm-race", tag=tag, vcpus=2, page=page | SHARED, count=2)
        realm.vm.set_memory_attributes(page, 0x1000, 0)
        run_threads(realm, seed, switch=0.7)
        assert sorted(SEEN[tag]) == [0, 1]
        maps = [c for c in realm.kvm.rmi.trace if c.command == "RMI_RTT_MAP_UNPROTECTED"]
        raced += sum(1 for c in maps if c.regs[0]) > 1  # beyond the missing-table one
        assert not realm.kvm.warnings()
    assert raced


def test_system_off_racing_a_running_vcpu():
    """handle_rec_exit: PSCI_SYSTEM_OFF from vCPU 0 while vCPU 1 is about to enter its REC:
    REC_ENTER fails with RMI_ERROR_REALM index 1 and KVM returns KVM_EXIT_UNKNOWN to that
    vCPU's thread; otherwise the thread finds its vCPU stopped and sleeps."""
    outcomes = set()
    for seed in SEEDS:
        tag = f"halt-{seed}"
        realm = program_realm("t.kvm-halt", tag=tag, vcpus=2, page=RAM + 0x10_0000)
        _, results = run_threads(realm, seed, switch=0.8)
        assert results[0][-1].exit_reason == uapi.KVM_EXIT_SYSTEM_EVENT
        last = results[1][-1].exit_reason if results[1] else None
        outcomes.add(last)
    assert uapi.KVM_EXIT_UNKNOWN in outcomes


def test_a_deadlock_is_reported_not_hung():
    """Every thread asleep with nothing to wake one: the scheduler raises in the threads
    (WouldBlockForever, EINTR) instead of hanging."""
    realm = program_realm("t.kvm-wfi", tag="deadlock", vcpus=2)
    scheduler = realm.kvm.schedule(seed=0)
    outcomes = []

    def thread(vcpu):
        try:
            vcpu.run()
        except Exception as e:
            outcomes.append(type(e).__name__)

    for vcpu in realm.vcpus:
        scheduler.spawn(f"vcpu{vcpu.vcpu_id}", thread, vcpu)
    scheduler.run()
    assert outcomes == ["WouldBlockForever", "WouldBlockForever"]


def test_scheduler_arguments():
    with pytest.raises(ValueError):
        Scheduler(new_kvm().machine, switch=1.5)
    assert Scheduler(new_kvm().machine).run() == []
