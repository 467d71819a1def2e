"""SMCCC calls that reach KVM (``hypercalls.c`` and ``psci.c`` of the series): a realm's
RSI_HOST_CALL and the PSCI calls the RMM forwards. Each goes through the VM's SMCCC filter
(KVM_ARM_VM_SMCCC_FILTER): handled in the kernel, denied, or forwarded to the VMM as a
KVM_EXIT_HYPERCALL.

For a realm, PSCI_CPU_ON and PSCI_AFFINITY_INFO are completed with RMI_PSCI_COMPLETE naming
the target REC, before the target can be scheduled (v9 23/43 "Handle Realm PSCI requests").
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ccasim.kvm import uapi
from ccasim.kvm.errors import fail
from ccasim.kvm.ranges import RangeMap
from ccasim.psci import AFFINITY_INFO_FIDS, CPU_ON_FIDS, PSCI_FID_RANGES, PsciFid, PsciReturn
from ccasim.smccc import NOT_SUPPORTED

if TYPE_CHECKING:
    from ccasim.kvm.vcpu import Vcpu

SMCCC_VERSION = 0x8000_0000
SMCCC_VERSION_1_1 = 0x1_0001
#: MPIDR_HWID_BITMASK: the affinity fields of an MPIDR.
MPIDR_HWID_BITMASK = 0xFF_00FF_FFFF


class SmcccFilter:
    """The VM's SMCCC filter: an action for ranges of function IDs (default: handle)."""

    def __init__(self) -> None:
        self._ranges = RangeMap(default=-1)  # -1: no filter entry, the call is handled

    def set(self, base: int, nr_functions: int, action: int, vm_has_run: bool) -> None:
        """KVM_ARM_VM_SMCCC_FILTER: EINVAL for an empty, wrapping or unknown request, EEXIST
        over a range already filtered, EBUSY once the VM has run."""
        if action not in (
            uapi.KVM_SMCCC_FILTER_HANDLE,
            uapi.KVM_SMCCC_FILTER_DENY,
            uapi.KVM_SMCCC_FILTER_FWD_TO_USER,
        ):
            raise fail(errno.EINVAL, f"unknown filter action {action}")
        if nr_functions <= 0 or not 0 <= base <= base + nr_functions - 1 <= 0xFFFF_FFFF:
            raise fail(errno.EINVAL, "an empty or wrapping range of function IDs")
        if vm_has_run:
            raise fail(errno.EBUSY, "the VM has run: its SMCCC filter is fixed")
        end = base + nr_functions
        if any(s < end and base < e for s, e, _ in self._ranges.ranges()):
            raise fail(errno.EEXIST, "the range overlaps one already filtered")
        self._ranges.set(base, end, action)

    def action(self, function_id: int) -> int:
        value = self._ranges.get(function_id)
        return uapi.KVM_SMCCC_FILTER_HANDLE if value < 0 else value


def smccc_call(vcpu: Vcpu) -> int:
    """kvm_smccc_call_handler: > 0 to re-enter, 0 to exit to user space."""
    function_id = vcpu.regs[0] & 0xFFFF_FFFF
    action = vcpu.vm.smccc_filter.action(function_id)
    if action == uapi.KVM_SMCCC_FILTER_FWD_TO_USER:
        vcpu.prepare_hypercall_exit(function_id)
        return 0
    if action == uapi.KVM_SMCCC_FILTER_DENY:
        vcpu.regs[0] = NOT_SUPPORTED
        return 1
    if any(first <= function_id <= last for first, last in PSCI_FID_RANGES):
        return psci_call(vcpu, function_id)
    vcpu.regs[0] = SMCCC_VERSION_1_1 if function_id == SMCCC_VERSION else NOT_SUPPORTED
    return 1


# -- PSCI (psci.c) ---------------------------------------------------------------------------


def psci_call(vcpu: Vcpu, function_id: int) -> int:
    """The PSCI calls the RMM forwards from a realm (A4.3.7), as KVM handles them."""
    if function_id == PsciFid.CPU_OFF:
        vcpu.power_off()
        return 1
    if function_id in (PsciFid.CPU_SUSPEND, PsciFid.CPU_SUSPEND_32):
        vcpu.wait_for_interrupt("PSCI_CPU_SUSPEND")
        vcpu.regs[0] = PsciReturn.SUCCESS.encode()
        return 1
    if function_id in CPU_ON_FIDS:
        vcpu.regs[0] = cpu_on(vcpu).encode()
        return 1
    if function_id in AFFINITY_INFO_FIDS:
        vcpu.regs[0] = affinity_info(vcpu).encode()
        return 1
    if function_id == PsciFid.SYSTEM_OFF:
        vcpu.prepare_system_event(uapi.KVM_SYSTEM_EVENT_SHUTDOWN)
        return 0
    if function_id == PsciFid.SYSTEM_RESET:
        vcpu.prepare_system_event(uapi.KVM_SYSTEM_EVENT_RESET)
        return 0
    vcpu.regs[0] = NOT_SUPPORTED
    return 1


def cpu_on(source: Vcpu) -> PsciReturn:
    """kvm_psci_vcpu_on: a stopped target is reset to the entry point and completed with
    RMI_PSCI_COMPLETE(SUCCESS) before it becomes runnable; a target that is on gets
    ALREADY_ON, completed as SUCCESS (the RMM then answers ALREADY_ON itself)."""
    target = source.vm.vcpu_by_mpidr(source.regs[1] & MPIDR_HWID_BITMASK)
    if target is None:
        return PsciReturn.INVALID_PARAMETERS
    if not target.stopped:
        ret = PsciReturn.ALREADY_ON
        source.realm_psci_complete(target, PsciReturn.SUCCESS)
        return ret
    source.realm_psci_complete(target, PsciReturn.SUCCESS)
    target.power_on()
    return PsciReturn.SUCCESS


def affinity_info(vcpu: Vcpu) -> PsciReturn:
    """kvm_psci_vcpu_affinity_info for a REC: only affinity level 0; the RMM answers once
    KVM names the target REC."""
    if vcpu.regs[2] & 0xFFFF_FFFF != 0:
        return PsciReturn.INVALID_PARAMETERS
    target = vcpu.vm.vcpu_by_mpidr(vcpu.regs[1] & MPIDR_HWID_BITMASK)
    if target is None:
        return PsciReturn.INVALID_PARAMETERS
    vcpu.realm_psci_complete(target, PsciReturn.SUCCESS)
    return PsciReturn.SUCCESS
