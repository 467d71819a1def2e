"""What ``ccasim run`` shows after a realm ran: realm parameters, measurements, the token's
verdict, RMI calls, REC exits, host pages, wall time; as text (rich tables on a terminal)
or one JSON object.

:class:`Recorder` listens at KVM's tracepoints (every RMI call and its status, every REC exit)
while the realm runs; :class:`Outcome` reads the rest once it has run, before teardown.
"""

from __future__ import annotations

import json
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from ccasim.isa import StopReason
from ccasim.kvm.memory import DELEGATED
from ccasim.rmi import FID
from ccasim.rmi.commands import RMI_COMMANDS

if TYPE_CHECKING:
    from ccasim.attest import Report
    from ccasim.kvm import Kvm
    from ccasim.machine import Machine
    from ccasim.vmm.capabilities import Capabilities
    from ccasim.vmm.launch import Launch
    from ccasim.vmm.run import RealmVmm, RunResult

#: Listener of RMI calls: (FID, X0 returned).
Listener = Callable[[int, int], None]

MEASUREMENT_NAMES = ("RIM", "REM0", "REM1", "REM2", "REM3")
MAPPED = (FID.DATA_CREATE, FID.DATA_CREATE_UNKNOWN, FID.RTT_MAP_UNPROTECTED)


def command_name(fid: int) -> str:
    command = RMI_COMMANDS.get(fid)
    return command.name if command is not None else f"FID {fid:#x}"


