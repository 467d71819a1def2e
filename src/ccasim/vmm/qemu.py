"""QEMU (``qemu-system-aarch64 -M virt ... -object rme-guest``): the launch its options
describe, with the virt machine's placement rules (hw/arm/boot.c, hw/arm/virt.c,
target/arm/kvm-rme.c)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace

from ccasim.vmm import fdt, layout
from ccasim.vmm.capabilities import HASH_ALGOS, Capabilities
from ccasim.vmm.cmdline import (
    Parser,
    dtb_blob,
    dtb_file,
    kernel_blob,
    log_regions,
    parse_size,
    read,
    vmm_values,
)
from ccasim.vmm.errors import LaunchError
from ccasim.vmm.launch import Blob, Launch

#: -M properties that do not move anything in guest memory.
MACHINE_PROPERTIES = ("gic-version", "confidential-guest-support", "its", "acpi", "accel")
IGNORED_FLAGS = ("-enable-kvm", "-nographic", "-nodefaults", "-no-reboot", "-S")
IGNORED_VALUES = (
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
)


@dataclass(frozen=True)
class RealmObject:
    """What ``-object rme-guest,...`` configures."""

    hash_algo: str = "sha512"
    rpv: bytes = bytes(64)
    measurement_log: bool = False


def launch(caps: Capabilities, argv: list[str], dtb: bytes | None = None) -> Launch:
    """The realm ``qemu-system-aarch64 ARGV`` builds on a host offering ``caps``; ``dtb`` is
    a device tree given to ccasim rather than to QEMU."""
    a = _parser().parse_args(argv)
    ram = _ram(a.m)
    _check_machine(a.machine)
    cpus = _cpus(a.smp)
    realm = _realm_object(a.object)
    caps = _cpu_capabilities(caps, a.cpu, realm.hash_algo)

    base = layout.QEMU_RAM_BASE
    blobs: list[Blob] = []
    initrd = None
    if a.bios is not None:
        # QEMU gives -kernel and -initrd to the firmware (fw_cfg); they are not realm memory.
        place = layout.qemu_placement(ram, None, None, True, realm.measurement_log)
        blobs.append(Blob("firmware", 0, read(a.bios, "firmware")))
    else:
        if a.kernel is None:
            raise LaunchError("qemu: give -kernel or -bios")
        kernel, image_size = kernel_blob(a.kernel, base, inflate=True)
        initrd = read(a.initrd, "initrd") if a.initrd is not None else None
        in_memory = (kernel.ipa - base, max(image_size, len(kernel.data)))
        initrd_size = len(initrd) if initrd is not None else None
        place = layout.qemu_placement(ram, in_memory, initrd_size, False, realm.measurement_log)
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
        guest = fdt.GuestDescription(
            base, ram, cpus, gic, a.append, initrd_range, pmu=bool(caps.pmu)
        )
        dtb = fdt.build(guest)
    blobs.append(dtb_blob(dtb, place.dtb, None))
    x0 = 0 if a.bios is not None else place.dtb  # firmware finds the DTB at the RAM base
    log = log_regions(place)
    image = Launch(caps, [(base, ram)], blobs, place.pc, x0, realm.rpv, log, vcpus=cpus)
    if a.bios is not None and (a.kernel or a.initrd):
        image.notes.append(
            "with -bios, QEMU hands -kernel and -initrd to the firmware (fw_cfg): not in the RIM"
        )
    return image


def _parser() -> Parser:
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
    for flag in IGNORED_FLAGS:
        p.add_argument(flag, action="store_true")
    for option in IGNORED_VALUES:
        p.add_argument(option, action="append")
    return p


def _ram(text: str) -> int:
    """-m [size=]SIZE, rounded up as QEMU does, within what the virt machine holds."""
    mem = text.removeprefix("size=")
    if "," in mem:
        raise LaunchError("qemu: -m takes only a size here")
    ram = layout.align_up(parse_size(mem, "qemu: -m"), layout.QEMU_RAM_ALIGN)
    if not 0 < ram <= layout.QEMU_MAX_RAM:
        raise LaunchError(
            f"qemu: -m {mem}: the virt machine holds up to"
            f" {layout.QEMU_MAX_RAM // layout.GiB} GiB of RAM in its"
            f" {layout.QEMU_IPA_BITS}-bit IPA space"
        )
    return ram


def _check_machine(machines: list[str]) -> None:
    """-M virt, with no property that would change the memory map."""
    for machine in machines:
        name, props = _props(machine)
        name = props.pop("type", name)
        if name and not re.fullmatch(r"virt(-\d+\.\d+)?", name):
            raise LaunchError(f"qemu: machine {name!r}: only virt is supported")
        for key, value in props.items():
            if key == "gic-version" and value not in ("3", "host", "max"):
                raise LaunchError(f"qemu: gic-version={value}: realms need GICv3")
            if key not in MACHINE_PROPERTIES:
                raise LaunchError(f"qemu: -M {key}=... changes the layout; not supported")


def _cpus(smp: str) -> int:
    head, props = _props(smp)
    cpus = _int(head or props.get("cpus", "1"), "-smp")
    if not 1 <= cpus <= 512:
        raise LaunchError(f"qemu: -smp {cpus} is outside 1..512")
    return cpus


def _realm_object(objects: list[str]) -> RealmObject:
    """The last ``-object rme-guest,...``: measurement algorithm, personalization value,
    measurement log."""
    rme = [o for o in objects if o.startswith("rme-guest")]
    if not rme:
        raise LaunchError("qemu: no -object rme-guest: this is not a realm launch")
    realm = RealmObject()
    for key, value in _props(rme[-1])[1].items():
        if key in ("measurement-algorithm", "measurement-algo"):  # the latter: older QEMU
            if value not in HASH_ALGOS:
                raise LaunchError(
                    f"qemu: {key}={value!r}: the RMM measures with {' or '.join(HASH_ALGOS)}"
                )
            realm = replace(realm, hash_algo=value)
        elif key == "personalization-value":
            try:
                rpv = base64.b64decode(value, validate=True)
            except ValueError:
                raise LaunchError("qemu: personalization-value is not base64") from None
            if len(rpv) != 64:
                raise LaunchError("qemu: personalization-value must be 64 bytes")
            realm = replace(realm, rpv=rpv)
        elif key == "measurement-log":
            realm = replace(realm, measurement_log=_on(value, key))
        elif key != "id":
            raise LaunchError(f"qemu: unknown rme-guest property {key!r}")
    return realm


def _cpu_capabilities(caps: Capabilities, cpus: list[str], hash_algo: str) -> Capabilities:
    """The host's capabilities lowered by ``-cpu host,...`` properties, with the virt
    machine's IPA width and the realm's hash algorithm."""
    lowered = Capabilities(ipa_bits=layout.QEMU_IPA_BITS)
    pmu = bool(caps.pmu)
    sve_on: list[int] = []
    for cpu in cpus:
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
                    raise LaunchError(
                        f"qemu: {key}=off is not supported: give the largest length as sve<N>=on"
                    )
                sve_on.append(int(m.group(1)))
    if sve_on:
        lowered = lowered.restrict(Capabilities(sve_vl=max(sve_on)))
    vmm_values("qemu", lowered)
    caps = replace(caps.restrict(lowered), hash_algo=hash_algo, pmu=pmu)
    if caps.ipa_bits is not None and caps.ipa_bits < layout.QEMU_IPA_BITS:
        raise LaunchError(f"qemu: the virt machine needs {layout.QEMU_IPA_BITS} IPA bits")
    return replace(caps, ipa_bits=layout.QEMU_IPA_BITS)


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
        raise LaunchError(f"qemu: {what}={value!r} is not a number") from None


def _on(value: str, what: str) -> bool:
    if value in ("on", "true", "yes"):
        return True
    if value in ("off", "false", "no"):
        return False
    raise LaunchError(f"qemu: {what}={value!r} is not on or off")
