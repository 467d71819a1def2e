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
from dataclasses import dataclass, field
from typing import Any, TextIO

import click

from ccasim import attest
from ccasim.check import InvariantChecker, InvariantViolation, check_host_pages
from ccasim.cli import summary
from ccasim.cli.capabilities import (
    capability_options,
    chosen_profile,
    read_capabilities,
    rmm_profile_options,
)
from ccasim.cli.launchfile import CAPS_KEYS, load_launch
from ccasim.cli.measure import Bool
from ccasim.cli.numbers import COUNT, parse_hex_bytes, parse_number
from ccasim.cli.platform import DEFAULT_HOST_RAM, full_caps, make_machine
from ccasim.cli.trace import FORMATS, LEVELS, trace_level
from ccasim.el3.monitor import RmmPanic
from ccasim.guest.image import kernel_image
from ccasim.guest.registry import lookup, programs
from ccasim.guest.runtime import find_image
from ccasim.isa import LoadError, StopReason
from ccasim.kvm import Kvm
from ccasim.measure import RimCalculator
from ccasim.trace import RELEASES, TraceWriter
from ccasim.vmm import kvmtool
from ccasim.vmm.capabilities import HASH_ALGOS, Capabilities
from ccasim.vmm.errors import LaunchError
from ccasim.vmm.launch import Blob, Launch
from ccasim.vmm.run import RealmVmm, VmmError

DEFAULT_PROGRAM = "ccasim-default"
Params = dict[str, int | bytes | str]  # a guest program's parameters
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


def _launch_option(ctx: click.Context, path: str, key: str, value: object) -> object:
    """A launch file's value for option ``key``, checked and converted as the option's own
    type does on the command line (a one-line error naming the file and the key)."""
    param = next(p for p in ctx.command.params if p.name == key)
    text = value if isinstance(value, str) else str(value).lower()
    try:
        return param.type.convert(text, param, ctx)
    except click.BadParameter as e:
        raise click.ClickException(f"{path}: {key.replace('_', '-')}: {e.message}") from None


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
@click.option("--hpmn0", type=Bool(), help="Whether the platform has FEAT_HPMN0 (default true).")
@click.option(
    "--host-tick-hz", type=COUNT, metavar="HZ",
    help="The host kernel's scheduler tick (CONFIG_HZ): its timer interrupts the realm "
    "(default: none).",
)  # fmt: skip
@rmm_profile_options
@click.option("--challenge", metavar="HEX", help="The attestation challenge (32-64 bytes).")
@click.option("--seed", type=COUNT, help="Seed of the vCPU threads' interleaving (default 0).")
@click.option("--timeout", type=COUNT, help="Stop the realm after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("-q", "--quiet", is_flag=True, help="Do not echo the guest console.")
@click.option(
    "--trace",
    "trace_file",
    metavar="FILE",
    help="Write the RMM's log as TF-RMM prints it, with ccasim's notes on lines of their own.",
)
@click.option(
    "--trace-format",
    type=click.Choice(FORMATS),
    default=FORMATS[0],
    show_default=True,
    help="TF-RMM release whose lines the trace holds: "
    + "; ".join(f"{r.name}, {r.tf_rmm}, column {r.column}" for r in RELEASES.values())
    + ".",
)
@click.option(
    "--trace-level",
    type=click.Choice(LEVELS),
    default="40",
    show_default=True,
    help="TF-RMM's LOG_LEVEL (its calls at 40 and up), or 'all' for every call.",
)
@click.option("--trace-notes/--no-trace-notes", default=True, help="ccasim's lines in the trace.")
@click.option(
    "--check-invariants", is_flag=True,
    help="Check the stack's security invariants around every SMC (slower).",
)  # fmt: skip
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
                opts[key] = _launch_option(ctx, opts["launch_file"], key, value)
    if "--realm" in argv:
        argv.remove("--realm")
    caps = _platform_caps(opts, launch_file.caps if launch_file else None)
    args = dict(launch_file.guest_args) if launch_file else {}
    args.update(guest_args(opts["guest_args"]))
    challenge = _challenge(opts["challenge"])
    host_ram = _size(opts["host_ram"], "--host-ram") if opts["host_ram"] else DEFAULT_HOST_RAM

    program, params = guest_program(opts["guest"], args)
    try:
        launch = kvmtool.launch(
            caps, ["--realm", "-c", DEFAULT_CPUS, "-m", DEFAULT_MEM, *argv],
            default_kernel=kernel_image(program, **params),
        )  # fmt: skip
        predicted = RimCalculator(launch).compute()
    except LaunchError as e:
        raise click.ClickException(str(e)) from None
    plan = _guest_plan(launch, program, params, chosen=opts["guest"] is not None or bool(args))
    fallback = (program, params) if plan.in_place else None
    rmm_profile = chosen_profile(opts)
    hpmn0 = opts["hpmn0"] if opts["hpmn0"] is not None else True
    try:
        machine = make_machine(caps, host_ram, fallback, rmm_profile, hpmn0)
    except ValueError as e:
        raise click.ClickException(f"--host-ram: {e}") from None
    trace = _open_trace(opts["trace_file"])
    if trace is not None:
        writer = TraceWriter(
            trace.write,
            opts["trace_format"],
            trace_level(opts["trace_level"]),
            notes=opts["trace_notes"],
        )
        machine.on_rmm_log(writer, hashes=writer.hashes)
    checker = InvariantChecker(machine, full_every=4096) if opts["check_invariants"] else None
    try:
        kvm = Kvm(machine, tick_hz=opts["host_tick_hz"])
    except ValueError as e:
        raise click.ClickException(f"--host-tick-hz: {e}") from None
    if not kvm.rme_available:
        raise click.ClickException("the host has no usable RMM: " + "; ".join(kvm.dmesg))

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
        with recorder.progress("populate", launch, show_progress):
            vmm.build()
        if checker is not None:
            check_host_pages(kvm, machine)
        times["build"] = time.perf_counter() - t
        t = time.perf_counter()
        with recorder.progress("run", launch, show_progress):
            result = vmm.run(timeout=opts["timeout"], watchdog=lambda: _stuck(machine, vmm))
        times["run"] = time.perf_counter() - t
        if checker is not None:
            checker.finish()
            check_host_pages(kvm, machine)
        outcome.collect(machine, vmm, result, recorder)
    except VmmError as e:
        outcome.refused = f"the host refused the realm: {e}"
    except RmmPanic as e:  # the modelled RMM crashed: the host can do nothing more
        outcome.refused = str(e)
    except InvariantViolation as e:
        raise click.ClickException(f"invariant violated {e}") from None
    finally:
        t = time.perf_counter()
        with recorder.progress("teardown", launch, show_progress):
            if machine.rmm_panic is None:
                vmm.close()
            if checker is not None:
                checker.finish()
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
        launch, caps, plan, predicted, outcome, verdict, recorder, vmm, times, challenge,
        machine.rmm_profile.name,
    )  # fmt: skip
    if checker is not None:
        report["invariants"] = {"smcs": checker.smcs, "checks": checker.checks}
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


