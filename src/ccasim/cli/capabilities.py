"""The host-capability options ``ccasim measure`` and ``ccasim run`` share, and how both read
them: capabilities files first (each only lowering what the ones before allowed), then an
RMI_FEATURES value (also only lowering), then values set outright, in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ccasim.cli.files import read_file
from ccasim.cli.numbers import COUNT, REGISTER
from ccasim.rmm.profile import PROFILES, Quirk, RmmProfile, profile
from ccasim.vmm.capabilities import Capabilities, load_toml
from ccasim.vmm.errors import LaunchError

#: The options every capability command takes (``--pmu`` and ``--hash-algo`` differ: for
#: ``run``, ``--pmu`` is kvmtool's and ``--hash-algo`` what the RMM offers).
OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--rmi-features",
        type=REGISTER,
        help="Capabilities from what RMI_FEATURES(0) returned (an RMM log's X1), like a file.",
    ),
    click.option("--ipa-bits", type=COUNT, help="IPA size the host supports (S2SZ)."),
    click.option("--num-bps", type=COUNT, help="Breakpoints (2-64)."),
    click.option("--num-wps", type=COUNT, help="Watchpoints (2-64)."),
    click.option("--sve-vl", type=COUNT, help="Largest SVE vector length in bits (0: no SVE)."),
    click.option("--pmu-num-ctrs", type=COUNT, help="PMU event counters (0-31)."),
]


def capability_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``command`` with :data:`OPTIONS`."""
    for option in reversed(OPTIONS):
        command = option(command)
    return command


def rmm_profile_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``command`` with ``--rmm-profile NAME`` and ``--rmm-quirk QUIRK`` (the RMM a
    platform runs, :mod:`ccasim.rmm.profile`); :func:`chosen_profile` reads them."""
    quirks = [q.value for q in Quirk]
    command = click.option(
        "--rmm-quirk", "rmm_quirks", multiple=True, type=click.Choice(quirks), metavar="QUIRK",
        help=f"A quirk of a real RMM to switch on besides the profile's ({', '.join(quirks)});"
        " repeatable.",
    )(command)  # fmt: skip
    return click.option(
        "--rmm-profile", type=click.Choice(list(PROFILES)), metavar="NAME",
        help=f"The RMM the platform runs: {', '.join(PROFILES)} (default spec).",
    )(command)  # fmt: skip


def chosen_profile(options: dict[str, Any]) -> RmmProfile:
    """The profile ``--rmm-profile`` and ``--rmm-quirk`` name."""
    return profile(options["rmm_profile"] or "spec", *options["rmm_quirks"])


def read_capabilities(
    files: tuple[str, ...], rmi_features: int | None, *outright: Capabilities
) -> Capabilities:
    """The capabilities ``files`` and ``rmi_features`` allow, then each of ``outright``
    applied as given; a bad file or value is a one-line error."""
    caps = Capabilities()
    try:
        for path in files:
            text = read_file(path, "capabilities file").decode(errors="replace")
            caps = caps.restrict(load_toml(path, text))
        if rmi_features is not None:
            try:
                offered = Capabilities.from_rmi_features(rmi_features).validate()
            except LaunchError as e:
                raise LaunchError(f"--rmi-features {rmi_features:#x}: {e}") from None
            caps = caps.restrict(offered)
        for values in outright:
            caps = caps.update(values.validate())
    except LaunchError as e:
        raise click.ClickException(str(e)) from None
    return caps
