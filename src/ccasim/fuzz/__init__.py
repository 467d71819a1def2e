"""The adversarial campaign: a hostile host against the whole stack, at scale.

``python -m ccasim.fuzz --minutes N --workers N`` runs seeded workers. Each seed is one
sequence of host steps from ``ccasim diff``'s generator (:class:`ccasim.diff.generate.Host`:
several realms built, mapped, measured, activated and destroyed, with a share of invalid
arguments and garbage registers) on a machine whose every SMC is checked by
:class:`ccasim.check.InvariantChecker`. A failure is a violated invariant, a stop of an RMM
that must not stop (the ``spec`` profile's), or any Python exception out of ``Machine.smc``
or a Normal-world access (bad input must never crash). The first failure of each kind is
shrunk with ``ccasim diff``'s delta debugging and written as a regression test file that
replays its steps.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import ccasim
from ccasim.check import InvariantChecker, InvariantViolation
from ccasim.diff.campaign import shrink
from ccasim.diff.generate import Host
from ccasim.diff.steps import Step
from ccasim.hw.faults import MemoryFault

__all__ = ["Campaign", "Failure", "replay", "run_seed"]

_NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d+")
#: How often the whole machine is checked (the SMC's own granules and realm: every time).
FULL_EVERY = 32


@dataclass(frozen=True)
class Failure:
    """What went wrong after ``steps``: ``kind`` (``invariant``, ``stopped``, ``crash``) and
    a message; ``key`` groups failures of one cause."""

    seed: int
    steps: tuple[Step, ...]
    kind: str
    message: str

    @property
    def key(self) -> tuple[str, str]:
        """The cause: the kind and the message without the SMC an invariant names first
        ("after RMI_X ...: what") and without its numbers (addresses, indices)."""
        what = self.message.split(": ", 1)[-1] if self.kind == "invariant" else self.message
        return (self.kind, _NUMBER.sub("N", what))

    def to_json(self) -> dict[str, object]:
        return {"seed": self.seed, "kind": self.kind, "message": self.message,
                "steps": [s.to_json() for s in self.steps]}  # fmt: skip


def _machine(profile: str) -> tuple[ccasim.Machine, InvariantChecker]:
    m = ccasim.Machine(rmm_profile=profile)
    return m, InvariantChecker(m, full_every=FULL_EVERY)


def _step(m: ccasim.Machine, step: Step) -> tuple[int, ...]:
    for pa, data in step.writes:
        with contextlib.suppress(MemoryFault):  # the GPT may say no: the host goes on
            m.ns_write(pa, data)
    return m.smc(step.fid, *step.args)


def _failure(seed: int, steps: list[Step], error: BaseException) -> Failure:
    if isinstance(error, InvariantViolation):
        return Failure(seed, tuple(steps), "invariant", str(error))
    if isinstance(error, ccasim.RmmPanic):
        return Failure(seed, tuple(steps), "stopped", str(error))
    where = traceback.extract_tb(error.__traceback__)[-1]
    message = f"{type(error).__name__}: {error} at {Path(where.filename).name}:{where.lineno}"
    return Failure(seed, tuple(steps), "crash", message)


def run_seed(seed: int, length: int = 200, profile: str = "spec") -> tuple[int, Failure | None]:
    """Seed ``seed``'s sequence (up to ``length`` steps) on a checked machine: the number of
    SMCs made, and the failure, if any."""
    m, checker = _machine(profile)
    host = Host(seed)
    steps: list[Step] = []
    try:
        while len(steps) < length:
            for step in host.next_steps():
                steps.append(step)
                host.record(step, _step(m, step))
        checker.finish()
    except Exception as error:
        return len(steps), _failure(seed, steps, error)
    return len(steps), None


def replay(steps: list[Step] | tuple[Step, ...], profile: str = "spec") -> Failure | None:
    """Run ``steps`` on a fresh checked machine: the failure they lead to, or None."""
    m, checker = _machine(profile)
    done: list[Step] = []
    try:
        for step in steps:
            done.append(step)
            _step(m, step)
        checker.finish()
    except Exception as error:
        return _failure(-1, done, error)
    return None


REGRESSION = '''"""A failure the adversarial campaign found ({kind}), shrunk to {n} steps: it
must not come back. Written by python -m ccasim.fuzz (seed {seed}): {message}
"""

import json

from ccasim.diff.steps import Step
from ccasim.fuzz import replay

STEPS = json.loads({steps!r})


def test_fuzz_seed_{seed}_{kind}():
    assert replay([Step.from_json(s) for s in STEPS], {profile!r}) is None
'''


@dataclass
class Campaign:
    """``seeds`` on the ``profile`` RMM, each sequence up to ``length`` steps, for at most
    ``seconds``, on ``workers`` processes (or a Ray cluster at ``ray``)."""

    seeds: range
    length: int = 200
    seconds: float | None = None
    workers: int = 1
    profile: str = "spec"
    ray: str | None = None
    sequences: int = 0
    smcs: int = 0
    elapsed: float = 0.0
    failures: dict[tuple[str, str], Failure] = field(default_factory=dict)

    def run(self) -> Campaign:
        start = time.time()
        deadline = start + self.seconds if self.seconds is not None else float("inf")
        # each worker takes every workers-th seed (ranges: the seeds are never listed)
        chunks = [self.seeds[i :: self.workers] for i in range(self.workers)]
        jobs = [(chunk, self.length, self.profile, deadline) for chunk in chunks]
        if self.ray is not None:
            results = _on_ray(self.ray, jobs)
        elif self.workers <= 1:
            results = [_worker(jobs[0])]
        else:
            with multiprocessing.get_context("fork").Pool(self.workers) as pool:
                results = pool.map(_worker, jobs)
        found = sorted((r for part in results for r in part), key=lambda r: r[0])
        for _seed, smcs, failure in found:
            self.sequences += 1
            self.smcs += smcs
            if failure is not None and failure.key not in self.failures:
                self.failures[failure.key] = self._shrunk(failure)
        self.elapsed = time.time() - start
        return self

    def _shrunk(self, failure: Failure) -> Failure:
        def keeps(steps: list[Step]) -> bool:
            again = replay(steps, self.profile)
            return again is not None and again.key == failure.key

        steps = shrink(list(failure.steps), keeps)
        again = replay(steps, self.profile)
        assert again is not None
        return Failure(failure.seed, tuple(steps), again.kind, again.message)

    def write_regressions(self, directory: str | Path) -> list[Path]:
        """One pytest file per failure found, replaying its shrunk steps."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for failure in self.failures.values():
            path = out / f"test_fuzz_seed_{failure.seed}_{failure.kind}.py"
            path.write_text(REGRESSION.format(
                kind=failure.kind, n=len(failure.steps), seed=failure.seed,
                message=failure.message.replace('"""', "'''"), profile=self.profile,
                steps=json.dumps([s.to_json() for s in failure.steps]),
            ))  # fmt: skip
            paths.append(path)
        return paths

    def text(self) -> str:
        rate = self.smcs / self.elapsed if self.elapsed else 0.0
        lines = [f"ccasim fuzz: {self.sequences} sequences, {self.smcs:,} checked SMCs on the "
                 f"{self.profile} RMM in {self.elapsed:.1f} s ({rate:,.0f} a second), "
                 f"{len(self.failures)} failure(s)"]  # fmt: skip
        for failure in self.failures.values():
            lines.append(f"  {failure.kind}: {failure.message}")
            lines.append(f"    seed {failure.seed}, shrunk to {len(failure.steps)} steps:")
            lines += [f"      {step}" for step in failure.steps]
        return "\n".join(lines)


def _worker(job: tuple[range, int, str, float]) -> list[tuple[int, int, Failure | None]]:
    seeds, length, profile, deadline = job
    out = []
    for seed in seeds:
        if time.time() > deadline:
            break
        smcs, failure = run_seed(seed, length, profile)
        out.append((seed, smcs, failure))
    return out


def _on_ray(address: str, jobs: list) -> list:
    """The same jobs as tasks of a Ray cluster (``ray`` is an optional dependency)."""
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'ccasim[ray]'") from None
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    task = ray.remote(_worker)
    return list(ray.get([task.remote(job) for job in jobs]))
