"""Reading and writing the files named on the command line, failing with one clear line."""

from __future__ import annotations

from pathlib import Path

import click


def read_file(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise click.ClickException(f"cannot read {what} {path}: {e.strerror}") from None


def write_file(path: str, data: bytes, what: str) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as e:
        raise click.ClickException(f"cannot write {what} {path}: {e.strerror}") from None
