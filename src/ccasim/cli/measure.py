"""``ccasim measure``: predict the measurements of a realm a VMM would launch."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.cli.capabilities import (
    capability_options,
    chosen_profile,
    read_capabilities,
    rmm_profile_options,
)
from ccasim.cli.files import read_file, write_file
from ccasim.cli.numbers import ADDRESS, REGISTER, parse_hex_bytes, parse_number
from ccasim.measure import Blob, Capabilities, Launch, LaunchError, Region, RimCalculator
from ccasim.rmm.profile import RmmProfile
from ccasim.vmm import kvmtool as kvmtool_vmm
from ccasim.vmm import qemu as qemu_vmm
from ccasim.vmm.capabilities import HASH_ALGOS
from ccasim.vmm.cmdline import dtb_file

DIGEST_SIZE = {"sha256": 32, "sha512": 64}
CAPABILITY_OPTIONS = [f.name for f in fields(Capabilities)]


class Bool(click.ParamType):
    """true/false as realm-measurements spells them (also on/off, yes/no, 1/0)."""

    name = "BOOL"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "on", "yes", "1"):
            return True
        if text in ("false", "off", "no", "0"):
            return False
        self.fail(f"{value!r} is not true or false", param, ctx)


HELP = """Predict the RIM (and REMs, zero at start) of a realm that kvmtool or QEMU would launch.

\b
  ccasim measure [options] kvmtool --realm -c 2 -m 512M -k Image [-i initrd] [-p cmdline]
  ccasim measure [options] qemu -M virt -m 1G -kernel Image -object rme-guest,id=r0,...
  ccasim measure [options] custom --ram 0x80000000:512M --load Image@0x80000000 --pc ...

The VMM's own placement rules and construction order are followed (realm parameters, RIPAS
over all RAM, measured images in ascending IPA order, the boot vCPU's REC, unmeasured pages
last). Without --dtb, ccasim generates the device tree the VMM would pass; a RIM equal to a
real kvmtool or QEMU launch needs that VMM's actual DTB, given with --dtb.

