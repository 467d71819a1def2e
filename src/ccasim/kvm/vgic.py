"""The in-kernel vGICv3 as a REC uses it (``vgic.c``, ``arch_timer.c`` of the series): KVM
keeps each vCPU's pending virtual interrupts and hands them to the RMM in the list registers
of RmiRecEnter; on REC exit it takes the list registers back (``vgic_rmm_save_state``) and
raises the EL1 virtual timer's interrupt from the timer state the RMM reports
(``kvm_realm_timers_update``).

The distributor (GICD) and redistributors, SGIs between vCPUs and the ITS are not modelled:
an interrupt reaches a vCPU through :meth:`VgicCpu.set_line` (``KVM_IRQ_LINE``).
"""

from __future__ import annotations

from ccasim.arch.gicv3 import LR_PENDING, LR_PRIORITY_SHIFT, LR_STATE_SHIFT, LR_VINTID_MASK
from ccasim.arch.timer import CNT_CTL_ENABLE, CNT_CTL_IMASK, CNT_CTL_ISTATUS

#: The EL1 virtual timer's PPI.
VTIMER_INTID = 27
#: ICH_LR<n>_EL2.Group: Group 1.
LR_GROUP1 = 1 << 60
#: The priority KVM gives interrupts (GICD_IPRIORITYR reset value).
DEFAULT_PRIORITY = 0xA0
#: The list registers the series' REC run structure holds (REC_GIC_NUM_LRS).
REC_GIC_NUM_LRS = 16


def lr_state(lr: int) -> int:
    return (lr >> LR_STATE_SHIFT) & 0b11


class VgicCpu:
    """One vCPU's interface: interrupt lines, what is pending, and the list registers."""

    def __init__(self, nr_lrs: int) -> None:
        self.nr_lrs = nr_lrs
        self.lrs = [0] * REC_GIC_NUM_LRS
        self.pending: list[int] = []  # INTIDs waiting for a list register, oldest first
        self.lines: set[int] = set()  # level-sensitive lines that are high

    def set_line(self, intid: int, level: bool) -> None:
        """Raise or lower an interrupt line (level-sensitive, as KVM_IRQ_LINE is)."""
        if level:
            self.lines.add(intid)
            if intid not in self.pending and not self._in_lr(intid):
                self.pending.append(intid)
        else:
            self.lines.discard(intid)
            if intid in self.pending:
                self.pending.remove(intid)

    def _in_lr(self, intid: int) -> bool:
        return any(lr_state(lr) and lr & LR_VINTID_MASK == intid for lr in self.lrs)

    def has_pending(self) -> bool:
        """kvm_vgic_vcpu_pending_irq: something the vCPU has not yet taken."""
        return bool(self.pending) or any(lr_state(lr) & LR_PENDING for lr in self.lrs)

    def flush(self) -> list[int]:
        """The list registers for RmiRecEnter: those still in use, plus pending interrupts
        in the free ones (kvm_vgic_flush_hwstate, vgic_rmm_restore_state)."""
        for n in range(self.nr_lrs):
            if not self.pending:
                break
            if lr_state(self.lrs[n]) == 0:
                intid = self.pending.pop(0)
                self.lrs[n] = (
                    LR_PENDING << LR_STATE_SHIFT
                    | LR_GROUP1
                    | DEFAULT_PRIORITY << LR_PRIORITY_SHIFT
                    | intid
                )
        return list(self.lrs)

    def sync(self, exit_lrs: list[int]) -> None:
        """Take the list registers back from RmiRecExit; an interrupt the realm completed
        whose line is still high is pending again (kvm_vgic_sync_hwstate)."""
        for n in range(self.nr_lrs):
            before, after = self.lrs[n], exit_lrs[n]
            self.lrs[n] = after
            if lr_state(before) and not lr_state(after):
                intid = before & LR_VINTID_MASK
                if intid in self.lines and intid not in self.pending:
                    self.pending.append(intid)


class VcpuTimer:
    """The EL1 virtual timer of a REC as KVM sees it: the state of the last REC exit."""

    def __init__(self) -> None:
        self.ctl = 0
        self.cval = 0
        self.level = False

    def update(self, ctl: int, cval: int) -> bool | None:
        """Take the timer state of a REC exit; the new level of the timer's interrupt line
        if it changed (kvm_realm_timers_update), else None."""
        self.ctl, self.cval = ctl, cval
        level = bool(ctl & CNT_CTL_ENABLE and ctl & CNT_CTL_ISTATUS and not ctl & CNT_CTL_IMASK)
        if level == self.level:
            return None
        self.level = level
        return level

    def deadline(self) -> int | None:
        """When the armed timer fires (the counter value), or None."""
        if self.ctl & CNT_CTL_ENABLE and not self.ctl & CNT_CTL_IMASK:
            return self.cval
        return None

    def should_fire(self, now: int) -> bool:
        when = self.deadline()
        return when is not None and now >= when
