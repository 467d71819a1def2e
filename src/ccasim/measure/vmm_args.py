"""Parsing the realm-related part of a kvmtool or QEMU command line."""

from __future__ import annotations

import argparse
import base64
import re
import zlib
from dataclasses import replace
from pathlib import Path

from ccasim.measure.capabilities import HASH_ALGOS, Capabilities, CapabilityError
from ccasim.measure.realm import Blob, RealmImage, Region
from ccasim.vmm import fdt, layout
from ccasim.vmm.image import ImageError, parse_image_header

MAX_IPA_BITS = 52  # FEAT_LPA2 (A5.2.1)
SIZE_UNITS = {"": 1 << 20, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, what: str) -> int:
    """A memory size as the VMMs take it: a number, MiB unless a K/M/G/T suffix says so."""
    m = re.fullmatch(r"(\d+)([BKMGT]?)i?B?", text.strip(), re.IGNORECASE)
    if m is None:
        raise CapabilityError(f"{what}: {text!r} is not a size (a number with K, M, G or T)")
    return int(m.group(1)) * SIZE_UNITS[m.group(2).upper()]


def parse_address(text: str, what: str) -> int:
    """An address as the VMMs read one with strtoull(..., 0): decimal, 0x-hex or 0-octal."""
    try:
        value = int(text, 0) if not text.startswith("0") or text[1:2] in "xX" else int(text, 8)
    except ValueError:
        raise CapabilityError(f"{what}: {text!r} is not an address") from None
    if not 0 <= value < 1 << 64:
        raise CapabilityError(f"{what}: {text!r} does not fit in 64 bits")
    return value


def dtb_file(path: str) -> bytes:
    """A device tree given as a file: it must be a flattened device tree."""
    data = read(path, "DTB")
    try:
        fdt.check(data)
    except fdt.DtbError as e:
        raise CapabilityError(f"DTB {path}: {e}") from None
    return data


def read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CapabilityError(f"cannot read {what} {path}: {e.strerror}") from None


def vmm_values(vmm: str, requested: Capabilities) -> Capabilities:
    """What a VMM's options ask for must be possible at all (a count of PMU counters, a
    vector length); within that, it can only lower what the host offers."""
    try:
        return requested.validate()
    except CapabilityError as e:
        raise CapabilityError(f"{vmm}: {e}") from None


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, and that gives an option
    the value after it even when that value starts with '-' (``-m -512M``, ``-p -quiet``), as
    the VMMs' own option parsers do."""

    def error(self, message: str):  # type: ignore[override]
        raise CapabilityError(message)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        takes_value = {
            option
            for action in self._actions
            if action.nargs is None and action.option_strings
            for option in action.option_strings
        }
        joined: list[str] = []
        words = iter(args or [])
        for word in words:
            joined.append(word)
            if word in takes_value:
                value = next(words, None)
                if value is not None:
                    joined[-1] = f"{word}={value}"
        return super().parse_args(joined, namespace)


GZIP_MAGIC = b"\x1f\x8b"
QEMU_MAX_GUNZIP = 256 << 20  # QEMU's LOAD_IMAGE_MAX_GUNZIP_BYTES


