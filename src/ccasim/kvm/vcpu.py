"""A vCPU of a realm VM: a REC (``kvm_vcpu`` with ``struct realm_rec``), its ioctls and the
KVM_RUN loop (``kvm_arch_vcpu_ioctl_run`` with the series' ``kvm_rec_enter`` and
``handle_rec_exit``)."""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccasim.arch.registers import MASK64
from ccasim.kvm import sysregs, uapi
from ccasim.kvm.errors import KvmError, fail, integer
from ccasim.kvm.exits import handle_rec_exit
from ccasim.kvm.memory import Owner
from ccasim.kvm.realm import RealmState
from ccasim.kvm.ripas import complete_ripas_change
from ccasim.kvm.rtt import free_delegated_granule
from ccasim.kvm.vgic import VTIMER_INTID, VcpuTimer, VgicCpu
from ccasim.psci import PsciReturn
from ccasim.rmi import RecEnter, RecExit, RecExitReason, RecMpidr, RecParams
from ccasim.rmi.types import ENTER_EMUL_MMIO, ENTER_INJECT_SEA, ENTER_TRAP_WFI, REC_RUNNABLE

if TYPE_CHECKING:
    from ccasim.kvm.vm import Vm

#: KVM_ARM_TARGET_GENERIC_V8, what KVM_ARM_PREFERRED_TARGET reports.
KVM_ARM_TARGET_GENERIC_V8 = 5
#: The features a vCPU may have, and those a realm vCPU may not (AArch32, nested virt).
KNOWN_FEATURES = frozenset(range(uapi.KVM_ARM_VCPU_REC + 1))
NOT_FOR_REALMS = frozenset({uapi.KVM_ARM_VCPU_EL1_32BIT, uapi.KVM_ARM_VCPU_HAS_EL2})


@dataclass
class RealmRec:
    """``struct realm_rec``: the REC granule, its aux granules and the run page."""

    rec: int
    aux: list[int]
    run: int
    mpidr: int


