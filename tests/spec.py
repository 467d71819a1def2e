"""The RMM specification's command definitions, read from the Markdown in ../shared/spec.

Used to check that the tests exercise every failure condition the spec defines: the list
comes from the spec itself, not from the model.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from ccasim.psci import PsciFid
from ccasim.rmi import FID
from ccasim.rsi import RsiFid

#: The spec Markdown: ../shared/spec/rmm-1.0 beside the repository, or $CCASIM_SPEC_DIR.
SPEC = Path(
    os.environ.get("CCASIM_SPEC_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "spec" / "rmm-1.0"
)

#: Conditions a sequential single-CPU model cannot reach, with the reason (docs/decisions.md).
UNREACHABLE = {
    ("RMI_REC_DESTROY", "rec_state"): "REC_RUNNING exists only inside RMI_REC_ENTER",
    ("RMI_REC_ENTER", "rec_state"): "REC_RUNNING exists only inside RMI_REC_ENTER",
    ("RMI_RTT_SET_RIPAS", "rec_state"): "REC_RUNNING exists only inside RMI_REC_ENTER",
    (
        "RMI_RTT_MAP_UNPROTECTED",
        "addr_bound",
    ): "no descriptor field holds PA bits >= 48 without LPA2",
    ("RSI_ATTESTATION_TOKEN_CONTINUE", "unknown"): "token generation cannot fail in the model",
    ("PSCI_CPU_ON", "runnable"): "decided by RMI_PSCI_COMPLETE (ALREADY_ON), tested there",
}

#: Command name in the spec -> the FIDs that run it (PSCI has SMC32 and SMC64 variants).
FIDS: dict[str, set[int]] = {f"RMI_{f.name}": {f} for f in FID}
FIDS |= {f"RSI_{f.name}": {f} for f in RsiFid}
for f in PsciFid:
    FIDS.setdefault(f"PSCI_{f.name.removesuffix('_32')}", set()).add(f)
# The spec calls RSI_ATTESTATION_TOKEN_* what the FID table calls ATTESTATION_TOKEN_*.


@cache
def failure_conditions() -> dict[str, tuple[str, ...]]:
    """Command name -> the IDs of its failure conditions, in the order the spec lists them."""
    result: dict[str, tuple[str, ...]] = {}
    for path in sorted(SPEC.glob("rmm-B[456].3.*.md")):
        text = path.read_text()
        title = re.search(r"((?:RMI|RSI|PSCI)\\_[A-Z\\_]+) command", text)
        if title is None:
            continue
        name = title.group(1).replace("\\", "")
        start = text.find("Failure conditions")
        end = text.find("Failure condition ordering")
        if start < 0 or "does not have any failure conditions" in text[start : start + 200]:
            result[name] = ()
            continue
        section = text[start : end if end > 0 else None].replace("\\_", "_")
        result[name] = tuple(re.findall(r"([a-z][a-z0-9_]*)\s*\|?\s*pre:", section))
    return result


@cache
def interfaces() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Command name -> (input register names X1.., output register names X1..), from the
    Input values and Output values tables of each B4.3 and B5.3 command."""
    result = {}
    for path in sorted(SPEC.glob("rmm-B[45].3.*.md")):
        text = path.read_text()
        title = re.search(r"((?:RMI|RSI)\\_[A-Z\\_]+) command", text)
        if title is None:
            continue

        def registers(heading: str, text: str = text) -> tuple[str, ...]:
            start = text.find(heading)
            section = text[start : text.find("\n## ", start + len(heading))]
            rows = re.findall(r"^\|\s*([a-z_0-9]+)\s*\|\s*X(\d+)\s*\|", section, re.MULTILINE)
            return tuple(name for name, reg in rows if int(reg) > 0)

        name = title.group(1).replace("\\", "")
        result[name] = (registers("Input values"), registers("Output values"))
    return result
