"""kvmtool (``lkvm run --realm``): the launch its options describe, with kvmtool's own
placement rules (arm/kvm.c, arm/aarch64/realm.c in Arm's CCA kvmtool)."""

from __future__ import annotations

from dataclasses import replace

from ccasim.vmm import fdt, layout
from ccasim.vmm.capabilities import HASH_ALGOS, Capabilities
from ccasim.vmm.cmdline import (
    MAX_IPA_BITS,
    Parser,
    dtb_blob,
    dtb_file,
    kernel_blob,
    kernel_blob_of,
    log_regions,
    parse_address,
    parse_size,
    read,
    vmm_values,
)
from ccasim.vmm.errors import LaunchError
from ccasim.vmm.launch import Blob, Launch

#: lkvm run options that do not change what is put in realm memory (devices, consoles,
#: debugging, host-side memory backing).
IGNORED_FLAGS = (
    "--nodefaults",
    "--debug",
    "--debug-single-step",
    "--debug-ioport",
    "--debug-mmio",
    "--balloon",
    "--rng",
    "--no-dhcp",
    "--virtio-legacy",
    "--no-pvtime",
    "--force-pci",
    "--restricted_mem",
    "--disable-mte",
    "--vnc",
    "--gtk",
    "--sdl",
)
IGNORED_VALUES = (
    "--name",
    "--console",
    "-d",
    "--disk",
    "-n",
    "--network",
    "--irqchip",
    "--9p",
    "--dev",
    "--tty",
    "--hugetlbfs",
    "--vcpu-affinity",
    "--virtio-transport",
    "--vfio-pci",
    "--loglevel",
)


#: The devices of the device tree: kvmtool's console UART, and the shared console of
#: ccasim's VMM (``ccasim run``), so that a prediction's tree is the one the VMM builds.
DEVICES = (
    fdt.Device("U6_16550A", "ns16550a", layout.KVMTOOL_UART, layout.KVMTOOL_UART_SIZE,
               (("clock-frequency", layout.KVMTOOL_UART_CLOCK),)),
    fdt.Device("console", "ccasim,shared-console", layout.CCASIM_CONSOLE,
               layout.CCASIM_CONSOLE_SIZE),
)  # fmt: skip


