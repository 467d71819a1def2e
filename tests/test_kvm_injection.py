"""Fault injection over every RMI call of a realm's life: create, populate, run with stage 2
faults and RIPAS changes, destroy. Whichever call fails, the host ends with every page it
delegated either back or reported as leaked, and the kernel's accounting agrees with the
machine's Granule Protection Table."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccasim.kvm import KvmError, WouldBlockForever, uapi
from ccasim.rmi import FID, Status
from ccasim.rmi.commands import RMI_COMMANDS
from kvm_host import RAM, MiB, audit, balanced, new_kvm, program_realm, serve
from kvm_programs import SEEN

SHARED = 1 << 39


def life(kvm, tag="life"):
    """The scenario: a realm built, run through its faults and conversions, closed, the
    VMM's memory unmapped. A failing ioctl ends the VMM's work early, as it would."""
    realm = None
    try:
        realm = program_realm(
            "t.kvm-life", kvm=kvm, tag=tag, ram=RAM, shared_bit=SHARED, size=4 * MiB, vcpus=2
        )
        realm.vm.set_smccc_filter(0xC600_0000, 0x10, uapi.KVM_SMCCC_FILTER_FWD_TO_USER)
        serve(realm.vcpus[0])
    except (KvmError, WouldBlockForever):
        pass
    finally:
        for vm in list(kvm.vms):
            vm.close()
        for mem in list(kvm._user):
            kvm.munmap(mem)
    return realm


def baseline() -> Counter:
    kvm = new_kvm()
    first = len(kvm.rmi.trace)
    life(kvm, "baseline")
    assert SEEN["baseline"] == [b"shared!!", 0, 0]
    assert balanced(kvm) and not kvm.leaked() and not kvm.warnings()
    return Counter(c.command for c in kvm.rmi.trace[first:])


COUNTS = baseline()
BY_NAME = {f.name: fid for fid, f in RMI_COMMANDS.items()}


def positions(n: int) -> list[int]:
    return sorted({p for p in (1, 2, 3, n // 2, n - 1, n) if 1 <= p <= n})


CASES = [
    (BY_NAME[name], nth, status)
    for name, count in sorted(COUNTS.items())
    for nth in positions(count)
    for status in (Status.ERROR_INPUT, Status.ERROR_RTT)
]


def check_after(kvm) -> None:
    counts = audit(kvm)
    held = {k: v for k, v in counts.items() if v and k not in ("free", "leaked")}
    assert not held, held
    assert len(kvm.warnings()) >= 1 if counts["leaked"] else True
    for pa in kvm.leaked():  # a leaked page is reported, and never handed out again
        assert kvm.pages.owners[pa].value == "leaked"


def test_the_scenario_uses_every_kind_of_call():
    """The life exercises the RMI commands a KVM host uses for a realm (RMI_VERSION and
    RMI_FEATURES are made once, when KVM initialises; KVM never reads an RTT entry)."""
    used = set(COUNTS)
    expected = {f.name for f in RMI_COMMANDS.values()} - {
        "RMI_RTT_READ_ENTRY", "RMI_VERSION", "RMI_FEATURES",
    }  # fmt: skip
    assert expected <= used, expected - used


@pytest.mark.parametrize(
    "command, nth, status", CASES, ids=[f"{RMI_COMMANDS[c].name}-{n}-{s.name}" for c, n, s in CASES]
)
def test_a_failing_call_anywhere_leaves_the_accounting_balanced(command, nth, status):
    kvm = new_kvm()
    injection = kvm.inject(command, status, nth=nth, index=1)
    life(kvm, f"inject-{command}-{nth}-{status}")
    assert injection.hit
    check_after(kvm)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_two_failing_calls_anywhere(data):
    """Property: any two injected failures, of any commands at any positions, still end
    balanced."""
    kvm = new_kvm()
    for _ in range(2):
        name = data.draw(st.sampled_from(sorted(COUNTS)))
        nth = data.draw(st.integers(1, COUNTS[name]))
        status = data.draw(st.sampled_from([Status.ERROR_INPUT, Status.ERROR_RTT,
                                            Status.ERROR_REALM]))  # fmt: skip
        kvm.inject(BY_NAME[name], status, nth=nth, index=data.draw(st.integers(0, 3)))
    life(kvm, "pair")
    check_after(kvm)


def test_allocation_failures_anywhere_are_enomem_and_balanced():
    """fail_page_alloc: an allocation that fails at any point of the life is ENOMEM where the
    kernel allocates, and nothing is lost."""
    kvm = new_kvm()
    total = kvm.pages.allocations
    life(kvm, "alloc-count")
    allocations = kvm.pages.allocations - total
    for nth in sorted({1, 2, 3, allocations // 3, allocations // 2, allocations - 1}):
        kvm = new_kvm()
        kvm.pages.inject_failure(nth)
        life(kvm, f"alloc-{nth}")
        check_after(kvm)


def test_injections_must_name_rmi_commands():
    kvm = new_kvm()
    with pytest.raises(ValueError):
        kvm.inject(0xC400_0190, Status.ERROR_INPUT)  # an RSI FID
    with pytest.raises(ValueError):
        kvm.inject(FID.DATA_CREATE, Status.ERROR_INPUT, nth=0)
