"""What kvmtool's and QEMU's command lines have in common: sizes and addresses as the VMMs
read them, an argument parser that fails with one line, and the files they load."""

from __future__ import annotations

import argparse
import re
import zlib
from pathlib import Path

from ccasim.vmm import fdt, layout
from ccasim.vmm.capabilities import Capabilities, CapabilityError
from ccasim.vmm.errors import LaunchError
from ccasim.vmm.image import ImageError, parse_image_header
from ccasim.vmm.launch import Blob, Region

MAX_IPA_BITS = 52  # FEAT_LPA2 (A5.2.1)
SIZE_UNITS = {"": 1 << 20, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, what: str) -> int:
    """A memory size as the VMMs take it: a number, MiB unless a K/M/G/T suffix says so."""
    m = re.fullmatch(r"(\d+)([BKMGT]?)i?B?", text.strip(), re.IGNORECASE)
    if m is None:
        raise LaunchError(f"{what}: {text!r} is not a size (a number with K, M, G or T)")
    return int(m.group(1)) * SIZE_UNITS[m.group(2).upper()]


def parse_address(text: str, what: str) -> int:
    """An address as the VMMs read one with strtoull(..., 0): decimal, 0x-hex or 0-octal."""
    try:
        value = int(text, 0) if not text.startswith("0") or text[1:2] in "xX" else int(text, 8)
    except ValueError:
        raise LaunchError(f"{what}: {text!r} is not an address") from None
    if not 0 <= value < 1 << 64:
        raise LaunchError(f"{what}: {text!r} does not fit in 64 bits")
    return value


def dtb_file(path: str) -> bytes:
    """A device tree given as a file: it must be a flattened device tree."""
    data = read(path, "DTB")
    try:
        fdt.check(data)
    except fdt.DtbError as e:
        raise LaunchError(f"DTB {path}: {e}") from None
    return data


def read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise LaunchError(f"cannot read {what} {path}: {e.strerror}") from None


def vmm_values(vmm: str, requested: Capabilities) -> Capabilities:
    """What a VMM's options ask for must be possible at all (a count of PMU counters, a
    vector length); within that, it can only lower what the host offers."""
    try:
        return requested.validate()
    except CapabilityError as e:
        raise CapabilityError(f"{vmm}: {e}") from None


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, and that gives an option
    the value after it even when that value starts with '-' (``-m -512M``, ``-p -quiet``), as
    the VMMs' own option parsers do."""

    def error(self, message: str):  # type: ignore[override]
        raise LaunchError(message)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        takes_value = {
            option
            for action in self._actions
            if action.nargs is None and action.option_strings
            for option in action.option_strings
        }
        joined: list[str] = []
        words = iter(args or [])
        for word in words:
            joined.append(word)
            if word in takes_value:
                value = next(words, None)
                if value is not None:
                    joined[-1] = f"{word}={value}"
        return super().parse_args(joined, namespace)


GZIP_MAGIC = b"\x1f\x8b"
QEMU_MAX_GUNZIP = 256 << 20  # QEMU's LOAD_IMAGE_MAX_GUNZIP_BYTES


def gunzip(data: bytes, path: str) -> bytes:
    """An Image.gz as QEMU inflates it for -kernel (at most 256 MiB)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, QEMU_MAX_GUNZIP)
    except zlib.error as e:
        raise LaunchError(f"kernel {path}: not a valid gzip file: {e}") from None
    if inflater.unconsumed_tail:
        raise LaunchError(f"kernel {path}: inflates to more than 256 MiB")
    return out


def kernel_blob(path: str, base: int, inflate: bool = False) -> tuple[Blob, int]:
    """The kernel Image placed at RAM + text_offset; an Image.gz is inflated first if the VMM
    does so (QEMU)."""
    return kernel_blob_of(read(path, "kernel"), path, base, inflate)


def kernel_blob_of(data: bytes, path: str, base: int, inflate: bool = False) -> tuple[Blob, int]:
    """:func:`kernel_blob` for a kernel already read (``path`` names it in errors)."""
    if inflate and data.startswith(GZIP_MAGIC):
        data = gunzip(data, path)
    try:
        header = parse_image_header(data)
    except ImageError as e:
        raise LaunchError(f"kernel {path or '(embedded)'}: {e}") from None
    return Blob("kernel", base + header.text_offset, data, path), header.image_size


def dtb_blob(data: bytes, ipa: int, pad_to: int | None) -> Blob:
    if pad_to is not None:
        if len(data) > pad_to:
            raise LaunchError(f"the DTB is {len(data)} bytes; the VMM allows {pad_to}")
        data = data.ljust(pad_to, b"\0")
    return Blob("dtb", ipa, data)


def log_regions(place: layout.Placement) -> list[Region]:
    """The measurement log's pages, populated unmeasured after the RECs."""
    if place.log is None:
        return []
    return [Region("measurement log", place.log, layout.MEASUREMENT_LOG_SIZE)]
