"""What ``ccasim diff`` runs on each RMM: sequences of host steps, as plain data.

A step is what a host does in one go: write some Normal-world pages (the parameters of a
command, the contents a DATA_CREATE copies), then make one SMC. Sequences are data, so the
same one runs on any RMM, is shrunk by leaving steps out, and is saved in a report as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ccasim.rmi.commands import RMI_COMMANDS

__all__ = ["GRANULE_STATES", "Step", "step_name"]

#: RmmGranuleState (C1.7) in the order of the external ABI's numbers (0 = UNDELEGATED).
GRANULE_STATES = ("UNDELEGATED", "DELEGATED", "RD", "REC", "REC_AUX", "DATA", "RTT")


def step_name(fid: int) -> str:
    """The command's name (``RMI_DATA_CREATE``), or the FID in hex."""
    command = RMI_COMMANDS.get(fid)
    return command.name if command is not None else f"FID {fid:#x}"


@dataclass(frozen=True)
class Step:
    """Write ``writes`` (PA, bytes) from the Normal world, then SMC ``fid`` with X1.. =
    ``args`` (more registers than the command's inputs: garbage the RMM must ignore)."""

    fid: int
    args: tuple[int, ...]
    writes: tuple[tuple[int, bytes], ...] = field(default=())

    @property
    def name(self) -> str:
        return step_name(self.fid)

    def __str__(self) -> str:
        regs = " ".join(f"{a:#x}" for a in self.args)
        writes = "".join(f" [NS write {len(d)} bytes at {pa:#x}]" for pa, d in self.writes)
        return f"{self.name} {regs}{writes}"

    def to_json(self) -> dict[str, object]:
        return {
            "fid": self.fid,
            "command": self.name,
            "args": [f"{a:#x}" for a in self.args],
            "writes": [{"pa": f"{pa:#x}", "data": data.hex()} for pa, data in self.writes],
        }

    @staticmethod
    def from_json(data: dict) -> Step:
        return Step(
            int(data["fid"]),
            tuple(int(a, 16) for a in data["args"]),
            tuple((int(w["pa"], 16), bytes.fromhex(w["data"])) for w in data["writes"]),
        )
