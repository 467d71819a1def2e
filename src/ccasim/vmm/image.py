"""The arm64 Linux Image header (Documentation/arch/arm64/booting.rst)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

ARM64_MAGIC = b"ARM\x64"
_HEADER = struct.Struct("<IIQQQQQQ4sI")


class ImageError(ValueError):
    """Not an arm64 Image."""


@dataclass(frozen=True)
class Arm64Image:
    text_offset: int
    image_size: int
    flags: int


def parse_image_header(data: bytes) -> Arm64Image:
    """The load offset and size an arm64 kernel Image declares."""
    if len(data) < _HEADER.size:
        raise ImageError("too short for an arm64 Image header (64 bytes)")
    _, _, text_offset, image_size, flags, _, _, _, magic, _ = _HEADER.unpack_from(data)
    if magic != ARM64_MAGIC:
        raise ImageError("no arm64 Image magic ('ARM\\x64' at offset 0x38)")
    return Arm64Image(text_offset, image_size, flags)
