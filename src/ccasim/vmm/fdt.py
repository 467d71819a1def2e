"""The flattened device tree a VMM gives a realm guest (built with pylibfdt, libfdt's
maintained Python binding).

The tree describes what an arm64 realm kernel needs to boot: memory, the vCPUs with PSCI
(over SMC: realms use the SMC conduit, B6.1), the architected timer, a GICv3, and /chosen
with the command line and the initrd. It is deterministic for the same inputs. A real kvmtool
or QEMU tree has more nodes (virtio devices, serial ports, PCI); to reproduce their RIM exactly,
measure their own DTB (``ccasim measure --dtb``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libfdt

# GICv3 interrupt specifier: type (0 SPI, 1 PPI), number, flags (level high = 4, edge = 1)
GIC_PPI = 1
IRQ_LEVEL_LOW = 8
# Architected timer PPIs: secure phys, non-secure phys, virtual, hypervisor phys
TIMER_PPIS = (13, 14, 11, 10)
PMU_PPI = 7
GIC_PHANDLE = 1
FDT_MAGIC = 0xD00D_FEED


class DtbError(ValueError):
    """Bytes that are not a flattened device tree."""


def check(data: bytes) -> None:
    """Raise :class:`DtbError` unless ``data`` is a well-formed flattened device tree: the
    header's magic, version and sizes, and a structure block that libfdt can walk."""
    if len(data) < 4 or int.from_bytes(data[:4], "big") != FDT_MAGIC:
        raise DtbError("not a flattened device tree (no 0xd00dfeed magic)")
    err = libfdt.fdt_check_full(bytearray(data), len(data))
    if err < 0:
        name = str(libfdt.FdtException(err)).rpartition(" ")[2]
        why = _CHECK_ERRORS.get(name, name)
        raise DtbError(f"not a valid flattened device tree: {why}")


_CHECK_ERRORS = {
    "FDT_ERR_TRUNCATED": "shorter than its header says (truncated)",
    "FDT_ERR_BADVERSION": "unsupported header version",
    "FDT_ERR_BADSTRUCTURE": "corrupt structure block",
    "FDT_ERR_BADLAYOUT": "blocks out of order",
    "FDT_ERR_BADOFFSET": "a block lies outside the blob",
}


@dataclass(frozen=True)
class GicLayout:
    distributor: int
    distributor_size: int
    redistributor: int
    redistributor_stride: int = 0x2_0000


@dataclass(frozen=True)
class Device:
    """An MMIO device node: ``name@base`` with ``compatible`` and ``reg = <base size>``."""

    name: str
    compatible: str
    base: int
    size: int
    properties: tuple[tuple[str, int], ...] = ()  # extra u32 properties


@dataclass(frozen=True)
class GuestDescription:
    """What the device tree describes."""

    ram_base: int
    ram_size: int
    cpus: int
    gic: GicLayout
    bootargs: str = ""
    initrd: tuple[int, int] | None = None  # (start, end)
    compatible: str = "linux,dummy-virt"
    pmu: bool = False
    extra_chosen: dict[str, str] = field(default_factory=dict)
    devices: tuple[Device, ...] = ()


SW_BUFFER = 1 << 20


def _cells(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "big") for v in values)


def _cells64(*values: int) -> bytes:
    return b"".join(_cells(v >> 32, v & 0xFFFF_FFFF) for v in values)


def build(desc: GuestDescription) -> bytes:
    """The device tree blob for ``desc``."""
    # pylibfdt grows the buffer as nodes and properties are added, but not for fdt_finish,
    # which fails with FDT_ERR_NOSPACE when the last addition filled it exactly: start with
    # room to spare (the blob is packed to its own size, whatever the buffer was).
    sw = libfdt.FdtSw(SW_BUFFER)
    sw.finish_reservemap()
    with sw.add_node(""):
        sw.property_string("compatible", desc.compatible)
        sw.property_u32("#address-cells", 2)
        sw.property_u32("#size-cells", 2)
        sw.property_u32("interrupt-parent", GIC_PHANDLE)
        with sw.add_node("chosen"):
            if desc.bootargs:
                sw.property_string("bootargs", desc.bootargs)
            if desc.initrd is not None:
                sw.property_u64("linux,initrd-start", desc.initrd[0])
                sw.property_u64("linux,initrd-end", desc.initrd[1])
            for name, value in sorted(desc.extra_chosen.items()):
                sw.property_string(name, value)
        with sw.add_node(f"memory@{desc.ram_base:x}"):
            sw.property_string("device_type", "memory")
            sw.property("reg", _cells64(desc.ram_base, desc.ram_size))
        with sw.add_node("cpus"):
            sw.property_u32("#address-cells", 1)
            sw.property_u32("#size-cells", 0)
            for n in range(desc.cpus):
                mpidr = (n & 0xF) | ((n >> 4) & 0xFF) << 8  # Aff0[3:0], Aff1 (A2.3.3)
                with sw.add_node(f"cpu@{mpidr:x}"):
                    sw.property_string("device_type", "cpu")
                    sw.property_string("compatible", "arm,arm-v8")
                    sw.property_string("enable-method", "psci")
                    sw.property_u32("reg", mpidr)
        with sw.add_node("psci"):
            sw.property("compatible", b"arm,psci-1.0\0arm,psci-0.2\0")
            sw.property_string("method", "smc")
        with sw.add_node("timer"):
            sw.property("compatible", b"arm,armv8-timer\0arm,armv7-timer\0")
            sw.property("always-on", b"")
            sw.property(
                "interrupts", _cells(*[c for p in TIMER_PPIS for c in (GIC_PPI, p, IRQ_LEVEL_LOW)])
            )
        if desc.pmu:
            with sw.add_node("pmu"):
                sw.property_string("compatible", "arm,armv8-pmuv3")
                sw.property("interrupts", _cells(GIC_PPI, PMU_PPI, IRQ_LEVEL_LOW))
        for device in desc.devices:
            with sw.add_node(f"{device.name}@{device.base:x}"):
                sw.property_string("compatible", device.compatible)
                sw.property("reg", _cells64(device.base, device.size))
                for prop, number in device.properties:
                    sw.property_u32(prop, number)
        gic = desc.gic
        with sw.add_node(f"intc@{gic.distributor:x}"):
            sw.property_string("compatible", "arm,gic-v3")
            sw.property_u32("#interrupt-cells", 3)
            sw.property("interrupt-controller", b"")
            sw.property_u32("#address-cells", 2)
            sw.property_u32("#size-cells", 2)
            redist_size = gic.redistributor_stride * desc.cpus
            sw.property(
                "reg",
                _cells64(gic.distributor, gic.distributor_size, gic.redistributor, redist_size),
            )
            sw.property_u32("phandle", GIC_PHANDLE)
    fdt = sw.as_fdt()
    fdt.pack()
    return bytes(fdt.as_bytearray())