Host capabilities are given as Veraison's realm-measurements takes them: options, and TOML
files (-c, stackable; each file can only lower what the ones before allowed).
"""


@click.group(help=HELP)
@click.option(
    "-c",
    "--config",
    "configs",
    multiple=True,
    metavar="FILE",
    help="Capabilities TOML with the keys "
    + ", ".join(CAPABILITY_OPTIONS)
    + " (e.g. examples/host-caps.toml).",
)
@capability_options
@click.option("--pmu", type=Bool(), help="Whether the host has a PMU for realms.")
@click.option("--lpa2", type=Bool(), help="Whether the host supports LPA2.")
@click.option("--hash-algo", type=click.Choice(HASH_ALGOS), help="Needed for custom realms.")
@click.option("--dtb", metavar="FILE", help="Measure this device tree as is.")
@click.option("--output-dtb", metavar="FILE", help="Write the device tree that was measured.")
@click.option("-v", "--verbose", is_flag=True, help="Print every step with the RIM after it.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["hex", "base64", "json"]),
    default="hex",
    show_default=True,
)
@rmm_profile_options
@click.option("--corim", metavar="FILE", help="Also write reference values as a CoMID (JSON).")
@click.option(
    "--corim-template", metavar="FILE", help="A CoMID (JSON) whose identity and class to keep."
)
@click.pass_context
def measure(ctx: click.Context, configs: tuple[str, ...], **options: Any) -> None:
    given = Capabilities(**{name: options.pop(name) for name in CAPABILITY_OPTIONS})
    caps = read_capabilities(configs, options.pop("rmi_features"), given)
    ctx.obj = {"caps": caps, **options}


VMM_SETTINGS = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def _run(ctx: click.Context, vmm: str, argv: list[str]) -> None:
    opts = ctx.obj
    try:
        dtb = dtb_file(opts["dtb"]) if opts["dtb"] else None
        build = kvmtool_vmm.launch if vmm == "kvmtool" else qemu_vmm.launch
        image = build(opts["caps"], list(argv), dtb)
    except LaunchError as e:
        raise click.ClickException(str(e)) from None
    _report(opts, image)


def _report(opts: dict, image: Launch) -> None:
    """Compute, write the requested files, then print: an error leaves stdout empty."""
    if opts["corim_template"] and not opts["corim"]:
        raise click.ClickException("--corim-template needs --corim FILE")
    template = _template(opts["corim_template"]) if opts["corim_template"] else None
    try:
        calculator = RimCalculator(image)
        measurements = calculator.compute()
    except LaunchError as e:
        raise click.ClickException(str(e)) from None
    hash_algo = image.caps.hash_algo or "sha256"
    size = DIGEST_SIZE[hash_algo]
    values = [m[:size] for m in measurements]
    if opts["output_dtb"]:
        dtb_blob = next((b for b in image.blobs if b.name == "dtb"), None)
        if dtb_blob is None:
            raise click.ClickException("--output-dtb: this realm has no device tree")
        write_file(opts["output_dtb"], dtb_blob.data, "DTB")
    if opts["corim"]:
        document = comid(hash_algo, values, image.rpv, template)
        write_file(opts["corim"], json.dumps(document, indent=2).encode() + b"\n", "CoMID")

    for note in image.notes:
        click.echo(f"ccasim: note: {note}", err=True)
    rmm = chosen_profile(opts)
    if rmm.quirks:
        click.echo(f"ccasim: note: {profile_note(rmm)}", err=True)
    if opts["verbose"]:
        for step in calculator.steps:
            click.echo(f"{step.rim[:size].hex()}  {step.what}")
    names = ["RIM", "REM0", "REM1", "REM2", "REM3"]
    fmt = opts["fmt"]
    if fmt == "json":
        out = {n: v.hex() for n, v in zip(names, values, strict=True)}
        out["hash-algo"] = hash_algo
        click.echo(json.dumps(out, indent=2))
    else:
        for n, v in zip(names, values, strict=True):
            click.echo(f"{n}: {base64.b64encode(v).decode() if fmt == 'base64' else v.hex()}")


def profile_note(rmm: RmmProfile) -> str:
    """What an RMM profile changes in the measurements of a VMM's launch: nothing. The
    construction measured here runs RTT_INIT_RIPAS over 4 KiB-aligned ranges of fresh
    UNASSIGNED EMPTY entries before any DATA_CREATE, so no quirk's condition is met (the
    RIPAS quirks need a misaligned base or an ASSIGNED or DESTROYED entry in the range; the
    others touch no measurement)."""
    return (
        f"RMM {rmm.name}: none of its quirks meets this construction (RTT_INIT_RIPAS over"
        " fresh entries before any DATA_CREATE): the measurements are the spec's"
    )


def comid(hash_algo: str, values: list[bytes], rpv: bytes, template: dict | None = None) -> dict:
    """Reference values as a CoMID in the JSON form Veraison's cocli takes: the realm's RIM,
    REMs and RPV as the measurement of a CCA realm environment whose instance is the RIM. A
    template keeps its tag identity and environment class; only the measurement and the
    instance are replaced."""
    alg = {"sha256": "sha-256", "sha512": "sha-512"}[hash_algo]
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    registers = {
        name: {"key-type": "text", "value": [f"{alg};{b64(v)}"]}
        for name, v in zip(("rim", "rem0", "rem1", "rem2", "rem3"), values, strict=True)
    }
    document = dict(template or {})
    document.setdefault(
        "tag-identity", {"id": str(uuid.uuid5(uuid.NAMESPACE_OID, values[0].hex())), "version": 0}
    )
    triples = dict(document.get("triples") or {})
    existing = triples.get("reference-values") or [{}]
    environment = dict(existing[0].get("environment") or {})
    environment.setdefault(
        "class",
        {"id": {"type": "uuid", "value": str(uuid.uuid5(uuid.NAMESPACE_OID, "cca-realm"))}},
    )
    environment["instance"] = {"type": "bytes", "value": b64(values[0])}
    measurement = {
        "value": {
            "raw-value": {"type": "bytes", "value": b64(rpv)},
            "integrity-registers": registers,
        }
    }
    triples["reference-values"] = [{"environment": environment, "measurement": measurement}]
    document["triples"] = triples
    return document


def _template(path: str) -> dict:
    try:
        document = json.loads(read_file(path, "CoMID template"))
    except ValueError as e:
        raise click.ClickException(f"{path}: not valid JSON: {e}") from None
    shape_ok = isinstance(document, dict) and isinstance(document.get("triples", {}), dict)
    refs = document.get("triples", {}).get("reference-values", [{}]) if shape_ok else None
    if not (shape_ok and isinstance(refs, list) and refs and isinstance(refs[0], dict)):
        raise click.ClickException(f"{path}: not a CoMID template (an object with triples)")
    if not isinstance(refs[0].get("environment", {}), dict):
        raise click.ClickException(f"{path}: the reference value's environment is not an object")
    return document


def _help_asked(ctx: click.Context) -> bool:
    if "-h" in ctx.args or "--help" in ctx.args:
        click.echo(ctx.get_help())
        return True
    return False


@measure.command(context_settings=VMM_SETTINGS)
@click.pass_context
def kvmtool(ctx: click.Context) -> None:
    """A realm launched with `lkvm run --realm ...`: give its options.

    \b
    Measured: --realm, -c/--cpus, -m/--mem, -k/--kernel, -i/--initrd, -p/--params,
    -f/--firmware, --firmware-address, --measurement-algo, --realm-pv, --pmu,
    --pmu-counters, --sve-max-vl, --disable-sve, --measurement-log, --dtb.
    Accepted and ignored (devices, consoles, debugging, host memory backing): --name,
    --console, -d/--disk, -n/--network, --irqchip, --9p, --dev, --tty, --hugetlbfs,
    --vcpu-affinity, --virtio-transport, --vfio-pci, --loglevel, --nodefaults, --debug*,
    --balloon, --rng, --no-dhcp, --virtio-legacy, --no-pvtime, --force-pci, --restricted_mem,
    --disable-mte, --vnc, --gtk, --sdl.
    """
    if not _help_asked(ctx):
        _run(ctx, "kvmtool", ctx.args)


@measure.command(context_settings=VMM_SETTINGS)
@click.pass_context
def qemu(ctx: click.Context) -> None:
    """A realm launched with `qemu-system-aarch64 -M virt ... -object rme-guest,...`.

    \b
    Measured: -m, -smp, -kernel (Image or Image.gz), -initrd, -bios, -append, -dtb,
    -M virt[,gic-version=3|host|max], -cpu host[,pmu=,num-breakpoints=,num-watchpoints=,
    num-pmu-counters=,sve=off,sve<N>=on], -object rme-guest[,measurement-algorithm=,
    personalization-value=,measurement-log=].
    Accepted and ignored: -enable-kvm, -nographic, -nodefaults, -no-reboot, -S, -serial,
    -netdev, -device, -drive, -chardev, -name, -monitor, -accel, -display, -d.
    """
    if not _help_asked(ctx):
        _run(ctx, "qemu", ctx.args)


def _number(text: str, what: str) -> int:
    """An address or size in an option's compound value (BASE:SIZE, FILE@IPA)."""
    try:
        return parse_number(text, suffixes=True)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=what) from None


