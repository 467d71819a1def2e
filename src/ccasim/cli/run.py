"""``ccasim run``: boot a realm end to end, as ``lkvm run --realm`` does.

The layers are wired as on a real machine: an FVP-like :class:`~ccasim.Machine` (EL3 and the
RMM) with the platform's capabilities, the host kernel's KVM (:mod:`ccasim.kvm`) on it, and
the kvmtool-like VMM (:mod:`ccasim.vmm.run`) on KVM, which builds the launch that
``ccasim measure kvmtool`` predicts from the same options. The realm runs guest programs
(:mod:`ccasim.guest`); the default is ``ccasim-default``.

After the run, everything shown comes from what crosses interfaces (the console, the token
the realm handed over, KVM's statistics) or from the machine's debug views (measurements,
why a vCPU stopped), never from inside a layer.
"""

from __future__ import annotations

import inspect
import os
import time
from typing import Any, TextIO

import click

from ccasim import attest
from ccasim.cli import summary
from ccasim.cli.capabilities import capability_options, read_capabilities
from ccasim.cli.files import read_file
from ccasim.cli.launchfile import CAPS_KEYS, load_launch
from ccasim.cli.measure import Bool
from ccasim.cli.numbers import COUNT, parse_hex_bytes, parse_number
from ccasim.cli.platform import DEFAULT_HOST_RAM, full_caps, make_machine
from ccasim.guest.image import ImageError, decode_image, is_kernel_image, kernel_image
from ccasim.guest.registry import lookup, programs
from ccasim.isa import StopReason
from ccasim.kvm import Kvm
from ccasim.measure import RimCalculator
from ccasim.vmm import kvmtool
from ccasim.vmm.capabilities import HASH_ALGOS, Capabilities
from ccasim.vmm.errors import LaunchError
from ccasim.vmm.run import RealmVmm, VmmError

DEFAULT_PROGRAM = "ccasim-default"
DEFAULT_CPUS, DEFAULT_MEM = "2", "256M"

HELP = """Boot a realm end to end: `lkvm run --realm` on a modelled Arm CCA host.

\b
  ccasim run                              the default realm: 256 MiB, 2 vCPUs, SHA-256
  ccasim run -c 8 -m 4G --guest-arg touch_mib=-1
  ccasim run -k Image -i initrd -p "console=hvc0" --measurement-algo sha512
  ccasim run --launch realm.toml --json --trace rmm.log --report run.html

kvmtool's options, with kvmtool's meaning: -c/--cpus, -m/--mem, -k/--kernel, -i/--initrd,
-p/--params, -f/--firmware, --firmware-address, --measurement-algo, --realm-pv, --pmu,
--pmu-counters, --sve-max-vl, --disable-sve, --measurement-log, --dtb; its device, console and
debug options are accepted and ignored (see `ccasim measure kvmtool --help`).

ccasim executes guest programs, not AArch64 code. Without -k the realm runs an embedded
kernel image of the program --guest names (default ccasim-default; `ccasim guest list`).
A real arm64 Image given with -k is loaded and measured as kvmtool would; the realm then
runs --guest's program in its place, and the run says so.

The platform (what the RMM and hardware support) takes the host-capability options of
`ccasim measure`; the RMM's defaults are a 48-bit IPA space, 16 breakpoints and watchpoints,
SVE up to 2048 bits, a PMU with 31 counters and both hash algorithms.

Exit status: 0 when the realm powered off and its attestation token verified; 1 otherwise.
"""

