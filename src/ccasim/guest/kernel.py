"""A model of the Linux realm guest kernel, for guest programs to build on.

It does what an arm64 Linux kernel does in a realm (``arch/arm64/kernel/rsi.c``,
``arch/arm64/mm/pageattr.c``, swiotlb, ``drivers/virt/coco/arm-cca-guest``), as seed 003 and
the later guest series describe it:

- boot: PSCI's probe (``psci_probe``, ``psci_init_smccc``: PSCI_VERSION, then
  PSCI_FEATURES(SMCCC_VERSION) and SMCCC_VERSION), whose SMCCC version ``arm64_rsi_init``
  needs (at least 1.1, or it leaves RSI alone); then (``arm64_rsi_init``) the RSI version,
  RSI_REALM_CONFIG for the IPA width and so the
  NS-shared bit (``prot_ns_shared = BIT(ipa_bits - 1)``), RIPAS RAM over all memory the
  device tree describes (panicking if that fails), then a bounce-buffer pool in shared
  memory (swiotlb is forced on in a realm);
- ``ioremap``: a device range whose RIPAS is EMPTY is reached through the shared alias;
- ``set_memory_decrypted`` / ``set_memory_encrypted`` over the linear map with
  break-before-make: one update makes the pages invalid and flips the NS-shared attribute,
  then RSI_IPA_STATE_SET, then the pages are made valid. A page whose conversion fails is
  leaked: it stays invalid and is never used again ("better a memory leak than a data leak",
  the guest v3 review of seed 003's break-before-make point);
- a console over a shared buffer with an MMIO doorbell (or a 16550 UART, byte by byte);
- attestation with a caller's challenge (RSI_ATTESTATION_TOKEN_*), REM extension;
- PSCI: CPU_ON for the secondaries, SYSTEM_OFF at the end.

Everything it knows of the platform it reads from the device tree the VMM put at X0.
Accesses go through :meth:`Kernel.store` and :meth:`Kernel.load`, which honour the linear
map: an invalid page is a kernel oops (:class:`KernelPanic`).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import libfdt

from ccasim.guest import rsi
from ccasim.isa import Load, Smc, Store, Wfe
from ccasim.isa.boot import GuestCpu
from ccasim.paravirt import CONSOLE_BUFFER, CONSOLE_DOORBELL, HOST_CALL_BUFFER, HOST_CALL_CHALLENGE
from ccasim.psci import PsciFid
from ccasim.rsi import RIPAS_CHANGE_DESTROYED, RsiRipas
from ccasim.smccc import NOT_SUPPORTED, SMCCC_VERSION

SMCCC_1_0, SMCCC_1_1 = 0x1_0000, 0x1_0001

Call = Generator[Any, Any, Any]
PAGE = 4096
#: How many times a CPU polls PSCI_AFFINITY_INFO for a secondary before giving up.
AFFINITY_POLLS = 100_000


class KernelPanic(RuntimeError):
    """The realm kernel cannot go on (an oops): the guest runtime resets the realm."""


@dataclass
class Platform:
    """What the device tree at X0 describes."""

    ram_base: int
    ram_size: int
    cpus: list[int]  # the MPIDRs
    bootargs: str = ""
    initrd: tuple[int, int] | None = None
    uart: int | None = None
    console: int | None = None
    dtb: tuple[int, int] = (0, 0)  # where the tree itself is

    @property
    def ram_end(self) -> int:
        return self.ram_base + self.ram_size


def probe_smccc() -> Call:
    """``psci_probe`` and ``psci_init_smccc``: the SMCCC version, found through
    PSCI_FEATURES(SMCCC_VERSION) then SMCCC_VERSION (PSCI 1.0 or later), else 1.0."""
    regs = yield Smc(PsciFid.VERSION)
    if regs[0] >> 16 < 1:  # PSCI_VERSION_MAJOR
        return SMCCC_1_0
    regs = yield Smc(PsciFid.FEATURES, SMCCC_VERSION)
    if regs[0] == NOT_SUPPORTED:
        return SMCCC_1_0
    regs = yield Smc(SMCCC_VERSION)
    version = regs[0] & 0xFFFF_FFFF
    return version if version >= SMCCC_1_1 and not version >> 31 else SMCCC_1_0


def read_device_tree(addr: int) -> Call:
    """The :class:`Platform` the flattened device tree at ``addr`` describes."""
    if addr % 8:
        raise KernelPanic(f"the device tree pointer {addr:#x} is not 8-byte aligned")
    page = addr & ~(PAGE - 1)
    head = yield Load(page, PAGE)
    offset = addr - page
    total = int.from_bytes(head[offset + 4 : offset + 8], "big")
    if int.from_bytes(head[offset : offset + 4], "big") != 0xD00D_FEED or total > 2 << 20:
        raise KernelPanic(f"no device tree at {addr:#x}")
    blob = bytearray(head[offset:])
    granule = page + PAGE
    while len(blob) < total:
        blob += yield Load(granule, PAGE)
        granule += PAGE
    return parse_device_tree(bytes(blob[:total]), addr)


def parse_device_tree(blob: bytes, addr: int = 0) -> Platform:
    """The :class:`Platform` of the flattened device tree ``blob`` (loaded at ``addr``); a
    tree libfdt cannot read is a panic, as an unusable tree is for Linux."""
    try:
        return _parse(blob, addr)
    except libfdt.FdtException as e:
        raise KernelPanic(f"invalid device tree at {addr:#x}: {e}") from None


def _parse(blob: bytes, addr: int) -> Platform:
    fdt = libfdt.Fdt(blob)

    def prop(node: int, name: str) -> bytes | None:
        value = fdt.getprop(node, name, quiet=(libfdt.NOTFOUND,))
        return None if isinstance(value, int) else bytes(value)

    def cells(data: bytes) -> list[int]:
        return [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data), 4)]

    def reg(node: int) -> tuple[int, int]:
        data = prop(node, "reg")
        if data is None or len(data) < 16:
            raise KernelPanic(f"device tree node {fdt.get_name(node)} has no 64-bit reg")
        base_hi, base_lo, size_hi, size_lo = cells(data[:16])
        return base_hi << 32 | base_lo, size_hi << 32 | size_lo

    ram = None
    cpus: list[int] = []
    uart = console = None
    bootargs, initrd = "", None
    node = fdt.first_subnode(0, quiet=(libfdt.NOTFOUND,))
    while node >= 0:
        name = fdt.get_name(node)
        compatible = (prop(node, "compatible") or b"").split(b"\0")
        if name.startswith("memory@"):
            ram = reg(node)
        elif name == "cpus":
            sub = fdt.first_subnode(node, quiet=(libfdt.NOTFOUND,))
            while sub >= 0:
                cpus.append(cells(prop(sub, "reg") or bytes(4))[0])
                sub = fdt.next_subnode(sub, quiet=(libfdt.NOTFOUND,))
        elif name == "chosen":
            bootargs = (prop(node, "bootargs") or b"").rstrip(b"\0").decode()
            start, end = prop(node, "linux,initrd-start"), prop(node, "linux,initrd-end")
            if start and end:
                initrd = (int.from_bytes(start, "big"), int.from_bytes(end, "big"))
        elif b"ns16550a" in compatible:
            uart = reg(node)[0]
        elif b"ccasim,shared-console" in compatible:
            console = reg(node)[0]
        node = fdt.next_subnode(node, quiet=(libfdt.NOTFOUND,))
    if ram is None:
        raise KernelPanic("the device tree describes no memory")
    return Platform(ram[0], ram[1], cpus or [0], bootargs, initrd, uart, console,
                    (addr, len(blob)))  # fmt: skip


@dataclass
class Kernel:
    """One realm kernel: the boot CPU creates it with :meth:`boot`; ``cpu`` is its vCPU."""

    cpu: GuestCpu
    platform: Platform | None = None
    shared_bit: int = 0
    ipa_width: int = 0
    #: Linear-map pages that are shared (NS-shared set) or invalid; others are private.
    shared: set[int] = field(default_factory=set)
    invalid: set[int] = field(default_factory=set)
    #: Pages whose conversion failed: never used again.
    leaked: set[int] = field(default_factory=set)
    pool: list[int] = field(default_factory=list)  # free bounce-buffer pages (shared)
    reserved: list[tuple[int, int]] = field(default_factory=list)
    next_free: int = 0
    console_buffer: int | None = None
    host_call_buffer: int | None = None
    lines: list[str] = field(default_factory=list)
    #: the SMC Calling Convention version PSCI's probe found (1.0 when it finds none)
    smccc_version: int = SMCCC_1_0
    #: what a Linux kernel would do differently here, for the console once it is up
    warnings: list[str] = field(default_factory=list)

    # -- boot --------------------------------------------------------------------------------

    def boot(self, bounce_pages: int = 8) -> Call:
        """PSCI's probe, ``arm64_rsi_init`` and the early setup a realm kernel makes."""
        self.smccc_version = yield from probe_smccc()
        if self.smccc_version < SMCCC_1_1:
            # arm_smccc_1_1_get_conduit() is SMCCC_CONDUIT_NONE below 1.1: Linux's
            # arm64_rsi_init returns at once and the kernel does not run as a realm.
            self.warnings.append(
                "arm64_rsi_init: SMC Calling Convention v1.0 (PSCI_FEATURES does not offer"
                " SMCCC_VERSION): Linux would not use RSI on this RMM; the model goes on"
            )
        status, _, _ = yield from rsi.version()
        if status:
            raise KernelPanic("RSI 1.0 is not available: not a realm (or an RMM we cannot use)")
        plat = yield from read_device_tree(self.cpu.gprs[0])
        self.platform = plat
        self.reserved = [(self.cpu.pc & ~(PAGE - 1), self.cpu.pc + (64 << 10)), plat.dtb]
        if plat.initrd:
            self.reserved.append(plat.initrd)
        self.next_free = plat.ram_base
        config_page = self.alloc_pages(1)
        self.ipa_width, _, _ = yield from rsi.realm_config(config_page)
        self.shared_bit = 1 << (self.ipa_width - 1)
        base, rejected = yield from rsi.ipa_state_set(plat.ram_base, plat.ram_end, RsiRipas.RAM)
        if rejected or base < plat.ram_end:
            raise KernelPanic(f"RIPAS RAM over memory stopped at {base:#x}")
        pool = self.alloc_pages(bounce_pages)
        if (yield from self.set_memory_decrypted(pool, bounce_pages)):
            self.pool = [pool + i * PAGE for i in range(bounce_pages)]
        if plat.console is not None and self.pool:
            self.console_buffer = self.pool.pop()
            device = yield from self.ioremap(plat.console)
            yield Store(device + CONSOLE_BUFFER, self.console_buffer.to_bytes(8, "little"))
        return plat

    def alloc_pages(self, count: int) -> int:
        """``count`` contiguous free pages of RAM (a memblock-like allocator that never
        frees), avoiding the image, the device tree and the initrd."""
        assert self.platform is not None
        addr = self.next_free
        while True:
            end = addr + count * PAGE
            clash = next((r for r in self.reserved if r[0] < end and addr < r[1]), None)
            if clash is None:
                break
            addr = -(-clash[1] // PAGE) * PAGE
        if end > self.platform.ram_end:
            raise KernelPanic(f"out of memory allocating {count} pages")
        self.next_free = end
        return addr

    def ioremap(self, addr: int) -> Call:
        """The address to reach a device at ``addr``: its shared alias if the range's RIPAS
        is EMPTY (the realm ioremap hook), else ``addr``."""
        page = addr & ~(PAGE - 1)
        _, ripas = yield from rsi.ipa_state_get(page, page + PAGE)
        return addr | self.shared_bit if ripas == RsiRipas.EMPTY else addr

    # -- memory encryption --------------------------------------------------------------------

    def set_memory_decrypted(self, addr: int, pages: int) -> Call:
        """Share ``pages`` pages at ``addr``: True, or False after leaking them."""
        return (yield from self._convert(addr, pages, shared=True))

    def set_memory_encrypted(self, addr: int, pages: int) -> Call:
        """Make ``pages`` pages at ``addr`` private again: True, or False after leaking."""
        return (yield from self._convert(addr, pages, shared=False))

    def _convert(self, addr: int, pages: int, shared: bool) -> Call:
        """``__set_memory_enc_dec``: break (invalid + NS-shared flipped), RSI, make."""
        span = [addr + i * PAGE for i in range(pages)]
        if any(p in self.leaked for p in span):
            raise KernelPanic(f"converting a leaked page at {addr:#x}")
        self.invalid.update(span)
        if shared:
            self.shared.update(span)
        else:
            self.shared.difference_update(span)
        end = addr + pages * PAGE
        ripas = RsiRipas.EMPTY if shared else RsiRipas.RAM
        flags = RIPAS_CHANGE_DESTROYED if shared else 0
        try:
            base, rejected = yield from rsi.ipa_state_set(addr, end, ripas, flags)
        except rsi.RsiError:
            base, rejected = addr, True
        if rejected or base < end:
            self.leaked.update(span)
            self.log(f"set_memory_{'de' if shared else 'en'}crypted({addr:#x}, {pages}) failed:"
                     f" {pages} pages leaked")  # fmt: skip
            return False
        self.invalid.difference_update(span)
        return True

    def alias(self, addr: int) -> int:
        """The IPA the linear map uses for ``addr`` (an oops if the page is invalid)."""
        page = addr & ~(PAGE - 1)
        if page in self.invalid:
            raise KernelPanic(f"unable to handle kernel paging request at {addr:#x}")
        return addr | self.shared_bit if page in self.shared else addr

    def store(self, addr: int, data: bytes) -> Call:
        """Write ``data`` (any length) through the linear map."""
        view = memoryview(bytes(data))
        while view:
            page_off = addr % PAGE
            if page_off == 0 and len(view) >= PAGE:
                yield Store(self.alias(addr), bytes(view[:PAGE]))
                addr, view = addr + PAGE, view[PAGE:]
                continue
            n = 8 if addr % 8 == 0 and len(view) >= 8 else 1
            yield Store(self.alias(addr), bytes(view[:n]))
            addr, view = addr + n, view[n:]

    def load(self, addr: int, size: int) -> Call:
        out = bytearray()
        while size:
            if addr % PAGE == 0 and size >= PAGE:
                out += yield Load(self.alias(addr), PAGE)
                addr, size = addr + PAGE, size - PAGE
                continue
            n = 8 if addr % 8 == 0 and size >= 8 else 1
            out += yield Load(self.alias(addr), n)
            addr, size = addr + n, size - n
        return bytes(out)

    # -- devices -------------------------------------------------------------------------------

    def bounce(self, data: bytes) -> Call:
        """Copy ``data`` (up to a page) to a bounce buffer (swiotlb): its IPA, for a device."""
        if not self.pool:
            raise KernelPanic("swiotlb: no bounce buffer left")
        if len(data) > PAGE:
            raise KernelPanic("swiotlb: a mapping larger than a page")
        page = self.pool.pop()
        yield from self.store(page, data.ljust(PAGE, b"\0"))
        return page

    def unbounce(self, page: int) -> None:
        self.pool.append(page)

    def log(self, line: str) -> None:
        self.lines.append(line)

    def print(self, text: str) -> Call:
        """printk to the console: through the shared buffer and its doorbell, or the UART."""
        self.lines.append(text.rstrip("\n"))
        data = text.encode()
        plat = self.platform
        if plat is None:
            return
        if self.console_buffer is not None and plat.console is not None:
            device = yield from self.ioremap(plat.console)
            for i in range(0, len(data), PAGE):
                chunk = data[i : i + PAGE]
                yield from self.store(self.console_buffer, chunk.ljust(PAGE, b"\0"))
                yield Store(device + CONSOLE_DOORBELL, len(chunk).to_bytes(8, "little"))
        elif plat.uart is not None:
            device = yield from self.ioremap(plat.uart)
            for byte in data:
                yield Store(device, bytes([byte]))

    def hand_to_host(self, data: bytes) -> Call:
        """Give the VMM a copy of ``data`` in shared memory, a page at a time through a bounce
        buffer, each with a host call (X0 HOST_CALL_BUFFER, X1 the IPA, X2 the length, X3
        the offset in ``data``, X4 its total length); the host's X0 for the last."""
        if self.host_call_buffer is None:
            self.host_call_buffer = self.alloc_pages(1)
        result = 0
        for i in range(0, max(len(data), 1), PAGE):
            chunk = data[i : i + PAGE]
            page = yield from self.bounce(chunk)
            regs = yield from rsi.host_call(
                self.host_call_buffer,
                0,
                HOST_CALL_BUFFER,
                page | self.shared_bit,
                len(chunk),
                i,
                len(data),
            )
            self.unbounce(page)
            result = regs[0]
        return result

    def challenge_from_host(self, size: int = 64) -> Call:
        """A challenge from the VMM (a verifier's nonce, passed in through a bounce buffer);
        None if the VMM has none."""
        if self.host_call_buffer is None:
            self.host_call_buffer = self.alloc_pages(1)
        page = yield from self.bounce(b"")
        regs = yield from rsi.host_call(
            self.host_call_buffer, 0, HOST_CALL_CHALLENGE, page | self.shared_bit, size
        )
        challenge = None
        if regs[0] == 0 and 32 <= regs[1] <= size:
            challenge = yield from self.load(page, regs[1])
        self.unbounce(page)
        return challenge

    # -- attestation and measurements -----------------------------------------------------

    def attest(self, challenge: bytes) -> Call:
        """The CCA attestation token for ``challenge`` (32 to 64 bytes, as the kernel's
        configfs-tsm interface takes it)."""
        if not 32 <= len(challenge) <= 64:
            raise KernelPanic(f"a challenge is 32 to 64 bytes, not {len(challenge)}")
        buffer = self.alloc_pages(16)
        return (yield from rsi.attestation_token(challenge, buffer, max_size=16 * PAGE))

    def extend(self, index: int, data: bytes) -> Call:
        """RSI_MEASUREMENT_EXTEND of REM ``index - 1`` with ``data`` (up to 64 bytes)."""
        yield from rsi.measurement_extend(index, data)

    # -- CPUs -----------------------------------------------------------------------------------

    def start_secondaries(self, entry: int, context: int) -> Call:
        """PSCI_CPU_ON for every other CPU of the device tree; their return codes."""
        assert self.platform is not None
        results = []
        for mpidr in self.platform.cpus:
            if mpidr != self.cpu.mpidr:
                results.append((yield from rsi.cpu_on(mpidr, entry, context)))
        return results

    def wait_for_secondaries(self) -> Call:
        """Poll PSCI_AFFINITY_INFO until every secondary is off again; those still on."""
        assert self.platform is not None
        still_on = []
        for mpidr in self.platform.cpus:
            if mpidr == self.cpu.mpidr:
                continue
            for _ in range(AFFINITY_POLLS):
                if (yield from rsi.affinity_info(mpidr)) == 1:
                    break
                yield Wfe()
            else:
                still_on.append(mpidr)
        return still_on

    def poweroff(self) -> Call:
        yield Smc(PsciFid.SYSTEM_OFF)