def _range(text: str, what: str) -> tuple[int, int]:
    """BASE:SIZE, granule aligned and not empty."""
    base, sep, size = text.partition(":")
    if not sep:
        raise click.BadParameter(f"{text!r} is not BASE:SIZE", param_hint=what)
    start, length = _number(base, what), _number(size, what)
    if length == 0:
        raise click.BadParameter(f"{text!r}: the size is zero", param_hint=what)
    for name, value in (("base", start), ("size", length)):
        if value % GRANULE_SIZE:
            raise click.BadParameter(
                f"{text!r}: the {name} {value:#x} is not a multiple of 4 KiB (a granule)",
                param_hint=what,
            )
    return start, length


@measure.command()
@click.option("--ram", "ram", multiple=True, metavar="BASE:SIZE", help="RAM with RIPAS RAM.")
@click.option("--load", "loads", multiple=True, metavar="FILE@IPA", help="A measured image.")
@click.option("--unmeasured", multiple=True, metavar="IPA:SIZE", help="Pages populated unmeasured.")
@click.option("--pc", type=ADDRESS, default=0, help="The boot REC's entry point.")
@click.option(
    "--x0", type=REGISTER, default=0, help="The boot REC's X0 (for Linux, the DTB address)."
)
@click.option("--rpv", default="", help="Realm personalisation value (hex, up to 64 bytes).")
@click.pass_context
def custom(
    ctx: click.Context,
    ram: tuple[str, ...],
    loads: tuple[str, ...],
    unmeasured: tuple[str, ...],
    pc: int,
    x0: int,
    rpv: str,
) -> None:
    """A realm described directly: RAM ranges, images and where they go, the boot REC.

    For VMMs other than kvmtool and QEMU. Addresses and sizes are decimal or 0x-hex and take
    K/M/G/T suffixes (0x80000000:512M); RAM ranges and unmeasured ranges must be granule
    aligned."""
    opts = ctx.obj
    ranges = [_range(r, "--ram") for r in ram]
    blobs = []
    for spec in loads:
        path, sep, ipa = spec.rpartition("@")
        if not sep or not path:
            raise click.BadParameter(f"{spec!r} is not FILE@IPA", param_hint="--load")
        blobs.append(Blob(Path(path).name, _number(ipa, "--load"), read_file(path, "image")))
    if opts["dtb"]:
        raise click.ClickException("--dtb: with custom, give the DTB as --load FILE@IPA")
    holes = [Region("pages", *_range(text, "--unmeasured")) for text in unmeasured]
    try:
        personalisation = parse_hex_bytes(rpv)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--rpv") from None
    if len(personalisation) > 64:
        raise click.BadParameter("longer than 64 bytes", param_hint="--rpv")
    image = Launch(
        caps=opts["caps"],
        ram=ranges,
        blobs=blobs,
        pc=pc,
        x0=x0,
        rpv=personalisation.ljust(64, b"\0"),
        unmeasured=holes,
    )
    _report(opts, image)
