"""How the host kernel refuses a request: an errno, as the ioctl would return it."""

from __future__ import annotations

import errno

#: Linux's names where Python's errno table picks an alias (95 is EOPNOTSUPP in the kernel).
NAMES = {**errno.errorcode, errno.EOPNOTSUPP: "EOPNOTSUPP"}


class KvmError(OSError):
    """An ioctl failed with ``errno`` (``e.errno``; its name is ``e.name``). A request the
    kernel refuses up front changes nothing."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, f"{NAMES.get(code, code)}: {message}")
        self.code = code
        self.name = NAMES.get(code, str(code))
        self.message = message


def fail(code: int, message: str) -> KvmError:
    """The error to raise: ``raise fail(errno.EINVAL, "...")``."""
    return KvmError(code, message)


__all__ = ["KvmError", "fail"]
