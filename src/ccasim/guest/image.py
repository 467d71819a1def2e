"""The guest image format: what realm memory at a REC's entry PC holds.

An image is a 16-byte header followed by a CBOR map (deterministic encoding)::

    0x00  magic    b"CCASIMG\\0"
    0x08  version  u32 little-endian (1)
    0x0C  length   u32 little-endian: bytes of CBOR that follow
    0x10  CBOR     {"program": name, "params": {str: int | bytes | str}}

Everything in it, parameters included, is part of realm memory and so of the measurement.

A *kernel image* (:func:`kernel_image`) wraps an image in the 64-byte header of an arm64 Linux
Image (Documentation/arch/arm64/booting.rst: a branch over the header, text_offset 0, the
image size, the ``ARM\x64`` magic), so that a VMM loads it as it loads a kernel (``lkvm run
-k``, ``qemu -kernel``); the loader finds the guest image after the header.
"""

from __future__ import annotations

import struct

import cbor2

MAGIC = b"CCASIMG\0"
VERSION = 1
HEADER = struct.Struct("<8sII")
MAX_IMAGE = 1 << 20


class ImageError(ValueError):
    """Realm memory at the PC does not hold a valid guest image."""


def image(name: str, **params: int | bytes | str) -> bytes:
    """The bytes of an image that runs guest program ``name`` with ``params``."""
    for key, value in params.items():
        if not isinstance(value, int | bytes | str) or isinstance(value, bool):
            raise TypeError(f"image parameter {key!r} must be int, bytes or str, not {value!r}")
    body = cbor2.dumps({"program": name, "params": params}, canonical=True)
    return HEADER.pack(MAGIC, VERSION, len(body)) + body


def header_length(head: bytes) -> int:
    """From the first 16 bytes, the total image length (raises ImageError)."""
    magic, version, length = HEADER.unpack_from(head)
    if magic != MAGIC:
        raise ImageError("no guest image (bad magic)")
    if version != VERSION:
        raise ImageError(f"unsupported guest image version {version}")
    if length > MAX_IMAGE:
        raise ImageError(f"guest image too large ({length} bytes)")
    return HEADER.size + length


ARM64_HEADER = struct.Struct("<IIQQQQQQ4sI")
ARM64_MAGIC = b"ARM\x64"
#: ``b #0x40``: the first instruction branches over the header.
BRANCH_OVER_HEADER = 0x1400_0010
#: Image flags: little-endian, 4 KiB pages, physical placement anywhere.
ARM64_FLAGS = 0xA


def kernel_image(name: str, **params: int | bytes | str) -> bytes:
    """A guest image that is also an arm64 kernel Image, for a VMM's ``-k``."""
    body = image(name, **params)
    size = -(-(ARM64_HEADER.size + len(body)) // 4096) * 4096
    head = ARM64_HEADER.pack(BRANCH_OVER_HEADER, 0, 0, size, ARM64_FLAGS, 0, 0, 0,
                             ARM64_MAGIC, 0)  # fmt: skip
    return head + body


def is_kernel_image(head: bytes) -> bool:
    """Whether ``head`` (at least 64 bytes) starts with an arm64 Image header."""
    return len(head) >= ARM64_HEADER.size and head[0x38:0x3C] == ARM64_MAGIC


def decode_image(data: bytes) -> tuple[str, dict[str, int | bytes | str]]:
    """(program name, parameters) of the image ``data`` (raises ImageError)."""
    if len(data) < HEADER.size:
        raise ImageError("truncated guest image")
    total = header_length(data[: HEADER.size])
    if len(data) < total:
        raise ImageError("truncated guest image")
    try:
        body = cbor2.loads(data[HEADER.size : total])
    except (cbor2.CBORDecodeError, ValueError) as e:
        raise ImageError(f"corrupt guest image: {e}") from None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("program"), str)
        or not isinstance(body.get("params"), dict)
    ):
        raise ImageError("corrupt guest image: expected {program, params}")
    return body["program"], body["params"]
