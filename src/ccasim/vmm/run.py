"""A kvmtool-like VMM that builds and runs a realm through the KVM uAPI (``ccasim.kvm``).

It does what Arm's CCA kvmtool does with a :class:`~ccasim.vmm.launch.Launch` (the layout
``ccasim measure`` predicts from the same command line): guest RAM backed by user memory and
a guest_memfd, CONFIG_REALM (hash algorithm, RPV), CREATE_REALM, INIT_RIPAS_REALM over RAM,
POPULATE_REALM measured for each image in IPA order, the vCPUs finalized as RECs (vCPU 0 at
the entry point with X0 = the device tree, the others waiting for PSCI_CPU_ON), the
unmeasured pages, ACTIVATE_REALM. Then one thread per vCPU serves the exits: the 8250 UART
and the shared console, host calls, memory faults (converting memory between private and
shared as the VMM must), until the realm powers off.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ccasim.kvm import GuestMemfd, Kvm, KvmError, UserMemory, Vcpu, Vm, WouldBlockForever, uapi
from ccasim.paravirt import (
    CONSOLE_BUFFER,
    CONSOLE_DOORBELL,
    HOST_CALL_BUFFER,
    HOST_CALL_CHALLENGE,
    HOST_CALLS,
    UART_LSR,
    UART_LSR_EMPTY,
    UART_THR,
)
from ccasim.smccc import NOT_SUPPORTED
from ccasim.vmm import layout
from ccasim.vmm.capabilities import Capabilities
from ccasim.vmm.launch import Launch


class VmmError(Exception):
    """The host refused a step of building the realm, or the realm did something the VMM
    cannot serve."""


@contextmanager
def _ioctl(what: str) -> Iterator[None]:
    """Name the step (``what``) in the error when KVM refuses it."""
    try:
        yield
    except KvmError as e:
        raise VmmError(f"{what} failed: {e}") from e


@dataclass
class RunResult:
    """What happened: the console output, how the realm ended, what it handed the VMM."""

    console: str = ""
    ended: str = ""
    exits: Counter[str] = field(default_factory=Counter)
    handed: bytes = b""
    errors: list[str] = field(default_factory=list)


class RealmVmm:
    """Build the realm ``launch`` describes on ``kvm`` and run it."""

    def __init__(
        self,
        kvm: Kvm,
        launch: Launch,
        *,
        console: Callable[[str], None] | None = None,
        seed: int = 0,
        challenge: bytes | None = None,
    ) -> None:
        self.kvm = kvm
        self.launch = launch
        self.echo = console
        self.seed = seed
        self.challenge = challenge
        self.vm: Vm | None = None
        self.vcpus: list[Vcpu] = []
        self.ram: UserMemory | None = None
        self.gmem: GuestMemfd | None = None
        self.result = RunResult()
        self._uart_line = ""
        self._console_buffer: int | None = None
        self.shared_bit = 0
        self._handed = bytearray()
        self._stopping = False
        self._deadline: float | None = None
        self._watchdog: Callable[[], str | None] | None = None

    # -- building -----------------------------------------------------------------------------

    def build(self) -> None:
        """Create, populate and activate the realm (kvm_arm_realm_finalize's order); a
        refused step raises VmmError naming the ioctl."""
        launch, kvm = self.launch, self.kvm
        caps = launch.caps
        if len(launch.ram) != 1:
            raise VmmError("the VMM takes one RAM range")
        base, size = launch.ram[0]
        ipa_bits = caps.ipa_bits or layout.kvmtool_ipa_bits(size)
        self.shared_bit = 1 << (ipa_bits - 1)  # the top IPA bit selects the shared alias
        with _ioctl(f"KVM_CREATE_VM ({ipa_bits}-bit IPA space)"):
            vm_type = uapi.KVM_VM_TYPE_ARM_REALM | uapi.KVM_VM_TYPE_ARM_IPA_SIZE(ipa_bits)
            vm = self.vm = kvm.create_vm(vm_type)
        with _ioctl("guest RAM (mmap, KVM_CREATE_GUEST_MEMFD, KVM_SET_USER_MEMORY_REGION2)"):
            self.ram = kvm.mmap(size)
            self.gmem = vm.create_guest_memfd(size)
            vm.set_user_memory_region(uapi.KvmUserspaceMemoryRegion2(
                0, uapi.KVM_MEM_GUEST_MEMFD, base, size, self.ram.addr, self.gmem))  # fmt: skip
            vm.set_memory_attributes(base, size, uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
        with _ioctl("KVM_CREATE_DEVICE (vGICv3)"):
            vm.create_vgic()
        features = [uapi.KVM_ARM_VCPU_PSCI_0_2, uapi.KVM_ARM_VCPU_REC]
        if caps.sve_vl:
            features.append(uapi.KVM_ARM_VCPU_SVE)
        if caps.pmu:
            features.append(uapi.KVM_ARM_VCPU_PMU_V3)
        with _ioctl("KVM_CREATE_VCPU, KVM_ARM_VCPU_INIT"):
            for i in range(launch.vcpus):
                vcpu = vm.create_vcpu(i)
                self.vcpus.append(vcpu)
                vcpu.init(features + ([uapi.KVM_ARM_VCPU_POWER_OFF] if i else []))
        self._configure(caps)
        rme = uapi.KVM_CAP_ARM_RME
        with _ioctl("KVM_CAP_ARM_RME_CREATE_REALM"):
            vm.enable_cap(rme, uapi.KVM_CAP_ARM_RME_CREATE_REALM)
        with _ioctl("KVM_CAP_ARM_RME_INIT_RIPAS_REALM"):
            vm.enable_cap(rme, uapi.KVM_CAP_ARM_RME_INIT_RIPAS_REALM,
                          uapi.ArmRmeInitRipas(base, size))  # fmt: skip
        for blob in sorted(launch.blobs, key=lambda b: b.ipa):
            with _ioctl(f"KVM_CAP_ARM_RME_POPULATE_REALM ({blob.name})"):
                self._populate(blob.ipa, blob.data, measure=True)
        boot = self.vcpus[0]
        with _ioctl("KVM_ARM_VCPU_FINALIZE (REC)"):
            boot.set_one_reg(uapi.KVM_REG_ARM_CORE_PC, launch.pc)
            boot.set_one_reg(uapi.KVM_REG_ARM_CORE_X(0), launch.x0)
            for vcpu in self.vcpus:
                vcpu.finalize(uapi.KVM_ARM_VCPU_REC)
        for region in launch.unmeasured:
            with _ioctl(f"KVM_CAP_ARM_RME_POPULATE_REALM ({region.name}, unmeasured)"):
                self._populate(region.ipa, bytes(region.size), measure=False)
        with _ioctl("KVM_ARM_SMCCC_FILTER"):
            vm.set_smccc_filter(HOST_CALL_BUFFER, HOST_CALLS, uapi.KVM_SMCCC_FILTER_FWD_TO_USER)
        with _ioctl("KVM_CAP_ARM_RME_ACTIVATE_REALM"):
            vm.enable_cap(rme, uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM)

    def _configure(self, caps: Capabilities) -> None:
        """The realm parameters: the ID registers (breakpoints, watchpoints, PMU counters,
        SVE vector lengths), then CONFIG_REALM for the hash algorithm and the RPV."""
        assert self.vm is not None
        with _ioctl("KVM_SET_ONE_REG (ID registers), KVM_ARM_VCPU_FINALIZE (SVE)"):
            self._set_id_registers(caps)
        algo = 1 if caps.hash_algo == "sha512" else 0
        config = uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_CONFIG_REALM
        with _ioctl(f"KVM_CAP_ARM_RME_CONFIG_REALM (hash algorithm {caps.hash_algo})"):
            hash_algo = uapi.ArmRmeConfig(uapi.ARM_RME_CONFIG_HASH_ALGO, hash_algo=algo)
            self.vm.enable_cap(*config, hash_algo)
        with _ioctl("KVM_CAP_ARM_RME_CONFIG_REALM (RPV)"):
            rpv = uapi.ArmRmeConfig(uapi.ARM_RME_CONFIG_RPV, rpv=self.launch.rpv)
            self.vm.enable_cap(*config, rpv)

    def _set_id_registers(self, caps: Capabilities) -> None:
        boot = self.vcpus[0]
        bps, wps = (caps.num_bps or 2) - 1, (caps.num_wps or 2) - 1
        dfr0 = boot.get_one_reg(uapi.REG_ID_AA64DFR0_EL1)
        dfr0 &= ~(0xF << uapi.DFR0_BRPS_SHIFT | 0xF << uapi.DFR0_WRPS_SHIFT)
        dfr0 &= ~(0xF << uapi.DFR0_CTX_CMPS_SHIFT)
        dfr0 |= bps << uapi.DFR0_BRPS_SHIFT | wps << uapi.DFR0_WRPS_SHIFT
        dfr0 |= min(bps, 1) << uapi.DFR0_CTX_CMPS_SHIFT
        boot.set_one_reg(uapi.REG_ID_AA64DFR0_EL1, dfr0)
        if caps.pmu:
            boot.set_one_reg(uapi.REG_PMCR_EL0, (caps.pmu_num_ctrs or 0) << uapi.PMCR_N_SHIFT)
        if caps.sve_vl:
            for vcpu in self.vcpus:
                vcpu.set_one_reg(uapi.KVM_REG_ARM64_SVE_VLS, (1 << (caps.sve_vl // 128)) - 1)
                vcpu.finalize(uapi.KVM_ARM_VCPU_SVE)

    def _populate(self, ipa: int, data: bytes, measure: bool) -> None:
        assert self.vm is not None and self.ram is not None
        base = self.launch.ram[0][0]
        start = ipa & ~0xFFF
        end = -(-(ipa + len(data)) // 0x1000) * 0x1000
        self.ram.write(ipa - base, data)
        flags = uapi.KVM_ARM_RME_POPULATE_FLAGS_MEASURE if measure else 0
        self.vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_POPULATE_REALM,
                           uapi.ArmRmePopulateRealm(start, end - start, flags))  # fmt: skip

    # -- running ------------------------------------------------------------------------------

    def run(
        self, timeout: float | None = None, watchdog: Callable[[], str | None] | None = None
    ) -> RunResult:
        """Run every vCPU in its own thread until the realm powers off (or fails, or
        ``timeout`` seconds of wall time pass, or ``watchdog``, asked whenever KVM_RUN is
        interrupted, says why the realm cannot go on)."""
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._watchdog = watchdog
        scheduler = self.kvm.schedule(seed=self.seed)
        for vcpu in self.vcpus:
            scheduler.spawn(f"vcpu{vcpu.vcpu_id}", self._vcpu_thread, vcpu)
        scheduler.run()
        if self._uart_line:
            self._emit(self._uart_line)
            self._uart_line = ""
        self.result.handed = bytes(self._handed)
        if not self.result.ended:
            self.result.ended = "no vCPU can run"
        return self.result

    def _vcpu_thread(self, vcpu: Vcpu) -> None:
        while not self._stopping:
            if self._deadline is not None and time.monotonic() > self._deadline:
                self._fail(f"timed out (vCPU {vcpu.vcpu_id} still running)")
                return
            try:
                run = vcpu.run()
            except WouldBlockForever:
                return
            except KvmError as e:
                self._fail(f"vCPU {vcpu.vcpu_id}: KVM_RUN failed: {e}")
                return
            self.result.exits[run.exit_name] += 1
            reason = run.exit_reason
            try:
                if reason == uapi.KVM_EXIT_MMIO:
                    self._mmio(run.mmio)
                elif reason == uapi.KVM_EXIT_HYPERCALL:
                    self._hypercall(vcpu, run.hypercall)
                elif reason == uapi.KVM_EXIT_MEMORY_FAULT:
                    self._convert(run.memory_fault)
                elif reason == uapi.KVM_EXIT_SYSTEM_EVENT:
                    kind = run.system_event.type
                    off = kind == uapi.KVM_SYSTEM_EVENT_SHUTDOWN
                    self._stop("power off" if off else "reset")
                elif reason == uapi.KVM_EXIT_UNKNOWN:
                    self._stop(self.result.ended or "the realm is off")
                elif reason == uapi.KVM_EXIT_INTR:
                    why = self._watchdog() if self._watchdog is not None else None
                    if why:
                        self._fail(why)
                else:
                    detail = f": {run.internal_error}" if run.internal_error else ""
                    self._fail(f"vCPU {vcpu.vcpu_id}: unhandled exit {run.exit_name}{detail}")
            except (KvmError, VmmError) as e:
                self._fail(f"vCPU {vcpu.vcpu_id}: {e}")

    def _fail(self, message: str) -> None:
        self.result.errors.append(message)
        self._stop(message)

    def _stop(self, why: str) -> None:
        if not self.result.ended:
            self.result.ended = why
        self._stopping = True
        for vcpu in self.vcpus:
            vcpu.signal()

    def _mmio(self, mmio: uapi.KvmMmioExit) -> None:
        addr = mmio.phys_addr
        if layout.KVMTOOL_UART <= addr < layout.KVMTOOL_UART + layout.KVMTOOL_UART_SIZE:
            offset = addr - layout.KVMTOOL_UART
            if mmio.is_write and offset == UART_THR:
                self._uart(mmio.data[:1].decode("latin-1"))
            elif not mmio.is_write:
                value = UART_LSR_EMPTY if offset == UART_LSR else 0
                mmio.data = value.to_bytes(mmio.len, "little")
        elif layout.CCASIM_CONSOLE <= addr < layout.CCASIM_CONSOLE + layout.CCASIM_CONSOLE_SIZE:
            offset = addr - layout.CCASIM_CONSOLE
            value = int.from_bytes(mmio.data, "little") if mmio.is_write else 0
            if mmio.is_write and offset == CONSOLE_BUFFER:
                self._console_buffer = value
            elif mmio.is_write and offset == CONSOLE_DOORBELL and self._console_buffer:
                text = self._guest_read(self._console_buffer, min(value, 0x1000))
                self._uart(text.decode("utf-8", "replace"))
            elif not mmio.is_write:
                mmio.data = bytes(mmio.len)
        elif not mmio.is_write:
            mmio.data = bytes(mmio.len)  # no device: reads as zero, writes are ignored

    def _uart(self, text: str) -> None:
        for ch in text:
            if ch == "\n":
                self._emit(self._uart_line)
                self._uart_line = ""
            else:
                self._uart_line += ch

    def _emit(self, line: str) -> None:
        self.result.console += line + "\n"
        if self.echo:
            self.echo(line)

    def _ram_offset(self, gpa: int, size: int) -> int | None:
        """Where ``size`` bytes at ``gpa`` (either alias) are in the VMM's RAM mapping, or
        None if they are not all guest RAM."""
        base, ram_size = self.launch.ram[0]
        gpa &= ~self.shared_bit
        return gpa - base if base <= gpa <= base + ram_size - size else None

    def _guest_read(self, gpa: int, size: int) -> bytes:
        """Read shared guest memory; nothing outside RAM."""
        assert self.ram is not None
        offset = self._ram_offset(gpa, size)
        return b"" if offset is None else self.ram.read(offset, size)

    def _guest_write(self, gpa: int, data: bytes) -> bool:
        """Write shared guest memory; False outside RAM."""
        assert self.ram is not None
        offset = self._ram_offset(gpa, len(data))
        if offset is None:
            return False
        self.ram.write(offset, data)
        return True

    def _hypercall(self, vcpu: Vcpu, call: uapi.KvmHypercallExit) -> None:
        x = [vcpu.get_one_reg(uapi.KVM_REG_ARM_CORE_X(n)) for n in range(5)]
        if call.nr == HOST_CALL_BUFFER:
            gpa, length, offset, total = x[1], x[2], x[3], x[4]
            data = self._guest_read(gpa, min(length, 0x1000))
            if offset == 0:
                self._handed = bytearray(total)
            self._handed[offset : offset + len(data)] = data
            vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_X(0), 0)
        elif call.nr == HOST_CALL_CHALLENGE and self.challenge is not None:
            size = min(x[2], len(self.challenge))
            if self._guest_write(x[1], self.challenge[:size]):
                vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_X(0), 0)
                vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_X(1), size)
            else:
                vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_X(0), NOT_SUPPORTED)
        else:
            vcpu.set_one_reg(uapi.KVM_REG_ARM_CORE_X(0), NOT_SUPPORTED)

    def _convert(self, fault: uapi.KvmMemoryFaultExit) -> None:
        """The realm asked for a RIPAS change (or touched memory through the other alias):
        make the range private or shared, and free the side that is no longer used."""
        assert self.vm is not None and self.gmem is not None
        base, size = self.launch.ram[0]
        if not base <= fault.gpa <= fault.gpa + fault.size <= base + size:
            raise VmmError(
                f"memory fault at [{fault.gpa:#x}, {fault.gpa + fault.size:#x}) outside guest RAM"
            )
        private = bool(fault.flags & uapi.KVM_MEMORY_EXIT_FLAG_PRIVATE)
        attrs = uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE if private else 0
        self.vm.set_memory_attributes(fault.gpa, fault.size, attrs)
        if not private:
            self.vm.punch_hole(self.gmem, fault.gpa - base, fault.size)

    # -- teardown -----------------------------------------------------------------------------

    def close(self) -> None:
        if self.vm is not None:
            self.vm.close()
        if self.ram is not None:
            self.kvm.munmap(self.ram)
            self.ram = None
