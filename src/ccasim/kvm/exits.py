"""What KVM does with a REC exit (``rme-exit.c`` of the series, ``handle_rec_exit``).

Each handler returns > 0 to enter the REC again, 0 to return to user space with an exit
reason set, < 0 for an error of KVM_RUN.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING

from ccasim.kvm import uapi
from ccasim.kvm.hypercalls import smccc_call
from ccasim.kvm.mmu import EC_DABT_LOW, EC_IABT_LOW, ESR_EC_SHIFT, handle_guest_abort
from ccasim.rmi import RecExitReason, Ripas, Status, decode_return_code

if TYPE_CHECKING:
    from ccasim.kvm.vcpu import Vcpu

EC_WFX = 0x01
#: ESR_ELx.ISS.TI of a WFx exit: 0 is WFI.
WFX_TI_WFE = 1


def handle_rec_exit(vcpu: Vcpu, x0: int) -> int:
    """handle_rec_exit: the REC_ENTER status first (a realm that went SYSTEM_OFF under a
    running vCPU is a KVM_EXIT_UNKNOWN, any other failure -ENXIO), then the exit reason."""
    status, index = decode_return_code(x0)
    if status == Status.ERROR_REALM and index == 1:
        vcpu.run_state.exit_reason = uapi.KVM_EXIT_UNKNOWN
        return 0
    if x0 != Status.SUCCESS:
        vcpu.kvm.error(f"vCPU {vcpu.vcpu_id}: RMI_REC_ENTER failed ({x0:#x})")
        return -errno.ENXIO
    exit_ = vcpu.last_exit
    vcpu.fault_esr, vcpu.fault_far, vcpu.fault_hpfar = exit_.esr, exit_.far, exit_.hpfar
    count_exit(vcpu, exit_.exit_reason, exit_.esr)
    vcpu.update_timer()
    vcpu.enter_flags = 0  # "Reset the emulation flags for the next run of the REC"
    handler = EXIT_HANDLERS.get(exit_.exit_reason)
    if handler is None:
        vcpu.run_state.exit_reason = uapi.KVM_EXIT_INTERNAL_ERROR
        vcpu.run_state.internal_error = f"unsupported REC exit reason {exit_.exit_reason}"
        return 0
    return handler(vcpu)


#: How the vCPU statistics name a SYNC exit, by ESR_EL2.EC.
SYNC_CLASSES = {EC_DABT_LOW: "data abort", EC_IABT_LOW: "instruction abort"}


def exit_name(reason: int, esr: int) -> str:
    """The statistics' name of a REC exit: the RmiRecExitReason (B4.4.17), a SYNC exit
    refined by its exception class (a WFx one by WFI or WFE)."""
    try:
        name = RecExitReason(reason).name
    except ValueError:
        return f"reason {reason}"
    if reason != RecExitReason.SYNC:
        return name
    ec = esr >> ESR_EC_SHIFT
    if ec == EC_WFX:
        return f"SYNC ({'WFE' if esr & WFX_TI_WFE else 'WFI'})"
    return f"SYNC ({SYNC_CLASSES.get(ec, f'EC {ec:#x}')})"


def count_exit(vcpu: Vcpu, reason: int, esr: int) -> None:
    """The vCPU's exit statistics (as kvm_vcpu_stat counts exits), and the tracepoint."""
    name = exit_name(reason, esr)
    vcpu.rec_exits[name] += 1
    tracepoint = vcpu.kvm.on_rec_exit
    if tracepoint is not None:
        tracepoint(vcpu.vcpu_id, name)


def exit_sync(vcpu: Vcpu) -> int:
    ec = vcpu.fault_esr >> ESR_EC_SHIFT
    if ec == EC_DABT_LOW:
        return handle_guest_abort(vcpu)
    if ec == EC_WFX:
        return exit_wfx(vcpu)
    if ec == EC_IABT_LOW:
        vcpu.kvm.error(
            f"[vcpu {vcpu.vcpu_id}] Unhandled instruction abort (ESR: {vcpu.fault_esr:#x})"
        )
        return -errno.ENXIO
    vcpu.kvm.error(
        f"[vcpu {vcpu.vcpu_id}] Unhandled exit reason from realm (ESR: {vcpu.fault_esr:#x})"
    )
    return -errno.ENXIO


def exit_wfx(vcpu: Vcpu) -> int:
    """kvm_handle_wfx: a WFI sleeps until an interrupt is pending for the vCPU or its timer
    fires; a WFE yields the CPU."""
    if vcpu.fault_esr & WFX_TI_WFE:
        vcpu.kvm.threads.preempt("wfe")
    else:
        vcpu.wait_for_interrupt("WFI")
    return 1


def exit_irq(vcpu: Vcpu) -> int:
    return 1


def exit_psci(vcpu: Vcpu) -> int:
    """rec_exit_psci: X0..X30 from the exit record become the vCPU's registers."""
    vcpu.regs[:] = vcpu.last_exit.gprs
    return smccc_call(vcpu)


def exit_host_call(vcpu: Vcpu) -> int:
    """rec_exit_host_call: as an SMCCC call; an error returns ~0 in X0 to the realm."""
    vcpu.regs[:] = vcpu.last_exit.gprs
    ret = smccc_call(vcpu)
    if ret < 0:
        vcpu.regs[0] = (1 << 64) - 1
        ret = 1
    return ret


def exit_ripas_change(vcpu: Vcpu) -> int:
    """rec_exit_ripas_change: tell the VMM (a memory fault exit, private iff the new RIPAS
    is RAM, -EFAULT as the API requires); the change is made on the next entry (000-01).
    A range reaching into the shared half is refused here too, though the RMM never reports
    one (RSI_IPA_STATE_SET fails in the realm, 000-12)."""
    exit_ = vcpu.last_exit
    vm = vcpu.vm
    base, top, ripas = exit_.ripas_base, exit_.ripas_top, exit_.ripas_value
    if not vm.is_private_address(base) or not vm.is_private_address(top - 1):
        vcpu.kvm.error(f"Invalid RIPAS_CHANGE for {base:#x} - {top:#x}, ripas: {ripas:#x}")
        return -errno.EINVAL
    vcpu.prepare_memory_fault_exit(base, top - base, private=ripas == Ripas.RAM)
    return -errno.EFAULT


EXIT_HANDLERS: dict[int, Callable[[Vcpu], int]] = {
    RecExitReason.SYNC: exit_sync,
    RecExitReason.IRQ: exit_irq,
    RecExitReason.FIQ: exit_irq,
    RecExitReason.PSCI: exit_psci,
    RecExitReason.RIPAS_CHANGE: exit_ripas_change,
    RecExitReason.HOST_CALL: exit_host_call,
}
