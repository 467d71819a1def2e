"""``ccasim diff``: run the same generated RMI sequences on two RMMs; report where they part."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ccasim.cli.numbers import COUNT
from ccasim.diff import Campaign, open_rmm
from ccasim.diff.backends import ABI_HEADER
from ccasim.rmm.profile import PROFILES, Quirk

RMM_HELP = (
    "An RMM: a ccasim profile (" + ", ".join(PROFILES) + "), with +QUIRK to add quirks "
    "(" + ", ".join(q.value for q in Quirk) + "), or the path of a shared library "
    "implementing the C ABI (--print-abi)."
)


@click.command(
    epilog="""\b
Examples:
  ccasim diff                                 # the spec against TF-RMM rmm-spec-v1.0-rel0
  ccasim diff --b tfrmm-1.0-debug --minutes 1 --workers 2 --json report.json
  ccasim diff --a spec --b spec+init-ripas-stops-early
  ccasim diff --b ./librmm.so                 # your RMM's host build
  ccasim diff --print-abi > ccasim_rmm.h

Exit status: 0 when no difference was found, 1 when some were, 2 for a bad option.""",
)
@click.option("--a", "rmm_a", default="spec", show_default=True, metavar="RMM", help=RMM_HELP)
@click.option("--b", "rmm_b", default="tfrmm-1.0", show_default=True, metavar="RMM",
              help="The other RMM (as --a).")  # fmt: skip
@click.option("--seed", type=COUNT, default=0, show_default=True, help="The first seed.")
@click.option("--sequences", type=COUNT, default=1000, show_default=True,
              help="How many seeds (one sequence each).")  # fmt: skip
@click.option("--length", type=COUNT, default=200, show_default=True,
              help="Steps per sequence, at most.")  # fmt: skip
@click.option("--minutes", type=COUNT, help="Stop after this many minutes, seeds left or not.")
@click.option("--workers", type=COUNT, default=1, show_default=True, help="Processes.")
@click.option("--json", "json_file", metavar="FILE", help="Also write the report as JSON.")
@click.option("--no-shrink", is_flag=True, help="Report the first sequences as they are.")
@click.option(
    "--reproducers", metavar="DIR",
    help="Write each class's reproducer as a pytest file (it passes once they agree).",
)  # fmt: skip
@click.option("--print-abi", is_flag=True, help="Print the C header of the external RMM ABI.")
def diff(
    rmm_a: str, rmm_b: str, seed: int, sequences: int, length: int, minutes: int | None,
    workers: int, json_file: str | None, no_shrink: bool, reproducers: str | None,
    print_abi: bool,
) -> int:  # fmt: skip
    """Run generated RMI sequences on two RMMs and report each class of difference.

    Each seed gives one sequence of host steps, mostly valid (several small realms built,
    mapped, measured, activated, read and destroyed) with a share of invalid arguments and
    garbage in unused registers. After every call the two RMMs are compared: X0, the outputs
    the spec defines, the registers that must be zero, the granule states, what the Normal
    world sees, the RIM. Differences the spec allows (outputs UNDEFINED after a failure) are
    counted apart. Each class of difference gets the spec rule it concerns, a minimal
    reproducer (delta debugging) and, between ccasim profiles, the quirk that makes it.
    """
    if print_abi:
        click.echo(ABI_HEADER.read_text(), nl=False)
        return 0
    for hint, value in (("--minutes", minutes), ("--workers", workers), ("--length", length)):
        if value == 0:
            raise click.BadParameter("must be at least 1", param_hint=hint)
    if reproducers and Path(reproducers).exists() and not Path(reproducers).is_dir():
        raise click.BadParameter(f"{reproducers} is not a directory", param_hint="--reproducers")
    if json_file and Path(json_file).is_dir():
        raise click.BadParameter(f"{json_file} is a directory", param_hint="--json")
    for name in (rmm_a, rmm_b):
        try:
            open_rmm(name)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--a/--b") from None
    campaign = Campaign(
        rmm_a, rmm_b, range(seed, seed + sequences), length=length,
        seconds=minutes * 60 if minutes is not None else None, workers=workers,
    ).run(shrink_classes=not no_shrink)  # fmt: skip
    if json_file:
        try:
            Path(json_file).write_text(json.dumps(campaign.to_json(), indent=2) + "\n")
        except OSError as e:
            raise click.ClickException(f"cannot write {json_file}: {e.strerror or e}") from None
    click.echo(campaign.text())
    if reproducers and campaign.classes:
        try:
            for path in campaign.write_reproducers(reproducers):
                click.echo(f"wrote {path}")
        except OSError as e:
            raise click.ClickException(f"cannot write {reproducers}: {e.strerror or e}") from None
    return 1 if campaign.classes else 0
