"""One step on two RMMs, and what differs: every observable the spec pins down.

After each step ``ccasim diff`` compares, on the two RMMs:

- X0: the status and its index;
- the outputs the command defines (B4.3.x.1): all of them on success; after a failure only
  those the spec defines then (the ``top`` of DATA_DESTROY, RTT_DESTROY and
  RTT_UNMAP_UNPROTECTED after RMI_ERROR_RTT), the others being UNDEFINED: a difference there
  is allowed, and counted as such;
- the registers past the outputs, which must be zero (B1.2);
- the state of every granule the step names or returns, and what the Normal world sees of it:
  a fault, or its contents (what an UNDELEGATE leaves behind);
- the RIM of the realm the step names;
- whether a Normal-world write of the step faults, and whether the RMM stops.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ccasim.diff.backends import RmmUnderTest
from ccasim.diff.steps import Step
from ccasim.rmi.commands import RMI_COMMANDS
from ccasim.rmi.fid import FID
from ccasim.rmi.status import Status, describe_return_code

__all__ = ["Difference", "Outcome", "compare_granules", "granules_in_dram", "run_step"]

GRANULE = 4096
#: The DRAM both RMMs model: a value in it is a granule the comparison looks at.
DRAM_BASE, DRAM_TOP = 0x8000_0000, 0x1_0000_0000


def granules_in_dram(values: Iterable[int]) -> set[int]:
    """The granules of DRAM that ``values`` (registers, addresses) point into."""
    return {int(v) & ~(GRANULE - 1) for v in values if DRAM_BASE <= v < DRAM_TOP}


#: Outputs the spec defines after RMI_ERROR_RTT (B4.3.3.1.3, B4.3.16.1.3, B4.3.22.1.3).
DEFINED_ON_RTT_ERROR = frozenset({FID.DATA_DESTROY, FID.RTT_DESTROY, FID.RTT_UNMAP_UNPROTECTED})


@dataclass(frozen=True)
class Difference:
    """What differs after step ``index``: its ``kind`` (``status``, ``output``, ``mbz``,
    ``granule``, ``ns``, ``rim``, ``ns-write``, ``stopped``), ``detail`` (the register, the
    state pair...) and each RMM's value."""

    index: int
    step: Step
    kind: str
    detail: str
    a: str
    b: str

    @property
    def key(self) -> tuple[str, str, str]:
        """The class: the command, what differs and how (not where). A register that must
        be zero is one class whatever the command."""
        return ("*" if self.kind == "mbz" else self.step.name, self.kind, self.detail)

    def __str__(self) -> str:
        where = f"step {self.index + 1} {self.step.name}"
        return f"{where}: {self.kind} {self.detail}: {self.a} | {self.b}"


@dataclass
class Outcome:
    """A step's results on both RMMs, and what differs."""

    a: tuple[int, ...] | str
    b: tuple[int, ...] | str
    differences: list[Difference]
    allowed: int = 0  # differences in outputs the spec leaves UNDEFINED


def _status(x0: int) -> str:
    return describe_return_code(x0)


def _digest(data: bytes | None) -> str:
    return "fault" if data is None else hashlib.sha256(data).hexdigest()[:16]


def compare_granules(
    index: int, step: Step, a: RmmUnderTest, b: RmmUnderTest, pas: set[int]
) -> list[Difference]:
    """Granule states and Normal-world views of ``pas`` on both RMMs."""
    out = []
    for pa in sorted(pas):
        sa, sb = a.granule_state(pa), b.granule_state(pa)
        if sa != sb:
            out.append(
                Difference(
                    index, step, "granule", f"{sa} vs {sb}", f"{pa:#x} {sa}", f"{pa:#x} {sb}"
                )
            )
            continue
        va, vb = _digest(a.ns_read(pa)), _digest(b.ns_read(pa))
        if va != vb:
            what = "fault" if "fault" in (va, vb) else "contents"
            out.append(
                Difference(
                    index, step, "ns", f"{what} of a {sa} granule", f"{pa:#x} {va}", f"{pa:#x} {vb}"
                )
            )
    return out


def run_step(index: int, step: Step, a: RmmUnderTest, b: RmmUnderTest) -> Outcome:
    """Run ``step`` on both RMMs and compare what follows."""
    diffs: list[Difference] = []
    for pa, data in step.writes:
        wa, wb = a.ns_write(pa, data), b.ns_write(pa, data)
        if wa != wb:
            diffs.append(Difference(index, step, "ns-write", "fault", str(not wa), str(not wb)))
    ra, rb = a.smc(step.fid, step.args), b.smc(step.fid, step.args)
    if isinstance(ra, str) or isinstance(rb, str):
        if isinstance(ra, str) != isinstance(rb, str):
            which = "A" if isinstance(ra, str) else "B"
            diffs.append(Difference(index, step, "stopped", f"{which} stopped",
                                    ra if isinstance(ra, str) else _status(ra[0]),
                                    rb if isinstance(rb, str) else _status(rb[0])))  # fmt: skip
        return Outcome(ra, rb, diffs)
    allowed = 0
    command = RMI_COMMANDS.get(step.fid)
    if ra[0] != rb[0]:
        sa, sb = _status(ra[0]), _status(rb[0])
        detail = f"{sa.split()[0]} vs {sb.split()[0]}"  # the class: the statuses, not the index
        diffs.append(Difference(index, step, "status", detail, sa, sb))
    elif command is not None:
        names = command.outputs
        defined = ra[0] == Status.SUCCESS or (
            ra[0] & 0xFF == Status.ERROR_RTT and step.fid in DEFINED_ON_RTT_ERROR
        )
        for i, name in enumerate(names, start=1):
            if ra[i] != rb[i]:
                if defined:
                    diffs.append(
                        Difference(index, step, "output", name, f"{ra[i]:#x}", f"{rb[i]:#x}")
                    )
                else:
                    allowed += 1
    if command is not None:
        for i in range(len(command.outputs) + 1, 5):
            if ra[i] != rb[i]:
                diffs.append(Difference(index, step, "mbz", f"X{i}", f"{ra[i]:#x}", f"{rb[i]:#x}"))
    pas = granules_in_dram((*step.args, *(pa for pa, _ in step.writes), *ra[1:], *rb[1:]))
    diffs += compare_granules(index, step, a, b, pas)
    if step.args:
        rim_a, rim_b = a.rim(step.args[0]), b.rim(step.args[0])
        if rim_a != rim_b:
            show = lambda r: r.hex()[:16] if r else "no realm"  # noqa: E731
            diffs.append(Difference(index, step, "rim", "RIM", show(rim_a), show(rim_b)))
    # the first difference of a step is its cause (a status, an output), the rest follow from it
    return Outcome(ra, rb, diffs[:1], allowed)
