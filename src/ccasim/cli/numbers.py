"""Numbers on ccasim's own command line.

Every numeric option reads the same way:

- decimal (``4096``) or hexadecimal with a ``0x``/``0X`` prefix in either case (``0x8000AFFF``),
  with ``_`` between digits allowed as in Python (``0x8000_0000``);
- where the value is an address or a size, also a K, M, G or T suffix (powers of 1024, either
  case, optionally followed by ``iB`` or ``B``): ``512M``, ``2GiB``, ``0x10M``. The suffix is
  never confused with a hex digit: in ``0x1B`` the B is a digit, in ``0x1KB`` it belongs to the
  suffix.

The VMM command lines that ``ccasim measure`` takes keep their VMM's own rules (a bare
kvmtool ``-m 512`` is 512 MiB); :mod:`ccasim.vmm.kvmtool` and :mod:`ccasim.vmm.qemu` parse them.
"""

from __future__ import annotations

import re

import click

SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_NUMBER = re.compile(
    r"(?P<digits>0[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*|[0-9](?:_?[0-9])*)"
    r"(?P<suffix>[KMGTkmgt](?:[iI]?[bB])?)?"
)
MAX64 = (1 << 64) - 1


def parse_number(text: str, *, suffixes: bool = False) -> int:
    """The value of ``text`` as described above (``suffixes`` allows K/M/G/T); raise
    ValueError saying what is wrong."""
    stripped = text.strip()
    if stripped.startswith("-"):
        raise ValueError(f"{text!r} is negative")
    m = _NUMBER.fullmatch(stripped)
    if m is None or (m["suffix"] and not suffixes):
        kind = "a number or a size (K/M/G/T)" if suffixes else "a decimal or 0x-hex number"
        raise ValueError(f"{text!r} is not {kind}")
    value = int(m["digits"], 0)
    if m["suffix"]:
        value *= SUFFIXES[m["suffix"][0].upper()]
    return value


def parse_hex_bytes(text: str) -> bytes:
    """A byte string written in hex, with or without a 0x prefix (a digest, a challenge)."""
    digits = text.strip()
    if digits[:2] in ("0x", "0X"):
        digits = digits[2:]
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"{text!r} is not hexadecimal bytes") from None


class Number(click.ParamType):
    """A click option type for :func:`parse_number`, at most ``high``."""

    def __init__(self, *, suffixes: bool = False, high: int = MAX64, name: str = "NUMBER"):
        self.suffixes = suffixes
        self.high = high
        self.name = name

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = parse_number(str(value), suffixes=self.suffixes)
            except ValueError as e:
                self.fail(str(e), param, ctx)
        if number > self.high:
            limit = "64 bits" if self.high == MAX64 else f"{self.high:#x}"
            self.fail(f"{value!r} does not fit in {limit}", param, ctx)
        return number


#: A 64-bit register value (decimal or 0x-hex).
REGISTER = Number(name="VALUE")
#: An address or a size: like REGISTER, and K/M/G/T suffixes.
ADDRESS = Number(suffixes=True, name="ADDR")
#: A count (decimal or 0x-hex); its range is checked where its meaning is known.
COUNT = Number(name="N")
