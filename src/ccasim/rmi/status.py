"""RMI command return codes (B4.2, B4.4.1 RmiCommandReturnCode, B4.4.25 RmiStatusCode)."""

from __future__ import annotations

import enum

from ccasim.smccc import NOT_SUPPORTED


class Status(enum.IntEnum):
    """RmiStatusCode (B4.4.25)."""

    SUCCESS = 0
    ERROR_INPUT = 1
    ERROR_REALM = 2
    ERROR_REC = 3
    ERROR_RTT = 4


def return_code(status: int, index: int = 0) -> int:
    """Encode RmiCommandReturnCode: status in bits [7:0], index in bits [15:8] (B4.4.1)."""
    return (status & 0xFF) | (index & 0xFF) << 8


def decode_return_code(x0: int) -> tuple[Status | int, int]:
    """Split X0 into (status, index); an unknown status stays a plain int."""
    code = x0 & 0xFF
    status: Status | int = Status(code) if code in Status._value2member_map_ else code
    return status, (x0 >> 8) & 0xFF


def describe_return_code(x0: int) -> str:
    """Render X0 as TF-RMM logs it, e.g. ``RMI_ERROR_RTT 2`` or ``RMI_SUCCESS``."""
    if x0 == NOT_SUPPORTED:
        return "SMCCC_NOT_SUPPORTED"
    status, index = decode_return_code(x0)
    name = f"RMI_{status.name}" if isinstance(status, Status) else f"status {status}"
    return name if index == 0 else f"{name} {index}"
