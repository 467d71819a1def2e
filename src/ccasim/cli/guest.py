"""``ccasim guest``: the guest programs ccasim can run, and their kernel images.

``ccasim guest image`` writes the kernel image ``ccasim run`` embeds, so that
``ccasim measure kvmtool -k FILE`` predicts the RIM of ``ccasim run`` (same program, same
parameters) and ``ccasim run -k FILE`` runs exactly it.
"""

from __future__ import annotations

import inspect

import click

from ccasim.cli.files import write_file
from ccasim.guest.image import kernel_image
from ccasim.guest.registry import lookup, programs


@click.group()
def guest() -> None:
    """Guest programs: list them, write their kernel images."""


@guest.command("list")
def list_programs() -> None:
    """The registered guest programs, their parameters and first docstring line."""
    for name in programs():
        fn = lookup(name)
        assert fn is not None
        params = list(inspect.signature(fn).parameters.values())[1:]  # after the vCPU
        shown = " ".join(f"{p.name}={p.default!r}" for p in params)
        click.echo(f"{name}  {shown}".rstrip())
        doc = inspect.getdoc(fn) or inspect.getdoc(inspect.getmodule(fn)) or ""
        if doc:
            click.echo(f"    {doc.splitlines()[0]}")


@guest.command("image")
@click.argument("name", default="ccasim-default")
@click.argument("params", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("-o", "--output", required=True, metavar="FILE", help="Where to write the image.")
def image(name: str, params: tuple[str, ...], output: str) -> None:
    """Write the arm64 kernel Image that runs program NAME with PARAMS (`-k` for a VMM)."""
    from ccasim.cli.run import guest_args, guest_program  # as `ccasim run` reads them

    program, checked = guest_program(name, guest_args(params))
    write_file(output, kernel_image(program, **checked), "image")
