"""KVM_RUN for a REC: host calls and the SMCCC filter, PSCI, interrupts and the timer,
system events, signals and what a crash looks like from the VMM."""

from __future__ import annotations

import pytest

from ccasim.kvm import WouldBlockForever, uapi
from ccasim.kvm.exits import exit_name
from ccasim.kvm.hypercalls import SMCCC_VERSION, smccc_call
from ccasim.psci import PsciFid
from ccasim.rmi import RecExitReason
from ccasim.smccc import NOT_SUPPORTED
from kvm_host import RAM, errno_of, program_realm, realm_vm, serve
from kvm_programs import SEEN

HOST_CALL_FID = 0xC600_0001


def hostcall_realm(tag):
    return program_realm("t.kvm-hostcall", tag=tag, buffer=RAM + 0x8000)


def test_a_host_call_is_forwarded_to_the_vmm_by_the_smccc_filter():
    """v5 28/43 and 000-13: RSI_HOST_CALL goes through kvm_smccc_call_handler; forwarded to
    user space it is a KVM_EXIT_HYPERCALL with the function ID (X0) and flags from the exit's
    ESR (zero: a 16-bit instruction, not an SMC); the VMM reads X1.. and sets the results
    with ONE_REG, and the next entry copies X0..X30 to the realm."""
    realm = hostcall_realm("fwd")
    realm.vm.set_smccc_filter(0xC600_0000, 0x100, uapi.KVM_SMCCC_FILTER_FWD_TO_USER)
    vcpu = realm.vcpus[0]
    run = vcpu.run()
    assert run.exit_reason == uapi.KVM_EXIT_HYPERCALL
    assert (run.hypercall.nr, run.hypercall.flags) == (HOST_CALL_FID, uapi.KVM_HYPERCALL_EXIT_16)
    args = [vcpu.get_one_reg(uapi.KVM_REG_ARM_CORE_X(n)) for n in (1, 2)]
    assert args == [11, 22]
    for n, value in enumerate((0, 33, 44)):
        vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_X(n), value)
    serve(vcpu)
    assert SEEN["fwd"] == [[0, 33, 44]]


@pytest.mark.parametrize("action, x0", [
    (None, NOT_SUPPORTED),  # handled in the kernel: not a function KVM knows
    (uapi.KVM_SMCCC_FILTER_DENY, NOT_SUPPORTED),
])  # fmt: skip
def test_a_host_call_the_kernel_handles(action, x0):
    realm = hostcall_realm(f"kernel-{action}")
    if action is not None:
        realm.vm.set_smccc_filter(HOST_CALL_FID, 1, action)
    exits = serve(realm.vcpus[0])
    assert uapi.KVM_EXIT_HYPERCALL not in [e.exit_reason for e in exits]
    assert SEEN[f"kernel-{action}"][0][0] == x0


def test_smccc_version_is_answered_by_the_kernel():
    realm = program_realm("t.kvm-hostcall", tag="version", buffer=RAM + 0x8000)
    vcpu = realm.vcpus[0]
    vcpu.regs[0] = SMCCC_VERSION
    assert smccc_call(vcpu) == 1 and vcpu.regs[0] == 0x1_0001


def test_smccc_filter_requests_refused():
    realm = hostcall_realm("filter")
    vm = realm.vm
    vm.set_smccc_filter(0xC600_0000, 0x10, uapi.KVM_SMCCC_FILTER_FWD_TO_USER)
    assert errno_of(lambda: vm.set_smccc_filter(0xC600_0008, 4, 1)) == "EEXIST"
    assert errno_of(lambda: vm.set_smccc_filter(0, 0, 1)) == "EINVAL"
    assert errno_of(lambda: vm.set_smccc_filter(0xFFFF_FFFF, 2, 1)) == "EINVAL"
    assert errno_of(lambda: vm.set_smccc_filter(5, 1, 7)) == "EINVAL"
    serve(realm.vcpus[0])
    assert errno_of(lambda: vm.set_smccc_filter(7, 1, 1)) == "EBUSY"  # the VM has run