def launch(
    caps: Capabilities,
    argv: list[str],
    dtb: bytes | None = None,
    default_kernel: bytes | None = None,
) -> Launch:
    """The realm ``lkvm run --realm ARGV`` builds on a host offering ``caps``; ``dtb`` is
    a device tree given to ccasim rather than to kvmtool, ``default_kernel`` the kernel
    Image loaded when ARGV names neither a kernel nor firmware (``ccasim run``'s embedded
    default guest)."""
    p = Parser(prog="kvmtool", add_help=False)
    p.add_argument("--realm", action="store_true")
    p.add_argument("-c", "--cpus", type=int)
    p.add_argument("-m", "--mem")
    p.add_argument("-k", "--kernel")
    p.add_argument("-i", "--initrd")
    p.add_argument("-p", "--params", default="")
    p.add_argument("-f", "--firmware")
    p.add_argument("--firmware-address")
    p.add_argument("--measurement-algo", choices=HASH_ALGOS, default="sha256")
    p.add_argument("--realm-pv", default="")
    p.add_argument("--pmu", action="store_true")
    p.add_argument("--pmu-counters", type=int)
    p.add_argument("--sve-max-vl", type=int)
    p.add_argument("--disable-sve", action="store_true")
    p.add_argument("--measurement-log", action="store_true")
    p.add_argument("--dtb", dest="dtb_file")
    p.add_argument("--aarch32", action="store_true")
    for flag in IGNORED_FLAGS:
        p.add_argument(flag, action="store_true")
    for option in IGNORED_VALUES:
        p.add_argument(option, action="append")
    a = p.parse_args(argv)
    if not a.realm:
        raise LaunchError("kvmtool: --realm is missing: this is not a realm launch")
    if a.aarch32:
        raise LaunchError("kvmtool: --aarch32: a realm's boot vCPU runs AArch64")
    if a.cpus is None or a.mem is None:
        raise LaunchError("kvmtool: give the number of vCPUs (-c) and the RAM size (-m)")
    if not 1 <= a.cpus <= 512:
        raise LaunchError(f"kvmtool: -c {a.cpus} is outside 1..512")
    if a.dtb_file is not None:
        if dtb is not None:
            raise LaunchError("kvmtool: --dtb is given twice")
        dtb = dtb_file(a.dtb_file)
    if a.kernel is None and a.firmware is None and default_kernel is None:
        raise LaunchError("kvmtool: give a kernel (-k) or firmware (--firmware)")
    if "@" in a.mem:
        raise LaunchError("kvmtool: -m SIZE@ADDRESS is not supported for realms")
    ram = parse_size(a.mem, "kvmtool: -m")
    if ram % (2 * layout.MiB) or ram == 0:
        raise LaunchError("kvmtool: the RAM size must be a non-zero multiple of 2 MiB")
    ipa_bits = layout.kvmtool_ipa_bits(ram)
    limit = caps.ipa_bits or MAX_IPA_BITS
    if ipa_bits > limit:
        raise LaunchError(
            f"kvmtool: -m {a.mem}: RAM up to {layout.KVMTOOL_RAM_BASE + ram:#x} needs a"
            f" {ipa_bits}-bit IPA space; the host offers {limit} bits"
        )
    lowered = vmm_values(
        "kvmtool",
        Capabilities(
            ipa_bits=ipa_bits,
            pmu=a.pmu,
            pmu_num_ctrs=a.pmu_counters,
            sve_vl=0 if a.disable_sve else a.sve_max_vl,
            hash_algo=a.measurement_algo,
        ),
    )
    # kvmtool enables the PMU only with --pmu, and only where the host has one.
    pmu = a.pmu and caps.pmu is not False
    caps = replace(caps.restrict(lowered), hash_algo=a.measurement_algo, pmu=pmu)
    if len(a.realm_pv.encode()) > 64:
        raise LaunchError("kvmtool: --realm-pv is longer than 64 bytes")
    rpv = a.realm_pv.encode().ljust(64, b"\0")

    blobs: list[Blob] = []
    base = layout.KVMTOOL_RAM_BASE
    text_offset = None
    if a.firmware is None:
        if a.kernel is not None:
            kernel, _ = kernel_blob(a.kernel, base)
        else:
            assert default_kernel is not None
            kernel, _ = kernel_blob_of(default_kernel, "", base)
        text_offset = kernel.ipa - base
        blobs.append(kernel)
    initrd = read(a.initrd, "initrd") if a.initrd is not None and a.firmware is None else None
    firmware_addr = None
    if a.firmware is not None:
        firmware_addr = base
        if a.firmware_address is not None:
            firmware_addr = parse_address(a.firmware_address, "kvmtool: --firmware-address")
        firmware = read(a.firmware, "firmware")
        if not base <= firmware_addr <= base + ram - len(firmware):
            raise LaunchError(
                f"kvmtool: the firmware ({len(firmware)} bytes at {firmware_addr:#x}) is not"
                f" inside guest RAM [{base:#x}, {base + ram:#x})"
            )
        blobs.append(Blob("firmware", firmware_addr, firmware, a.firmware))
    place = layout.kvmtool_placement(
        ram,
        text_offset,
        len(initrd) if initrd is not None else None,
        firmware_addr,
        measurement_log=a.measurement_log,
    )
    if initrd is not None and place.initrd is not None:
        blobs.append(Blob("initrd", place.initrd, initrd, a.initrd))
    if dtb is None:
        initrd_range = (
            (place.initrd, place.initrd + len(initrd)) if initrd and place.initrd else None
        )
        gic = fdt.GicLayout(
            layout.KVMTOOL_GICD,
            layout.KVMTOOL_GICD_SIZE,
            layout.KVMTOOL_GICD - 0x2_0000 * a.cpus,
        )
        dtb = fdt.build(
            fdt.GuestDescription(
                base, ram, a.cpus, gic, a.params, initrd_range, pmu=bool(caps.pmu),
                devices=DEVICES,
            )
        )  # fmt: skip
    blobs.append(dtb_blob(dtb, place.dtb, layout.KVMTOOL_FDT_MAX_SIZE))
    image = Launch(
        caps, [(base, ram)], blobs, place.pc, place.dtb, rpv, log_regions(place), vcpus=a.cpus
    )
    if a.firmware is not None and (a.kernel or a.initrd):
        image.notes.append("kvmtool does not load -k or -i with --firmware: not measured")
    return image
