"""The RMM specification's command definitions, read from the Markdown in ../shared/spec.

Used to check that the tests exercise every failure condition the spec defines: the list
comes from the spec itself, not from the model.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from ccasim.rmi import FID

#: The spec Markdown: ../shared/spec/rmm-1.0 beside the repository, or $CCASIM_SPEC_DIR.
SPEC = Path(
    os.environ.get("CCASIM_SPEC_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "spec" / "rmm-1.0"
)

#: Conditions a sequential single-CPU model cannot reach, with the reason (docs/decisions.md).
UNREACHABLE = {
    (FID.REC_DESTROY, "rec_state"): "REC_RUNNING exists only inside RMI_REC_ENTER",
    (FID.REC_ENTER, "rec_state"): "REC_RUNNING exists only inside RMI_REC_ENTER",
    (FID.RTT_SET_RIPAS, "rec_state"): "REC_RUNNING exists only inside RMI_REC_ENTER",
    (FID.RTT_MAP_UNPROTECTED, "addr_bound"): "no descriptor field holds PA bits >= 48 without LPA2",
}


@cache
def failure_conditions() -> dict[FID, tuple[str, ...]]:
    """FID -> the IDs of its failure conditions, in the order the spec lists them."""
    result: dict[FID, tuple[str, ...]] = {}
    for path in SPEC.glob("rmm-B4.3.*.md"):
        text = path.read_text()
        name = re.search(r"RMI\\_([A-Z\\_]+) command", text)
        if name is None:
            continue
        fid = FID[name.group(1).replace("\\", "")]
        start = text.find("Failure conditions")
        end = text.find("Failure condition ordering")
        if start < 0 or "does not have any failure conditions" in text[start : start + 200]:
            result[fid] = ()
            continue
        section = text[start : end if end > 0 else None]
        result[fid] = tuple(re.findall(r"([a-z][a-z0-9_]*)\s*\|?\s*pre:", section))
    return result