@dataclass
class GuestPlan:
    """What the realm runs: ``program`` with ``params``, from ``source`` (a file, or the
    embedded kernel image); ``in_place`` if that file is AArch64 code the program stands in
    for; ``notes`` for the user."""

    program: str
    params: Params
    source: str = "embedded"
    in_place: bool = False
    notes: list[str] = field(default_factory=list)


def guest_program(guest: str | None, args: dict[str, object]) -> tuple[str, Params]:
    """The program --guest names (or the default), and its --guest-arg parameters checked."""
    name = guest or DEFAULT_PROGRAM
    if lookup(name) is None:
        known = ", ".join(programs())
        raise click.BadParameter(f"no program {name!r} (known: {known})", param_hint="--guest")
    return name, _check_params(name, args)


def _guest_plan(launch: Launch, program: str, params: Params, chosen: bool) -> GuestPlan:
    """What runs at the launch's entry point: the embedded image, a ccasim guest image the
    user gave (``chosen``: --guest or --guest-arg were given too, which it cannot take), or
    real code, in whose place ``program`` runs."""
    loaded = next(b for b in launch.blobs if b.ipa <= launch.pc < b.ipa + max(len(b.data), 1))
    if not loaded.source:
        return GuestPlan(program, dict(params))
    try:
        found, own = find_image(launch.pc, lambda addr, n: _bytes_at(loaded, addr, n))
    except LoadError:
        what = "firmware" if loaded.name == "firmware" else "an arm64 Image"
        note = (
            f"{loaded.source} is {what}, not a ccasim guest image: it is loaded and measured as"
            " kvmtool would, but ccasim executes guest programs, not AArch64 code, so the realm"
            f" runs {program!r} in its place"
        )
        return GuestPlan(program, dict(params), loaded.source, True, [note])
    if chosen:
        raise click.ClickException(
            f"{loaded.source} is a ccasim guest image of {found!r}: it has its own parameters;"
            " --guest and --guest-arg apply to real kernels only"
        )
    return GuestPlan(found, dict(own), loaded.source)


def _bytes_at(blob: Blob, addr: int, size: int) -> bytes:
    """What the realm reads at ``addr`` inside ``blob`` (zeros past its end)."""
    offset = addr - blob.ipa
    return blob.data[offset : offset + size].ljust(size, b"\0")


def _check_params(name: str, args: dict[str, object]) -> Params:
    """``args`` as parameters of program ``name``: each one it takes, a number where its
    default is a number, text (numbers written out) where it is text."""
    fn = lookup(name)
    assert fn is not None
    known = {p.name: p.default for p in list(inspect.signature(fn).parameters.values())[1:]}
    checked: Params = {}
    for key, value in args.items():
        if key not in known:
            takes = ", ".join(known) or "no parameters"
            raise click.BadParameter(
                f"{name!r} takes {takes}; not {key!r}", param_hint="--guest-arg"
            )
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise click.BadParameter(
                f"{key}={value!r} is not a number or text", param_hint="--guest-arg"
            )
        if isinstance(known[key], int) and not isinstance(value, int):
            raise click.BadParameter(f"{key}={value!r} is not a number", param_hint="--guest-arg")
        checked[key] = str(value) if isinstance(known[key], str) else value
    return checked
