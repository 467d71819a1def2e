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

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


def fail(code: int, message: str) -> KvmError:
    """The error to raise: ``raise fail(errno.EINVAL, "...")``."""
    return KvmError(code, message)


def integer(value: object, what: str, bits: int = 64, code: int = errno.EINVAL) -> int:
    """``value`` as the unsigned ``bits``-bit integer an ioctl argument is, or ``code``: a
    Python caller can pass anything where C would pass a number."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise fail(code, f"{what} must be an unsigned {bits}-bit integer, not {value!r}")
    return value


def fields(struct: object, kind: type, *names: str) -> None:
    """Check that ``struct`` is a ``kind`` whose ``names`` are 64-bit integers (EFAULT, as
    copy_from_user of something that is not the structure)."""
    if not isinstance(struct, kind):
        raise fail(errno.EFAULT, f"not a struct {kind.__name__}")
    for name in names:
        integer(getattr(struct, name), f"{kind.__name__}.{name}", code=errno.EFAULT)


__all__ = ["KvmError", "fail", "fields", "integer"]
