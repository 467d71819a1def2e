"""``ccasim diff``: the same generated RMI sequences on two RMMs, and where they part.

Each seed gives one sequence (:class:`~ccasim.diff.generate.Host`), run on both RMMs step by
step until the first difference (:func:`~ccasim.diff.compare.run_step`). Differences are
grouped into classes (the command, what differs and how); the first sequence of each class is
shrunk to a minimal reproducer by delta debugging (the smallest set of its steps that, replayed
from a reset, still shows that class), and, when both RMMs are ccasim profiles, attributed to
the quirk that makes it. Seeds are deterministic: the same seeds find the same classes.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ccasim.diff.backends import ModelRmm, RmmUnderTest, open_rmm
from ccasim.diff.compare import Difference, compare_granules, granules_in_dram, run_step
from ccasim.diff.generate import Host
from ccasim.diff.steps import Step
from ccasim.rmi.commands import RMI_COMMANDS
from ccasim.rmi.fid import FID
from ccasim.rmm.profile import QUIRK_CLASS, profile

__all__ = ["Campaign", "DiffClass", "Result", "replay", "run_seed", "shrink"]

#: A class's reproducer as a test file.
REPRODUCER = '''"""Written by ccasim diff: {a} and {b} differ here.

{what} ({values})
Rule: {rule}
Quirk: {quirks}
The test passes once the two RMMs agree on these steps.
"""

import json

from ccasim.diff import Step, open_rmm, replay

A, B = {a!r}, {b!r}
STEPS = json.loads({steps!r})


def {name}():
    assert replay(open_rmm(A), open_rmm(B), [Step.from_json(s) for s in STEPS]) == []
'''

GRANULE = 4096
#: How often (in steps) every granule a sequence touched is compared, besides those a step names.
SWEEP_EVERY = 32

#: The section of each RMI command in the spec (B4.3.x), for the report.
SECTIONS: dict[int, str] = {
    FID.DATA_CREATE: "B4.3.1", FID.DATA_CREATE_UNKNOWN: "B4.3.2", FID.DATA_DESTROY: "B4.3.3",
    FID.FEATURES: "B4.3.4", FID.GRANULE_DELEGATE: "B4.3.5", FID.GRANULE_UNDELEGATE: "B4.3.6",
    FID.PSCI_COMPLETE: "B4.3.7", FID.REALM_ACTIVATE: "B4.3.8", FID.REALM_CREATE: "B4.3.9",
    FID.REALM_DESTROY: "B4.3.10", FID.REC_AUX_COUNT: "B4.3.11", FID.REC_CREATE: "B4.3.12",
    FID.REC_DESTROY: "B4.3.13", FID.REC_ENTER: "B4.3.14", FID.RTT_CREATE: "B4.3.15",
    FID.RTT_DESTROY: "B4.3.16", FID.RTT_FOLD: "B4.3.17", FID.RTT_INIT_RIPAS: "B4.3.18",
    FID.RTT_MAP_UNPROTECTED: "B4.3.19", FID.RTT_READ_ENTRY: "B4.3.20",
    FID.RTT_SET_RIPAS: "B4.3.21", FID.RTT_UNMAP_UNPROTECTED: "B4.3.22", FID.VERSION: "B4.3.23",
}  # fmt: skip


def spec_rule(difference: Difference) -> str:
    """The spec rule a difference of this kind is checked against."""
    section = SECTIONS.get(difference.step.fid)
    if section is None:
        return "B1.1 (an FID the RMI does not define: SMCCC_NOT_SUPPORTED)"
    return {
        "status": f"{section}.2 failure conditions and their ordering",
        "output": f"{section}.1 outputs, {section}.3 success conditions",
        "mbz": "B1.2: registers that are not outputs must be zero",
        "granule": f"{section}.3 success conditions, {section} footprint (granule states, C1.7)",
        "ns": "A2.2, B3.20: what the Normal world may access, and sees after UNDELEGATE",
        "ns-write": "B3.20 GranuleAccessPermitted: a Normal-world write faults on Realm granules",
        "rim": f"A7.1.1 Realm Initial Measurement, {section}.4",
        "stopped": f"{section}: a command returns (B1.6), whatever its inputs",
    }.get(difference.kind, section)


#: Commands that change nothing: a difference in what they return leaves both RMMs alike.
READ_ONLY = frozenset({FID.RTT_READ_ENTRY, FID.FEATURES, FID.VERSION, FID.REC_AUX_COUNT})


def register_only(difference: Difference) -> bool:
    """Whether both RMMs are still in the same state after ``difference`` (a register that
    must be zero, or an output of a command that changes nothing): the sequence goes on."""
    return difference.kind == "mbz" or (
        difference.kind == "output" and difference.step.fid in READ_ONLY
    )


@dataclass
class Result:
    """One seed's sequence: its steps (up to the first difference that leaves the two RMMs
    in different states), the differences seen, how many steps ran and how many UNDEFINED
    outputs differed."""

    seed: int
    steps: list[Step]
    differences: list[Difference]
    calls: int
    allowed: int


def _touched(step: Step, registers: Iterable[int]) -> set[int]:
    return granules_in_dram((*step.args, *(pa for pa, _ in step.writes), *registers))


def run_seed(a: RmmUnderTest, b: RmmUnderTest, seed: int, length: int) -> Result:
    """The sequence of ``seed``, up to ``length`` steps, on both RMMs (from a reset)."""
    a.reset()
    b.reset()
    host = Host(seed)
    steps: list[Step] = []
    touched: set[int] = set()
    found: list[Difference] = []
    allowed = 0

    def result() -> Result:  # the steps only when needed (a reproducer is made of them)
        return Result(seed, steps if found else [], found, len(steps), allowed)

    while len(steps) < length:
        for step in host.next_steps():
            outcome = run_step(len(steps), step, a, b)
            host.record(step, outcome.a)
            steps.append(step)
            allowed += outcome.allowed
            found += outcome.differences
            if not all(map(register_only, outcome.differences)):
                return result()
            if isinstance(outcome.a, str):  # both stopped: nothing more to compare
                return result()
            touched |= _touched(step, (*outcome.a, *outcome.b))
            if len(steps) % SWEEP_EVERY == 0:
                swept = compare_granules(len(steps) - 1, step, a, b, touched)
                if swept:
                    found += swept
                    return result()
    found += compare_granules(len(steps) - 1, steps[-1], a, b, touched)
    return result()


def replay(a: RmmUnderTest, b: RmmUnderTest, steps: list[Step]) -> list[Difference]:
    """The differences ``steps`` show on both RMMs from a reset, up to the first that leaves
    them in different states (the granules they touched compared at the end too)."""
    a.reset()
    b.reset()
    touched: set[int] = set()
    found: list[Difference] = []
    for i, step in enumerate(steps):
        outcome = run_step(i, step, a, b)
        found += outcome.differences
        if not all(map(register_only, outcome.differences)):
            return found
        if isinstance(outcome.a, str):
            return found
        touched |= _touched(step, (*outcome.a, *outcome.b))
    if steps:
        found += compare_granules(len(steps) - 1, steps[-1], a, b, touched)
    return found


def shrink(steps: list[Step], keeps: Callable[[list[Step]], bool]) -> list[Step]:
    """A minimal reproducer: delta debugging (ddmin) to a smallest subsequence of ``steps``
    for which ``keeps`` still holds, then each step's registers past the command's inputs
    set to zero where that keeps it too."""
    steps = _ddmin(steps, keeps)
    for i, step in enumerate(steps):
        n = len(RMI_COMMANDS[step.fid].inputs) if step.fid in RMI_COMMANDS else 0
        if any(step.args[n:]):
            plain = Step(step.fid, step.args[:n] + (0,) * len(step.args[n:]), step.writes)
            candidate = [*steps[:i], plain, *steps[i + 1 :]]
            if keeps(candidate):
                steps = candidate
    return steps


def _ddmin(steps: list[Step], keeps: Callable[[list[Step]], bool]) -> list[Step]:
    n = 2
    while len(steps) >= 2:
        size = math.ceil(len(steps) / n)
        for start in range(0, len(steps), size):
            candidate = steps[:start] + steps[start + size :]
            if candidate and keeps(candidate):
                steps = candidate
                n = max(n - 1, 2)
                break
        else:
            if size == 1:
                break
            n = min(len(steps), n * 2)
    return steps


@dataclass
class DiffClass:
    """One class of differences: where it was first seen, how often, its reproducer."""

    difference: Difference
    seed: int
    seconds: float
    count: int = 1
    sequence: list[Step] = field(default_factory=list)
    reproducer: list[Step] = field(default_factory=list)
    quirks: list[str] = field(default_factory=list)
    seen_in: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.difference.key

    @property
    def commands(self) -> list[str]:
        """The commands seen with it (one for most classes; many for a register that must
        be zero)."""
        return sorted(self.seen_in)

    def to_json(self) -> dict[str, object]:
        d = self.difference
        return {
            "command": d.step.name, "kind": d.kind, "detail": d.detail, "a": d.a, "b": d.b,
            "rule": spec_rule(d), "count": self.count, "first_seed": self.seed,
            "commands": self.commands,
            "seconds_to_first": round(self.seconds, 3), "sequence_length": len(self.sequence),
            "reproducer": [s.to_json() for s in self.reproducer], "quirks": self.quirks,
        }  # fmt: skip


def _worker(job: tuple[str, str, range, int, float]) -> list[tuple[Result, float]]:
    a_name, b_name, seeds, length, deadline = job
    a, b = open_rmm(a_name), open_rmm(b_name)
    out = []
    for seed in seeds:
        if time.time() > deadline:
            break
        result = run_seed(a, b, seed, length)
        out.append((result, time.time()))
    return out


@dataclass
class Campaign:
    """Run ``seeds`` on RMMs ``a`` and ``b`` (ccasim profile names, ``name+quirk``, or paths
    of shared libraries), each sequence up to ``length`` steps, for at most ``seconds``, on
    ``workers`` processes."""

    a: str
    b: str
    seeds: range
    length: int = 200
    seconds: float | None = None
    workers: int = 1
    classes: dict[tuple[str, str, str], DiffClass] = field(default_factory=dict)
    sequences: int = 0
    calls: int = 0
    allowed: int = 0
    elapsed: float = 0.0

    def run(self, shrink_classes: bool = True) -> Campaign:
        start = time.time()
        deadline = start + self.seconds if self.seconds is not None else math.inf
        if self.workers <= 1:
            results = _worker((self.a, self.b, self.seeds, self.length, deadline))
        else:  # each worker takes every workers-th seed (ranges: the seeds are never listed)
            chunks = [self.seeds[i :: self.workers] for i in range(self.workers)]
            jobs = [(self.a, self.b, c, self.length, deadline) for c in chunks]
            with multiprocessing.get_context("fork").Pool(self.workers) as pool:
                results = [r for part in pool.map(_worker, jobs) for r in part]
            results.sort(key=lambda r: r[0].seed)
        for result, when in results:
            self.sequences += 1
            self.calls += result.calls
            self.allowed += result.allowed
            for difference in result.differences:
                found = self.classes.get(difference.key)
                if found is None:
                    found = self.classes[difference.key] = DiffClass(
                        difference, result.seed, when - start,
                        sequence=result.steps[: difference.index + 1],
                    )  # fmt: skip
                else:
                    found.count += 1
                    found.seconds = min(found.seconds, when - start)
                found.seen_in.add(difference.step.name)
        self.elapsed = time.time() - start
        if shrink_classes:
            self.shrink_all()
        return self

    def shrink_all(self) -> None:
        """A minimal reproducer for each class, and the quirks that make it."""
        a, b = open_rmm(self.a), open_rmm(self.b)
        for found in self.classes.values():
            key = found.key

            def keeps(steps: list[Step], key: tuple[str, str, str] = key) -> bool:
                return any(d.key == key for d in replay(a, b, steps))

            found.reproducer = shrink(found.sequence, keeps)
            # what the reproducer itself shows (the values may differ from the long sequence's)
            found.difference = next(d for d in replay(a, b, found.reproducer) if d.key == key)
            found.quirks = self._quirks(a, b, found)

    @staticmethod
    def _quirks(a: RmmUnderTest, b: RmmUnderTest, found: DiffClass) -> list[str]:
        """The quirks (of two ccasim profiles) each of which alone makes the reproducer differ
        in the same way from the other side."""
        if not (isinstance(a, ModelRmm) and isinstance(b, ModelRmm)):
            return []
        names = []
        for quirk in sorted(a.profile.quirks ^ b.profile.quirks, key=lambda q: QUIRK_CLASS[q]):
            plain = ModelRmm(profile("spec"))
            one = ModelRmm(profile("spec", quirk))
            left, right = (one, plain) if quirk in a.profile.quirks else (plain, one)
            if any(d.key == found.key for d in replay(left, right, found.reproducer)):
                names.append(f"{QUIRK_CLASS[quirk]}: {quirk.value}")
        return names

    def write_reproducers(self, directory: str | Path) -> list[Path]:
        """One pytest file per class: its reproducer replayed on the two RMMs, passing once
        they agree (for an RMM developer: the test to make pass)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for n, found in enumerate(self.classes.values(), start=1):
            d = found.difference
            name = f"test_diff_{n}_{d.step.name.lower()}_{d.kind}".replace("-", "_")
            path = out / f"{name}.py"
            path.write_text(
                REPRODUCER.format(
                    a=self.a,
                    b=self.b,
                    what=f"{d.step.name}: {d.kind} {d.detail}",
                    values=f"A {d.a} | B {d.b}".replace('"', "'"),
                    rule=spec_rule(d),
                    quirks=", ".join(found.quirks) or "none known",
                    name=name,
                    steps=json.dumps([step.to_json() for step in found.reproducer]),
                )
            )
            paths.append(path)
        return paths

    # -- the report --------------------------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        return {
            "a": self.a, "b": self.b, "seeds": [self.seeds.start, self.seeds.stop],
            "sequences": self.sequences, "calls": self.calls, "seconds": round(self.elapsed, 3),
            "calls_per_second": round(self.calls / self.elapsed) if self.elapsed else None,
            "allowed_differences": self.allowed,
            "classes": [c.to_json() for c in self.classes.values()],
        }  # fmt: skip

    def text(self) -> str:
        rate = f"{self.calls / self.elapsed:,.0f} calls/s" if self.elapsed else ""
        lines = [
            f"ccasim diff: A = {self.a}, B = {self.b}: {self.sequences} sequences, "
            f"{self.calls:,} calls in {self.elapsed:.1f} s ({rate}); "
            f"{self.allowed} differences in outputs the spec leaves UNDEFINED (allowed)",
        ]
        if not self.classes:
            lines.append("no difference")
        for n, found in enumerate(self.classes.values(), start=1):
            d = found.difference
            lines.append("")
            where = ", ".join(found.commands) if d.kind == "mbz" else d.step.name
            lines.append(f"class {n}: {where}: {d.kind} {d.detail}  (A {d.a} | B {d.b})")
            lines.append(f"  rule: {spec_rule(d)}")
            if found.quirks:
                lines.append(f"  quirk: {', '.join(found.quirks)}")
            lines.append(f"  seen {found.count} time(s), first with seed {found.seed} after "
                         f"{found.seconds:.2f} s; reproducer {len(found.reproducer)} of "
                         f"{len(found.sequence)} steps:")  # fmt: skip
            lines += [f"    {step}" for step in found.reproducer]
        return "\n".join(lines)