class Recorder:
    """Counts at KVM's tracepoints: RMI calls per command that succeeded, and, for the
    report, every REC exit with its time and vCPU; shows progress over long phases."""

    def __init__(self, kvm: Kvm, report: bool = False) -> None:
        self.kvm = kvm
        self.succeeded: Counter[int] = Counter()
        self.listeners: list[Listener] = []
        self.start = time.perf_counter()
        self.exit_times = array("d")
        self.exit_vcpus = array("H")
        self.exit_kinds = array("B")
        self.kinds: dict[str, int] = {}
        self.snapshot: dict[str, Any] | None = None
        self.report = report
        self.console: Any = None  # a progress bar's console while one is shown
        kvm.rmi.on_call = self._call
        if report:
            kvm.on_rec_exit = self._exit

    def echo(self, line: str) -> None:
        """A line of the guest's console: above the progress bar if one is shown."""
        if self.console is not None:
            from rich.text import Text

            self.console.print(Text(line), soft_wrap=True)
        else:
            click.echo(line)

    def _call(self, fid: int, x0: int) -> None:
        if x0 == 0:
            self.succeeded[fid] += 1
        for listener in self.listeners:
            listener(fid, x0)

    def _exit(self, vcpu_id: int, name: str) -> None:
        kind = self.kinds.setdefault(name, len(self.kinds))
        self.exit_times.append(time.perf_counter() - self.start)
        self.exit_vcpus.append(min(vcpu_id, 0xFFFF))
        self.exit_kinds.append(min(kind, 0xFF))

    @contextmanager
    def progress(self, phase: str, launch: Launch, show: bool) -> Iterator[None]:
        """A progress bar over a long phase when ``show``: "populate" counts the granules the VMM
        populates, "teardown" the delegated pages given back, "run" the REC entries (no total:
        a counter, with the console printed above it)."""
        if not show:
            yield
            return
        total: int | None
        if phase == "populate":
            granules = sum(-(-len(b.data) // 4096) + 1 for b in launch.blobs)
            granules += sum(r.size // 4096 for r in launch.unmeasured)
            counted: tuple[FID, ...] = (FID.DATA_CREATE, FID.DATA_CREATE_UNKNOWN)
            total = granules
            label = "Populating"
        elif phase == "run":
            total, counted, label = None, (FID.REC_ENTER,), "REC entries"
        else:
            counts = self.kvm.page_counts()
            total = sum(counts[owner.value] for owner in DELEGATED)
            counted, label = (FID.GRANULE_UNDELEGATE,), "Tearing down"
        if total is not None and total < 2048:  # quick: no bar
            yield
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as bar:
            task = bar.add_task(label, total=total)
            self.console = bar.console

            def advance(fid: int, x0: int) -> None:
                if fid in counted:
                    bar.advance(task)

            self.listeners.append(advance)
            try:
                yield
            finally:
                self.listeners.remove(advance)
                self.console = None


@dataclass
class VcpuReport:
    vcpu: int
    rec_exits: dict[str, int]
    stop: str | None = None
    crashed: bool = False
    where: str | None = None
    traceback: str | None = None
    console: str = ""


@dataclass
class Outcome:
    """What the run produced, read before teardown (and the host's pages after it)."""

    refused: str | None = None
    ended: str = ""
    errors: list[str] = field(default_factory=list)
    console: str = ""
    token: bytes = b""
    measurements: list[bytes] = field(default_factory=list)
    vcpus: list[VcpuReport] = field(default_factory=list)
    vmm_exits: dict[str, int] = field(default_factory=dict)
    pages: dict[str, int] = field(default_factory=dict)
    balanced: bool = False
    dmesg: list[str] = field(default_factory=list)

    @property
    def rim(self) -> bytes | None:
        return self.measurements[0] if self.measurements else None

    def collect(
        self, machine: Machine, vmm: RealmVmm, result: RunResult, recorder: Recorder
    ) -> None:
        self.ended, self.errors, self.console = result.ended, list(result.errors), result.console
        self.token = result.handed
        self.vmm_exits = dict(result.exits)
        if vmm.vm is not None and vmm.vm.realm.rd is not None:
            self.measurements = machine.realm_measurements(vmm.vm.realm.rd)
        for vcpu in vmm.vcpus:
            report = VcpuReport(vcpu.vcpu_id, dict(vcpu.rec_exits))
            if vcpu.rec is not None:
                stop = machine.vcpu_stop(vcpu.rec.rec)
                report.console = machine.vcpu_console(vcpu.rec.rec)
                if stop is not None:
                    report.stop = stop.message
                    report.crashed = stop.reason in (StopReason.CRASHED, StopReason.NO_PROGRAM)
                    if stop.file:
                        report.where = f"{stop.file}:{stop.line}"
                    report.traceback = stop.traceback
            self.vcpus.append(report)
        if recorder.report:
            from ccasim.cli.report import capture  # the report's data, only when asked

            recorder.snapshot = capture(machine, vmm)

    def account(self, kvm: Kvm) -> None:
        """The host's pages after teardown: every page is free again, or leaked (counted)."""
        self.pages = kvm.page_counts()
        self.balanced = all(n == 0 for k, n in self.pages.items() if k not in ("free", "leaked"))
        self.dmesg = list(kvm.dmesg)


def build(
    launch: Launch,
    caps: Capabilities,
    plan: Any,
    predicted: list[bytes],
    outcome: Outcome,
    verdict: Report | None,
    recorder: Recorder,
    vmm: RealmVmm,
    times: dict[str, float],
    challenge: bytes,
    rmm_profile: str = "spec",
) -> dict[str, Any]:
    """The summary as plain data (what ``--json`` prints)."""
    algo = launch.caps.hash_algo or "sha256"
    size = 64 if algo == "sha512" else 32
    base, ram = launch.ram[0]
    calls = recorder.kvm.rmi.calls  # since KVM initialised (RMI_VERSION, RMI_FEATURES too)
    succeeded = recorder.succeeded
    rec_exits: Counter[str] = Counter()
    for v in outcome.vcpus:
        rec_exits.update(v.rec_exits)
    measurements = {
        n: m.hex() for n, m in zip(MEASUREMENT_NAMES, outcome.measurements, strict=False)
    }
    token: dict[str, Any] | None = None
    if verdict is not None:
        token = {
            "size": len(outcome.token),
            "ok": verdict.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in verdict.checks],
        }
    crashed = [v for v in outcome.vcpus if v.crashed]
    return {
        "realm": {
            "ram_base": base,
            "ram_size": ram,
            "vcpus": launch.vcpus,
            "ipa_bits": vmm.vm.ia_bits if vmm.vm is not None else None,
            "hash_algo": algo,
            "rpv": launch.rpv.rstrip(b"\0").hex(),
            "pc": launch.pc,
            "x0": launch.x0,
            "images": [
                {"name": b.name, "ipa": b.ipa, "size": len(b.data)}
                for b in sorted(launch.blobs, key=lambda b: b.ipa)
            ],
            "guest": {
                "program": plan.program,
                "params": _jsonable(plan.params),
                "source": plan.source,
                "in_place_of_aarch64": plan.in_place,
            },
        },
        "platform": {**vars(caps), "rmm_profile": rmm_profile},
        "measurements": measurements,
        "predicted_rim": predicted[0][:size].hex(),
        "rim_as_predicted": bool(outcome.rim) and outcome.rim == predicted[0][:size],
        "challenge": challenge.hex(),
        "token": token,
        "refused": outcome.refused,
        "ended": outcome.ended,
        "errors": outcome.errors,
        "crashed": [
            {"vcpu": v.vcpu, "message": v.stop, "where": v.where, "traceback": v.traceback}
            for v in crashed
        ],
        "console": outcome.console,
        "rmi_calls": {command_name(f): n for f, n in sorted(calls.items())},
        "rmi_calls_succeeded": {command_name(f): n for f, n in sorted(succeeded.items())},
        "rec_exits": dict(sorted(rec_exits.items())),
        "rec_exits_per_vcpu": {str(v.vcpu): v.rec_exits for v in outcome.vcpus},
        "vmm_exits": dict(sorted(outcome.vmm_exits.items())),
        "pages": {
            "delegated": succeeded[FID.GRANULE_DELEGATE],
            "mapped": sum(succeeded[f] for f in MAPPED),
            "returned": succeeded[FID.GRANULE_UNDELEGATE],
            "leaked": outcome.pages.get("leaked", 0),
            "balanced": outcome.balanced,
            "host": outcome.pages,
        },
        "warnings": [line for line in outcome.dmesg if line.startswith("WARNING")],
        "wall_time": {k: round(v, 4) for k, v in times.items()},
    }


def _jsonable(params: dict[str, object]) -> dict[str, object]:
    return {k: v.hex() if isinstance(v, bytes) else v for k, v in params.items()}


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2)


def problem(report: dict[str, Any]) -> str | None:
    """Why the run failed (the one-line error), or None."""
    if report["refused"]:
        pages = report["pages"]
        if pages["balanced"]:
            return report["refused"]
        held = ", ".join(f"{n} {k}" for k, n in pages["host"].items() if n and k != "free")
        return f"{report['refused']} (host pages not balanced: {held})"
    crashed = report["crashed"]
    if crashed:
        c = crashed[0]
        where = f" at {c['where']}" if c["where"] else ""
        return f"the guest crashed on vCPU {c['vcpu']}{where}: {c['message']}"
    if report["errors"]:
        return report["errors"][0]
    if report["ended"] != "power off":
        return f"the realm did not power off ({report['ended']})"
    token = report["token"]
    if token is None:
        return "the realm handed over no attestation token"
    if not token["ok"]:
        failed = next(c for c in token["checks"] if not c["ok"])
        return f"the attestation token failed verification: {failed['name']}: {failed['detail']}"
    if not report["rim_as_predicted"]:
        return "the realm's RIM differs from ccasim measure's prediction"
    if not report["pages"]["balanced"]:
        return "the host's page accounting does not balance after teardown"
    return None


def print_text(report: dict[str, Any]) -> None:
    """The summary for a person (plain lines, aligned)."""
    r = report["realm"]
    echo = click.echo
    echo("")
    echo(f"== realm: {r['ram_size'] >> 20} MiB at {r['ram_base']:#x}, {r['vcpus']} vCPU(s),"
         f" IPA {r['ipa_bits']} bits, {r['hash_algo']}"
         + (f", RPV {r['rpv']}" if r["rpv"] else ""))  # fmt: skip
    g = r["guest"]
    params = " ".join(f"{k}={v}" for k, v in g["params"].items())
    place = " (in place of the AArch64 code)" if g["in_place_of_aarch64"] else ""
    echo(f"   guest: {g['program']} {params}".rstrip() + f" from {g['source']}{place}")
    if report["platform"]["rmm_profile"] != "spec":
        echo(f"   RMM: {report['platform']['rmm_profile']}")
    for image in r["images"]:
        echo(f"   {image['name']:<8} {image['ipa']:#x}  {image['size']} bytes")
    echo("== measurements")
    for name, value in report["measurements"].items():
        echo(f"   {name:<5} {value}")
    same = "= " if report["rim_as_predicted"] else "!= "
    echo(f"   RIM {same}ccasim measure's prediction {report['predicted_rim'][:16]}...")
    token = report["token"]
    if token is None:
        echo("== attestation token: none handed over")
    else:
        verdict = "verified" if token["ok"] else "FAILED"
        echo(f"== attestation token: {token['size']} bytes, {verdict}")
        for check in token["checks"]:
            detail = check["detail"]
            if len(detail) > 72:
                detail = detail[:69] + "..."
            echo(f"   {'PASS' if check['ok'] else 'FAIL'}  {check['name']}: {detail}")
    calls = report["rmi_calls"]
    echo(f"== RMI calls: {sum(calls.values())}")
    _columns(calls)
    exits = report["rec_exits"]
    echo(f"== REC exits: {sum(exits.values())}   (to the VMM: "
         + ", ".join(f"{k} {v}" for k, v in report["vmm_exits"].items()) + ")")  # fmt: skip
    _columns(exits)
    p = report["pages"]
    balance = "all returned" if p["balanced"] else "NOT BALANCED"
    echo(f"== host pages: delegated {p['delegated']}, mapped {p['mapped']}, returned"
         f" {p['returned']}, leaked {p['leaked']} ({balance})")  # fmt: skip
    for warning in report["warnings"]:
        echo(f"   {warning}")
    t = report["wall_time"]
    echo(f"== {report['ended']} after {t['total']:.2f} s (build {t.get('build', 0):.2f} s,"
         f" run {t.get('run', 0):.2f} s, teardown {t.get('teardown', 0):.2f} s)")  # fmt: skip


def _columns(counts: dict[str, int], width: int = 3) -> None:
    items = [f"{name} {n}" for name, n in counts.items()]
    for i in range(0, len(items), width):
        click.echo("   " + "".join(f"{item:<34}" for item in items[i : i + width]).rstrip())
