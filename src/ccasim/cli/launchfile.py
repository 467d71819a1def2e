"""``ccasim run --launch FILE``: a whole launch in TOML.

The keys are the long options of ``ccasim run`` without their dashes; file names are relative
to the file's own directory; a value is checked as its option's on the command line. Options
on the command line win over the file::

    mem = "2G"                  # kvmtool's -m
    cpus = 4                    # kvmtool's -c
    kernel = "Image"            # or: guest = "ccasim-default"
    initrd = "initrd.img"
    params = "console=hvc0"
    measurement-algo = "sha512"
    realm-pv = "tenant 42"
    challenge = "00ff..."       # hex, 32 to 64 bytes
    rmm-profile = "tfrmm-1.0"   # the host: the RMM, FEAT_HPMN0, the scheduler tick
    hpmn0 = true
    host-tick-hz = 250

    [guest-args]                # parameters of the guest program
    touch_mib = 16

    [caps]                      # the platform: what the RMM and the hardware support
    ipa-bits = 48
    sve-vl = 512
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import click

from ccasim.cli.files import read_file
from ccasim.vmm.capabilities import Capabilities, from_mapping
from ccasim.vmm.errors import LaunchError

#: kvmtool options: key -> (option, kind). Kinds: "value", "flag", "file".
KVMTOOL_KEYS = {
    "mem": ("-m", "value"),
    "cpus": ("-c", "value"),
    "kernel": ("-k", "file"),
    "initrd": ("-i", "file"),
    "params": ("-p", "value"),
    "firmware": ("-f", "file"),
    "firmware-address": ("--firmware-address", "value"),
    "measurement-algo": ("--measurement-algo", "value"),
    "realm-pv": ("--realm-pv", "value"),
    "pmu": ("--pmu", "flag"),
    "pmu-counters": ("--pmu-counters", "value"),
    "sve-max-vl": ("--sve-max-vl", "value"),
    "disable-sve": ("--disable-sve", "flag"),
    "measurement-log": ("--measurement-log", "flag"),
    "dtb": ("--dtb", "file"),
}
#: ccasim's own options a launch file may set (those taking one value), checked as the
#: command line checks them.
CCASIM_KEYS = (
    "guest", "challenge", "host-ram", "host-tick-hz", "seed", "timeout", "rmm-profile", "hpmn0",
)  # fmt: skip
CAPS_KEYS = (
    "ipa-bits", "num-bps", "num-wps", "sve-vl", "pmu-num-ctrs", "pmu", "lpa2", "hash-algo",
)  # fmt: skip


@dataclass
class LaunchFile:
    """What a launch file says: kvmtool arguments, ccasim options, guest arguments and the
    platform's capabilities (as a capabilities TOML would give them)."""

    kvmtool_args: list[str] = field(default_factory=list)
    options: dict[str, object] = field(default_factory=dict)
    guest_args: dict[str, object] = field(default_factory=dict)
    caps: Capabilities | None = None


def load_launch(path: str) -> LaunchFile:
    """Read and check the launch file at ``path`` (one-line errors naming the key)."""
    text = read_file(path, "launch file").decode(errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise click.ClickException(f"{path}: not valid TOML: {e}") from None
    here = Path(path).parent
    out = LaunchFile()
    for key, value in data.items():
        if key in KVMTOOL_KEYS:
            option, kind = KVMTOOL_KEYS[key]
            if kind == "flag":
                if not isinstance(value, bool):
                    raise click.ClickException(f"{path}: {key} must be true or false")
                if value:
                    out.kvmtool_args.append(option)
                continue
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise click.ClickException(f"{path}: {key} must be a string or a number")
            text_value = str(value)
            if kind == "file":
                text_value = str(here / text_value)
            out.kvmtool_args += [option, text_value]
        elif key in CCASIM_KEYS:
            if not isinstance(value, str | int | float | bool):
                raise click.ClickException(f"{path}: {key} must be a string, a number or a bool")
            out.options[key.replace("-", "_")] = value
        elif key == "guest-args":
            out.guest_args = _table(path, key, value)
        elif key == "caps":
            caps = _table(path, key, value)
            unknown = sorted(set(caps) - set(CAPS_KEYS))
            if unknown:
                raise click.ClickException(
                    f"{path}: unknown key caps.{unknown[0]} (keys: {', '.join(CAPS_KEYS)})"
                )
            try:
                out.caps = from_mapping(
                    f"{path} [caps]", {k.replace("-", "_"): v for k, v in caps.items()}
                )
            except LaunchError as e:
                raise click.ClickException(str(e)) from None
        else:
            known = [*KVMTOOL_KEYS, *CCASIM_KEYS, "guest-args", "caps"]
            raise click.ClickException(f"{path}: unknown key {key!r} (keys: {', '.join(known)})")
    return out


def _table(path: str, key: str, value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise click.ClickException(f"{path}: {key} must be a table ([{key}])")
    return value
