"""Completing a realm's RIPAS change (seed 000, v7 "Handle RMI_EXIT_RIPAS_CHANGE").

On RMI_EXIT_RIPAS_CHANGE KVM tells the VMM (a memory fault exit) and applies nothing. On the
next entry of that vCPU it commits the change with RMI_RTT_SET_RIPAS calls (000-01): the VMM
rejects a change only by never running the vCPU again (000-02). Progress is written back to
the exit record, so that an exit to user space in between neither repeats nor loses part of
the change (the v9 fix listed in seed 004-02).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ccasim.kvm.mmu import unmap_private_range
from ccasim.kvm.rtt import create_rtt_levels
from ccasim.rmi import Ripas, Status
from ccasim.rmi.levels import block_level

if TYPE_CHECKING:
    from ccasim.kvm.vcpu import Vcpu

#: The model stops a completion that keeps failing with -ENOMEM after this many passes
#: without progress (the kernel would spin, 000-11), with a WARN.
MAX_NOMEM_PASSES = 16


def set_ipa_state(vcpu: Vcpu, start: int, end: int, ripas: int) -> tuple[int, int]:
    """realm_set_ipa_state (000-03 to 000-09): RMI_RTT_SET_RIPAS(rd, rec, ipa, end) from
    ``start`` while ``ipa < end``; returns (0 or -errno, the IPA reached).

    ``out_top`` is used only on RMI_SUCCESS (000-07). On RMI_ERROR_RTT the RTTs are created
    down to ``find_map_level`` and the same IPA is tried again, or -EINVAL if the walk
    already reached that level (000-05); any other error is -ENXIO (000-06, as the review
    settled). Pages of a range made EMPTY are unmapped, even after a partial failure (000-09).
    """
    vm = vcpu.vm
    rmi, rd = vm.kvm.rmi, vm.rd
    rec = vcpu.rec
    assert rec is not None
    ipa, ret = start, 0
    while ipa < end:
        result = rmi.rtt_set_ripas(rd, rec.rec, ipa, end)
        if result.ok:
            ipa = result.out_top
            continue
        if result.status == Status.ERROR_RTT:
            level = block_level(ipa, end, vm.start_level)
            if result.index >= level:
                ret = -errno.EINVAL
                break
            ret = create_rtt_levels(vm, ipa, result.index, level, vcpu.memcache)
            if ret:
                break
            continue  # retry the same IPA with the tables in place
        vm.kvm.warn(f"Unexpected error in realm_set_ipa_state: {result}")
        ret = -errno.ENXIO
        break
    if ripas == Ripas.EMPTY and ipa != start:
        unmap_private_range(vm, start, ipa)
    return ret, ipa


def complete_ripas_change(vcpu: Vcpu) -> None:
    """kvm_complete_ripas_change (000-11): passes of set_ipa_state, each with the memory
    cache topped up first; -ENOMEM goes round again from where it got, anything else WARNs
    and gives up. Nothing is returned: the REC is entered either way."""
    exit_ = vcpu.last_exit
    base, top, ripas = exit_.ripas_base, exit_.ripas_top, exit_.ripas_value
    stalled = 0
    while base < top:
        vcpu.topup_memcache()
        ret, reached = set_ipa_state(vcpu, base, top, ripas)
        if ret and ret != -errno.ENOMEM:
            vcpu.kvm.warn(
                f"Unable to satisfy RIPAS_CHANGE for {base:#x} - {top:#x}, ripas: {ripas:#x}"
            )
            break
        stalled = stalled + 1 if reached == base else 0
        base = reached
        if stalled >= MAX_NOMEM_PASSES:
            vcpu.kvm.warn(f"RIPAS_CHANGE at {base:#x}: no memory after {stalled} passes")
            break
        vcpu.kvm.threads.preempt("ripas:pass")
    exit_.ripas_base = base
