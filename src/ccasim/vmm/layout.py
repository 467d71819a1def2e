"""Where kvmtool and QEMU put a realm guest's RAM, kernel, initrd, firmware and device tree.

These are the VMMs' own placement rules (kvmtool arm/kvm.c and arm/aarch64/realm.c; QEMU
hw/arm/boot.c and target/arm/kvm-rme.c), so that a prediction matches what the VMM does.
"""

from __future__ import annotations

from dataclasses import dataclass

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def align_down(value: int, align: int) -> int:
    return value // align * align


@dataclass(frozen=True)
class Placement:
    kernel: int | None
    initrd: int | None
    dtb: int
    firmware: int | None
    pc: int
    log: int | None = None  # the measurement log (populated unmeasured), if any


# -- kvmtool ---------------------------------------------------------------------------------

KVMTOOL_RAM_BASE = 0x8000_0000
KVMTOOL_FDT_MAX_SIZE = 64 * KiB
KVMTOOL_FDT_ALIGN = 2 * MiB
KVMTOOL_INITRD_ALIGN = 4
MEASUREMENT_LOG_SIZE = 64 * KiB
KVMTOOL_GICD = 0x3FFF_0000  # ARM_AXI_AREA - GIC distributor size
KVMTOOL_GICD_SIZE = 0x1_0000
#: kvmtool's first 8250 UART (ARM_UART_MMIO_BASE, the start of its MMIO area) and the shared
#: console ccasim's VMM adds after it (``ccasim,shared-console``).
KVMTOOL_UART = 0x0100_0000
KVMTOOL_UART_SIZE = 8
KVMTOOL_UART_CLOCK = 1_843_200
CCASIM_CONSOLE = 0x0101_0000
CCASIM_CONSOLE_SIZE = 0x1000


def kvmtool_ipa_bits(ram_size: int) -> int:
    """kvmtool asks for max(32, bits of the highest RAM address) + 1 IPA bits for a realm
    (the top bit selects the Unprotected half)."""
    top = KVMTOOL_RAM_BASE + ram_size - 1
    return max(top.bit_length(), 32) + 1


def kvmtool_placement(
    ram_size: int,
    text_offset: int | None,
    initrd_size: int | None,
    firmware_address: int | None,
    measurement_log: bool = False,
) -> Placement:
    """kvmtool: the DTB in the last 2 MiB-aligned slot below min(RAM, 256 MiB) (or, with
    firmware, below the end of RAM), the kernel at RAM + text_offset, the initrd just below
    the DTB (4-byte aligned). A measurement log takes the top 64 KiB of that window."""
    base = KVMTOOL_RAM_BASE
    usable = ram_size if firmware_address is not None else min(ram_size, 256 * MiB)
    limit = base + usable
    log = None
    if measurement_log:
        limit -= MEASUREMENT_LOG_SIZE
        log = limit
    dtb = align_up(limit - (KVMTOOL_FDT_MAX_SIZE + KVMTOOL_FDT_ALIGN), KVMTOOL_FDT_ALIGN)
    kernel = base + text_offset if text_offset is not None else None
    initrd = None
    if initrd_size is not None:
        initrd = align_up(dtb - initrd_size - KVMTOOL_INITRD_ALIGN, KVMTOOL_INITRD_ALIGN)
    if firmware_address is not None:
        pc = firmware_address
    else:
        pc = kernel if kernel is not None else base
    return Placement(kernel, initrd, dtb, firmware_address, pc, log)


# -- QEMU virt -------------------------------------------------------------------------------

QEMU_RAM_BASE = 0x4000_0000
QEMU_IPA_BITS = 41  # the virt machine's high PCIe MMIO ends at 1 TiB: 40 bits, + 1
QEMU_MAX_RAM = 255 * GiB  # RAM below the high MMIO regions (the virt machine's memory map)
QEMU_RAM_ALIGN = 8 * KiB  # QEMU rounds -m up to this
QEMU_GICD = 0x0800_0000
QEMU_GICD_SIZE = 0x1_0000
QEMU_GICR = 0x080A_0000
QEMU_DTB_ALIGN = 2 * MiB
QEMU_FDT_SIZE = 1 * MiB  # the virt machine's fdt_size: the log starts after it


def qemu_placement(
    ram_size: int,
    kernel: tuple[int, int] | None,  # (text_offset, size in memory)
    initrd_size: int | None,
    firmware: bool,
    measurement_log: bool = False,
) -> Placement:
    """QEMU virt (direct kernel boot): kernel at RAM + text_offset, initrd at
    RAM + min(RAM/2, 128 MiB) (or after the kernel), DTB after it, 2 MiB aligned. With -bios,
    the firmware is at 0, the DTB at the start of RAM, and the PC 0. A measurement log
    follows the 1 MiB reserved for the DTB."""
    base = QEMU_RAM_BASE
    if firmware:
        log = base + QEMU_FDT_SIZE if measurement_log else None
        return Placement(None, None, base, 0, 0, log)
    kernel_addr = base + kernel[0] if kernel is not None else None
    kernel_end = kernel_addr + kernel[1] if kernel is not None and kernel_addr is not None else base
    initrd = align_up(max(base + min(ram_size // 2, 128 * MiB), kernel_end), 4 * KiB)
    dtb = align_up(initrd + (initrd_size or 0), QEMU_DTB_ALIGN)
    log = dtb + QEMU_FDT_SIZE if measurement_log else None
    initrd_addr = initrd if initrd_size is not None else None
    return Placement(kernel_addr, initrd_addr, dtb, None, kernel_addr or base, log)
