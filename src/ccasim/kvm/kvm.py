"""``/dev/kvm``: the host kernel's KVM, with the realm support of the Linux Arm CCA host
series (v8, RMM 1.0).

At initialisation KVM checks the RMI version and reads RMI feature register 0, as
``kvm_init_rme()`` does (seed 002 §2.1 X6); realm VMs are available only if both succeed.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.kvm import uapi
from ccasim.kvm.errors import KvmError, fail
from ccasim.kvm.memory import Owner, PageAllocator, UserMemory
from ccasim.kvm.rmi import Injection, KernelRmi
from ccasim.kvm.sched import Scheduler, SingleThread, Threads
from ccasim.kvm.vm import Vm
from ccasim.rmi import FID, FeatureRegister0, InterfaceVersion, Status
from ccasim.smccc import NOT_SUPPORTED

if TYPE_CHECKING:
    from ccasim.machine import Machine

#: The RMI version the series speaks (RMI_ABI_MAJOR_VERSION.MINOR).
RMI_ABI_VERSION = InterfaceVersion(major=1, minor=0)
#: Where the VMM's anonymous mappings start in its address space.
USER_BASE = 0x7F00_0000_0000


class VmidAllocator:
    """The realm VMID bitmap of ``rme_vmid_reserve`` (seed 002-01): the RMM's VMID space is
    separate from KVM's, so realms get VMIDs from their own allocator, lowest free first."""

    def __init__(self, bits: int) -> None:
        self.count = 1 << bits
        self._used: set[int] = set()
        self._next_free = 0

    def reserve(self) -> int:
        """The lowest free VMID (``bitmap_find_free_region``), or ENOMEM."""
        vmid = self._next_free
        while vmid in self._used:
            vmid += 1
        if vmid >= self.count:
            raise fail(errno.ENOMEM, f"all {self.count} realm VMIDs are in use")
        self._used.add(vmid)
        self._next_free = vmid + 1
        return vmid

    def release(self, vmid: int) -> None:
        self._used.discard(vmid)
        self._next_free = min(self._next_free, vmid)

    def in_use(self) -> set[int]:
        return set(self._used)