class Vcpu:
    """A vCPU (KVM_CREATE_VCPU). For a realm it becomes a REC when finalized with
    KVM_ARM_VCPU_REC, which needs the realm to be NEW (seed 002; the REC is created with the
    PC and X0-X7 the VMM set)."""

    def __init__(self, vm: Vm, vcpu_id: int) -> None:
        self.vm = vm
        self.kvm = vm.kvm
        self.vcpu_id = vcpu_id
        self.features: frozenset[int] = frozenset()
        self.initialized = False
        self.mp_state = uapi.KVM_MP_STATE_RUNNABLE
        self.regs = [0] * 31
        self.pc = 0
        self.has_sve = False
        self.sve_finalized = False
        self.sve_max_vq = 0
        self.rec: RealmRec | None = None
        self.run_state = uapi.KvmRun()
        self.last_exit = RecExit()
        #: The kernel's copy of run->enter: flags and the GPRs it passes to the REC.
        self.enter_flags = 0
        self.enter_gprs = [0] * 31
        self.mmio_needed = False
        self.memcache: list[int] = []
        self.fault_esr = self.fault_far = self.fault_hpfar = 0
        self.vgic: VgicCpu | None = None
        self.timer = VcpuTimer()
        self.signal_pending = False
        self.ran = False
        self.in_run = False
        #: REC exits by reason (:func:`ccasim.kvm.exits.exit_name`), as kvm_vcpu_stat counts.
        self.rec_exits: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<Vcpu {self.vcpu_id} of {self.vm!r}>"

    @property
    def mpidr(self) -> int:
        """kvm_vcpu_get_mpidr_aff: the MPIDR KVM gives the vCPU from its id, which is the
        REC's MPIDR (A2.3.3: REC index = vCPU id)."""
        return RecMpidr.from_index(self.vcpu_id).encode()

    @property
    def stopped(self) -> bool:
        return self.mp_state == uapi.KVM_MP_STATE_STOPPED

    @property
    def exit_gprs(self) -> list[int]:
        return self.last_exit.gprs

    # -- KVM_ARM_VCPU_INIT -------------------------------------------------------------------

    def init(self, features: Iterable[int] = (), target: int = KVM_ARM_TARGET_GENERIC_V8) -> None:
        """KVM_ARM_VCPU_INIT with the given KVM_ARM_VCPU_* feature numbers. A realm vCPU needs
        KVM_ARM_VCPU_REC (and PSCI_0_2 before it can become a REC); every vCPU of a VM has the
        same features, POWER_OFF aside."""
        try:
            wanted = frozenset(integer(f, "a feature", 32) for f in features)
        except TypeError:
            raise fail(errno.EINVAL, "features is not a list of feature numbers") from None
        vm = self.vm
        if target != KVM_ARM_TARGET_GENERIC_V8:
            raise fail(errno.EINVAL, f"unknown target {target}")
        if not wanted <= KNOWN_FEATURES:
            raise fail(errno.EINVAL, f"unknown features {sorted(wanted - KNOWN_FEATURES)}")
        if self.rec is not None:
            raise fail(errno.EINVAL, "the vCPU is a REC already")
        rec_wanted = uapi.KVM_ARM_VCPU_REC in wanted
        if rec_wanted and not (vm.is_realm and vm.kvm.rme_available):
            raise fail(errno.EINVAL, "KVM_ARM_VCPU_REC needs a realm VM")
        if vm.is_realm:
            if not rec_wanted:
                raise fail(errno.EINVAL, "a realm vCPU needs KVM_ARM_VCPU_REC")
            if wanted & NOT_FOR_REALMS:
                raise fail(errno.EINVAL, "realms are AArch64 only, without nested virt")
            feat = vm.kvm.feat_reg0
            if uapi.KVM_ARM_VCPU_SVE in wanted and not feat.sve_en:
                raise fail(errno.EINVAL, "the RMM offers no SVE")
            if uapi.KVM_ARM_VCPU_PMU_V3 in wanted and not feat.pmu_en:
                raise fail(errno.EINVAL, "the RMM offers no PMU")
        common = wanted - {uapi.KVM_ARM_VCPU_POWER_OFF}
        if vm.vcpu_features is not None and common != vm.vcpu_features:
            raise fail(errno.EINVAL, "every vCPU of a VM has the same features")
        vm.vcpu_features = common
        self.features = wanted
        self.initialized = True
        self.regs = [0] * 31
        self.pc = 0
        if uapi.KVM_ARM_VCPU_SVE in wanted:
            self.has_sve = True
            self.sve_max_vq = vm.sysregs.max_sve_vq
        if uapi.KVM_ARM_VCPU_PMU_V3 in wanted:
            vm.sysregs.pmu = True
        if uapi.KVM_ARM_VCPU_POWER_OFF in wanted:
            self.mp_state = uapi.KVM_MP_STATE_STOPPED
        else:
            self.mp_state = uapi.KVM_MP_STATE_RUNNABLE

    def has_feature(self, feature: int) -> bool:
        return feature in self.features

    # -- KVM_ARM_VCPU_FINALIZE ---------------------------------------------------------------

    def finalize(self, feature: int) -> None:
        """KVM_ARM_VCPU_FINALIZE: KVM_ARM_VCPU_SVE fixes the vector lengths; KVM_ARM_VCPU_REC
        creates the REC (kvm_create_rec)."""
        if not self.initialized:
            raise fail(errno.ENOEXEC, "the vCPU is not initialised")
        if feature == uapi.KVM_ARM_VCPU_SVE:
            if not self.has_sve:
                raise fail(errno.EINVAL, "the vCPU has no SVE")
            if self.sve_finalized:
                raise fail(errno.EPERM, "SVE is finalized already")
            self.sve_finalized = True
            return
        if feature == uapi.KVM_ARM_VCPU_REC:
            if not self.vm.is_realm:
                raise fail(errno.EINVAL, "not a realm VM")
            self._create_rec()
            return
        raise fail(errno.EINVAL, f"feature {feature} cannot be finalized")

    def _create_rec(self) -> None:
        """kvm_create_rec: a REC page delegated, ``num_aux`` aux pages delegated, then
        RMI_REC_CREATE with the PC, X0-X7 and the MPIDR; only vCPU 0 is runnable. Failures
        unwind, leaking what the RMM keeps."""
        vm, kvm = self.vm, self.kvm
        realm = vm.realm
        rmi, pages = kvm.rmi, kvm.pages
        if realm.state is not RealmState.NEW:
            raise fail(errno.ENOENT, f"the realm is {realm.state.value}, not new")
        if self.rec is not None:
            raise fail(errno.EBUSY, "the REC exists already")
        if not self.has_feature(uapi.KVM_ARM_VCPU_PSCI_0_2):
            raise fail(errno.EINVAL, "a REC needs KVM_ARM_VCPU_PSCI_0_2")
        if vm.sysregs.pmu and not self.has_feature(uapi.KVM_ARM_VCPU_PMU_V3):
            raise fail(errno.EINVAL, "the realm has a PMU, this vCPU not")
        params_page = rec_page = run_page = None
        try:
            params_page = pages.alloc(Owner.KERNEL, zero=True)
            rec_page = pages.alloc(Owner.KERNEL)
            run_page = pages.alloc(Owner.KERNEL, zero=True)
        except KvmError:
            for pa in (params_page, rec_page, run_page):
                if pa is not None:
                    pages.free(pa)
            raise
        params = RecParams(
            flags=REC_RUNNABLE if self.vcpu_id == 0 else 0,
            mpidr=self.mpidr,
            pc=self.pc,
            gprs=list(self.regs[:8]),
        )
        try:
            if not rmi.granule_delegate(rec_page).ok:
                raise fail(errno.ENXIO, "RMI_GRANULE_DELEGATE of the REC failed")
            pages.give(rec_page, Owner.REC)
            aux = self._alloc_rec_aux(realm.num_aux)
            params.num_aux = len(aux)
            params.aux = aux + [0] * (16 - len(aux))
            try:
                if not rmi.rec_create(vm.rd, rec_page, params_page, params).ok:
                    raise fail(errno.ENXIO, "RMI_REC_CREATE failed")
            except KvmError:
                self._free_rec_aux(aux)
                raise
        except KvmError:
            if pages.owners.get(rec_page) is Owner.REC:
                free_delegated_granule(vm, rec_page, "REC")
            else:
                pages.free(rec_page)
            pages.free(run_page)
            pages.free(params_page)
            raise
        pages.free(params_page)
        self.rec = RealmRec(rec_page, aux, run_page, self.mpidr)

    def _alloc_rec_aux(self, count: int) -> list[int]:
        """alloc_rec_aux: allocate and delegate each aux page; on failure give back what
        was delegated (leaking what the RMM keeps)."""
        pages, rmi = self.kvm.pages, self.kvm.rmi
        aux: list[int] = []
        for _ in range(count):
            try:
                pa = pages.alloc(Owner.KERNEL)
            except KvmError:
                self._free_rec_aux(aux)
                raise
            if not rmi.granule_delegate(pa).ok:
                pages.free(pa)
                self._free_rec_aux(aux)
                raise fail(errno.ENXIO, "RMI_GRANULE_DELEGATE of a REC aux page failed")
            pages.give(pa, Owner.REC_AUX)
            aux.append(pa)
        return aux

    def _free_rec_aux(self, aux: list[int]) -> None:
        for pa in aux:
            free_delegated_granule(self.vm, pa, "REC aux page")

    def destroy_rec(self) -> None:
        """kvm_destroy_rec: RMI_REC_DESTROY, then the aux pages and the REC page back; if the
        RMM keeps the REC, the REC and its aux pages are leaked."""
        rec, pages = self.rec, self.kvm.pages
        if rec is None:
            return
        self.rec = None
        pages.free(rec.run)
        result = self.kvm.rmi.rec_destroy(rec.rec)
        if not result.ok:
            self.kvm.warn(f"RMI_REC_DESTROY of vCPU {self.vcpu_id} failed: {result}; leaking")
            pages.leak(rec.rec)
            for pa in rec.aux:
                pages.leak(pa)
            return
        self._free_rec_aux(rec.aux)
        free_delegated_granule(self.vm, rec.rec, "REC")

    # -- registers ---------------------------------------------------------------------------

    def get_one_reg(self, reg_id: int) -> int:
        """KVM_GET_ONE_REG."""
        return sysregs.get_one_reg(self, reg_id)

    def set_one_reg(self, reg_id: int, value: int) -> None:
        """KVM_SET_ONE_REG."""
        sysregs.set_one_reg(self, reg_id, value)

    def get_mp_state(self) -> int:
        return self.mp_state

    def set_mp_state(self, state: int) -> None:
        """KVM_SET_MP_STATE: RUNNABLE or STOPPED (a VMM that handles PSCI itself)."""
        if integer(state, "state", 32) == uapi.KVM_MP_STATE_RUNNABLE:
            self.power_on()
        elif state == uapi.KVM_MP_STATE_STOPPED:
            self.power_off()
        else:
            raise fail(errno.EINVAL, f"unsupported MP state {state}")

    # -- events ------------------------------------------------------------------------------

    def set_events(self, *, ext_dabt_pending: bool = False, serror_pending: bool = False) -> None:
        """KVM_SET_VCPU_EVENTS for a REC: no SError can be injected; an SEA only after an
        emulated MMIO exit, and it replaces the emulation (A4.2.4)."""
        if self.rec is None:
            raise fail(errno.EINVAL, "not a REC")
        if serror_pending:
            raise fail(errno.EINVAL, "an SError cannot be injected into a realm")
        if ext_dabt_pending:
            if not (self.mmio_needed or self.enter_flags & ENTER_EMUL_MMIO):
                raise fail(errno.EINVAL, "an SEA only after an emulated MMIO exit")
            self.mmio_needed = False  # the access is not completed: it takes the SEA
            self.enter_flags = (self.enter_flags & ~ENTER_EMUL_MMIO) | ENTER_INJECT_SEA

    def psci_complete(self, target_mpidr: int, psci_status: int) -> None:
        """KVM_ARM_VCPU_RMM_PSCI_COMPLETE: a VMM that handles PSCI itself names the target
        of this vCPU's PSCI_CPU_ON or PSCI_AFFINITY_INFO (the RMM checks the status)."""
        if self.rec is None:
            raise fail(errno.EPERM, "not a REC")
        target_mpidr = integer(target_mpidr, "target_mpidr")
        psci_status = integer(psci_status, "psci_status", 32)
        target = self.vm.vcpu_by_mpidr(target_mpidr)
        if target is None or target.rec is None:
            raise fail(errno.EINVAL, f"no vCPU has MPIDR {target_mpidr:#x}")
        result = self.kvm.rmi.psci_complete(self.rec.rec, target.rec.rec, psci_status & MASK64)
        if not result.ok:
            raise fail(errno.EINVAL, f"RMI_PSCI_COMPLETE failed: {result}")

    def realm_psci_complete(self, target: Vcpu, status: PsciReturn) -> None:
        """realm_psci_complete from the kernel's own PSCI handling (its result is ignored)."""
        assert self.rec is not None
        if target.rec is None:
            return
        result = self.kvm.rmi.psci_complete(self.rec.rec, target.rec.rec, status.encode())
        if not result.ok:
            self.kvm.error(f"RMI_PSCI_COMPLETE for vCPU {target.vcpu_id}: {result}")

    # -- power and sleeping ------------------------------------------------------------------

    def power_off(self) -> None:
        self.mp_state = uapi.KVM_MP_STATE_STOPPED

    def power_on(self) -> None:
        self.mp_state = uapi.KVM_MP_STATE_RUNNABLE

    def signal(self) -> None:
        """A signal for the vCPU's thread (kvmtool's SIGKVMEXIT): KVM_RUN returns with
        KVM_EXIT_INTR and -EINTR, also from a sleep."""
        self.signal_pending = True

    def interrupt_pending(self) -> bool:
        if self.vgic is not None and self.vgic.has_pending():
            return True
        return self.timer.should_fire(self.kvm.machine.read_counter())

    def wait_for_interrupt(self, why: str) -> None:
        """kvm_vcpu_wfi: sleep until an interrupt is pending, the timer fires or a signal."""
        self.kvm.threads.block(
            f"vCPU {self.vcpu_id} waits in {why}",
            lambda: self.signal_pending or self.interrupt_pending(),
            self.timer.deadline,
        )

    def _sleep_while_stopped(self) -> None:
        """A powered-off vCPU sleeps in KVM_RUN until PSCI_CPU_ON or a signal."""
        self.kvm.threads.block(
            f"vCPU {self.vcpu_id} is powered off",
            lambda: self.signal_pending or not self.stopped,
            lambda: None,
        )

    # -- exits to user space -----------------------------------------------------------------

    def prepare_memory_fault_exit(self, gpa: int, size: int, private: bool) -> None:
        run = self.run_state
        run.exit_reason = uapi.KVM_EXIT_MEMORY_FAULT
        run.memory_fault = uapi.KvmMemoryFaultExit(
            flags=uapi.KVM_MEMORY_EXIT_FLAG_PRIVATE if private else 0, gpa=gpa, size=size
        )

    def prepare_mmio_exit(self, gpa: int, size: int, is_write: bool, data: bytes) -> None:
        run = self.run_state
        run.exit_reason = uapi.KVM_EXIT_MMIO
        run.mmio = uapi.KvmMmioExit(phys_addr=gpa, data=data, len=size, is_write=is_write)
        self.mmio_needed = True

    def prepare_hypercall_exit(self, function_id: int) -> None:
        """kvm_prepare_hypercall_exit: the flags come from the exit's ESR, which is zero for
        a REC's host call or PSCI exit (so not SMC, and a 16-bit instruction)."""
        ec = self.fault_esr >> 26
        flags = uapi.KVM_HYPERCALL_EXIT_SMC if ec in (0x13, 0x17) else 0
        if not self.fault_esr & (1 << 25):
            flags |= uapi.KVM_HYPERCALL_EXIT_16
        self.run_state.exit_reason = uapi.KVM_EXIT_HYPERCALL
        self.run_state.hypercall = uapi.KvmHypercallExit(nr=function_id, flags=flags)

    def prepare_system_event(self, event: int) -> None:
        """kvm_prepare_system_event: every vCPU of the VM stops; this one exits."""
        for vcpu in self.vm.vcpus:
            vcpu.power_off()
        run = self.run_state
        run.exit_reason = uapi.KVM_EXIT_SYSTEM_EVENT
        run.system_event = uapi.KvmSystemEventExit(type=event, ndata=1, data=(0,))

    # -- memory cache -----------------------------------------------------------------------

    def topup_memcache(self) -> None:
        """kvm_mmu_topup_memory_cache: keep a page per level below the start level ready,
        so RTTs can be made under the MMU lock; running out is not an error here."""
        want = 3 - self.vm.start_level
        while len(self.memcache) < want:
            try:
                self.memcache.append(self.kvm.pages.alloc(Owner.KERNEL, zero=True))
            except KvmError:
                return

    def free_memcache(self) -> None:
        for pa in self.memcache:
            self.kvm.pages.free(pa)
        self.memcache.clear()

    # -- KVM_RUN ---------------------------------------------------------------------------

    def run(self) -> uapi.KvmRun:
        """KVM_RUN: enter the REC until an exit needs user space. Returns the ``kvm_run``
        structure (its ``ret`` is 0, or -EFAULT for a memory fault and -EINTR for a signal);
        any other error raises :class:`KvmError` with the errno KVM_RUN returns."""
        if not self.vm.is_realm:
            raise fail(errno.ENOSYS, "ccasim runs realm VMs only")
        if self.in_run:
            raise fail(errno.EBUSY, "KVM_RUN is already running on this vCPU")
        if not self.ran:
            self._first_run_init()
        run = self.run_state
        if run.exit_reason == uapi.KVM_EXIT_MMIO and self.mmio_needed:
            self._handle_mmio_return()
        if run.immediate_exit:
            return self._interrupted()
        run.exit_reason = uapi.KVM_EXIT_UNKNOWN
        run.ret = 0
        self.in_run = True
        try:
            ret = self._loop()
        finally:
            self.in_run = False
        if ret == -errno.EINTR:
            return self._interrupted()
        if ret == -errno.EFAULT and run.exit_reason == uapi.KVM_EXIT_MEMORY_FAULT:
            run.ret = ret
            return run
        if ret < 0:
            raise fail(-ret, f"KVM_RUN of vCPU {self.vcpu_id} failed")
        return run

    def _first_run_init(self) -> None:
        """kvm_vcpu_first_run_init."""
        if not self.initialized:
            raise fail(errno.ENOEXEC, "the vCPU is not initialised")
        if self.rec is None or self.vm.realm.state is not RealmState.ACTIVE:
            raise fail(errno.EPERM, "the vCPU is not finalized as a REC of an active realm")
        if not self.vm.has_vgic:
            raise fail(errno.EOPNOTSUPP, "realms need the in-kernel irqchip (vGICv3)")
        self.vm.init_vgic()
        self.ran = True
        self.vm.has_run = True

    def _handle_mmio_return(self) -> None:
        """kvm_handle_mmio_return: the REC completes the access (EMULATED_MMIO); a read
        gets the VMM's data in enter.gprs[0]."""
        mmio = self.run_state.mmio
        self.mmio_needed = False
        self.enter_flags |= ENTER_EMUL_MMIO
        if not mmio.is_write:
            data = bytes(mmio.data[: mmio.len]).ljust(mmio.len, b"\0")
            self.enter_gprs[0] = int.from_bytes(data, "little")

    def _interrupted(self) -> uapi.KvmRun:
        self.signal_pending = False
        self.run_state.exit_reason = uapi.KVM_EXIT_INTR
        self.run_state.ret = -errno.EINTR
        return self.run_state

    def _loop(self) -> int:
        ret = 1
        budget = self.kvm.max_entries_per_run
        while ret > 0:
            budget -= 1
            if budget < 0:
                self.kvm.info(
                    f"vCPU {self.vcpu_id}: {self.kvm.max_entries_per_run} REC entries without"
                    " an exit to user space: the model's watchdog interrupts KVM_RUN"
                )
                return -errno.EINTR
            self.kvm.threads.preempt("run")
            if self.stopped:  # KVM_REQ_SLEEP
                self._sleep_while_stopped()
                if self.signal_pending:
                    return -errno.EINTR
                continue
            ret = self._pre_enter()
            if ret <= 0:
                return ret
            if self.signal_pending:  # xfer_to_guest_mode_handle_work, just before entry
                return -errno.EINTR
            self.kvm.threads.preempt("enter")
            x0 = self._enter()
            self.kvm.threads.preempt("exit")
            ret = handle_rec_exit(self, x0)
        return ret

    def _pre_enter(self) -> int:
        """kvm_rec_enter's preparation: finish the last exit (registers from the VMM after a
        host call or PSCI exit, the RIPAS change), then require an ACTIVE realm (000-13)."""
        reason = self.last_exit.exit_reason
        if reason in (RecExitReason.HOST_CALL, RecExitReason.PSCI):
            self.enter_gprs = list(self.regs)
        elif reason == RecExitReason.RIPAS_CHANGE:
            complete_ripas_change(self)
        if self.vm.realm.state is not RealmState.ACTIVE:
            return -errno.EINVAL
        return 1

    def _enter(self) -> int:
        """RMI_REC_ENTER with RmiRecEnter built from the kernel's state."""
        rec = self.rec
        assert rec is not None and self.vgic is not None
        if self.timer.should_fire(self.kvm.machine.read_counter()) and not self.timer.level:
            self.timer.level = True
            self.vgic.set_line(VTIMER_INTID, True)
        enter = RecEnter(
            flags=self.enter_flags | ENTER_TRAP_WFI,
            gprs=list(self.enter_gprs),
            gicv3_hcr=0,
            gicv3_lrs=self.vgic.flush(),
        )
        machine, period = self.kvm.machine, self.kvm.tick_period
        if period is not None:  # the tick while the guest runs (the host's arch timer)
            machine.set_host_timer((machine.read_counter() // period + 1) * period)
        x0 = self.kvm.rmi.rec_enter(rec.rec, rec.run, enter).x0
        if period is not None:
            machine.set_host_timer(None)  # back in the host: its tick is its own business
        self.last_exit = self.kvm.rmi.rec_exit(rec.run)
        self.vgic.sync(self.last_exit.gicv3_lrs)
        return x0

    def update_timer(self) -> None:
        """update_arch_timer_irq_lines: the timer's line follows the state of the exit."""
        exit_ = self.last_exit
        level = self.timer.update(exit_.cntv_ctl, exit_.cntv_cval)
        if level is not None and self.vgic is not None:
            self.vgic.set_line(VTIMER_INTID, level)


__all__ = ["KVM_ARM_TARGET_GENERIC_V8", "RealmRec", "Vcpu"]
