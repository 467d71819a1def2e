"""``ccasim run --report FILE.html``: placeholder until the report lands."""

from __future__ import annotations

from typing import Any


def capture(machine: Any, vmm: Any) -> dict[str, Any]:
    return {}


def write_report(path: str, report: dict[str, Any], recorder: Any) -> None:
    raise NotImplementedError