class Kvm:
    """The host kernel's KVM on ``machine``, driving the RMM only through ``Machine.smc`` and
    touching memory only through the Non-secure PAS.

    - ``pages`` is the kernel's page allocator over the platform's Non-secure DRAM, with an
      owner for every page (:meth:`page_counts`).
    - ``rmi`` makes the kernel's RMI calls; :meth:`inject` makes chosen ones fail.
    - ``dmesg`` collects the kernel's messages, WARNs included (every leak is one).
    - ``threads`` decides how vCPU threads interleave (:mod:`ccasim.kvm.sched`).
    - ``tick_hz``, the host's scheduler tick: each REC entry arms the host's EL2 timer for the
      next tick (none by default: the PE's time slice is then the only host interrupt).
    """

    def __init__(
        self,
        machine: Machine,
        *,
        vmid_bits: int = 16,
        record_rmi: bool = False,
        abi: InterfaceVersion = RMI_ABI_VERSION,
        tick_hz: int | None = None,
    ) -> None:
        self.machine = machine
        self.pages = PageAllocator(machine)
        self.rmi = KernelRmi(machine, record=record_rmi)
        self.dmesg: list[str] = []
        self.threads: Threads = SingleThread(machine)
        #: A KVM_RUN that enters the REC this many times without returning to user space is
        #: interrupted (KVM_EXIT_INTR, -EINTR) as a watchdog signal would: a realm that
        #: spins for ever (or has nothing to run) cannot hang the model.
        self.max_entries_per_run = 100_000
        self.vmids = VmidAllocator(vmid_bits)
        self.vms: list[Vm] = []
        #: The host's own IPA limit (ID_AA64MMFR0_EL1.PARange): the platform's PA size.
        self.ipa_limit = machine.platform.pa_bits
        self._next_user = USER_BASE
        self._user: list[UserMemory] = []
        self.rme_available = False
        self.feat_reg0 = FeatureRegister0()
        #: The RMI version this kernel speaks (the series: 1.0).
        self.abi = abi
        #: A tracepoint: called with (vCPU id, exit name) at every REC exit.
        self.on_rec_exit: Callable[[int, str], None] | None = None
        #: The host kernel's scheduler tick (CONFIG_HZ), or None: while a REC runs, the host's
        #: EL2 timer is armed for the next tick, whose interrupt is a REC exit due to IRQ.
        if tick_hz is not None and (
            isinstance(tick_hz, bool) or not 0 < tick_hz <= machine.counter_frequency
        ):
            raise ValueError(f"a tick of {tick_hz} Hz (1 to the counter's frequency)")
        self.tick_period = machine.counter_frequency // tick_hz if tick_hz else None
        self._init_rme()

    # -- initialisation (kvm_init_rme) -------------------------------------------------------

    def _init_rme(self) -> None:
        want = self.abi
        result = self.rmi.version(want.encode())
        if result.x0 == NOT_SUPPORTED:
            self.info("RMI not present: continuing without realm support")
            return
        if not result.ok:
            low = InterfaceVersion.decode(result[1])
            high = InterfaceVersion.decode(result[2])
            self.error(
                f"Unsupported RMI ABI (v{low.major}.{low.minor} - v{high.major}.{high.minor}) "
                f"we want v{want.major}.{want.minor}"
            )
            return
        version = InterfaceVersion.decode(result[1])
        self.info(f"RMI ABI version {version.major}.{version.minor}")
        features = self.rmi.features(0)
        if not features.ok:
            self.warn(f"RMI_FEATURES(0) failed: {features}")
            return
        self.feat_reg0 = FeatureRegister0.decode(features[1])
        self.rme_available = True

    def schedule(self, seed: int = 0, switch: float = 0.5) -> Scheduler:
        """Run VMM threads (one per vCPU, usually) on a seeded scheduler from now on: spawn
        them on the returned :class:`~ccasim.kvm.Scheduler`, then ``run()`` it."""
        scheduler = Scheduler(self.machine, seed, switch)
        self.threads = scheduler
        return scheduler

    # -- the kernel's log ------------------------------------------------------------------

    def info(self, message: str) -> None:
        self.dmesg.append(f"kvm [info]: {message}")

    def error(self, message: str) -> None:
        self.dmesg.append(f"kvm [error]: {message}")

    def warn(self, message: str) -> None:
        """A WARN: something the series considers a bug or a leak."""
        self.dmesg.append(f"WARNING: {message}")

    def warnings(self) -> list[str]:
        return [line for line in self.dmesg if line.startswith("WARNING")]

    # -- ioctls on /dev/kvm ----------------------------------------------------------------

    def check_extension(self, cap: int) -> int:
        """KVM_CHECK_EXTENSION on /dev/kvm (VM-independent answers)."""
        if cap == uapi.KVM_CAP_ARM_RME:
            return int(self.rme_available)
        if cap == uapi.KVM_CAP_ARM_VM_IPA_SIZE:
            return self.ipa_limit
        if cap in (
            uapi.KVM_CAP_ONE_REG,
            uapi.KVM_CAP_ARM_PSCI,
            uapi.KVM_CAP_ARM_PSCI_0_2,
            uapi.KVM_CAP_IMMEDIATE_EXIT,
            uapi.KVM_CAP_READONLY_MEM,
            uapi.KVM_CAP_SET_GUEST_DEBUG,
            uapi.KVM_CAP_USER_MEMORY2,
        ):
            return 1
        return 0

    def create_vm(self, vm_type: int = 0) -> Vm:
        """KVM_CREATE_VM: ``vm_type`` holds the machine type in bits [11:8]
        (KVM_VM_TYPE_ARM_REALM) and the IPA size in bits [7:0] (0: 40 bits)."""
        vm = Vm(self, vm_type)
        self.vms.append(vm)
        return vm

    def mmap(self, size: int) -> UserMemory:
        """An anonymous mapping in the VMM's address space (``mmap(MAP_ANONYMOUS)``), for
        guest RAM or any buffer; its pages come from host memory when first touched."""
        if not isinstance(size, int) or size <= 0 or size % GRANULE_SIZE:
            raise fail(errno.EINVAL, f"mmap of {size!r} bytes: not a positive page multiple")
        mem = UserMemory(self.pages, self.machine, self._next_user, size)
        self._next_user += size + GRANULE_SIZE  # a guard page between mappings
        self._user.append(mem)
        return mem

    def munmap(self, mem: UserMemory) -> None:
        if mem not in self._user:
            raise fail(errno.EINVAL, "not a mapping of this process")
        self._user.remove(mem)
        mem.release()

    def user_memory(self, addr: int, size: int) -> tuple[UserMemory, int] | None:
        """The mapping holding [addr, addr + size) and the offset of ``addr`` in it."""
        for mem in self._user:
            if mem.addr <= addr and addr + size <= mem.end:
                return mem, addr - mem.addr
        return None

    # -- accounting and fault injection ----------------------------------------------------

    def page_counts(self) -> dict[str, int]:
        """Host pages per owner (free, kernel, user, guest_memfd, rd, root rtt, rtt, rec,
        rec aux, data, leaked); they add up to the DRAM's page count."""
        return self.pages.counts()

    def leaked(self) -> list[int]:
        return self.pages.pages(Owner.LEAKED)

    def inject(
        self,
        command: FID,
        status: Status = Status.ERROR_INPUT,
        nth: int = 1,
        index: int = 0,
        outputs: tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> Injection:
        """Make the ``nth`` next RMI call of ``command`` return ``status`` without reaching
        the RMM (see :class:`~ccasim.kvm.rmi.KernelRmi`)."""
        return self.rmi.inject(command, status, nth, index, outputs)


__all__ = ["Kvm", "KvmError", "VmidAllocator"]