def test_psci_forwarded_to_the_vmm_is_completed_with_the_psci_complete_ioctl():
    """v9 23/43: a VMM that handles PSCI itself (the filter forwards it) names the target
    with KVM_ARM_VCPU_RMM_PSCI_COMPLETE; a non-REC vCPU gets EPERM, an unknown MPIDR EINVAL,
    a status the RMM refuses EINVAL."""
    realm = program_realm("t.kvm-smp", tag="user-psci", vcpus=2, secondaries=b"\x01" + bytes(7),
                          entry=RAM)  # fmt: skip
    vm, (boot, second) = realm.vm, realm.vcpus
    vm.set_smccc_filter(PsciFid.CPU_ON, 1, uapi.KVM_SMCCC_FILTER_FWD_TO_USER)
    run = boot.run()
    assert (run.exit_reason, run.hypercall.nr) == (uapi.KVM_EXIT_HYPERCALL, PsciFid.CPU_ON)
    assert boot.get_one_reg(uapi.KVM_REG_ARM_CORE_X(1)) == 1
    assert errno_of(lambda: boot.psci_complete(0x77, 0)) == "EINVAL"
    assert errno_of(lambda: boot.psci_complete(1, (-3) & (1 << 32) - 1)) == "EINVAL"
    boot.psci_complete(1, 0)
    second.set_mp_state(uapi.KVM_MP_STATE_RUNNABLE)
    assert errno_of(lambda: boot.psci_complete(1, 0)) == "EINVAL"  # nothing pending now
    other = realm_without_rec()
    assert errno_of(lambda: other.psci_complete(1, 0)) == "EPERM"


def realm_without_rec():
    realm = program_realm("t.kvm-idle", activate=False)
    vcpu = realm.vm.create_vcpu(1)
    return vcpu


def test_a_secondary_vcpu_sleeps_until_cpu_on():
    """A vCPU initialised with POWER_OFF is not runnable: KVM_RUN sleeps (here, with nothing
    else running, the model reports the endless sleep as EINTR)."""
    realm = program_realm("t.kvm-idle", vcpus=2)
    with pytest.raises(WouldBlockForever) as e:
        realm.vcpus[1].run()
    assert "powered off" in str(e.value) and e.value.errno == 4


def test_a_runnable_vcpu_that_is_not_a_runnable_rec_fails_enxio():
    """REC_PARAMS_FLAG_RUNNABLE only for vCPU 0: a secondary vCPU the VMM did not power off
    enters a REC the RMM considers not runnable: REC_ENTER fails, KVM_RUN is ENXIO."""
    realm = program_realm("t.kvm-idle", activate=False, vcpus=1)
    extra = realm.vm.create_vcpu(1)
    extra.init([uapi.KVM_ARM_VCPU_PSCI_0_2, uapi.KVM_ARM_VCPU_REC])
    extra.finalize(uapi.KVM_ARM_VCPU_REC)
    realm.cap(uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)
    assert errno_of(extra.run) == "ENXIO"


def test_virtual_interrupts_reach_the_realm_through_the_list_registers():
    """vgic_rmm_restore_state / save_state: an SPI raised with KVM_IRQ_LINE is handed to the
    REC in a list register; the trapped WFI wakes with it."""
    realm = program_realm("t.kvm-wfi", tag="spi")
    realm.vm.irq_line(40, True)
    serve(realm.vcpus[0])
    assert SEEN["spi"] == [40]


def test_the_timer_wakes_a_wfi():
    """v5 16/43, kvm_realm_timers_update: the EL1 virtual timer the realm armed wakes its
    trapped WFI (time passes while the vCPU sleeps) and arrives as PPI 27."""
    realm = program_realm("t.kvm-wfi", tag="timer", timer=50_000)
    start = realm.kvm.machine.read_counter()
    serve(realm.vcpus[0])
    assert SEEN["timer"] == [27]
    assert realm.kvm.machine.read_counter() >= start + 50_000


def test_a_wfi_nothing_can_end_is_reported():
    realm = program_realm("t.kvm-wfi", tag="forever")
    with pytest.raises(WouldBlockForever) as e:
        realm.vcpus[0].run()
    assert "waits in WFI" in str(e.value)
    realm.vm.irq_line(33, True)  # then an interrupt arrives: the vCPU carries on
    serve(realm.vcpus[0])
    assert SEEN["forever"] == [33]