RUN_SETTINGS = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.command(context_settings=RUN_SETTINGS, help=HELP)
@click.option("--guest", metavar="NAME", help="The guest program to run (default ccasim-default).")
@click.option(
    "--guest-arg",
    "guest_args",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter of the guest program (a number, or text).",
)
@click.option("--launch", "launch_file", metavar="FILE", help="A whole launch in TOML.")
@click.option(
    "--caps",
    "caps_files",
    multiple=True,
    metavar="FILE",
    help="Platform capabilities TOML, as `ccasim measure -c` takes (stackable).",
)
@capability_options
@click.option("--lpa2", type=Bool(), help="Whether the RMM supports LPA2 (52-bit IPAs).")
@click.option("--hash-algo", type=click.Choice(HASH_ALGOS), help="The only hash the RMM offers.")
@click.option("--host-ram", metavar="SIZE", help="The host's DRAM (default 32G).")
@click.option("--challenge", metavar="HEX", help="The attestation challenge (32-64 bytes).")
@click.option("--seed", type=COUNT, help="Seed of the vCPU threads' interleaving (default 0).")
@click.option("--timeout", type=COUNT, help="Stop the realm after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("-q", "--quiet", is_flag=True, help="Do not echo the guest console.")
@click.option("--trace", "trace_file", metavar="FILE", help="Write the RMM's log of every call.")
@click.option("--report", "report_file", metavar="FILE", help="Write an HTML report.")
@click.pass_context
def run(ctx: click.Context, **opts: Any) -> int:
    started = time.perf_counter()
    argv = list(ctx.args)
    if "-h" in argv or "--help" in argv:
        click.echo(ctx.get_help())
        return 0
    launch_file = load_launch(opts["launch_file"]) if opts["launch_file"] else None
    if launch_file is not None:
        argv = launch_file.kvmtool_args + argv
        for key, value in launch_file.options.items():
            if opts.get(key) is None:
                opts[key] = value
    if "--realm" in argv:
        argv.remove("--realm")
    caps = _platform_caps(opts, launch_file.caps if launch_file else None)
    args = dict(launch_file.guest_args) if launch_file else {}
    args.update(guest_args(opts["guest_args"]))
    challenge = _challenge(opts["challenge"])
    host_ram = _size(opts["host_ram"], "--host-ram") if opts["host_ram"] else DEFAULT_HOST_RAM

    plan = _guest_plan(argv, opts["guest"], args)
    try:
        machine = make_machine(caps, host_ram, plan.fallback)
    except ValueError as e:
        raise click.ClickException(f"--host-ram: {e}") from None
    trace = _open_trace(opts["trace_file"])
    if trace is not None:
        machine.on_rmm_log(lambda record: print(record, file=trace))
    kvm = Kvm(machine)
    if not kvm.rme_available:
        raise click.ClickException("the host has no usable RMM: " + "; ".join(kvm.dmesg))
    try:
        launch = kvmtool.launch(
            caps, ["--realm", "-c", DEFAULT_CPUS, "-m", DEFAULT_MEM, *argv],
            default_kernel=plan.kernel,
        )  # fmt: skip
        predicted = RimCalculator(launch).compute()
    except LaunchError as e:
        raise click.ClickException(str(e)) from None

    recorder = summary.Recorder(kvm, report=bool(opts["report_file"]))
    echo = None if (opts["quiet"] or opts["as_json"]) else recorder.echo
    show_progress = echo is not None and _is_terminal()
    vmm = RealmVmm(kvm, launch, console=echo, seed=opts["seed"] or 0, challenge=challenge)
    for note in plan.notes:
        click.echo(f"ccasim: note: {note}", err=True)
    times: dict[str, float] = {}
    outcome = summary.Outcome()
    try:
        t = time.perf_counter()
        with summary.progress(kvm, "populate", launch, show_progress):
            vmm.build()
        times["build"] = time.perf_counter() - t
        t = time.perf_counter()
        with summary.progress(kvm, "run", launch, show_progress):
            result = vmm.run(timeout=opts["timeout"], watchdog=lambda: _stuck(machine, vmm))
        times["run"] = time.perf_counter() - t
        outcome.collect(machine, kvm, vmm, result, recorder)
    except VmmError as e:
        outcome.refused = f"the host refused the realm: {e}"
    finally:
        t = time.perf_counter()
        with summary.progress(kvm, "teardown", launch, show_progress):
            vmm.close()
        times["teardown"] = time.perf_counter() - t
        if trace is not None:
            trace.close()
    times["total"] = time.perf_counter() - started
    outcome.account(kvm)
    cpak = machine.attestation.cpak.public_key()
    verdict = attest.verify_token(
        outcome.token, cpak, expect_rim=outcome.rim, expect_rpv=launch.rpv, challenge=challenge
    ) if outcome.token else None  # fmt: skip
    report = summary.build(
        launch, caps, plan, predicted, outcome, verdict, kvm, vmm, times, challenge
    )
    problem = report["error"] = summary.problem(report)
    if opts["report_file"] and not outcome.refused:
        from ccasim.cli.report import write_report  # the report's imports only when asked

        write_report(opts["report_file"], report, recorder)
    if opts["as_json"]:
        click.echo(summary.to_json(report))
    elif not outcome.refused:
        summary.print_text(report)
    if problem:
        click.echo(f"ccasim: error: {problem}", err=True)
        return 1
    return 0


def _stuck(machine: Any, vmm: RealmVmm) -> str | None:
    """A vCPU that has no program to run spins taking exceptions for ever: stop there."""
    for vcpu in vmm.vcpus:
        if vcpu.rec is None:
            continue
        stop = machine.vcpu_stop(vcpu.rec.rec)
        if stop is not None and stop.reason is StopReason.NO_PROGRAM:
            return f"vCPU {vcpu.vcpu_id} has nothing to run: {stop.message}"
    return None


# -- options ------------------------------------------------------------------------------


def _platform_caps(opts: dict[str, Any], launch_caps: Capabilities | None) -> Capabilities:
    """The platform's capabilities: files, RMI_FEATURES, the launch file's [caps], then the
    options, as ``ccasim measure`` reads them; what none of them sets is the RMM's default."""
    given = Capabilities(**{key.replace("-", "_"): opts.pop(key.replace("-", "_"), None)
                            for key in CAPS_KEYS})  # fmt: skip
    outright = [c for c in (launch_caps, given) if c is not None]
    return full_caps(read_capabilities(opts.pop("caps_files"), opts.pop("rmi_features"), *outright))


def guest_args(pairs: tuple[str, ...]) -> dict[str, object]:
    """KEY=VALUE parameters of a guest program: a number (decimal or 0x-hex) or text."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--guest-arg")
        try:
            out[key] = int(value, 0) if value.strip().lstrip("-")[:1].isdigit() else value
        except ValueError:
            out[key] = value
    return out


def _challenge(text: str | None) -> bytes:
    if text is None:
        return os.urandom(64)
    try:
        value = parse_hex_bytes(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--challenge") from None
    if not 32 <= len(value) <= 64:
        raise click.BadParameter(f"{len(value)} bytes: give 32 to 64", param_hint="--challenge")
    return value


def _size(text: object, what: str) -> int:
    try:
        return parse_number(str(text), suffixes=True)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=what) from None


def _open_trace(path: str | None) -> TextIO | None:
    if path is None:
        return None
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as e:
        raise click.ClickException(f"cannot write trace {path}: {e.strerror}") from None


def _is_terminal() -> bool:
    try:
        return os.isatty(1)
    except (OSError, ValueError):
        return False


# -- what runs ------------------------------------------------------------------------------


class GuestPlan:
    """What the realm runs: the embedded kernel image (no -k, no firmware), or what -k or
    --firmware load, with the program run in place of real AArch64 code."""

    def __init__(self) -> None:
        self.kernel: bytes | None = None
        self.program = DEFAULT_PROGRAM
        self.params: dict[str, object] = {}
        self.source = "embedded"
        self.fallback: tuple[str, dict[str, Any]] | None = None
        self.notes: list[str] = []


def _guest_plan(argv: list[str], guest: str | None, args: dict[str, object]) -> GuestPlan:
    plan = GuestPlan()
    name = guest or DEFAULT_PROGRAM
    if lookup(name) is None:
        known = ", ".join(programs())
        raise click.BadParameter(f"no program {name!r} (known: {known})", param_hint="--guest")
    _check_params(name, args)
    kernel, firmware = (
        _option_value(argv, "-k", "--kernel"),
        _option_value(argv, "-f", "--firmware"),
    )
    if kernel is None and firmware is None:
        try:
            plan.kernel = kernel_image(name, **args)  # type: ignore[arg-type]
        except TypeError as e:
            raise click.BadParameter(str(e), param_hint="--guest-arg") from None
        plan.program, plan.params = name, dict(args)
        return plan
    path = firmware if firmware is not None else kernel
    assert path is not None
    data = read_file(path, "firmware" if firmware is not None else "kernel")
    found = _guest_image_in(data)
    if found is not None:
        if guest is not None or args:
            raise click.ClickException(
                f"{path} is a ccasim guest image of {found[0]!r}: it has its own parameters;"
                " --guest and --guest-arg apply to real kernels only"
            )
        plan.program, plan.params = found[0], dict(found[1])
        plan.source = path
        return plan
    plan.program, plan.params, plan.source = name, dict(args), path
    plan.fallback = (name, dict(args))
    what = "firmware" if firmware is not None else "an arm64 Image"
    plan.notes.append(
        f"{path} is {what}, not a ccasim guest image: it is loaded and measured as kvmtool"
        f" would, but ccasim executes guest programs, not AArch64 code, so the realm runs"
        f" {name!r} in its place"
    )
    return plan


def _check_params(name: str, args: dict[str, object]) -> None:
    """The program takes these parameters, each of the type of its default."""
    fn = lookup(name)
    assert fn is not None
    params = list(inspect.signature(fn).parameters.values())[1:]  # after the vCPU
    known = {p.name: p for p in params}
    for key, value in args.items():
        if key not in known:
            takes = ", ".join(known) or "no parameters"
            raise click.BadParameter(
                f"{name!r} takes {takes}; not {key!r}", param_hint="--guest-arg"
            )
        default = known[key].default
        if isinstance(default, int) and not isinstance(value, int):
            raise click.BadParameter(f"{key}={value!r} is not a number", param_hint="--guest-arg")
        if isinstance(default, str) and not isinstance(value, str):
            args[key] = str(value)  # a number given where the program takes text


def _guest_image_in(data: bytes) -> tuple[str, dict] | None:
    """(program, params) of a ccasim guest image, bare or after an arm64 Image header."""
    body = data[64:] if is_kernel_image(data[:64]) else data
    try:
        return decode_image(body)
    except ImageError:
        return None


def _option_value(argv: list[str], short: str, long: str) -> str | None:
    """The last value of a kvmtool option in ``argv`` (``-k X``, ``--kernel X``, ``--kernel=X``)."""
    value = None
    words = iter(argv)
    for word in words:
        if word in (short, long):
            value = next(words, None)
        elif word.startswith(long + "="):
            value = word.split("=", 1)[1]
    return value