def gunzip(data: bytes, path: str) -> bytes:
    """An Image.gz as QEMU inflates it for -kernel (at most 256 MiB)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, QEMU_MAX_GUNZIP)
    except zlib.error as e:
        raise CapabilityError(f"kernel {path}: not a valid gzip file: {e}") from None
    if inflater.unconsumed_tail:
        raise CapabilityError(f"kernel {path}: inflates to more than 256 MiB")
    return out


def kernel_blob(path: str, base: int, inflate: bool = False) -> tuple[Blob, int]:
    """The kernel Image placed at RAM + text_offset; an Image.gz is inflated first if the VMM
    does so (QEMU)."""
    data = read(path, "kernel")
    if inflate and data.startswith(GZIP_MAGIC):
        data = gunzip(data, path)
    try:
        header = parse_image_header(data)
    except ImageError as e:
        raise CapabilityError(f"kernel {path}: {e}") from None
    return Blob("kernel", base + header.text_offset, data), header.image_size


def dtb_blob(data: bytes, ipa: int, pad_to: int | None) -> Blob:
    if pad_to is not None:
        if len(data) > pad_to:
            raise CapabilityError(f"the DTB is {len(data)} bytes; the VMM allows {pad_to}")
        data = data.ljust(pad_to, b"\0")
    return Blob("dtb", ipa, data)


# -- kvmtool ---------------------------------------------------------------------------------

#: lkvm run options that do not change what is put in realm memory (devices, consoles,
#: debugging, host-side memory backing).
KVMTOOL_IGNORED_FLAGS = (
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
KVMTOOL_IGNORED_VALUES = (
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


def kvmtool(caps: Capabilities, argv: list[str], dtb: bytes | None) -> RealmImage:
    """The realm ``lkvm run --realm ...`` builds."""
    p = Parser(prog="kvmtool", add_help=False)
    p.add_argument("--realm", action="store_true")
    p.add_argument("-c", "--cpus", type=int)
    p.add_argument("-m", "--mem")
    p.add_argument("-k", "--kernel")
    p.add_argument("-i", "--initrd")
    p.add_argument("-p", "--params", default="")
    p.add_argument("-f", "--firmware")
    p.add_argument("--firmware-address")
    p.add_argument("--measurement-algo", choices=("sha256", "sha512"), default="sha256")
    p.add_argument("--realm-pv", default="")
    p.add_argument("--pmu", action="store_true")
    p.add_argument("--pmu-counters", type=int)
    p.add_argument("--sve-max-vl", type=int)
    p.add_argument("--disable-sve", action="store_true")
    p.add_argument("--measurement-log", action="store_true")
    p.add_argument("--dtb", dest="dtb_file")
    p.add_argument("--aarch32", action="store_true")
    for flag in KVMTOOL_IGNORED_FLAGS:
        p.add_argument(flag, action="store_true")
    for option in KVMTOOL_IGNORED_VALUES:
        p.add_argument(option, action="append")
    a = p.parse_args(argv)
    if not a.realm:
        raise CapabilityError("kvmtool: --realm is missing: this is not a realm launch")
    if a.aarch32:
        raise CapabilityError("kvmtool: --aarch32: a realm's boot vCPU runs AArch64")
    if a.cpus is None or a.mem is None:
        raise CapabilityError("kvmtool: give the number of vCPUs (-c) and the RAM size (-m)")
    if not 1 <= a.cpus <= 512:
        raise CapabilityError(f"kvmtool: -c {a.cpus} is outside 1..512")
    if a.dtb_file is not None:
        if dtb is not None:
            raise CapabilityError("kvmtool: --dtb is given twice")
        dtb = dtb_file(a.dtb_file)
    if a.kernel is None and a.firmware is None:
        raise CapabilityError("kvmtool: give a kernel (-k) or firmware (--firmware)")
    if "@" in a.mem:
        raise CapabilityError("kvmtool: -m SIZE@ADDRESS is not supported for realms")
    ram = parse_size(a.mem, "kvmtool: -m")
    if ram % (2 * layout.MiB) or ram == 0:
        raise CapabilityError("kvmtool: the RAM size must be a non-zero multiple of 2 MiB")
    ipa_bits = layout.kvmtool_ipa_bits(ram)
    limit = caps.ipa_bits or MAX_IPA_BITS
    if ipa_bits > limit:
        raise CapabilityError(
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
        raise CapabilityError("kvmtool: --realm-pv is longer than 64 bytes")
    rpv = a.realm_pv.encode().ljust(64, b"\0")

    blobs: list[Blob] = []
    base = layout.KVMTOOL_RAM_BASE
    text_offset = None
    kernel = None
    if a.kernel is not None and a.firmware is None:
        kernel, _ = kernel_blob(a.kernel, base)
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
            raise CapabilityError(
                f"kvmtool: the firmware ({len(firmware)} bytes at {firmware_addr:#x}) is not"
                f" inside guest RAM [{base:#x}, {base + ram:#x})"
            )
        blobs.append(Blob("firmware", firmware_addr, firmware))
    place = layout.kvmtool_placement(
        ram,
        text_offset,
        len(initrd) if initrd is not None else None,
        firmware_addr,
        measurement_log=a.measurement_log,
    )
    if initrd is not None and place.initrd is not None:
        blobs.append(Blob("initrd", place.initrd, initrd))
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
            fdt.GuestDescription(base, ram, a.cpus, gic, a.params, initrd_range, pmu=bool(caps.pmu))
        )
    blobs.append(dtb_blob(dtb, place.dtb, layout.KVMTOOL_FDT_MAX_SIZE))
    image = RealmImage(caps, [(base, ram)], blobs, place.pc, place.dtb, rpv, log_blobs(place))
    if a.firmware is not None and (a.kernel or a.initrd):
        image.notes.append("kvmtool does not load -k or -i with --firmware: not measured")
    return image


def log_blobs(place: layout.Placement) -> list[Region]:
    """The measurement log's pages, populated unmeasured after the RECs."""
    if place.log is None:
        return []
    return [Region("measurement log", place.log, layout.MEASUREMENT_LOG_SIZE)]