def test_irq_line_requests_refused():
    realm = program_realm("t.kvm-wfi", tag="irq-refused")
    assert errno_of(lambda: realm.vm.irq_line(1020, True)) == "EINVAL"
    assert errno_of(lambda: realm.vm.irq_line(20, True, vcpu=5)) == "EINVAL"
    assert errno_of(lambda: realm.vm.create_vgic()) == "EEXIST"


def test_system_off_and_reset_are_system_events():
    """PSCI_SYSTEM_OFF and PSCI_SYSTEM_RESET: KVM_EXIT_SYSTEM_EVENT (SHUTDOWN, RESET); a
    realm program that crashes resets the system, its traceback on the vCPU's console."""
    off = serve(program_realm("t.kvm-idle").vcpus[0])[-1]
    assert (off.exit_reason, off.system_event.type) == (
        uapi.KVM_EXIT_SYSTEM_EVENT, uapi.KVM_SYSTEM_EVENT_SHUTDOWN)  # fmt: skip
    realm = program_realm("t.kvm-crash")
    reset = serve(realm.vcpus[0])[-1]
    assert reset.system_event.type == uapi.KVM_SYSTEM_EVENT_RESET
    console = realm.kvm.machine.vcpu_console(realm.vcpus[0].rec.rec)
    assert "RuntimeError: the realm kernel panics" in console
    assert all(v.stopped for v in realm.vm.vcpus)  # kvm_prepare_system_event


def test_signals_and_immediate_exit():
    """A signal for the vCPU thread (kvmtool's SIGKVMEXIT) ends KVM_RUN with KVM_EXIT_INTR
    and -EINTR, before the REC is entered; so does immediate_exit."""
    realm = program_realm("t.kvm-idle")
    vcpu = realm.vcpus[0]
    entered = len([c for c in realm.kvm.rmi.trace if c.command == "RMI_REC_ENTER"])
    vcpu.run_state.immediate_exit = True
    assert (vcpu.run().exit_reason, vcpu.run_state.ret) == (uapi.KVM_EXIT_INTR, -4)
    vcpu.run_state.immediate_exit = False
    vcpu.signal()
    assert vcpu.run().exit_reason == uapi.KVM_EXIT_INTR
    assert entered == len([c for c in realm.kvm.rmi.trace if c.command == "RMI_REC_ENTER"])
    assert serve(vcpu)[-1].exit_reason == uapi.KVM_EXIT_SYSTEM_EVENT


def test_an_instruction_abort_is_enxio():
    """rec_exit_sync_iabt: a REC exit due to Instruction Abort (here, a PC in RAM that was
    never populated) is an error of KVM_RUN."""
    realm = realm_vm()
    realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM)
    realm.cap(uapi.KVM_CAP_ARM_RME_INIT_RIPAS_REALM, uapi.ArmRmeInitRipas(RAM, 2 << 20))
    realm.vcpus[0].set_one_reg(uapi.KVM_REG_ARM_CORE_PC, RAM + 0x10_0000)
    realm.vcpus[0].finalize(uapi.KVM_ARM_VCPU_REC)
    realm.cap(uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)
    assert errno_of(realm.vcpus[0].run) == "ENXIO"
    assert any("instruction abort" in line for line in realm.kvm.dmesg)


@pytest.mark.parametrize(
    "reason, esr, name",
    [
        (RecExitReason.SYNC, 0x24 << 26 | 0x47, "SYNC (data abort)"),
        (RecExitReason.SYNC, 0x20 << 26, "SYNC (instruction abort)"),
        (RecExitReason.SYNC, 0x01 << 26, "SYNC (WFI)"),
        (RecExitReason.SYNC, 0x01 << 26 | 1, "SYNC (WFE)"),
        (RecExitReason.SYNC, 0x3F << 26, "SYNC (EC 0x3f)"),
        (RecExitReason.RIPAS_CHANGE, 0x24 << 26, "RIPAS_CHANGE"),
        (7, 0, "reason 7"),
    ],
)
def test_rec_exits_are_counted_by_reason_and_a_sync_exit_by_its_class(reason, esr, name):
    """The vCPU statistics' names (ESR_EL2.EC 0x24/0x20 aborts, 0x01 WFx with TI 1 = WFE)."""
    assert exit_name(reason, esr) == name