# -- QEMU ------------------------------------------------------------------------------------


def _props(text: str) -> tuple[str, dict[str, str]]:
    """ "name,key=value,..." -> (name, {key: value}); a bare key is "on"."""
    head, *rest = text.split(",")
    if "=" in head:
        head, rest = "", [head, *rest]
    props = {}
    for item in rest:
        key, _, value = item.partition("=")
        props[key] = value if _ else "on"
    return head, props


def _int(value: str, what: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise CapabilityError(f"qemu: {what}={value!r} is not a number") from None


def _on(value: str, what: str) -> bool:
    if value in ("on", "true", "yes"):
        return True
    if value in ("off", "false", "no"):
        return False
    raise CapabilityError(f"qemu: {what}={value!r} is not on or off")


QEMU_MACHINE_PROPERTIES = ("gic-version", "confidential-guest-support", "its", "acpi", "accel")


def qemu(caps: Capabilities, argv: list[str], dtb: bytes | None) -> RealmImage:
    """The realm ``qemu-system-aarch64 -M virt ... -object rme-guest`` builds."""
    p = Parser(prog="qemu", add_help=False)
    p.add_argument("-m", default="128M")
    p.add_argument("-smp", default="1")
    p.add_argument("-kernel")
    p.add_argument("-initrd")
    p.add_argument("-bios")
    p.add_argument("-append", default="")
    p.add_argument("-dtb")
    p.add_argument("-object", action="append", default=[])
    p.add_argument("-cpu", action="append", default=[])
    p.add_argument("-M", "-machine", action="append", default=[], dest="machine")
    for flag in ("-enable-kvm", "-nographic", "-nodefaults", "-no-reboot", "-S"):
        p.add_argument(flag, action="store_true")
    for option in (
        "-serial",
        "-netdev",
        "-device",
        "-drive",
        "-chardev",
        "-name",
        "-monitor",
        "-accel",
        "-display",
        "-d",
    ):
        p.add_argument(option, action="append")
    a = p.parse_args(argv)
    mem = a.m.removeprefix("size=")
    if "," in mem:
        raise CapabilityError("qemu: -m takes only a size here")
    ram = layout.align_up(parse_size(mem, "qemu: -m"), layout.QEMU_RAM_ALIGN)
    if not 0 < ram <= layout.QEMU_MAX_RAM:
        raise CapabilityError(
            f"qemu: -m {mem}: the virt machine holds up to"
            f" {layout.QEMU_MAX_RAM // layout.GiB} GiB of RAM in its"
            f" {layout.QEMU_IPA_BITS}-bit IPA space"
        )
    for machine in a.machine:
        name, props = _props(machine)
        name = props.pop("type", name)
        if name and not re.fullmatch(r"virt(-\d+\.\d+)?", name):
            raise CapabilityError(f"qemu: machine {name!r}: only virt is supported")
        for key, value in props.items():
            if key == "gic-version" and value not in ("3", "host", "max"):
                raise CapabilityError(f"qemu: gic-version={value}: realms need GICv3")
            if key not in QEMU_MACHINE_PROPERTIES:
                raise CapabilityError(f"qemu: -M {key}=... changes the layout; not supported")
    smp = _props(a.smp)
    cpus = _int(smp[0] or smp[1].get("cpus", "1"), "-smp")
    if not 1 <= cpus <= 512:
        raise CapabilityError(f"qemu: -smp {cpus} is outside 1..512")

    algo, rpv, log = "sha512", bytes(64), False
    rme = [o for o in a.object if o.startswith("rme-guest")]
    if not rme:
        raise CapabilityError("qemu: no -object rme-guest: this is not a realm launch")
    for key, value in _props(rme[-1])[1].items():
        if key in ("measurement-algorithm", "measurement-algo"):  # the latter: older QEMU
            if value not in HASH_ALGOS:
                raise CapabilityError(
                    f"qemu: {key}={value!r}: the RMM measures with {' or '.join(HASH_ALGOS)}"
                )
            algo = value
        elif key == "personalization-value":
            try:
                rpv = base64.b64decode(value, validate=True)
            except ValueError:
                raise CapabilityError("qemu: personalization-value is not base64") from None
            if len(rpv) != 64:
                raise CapabilityError("qemu: personalization-value must be 64 bytes")
        elif key == "measurement-log":
            log = _on(value, key)
        elif key != "id":
            raise CapabilityError(f"qemu: unknown rme-guest property {key!r}")
    lowered = Capabilities(ipa_bits=layout.QEMU_IPA_BITS)
    pmu = bool(caps.pmu)
    sve_on: list[int] = []
    for cpu in a.cpu:
        for key, value in _props(cpu)[1].items():
            if key == "pmu":
                pmu = pmu and _on(value, key)
            elif key == "num-pmu-counters":
                lowered = lowered.restrict(Capabilities(pmu_num_ctrs=_int(value, key)))
            elif key == "num-breakpoints":
                lowered = lowered.restrict(Capabilities(num_bps=_int(value, key)))
            elif key == "num-watchpoints":
                lowered = lowered.restrict(Capabilities(num_wps=_int(value, key)))
            elif key == "sve" and not _on(value, key):
                lowered = lowered.restrict(Capabilities(sve_vl=0))
            elif m := re.fullmatch(r"sve(\d+)", key):
                if not _on(value, key):
                    raise CapabilityError(
                        f"qemu: {key}=off is not supported: give the largest length as sve<N>=on"
                    )
                sve_on.append(int(m.group(1)))
    if sve_on:
        lowered = lowered.restrict(Capabilities(sve_vl=max(sve_on)))
    vmm_values("qemu", lowered)
    caps = replace(caps.restrict(lowered), hash_algo=algo, pmu=pmu)
    if caps.ipa_bits is not None and caps.ipa_bits < layout.QEMU_IPA_BITS:
        raise CapabilityError(f"qemu: the virt machine needs {layout.QEMU_IPA_BITS} IPA bits")
    caps = replace(caps, ipa_bits=layout.QEMU_IPA_BITS)

    base = layout.QEMU_RAM_BASE
    blobs: list[Blob] = []
    if a.bios is not None:
        # QEMU gives -kernel and -initrd to the firmware (fw_cfg); they are not realm memory.
        place = layout.qemu_placement(ram, None, None, firmware=True, measurement_log=log)
        blobs.append(Blob("firmware", 0, read(a.bios, "firmware")))
        initrd = None
    else:
        if a.kernel is None:
            raise CapabilityError("qemu: give -kernel or -bios")
        kernel, image_size = kernel_blob(a.kernel, base, inflate=True)
        initrd = read(a.initrd, "initrd") if a.initrd is not None else None
        place = layout.qemu_placement(
            ram, (kernel.ipa - base, max(image_size, len(kernel.data))),
            len(initrd) if initrd is not None else None, firmware=False, measurement_log=log,
        )  # fmt: skip
        blobs.append(kernel)
        if initrd is not None and place.initrd is not None:
            blobs.append(Blob("initrd", place.initrd, initrd))
    if a.dtb is not None and dtb is None:
        dtb = dtb_file(a.dtb)
    if dtb is None:
        initrd_range = (
            (place.initrd, place.initrd + len(initrd)) if initrd and place.initrd else None
        )
        gic = fdt.GicLayout(layout.QEMU_GICD, layout.QEMU_GICD_SIZE, layout.QEMU_GICR)
        dtb = fdt.build(fdt.GuestDescription(base, ram, cpus, gic, a.append, initrd_range, pmu=pmu))
    blobs.append(dtb_blob(dtb, place.dtb, None))
    x0 = 0 if a.bios is not None else place.dtb  # firmware finds the DTB at the RAM base
    image = RealmImage(caps, [(base, ram)], blobs, place.pc, x0, rpv, log_blobs(place))
    if a.bios is not None and (a.kernel or a.initrd):
        image.notes.append(
            "with -bios, QEMU hands -kernel and -initrd to the firmware (fw_cfg): not in the RIM"
        )
    return image
