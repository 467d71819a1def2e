"""``ccasim token``: decode and verify CCA attestation tokens."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping

import cbor2
import click

from ccasim import attest
from ccasim.attest import dump_public_key
from ccasim.attest.claims import NAMES, SW_COMPONENT_FIELDS
from ccasim.attest.keys import KEY_FORMATS
from ccasim.attest.verify import ALG_NAMES
from ccasim.ccatoken import REALM_REMS
from ccasim.cli.files import read_file, write_file
from ccasim.cli.numbers import parse_hex_bytes
from ccasim.el3.attestation import PlatformAttestation


def hex_option(value: str | None, name: str) -> bytes | None:
    if value is None:
        return None
    try:
        return parse_hex_bytes(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=name) from None


#: How the items of an array claim are labelled: the REMs as REM0..REM3 (RSI index 1..4).
ITEM_LABELS = {REALM_REMS: "REM{}"}


def render(
    value: object, indent: str, names: Mapping[int, str] | None = None, item: str = "[{}]"
) -> list[str]:
    """Claim values as an indented tree; ``item`` labels the elements of an array."""
    if isinstance(value, bytes):
        return [value.hex() if value else "(empty)"]
    if isinstance(value, Mapping):
        lines = [""]
        for key, sub_value in value.items():
            label = f"{names[key]} ({key})" if names and key in names else str(key)
            sub = render(sub_value, indent + "  ", item=ITEM_LABELS.get(key, "[{}]"))
            lines.append(f"{indent}{label}: {sub[0]}")
            lines.extend(sub[1:])
        return lines
    if isinstance(value, list | tuple):
        lines = [f"array of {len(value)}"]
        for i, element in enumerate(value):
            fields = SW_COMPONENT_FIELDS if isinstance(element, Mapping) else None
            sub = render(element, indent + "  ", fields)
            lines.append(f"{indent}{item.format(i)} {sub[0]}")
            lines.extend(sub[1:])
        return lines
    return [json.dumps(value) if isinstance(value, str) else str(value)]


def jsonable(value: object) -> object:
    """Claim values as JSON: byte strings in hex, CBOR tags as {"tag", "value"}, and anything
    else JSON has no form for (simple values, undefined, non-finite floats) as text."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {k.hex() if isinstance(k, bytes) else str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": jsonable(value.value)}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)


@click.group()
def token() -> None:
    """Decode and verify CCA attestation tokens (RMM spec A7.2.3)."""


@token.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the claims as JSON.")
def show(file: str, as_json: bool) -> None:
    """Print the claims of the CCA token in FILE as a tree.

    Accepts the RMM 1.0 tag 399 collection and the tag 907 CMW collection.
    """
    data = read_file(file, "token")
    try:
        tok = attest.decode_token(data)
    except (attest.TokenError, attest.ClaimsError) as e:
        raise click.ClickException(f"{file}: {e}") from None
    if as_json:
        out = {
            "form": tok.form,
            "platform": jsonable(tok.platform_claims),
            "realm": jsonable(tok.realm_claims),
        }
        click.echo(json.dumps(out, indent=2, allow_nan=False))
        return
    click.echo(f"CCA token ({tok.form}), {len(data)} bytes")
    for what, sign1, claims in (
        ("platform", tok.platform, tok.platform_claims),
        ("realm", tok.realm, tok.realm_claims),
    ):
        alg = ALG_NAMES.get(sign1.alg or 0, f"alg {sign1.alg}")
        click.echo(f"{what} token: COSE_Sign1 {alg}, {len(sign1.payload)}-byte claims")
        for line in render(claims, "  ", NAMES[what])[1:]:
            click.echo(line)


@token.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--cpak", required=True, help="Platform key: PEM, JWK, trust-anchor JSON or COSE_Key file."
)
@click.option(
    "--expect-rim", metavar="HEX", help="The Realm Initial Measurement the realm must have."
)
@click.option("--expect-rpv", metavar="HEX", help="The Realm Personalization Value it must have.")
@click.option(
    "--challenge",
    metavar="HEX",
    help="The challenge the token must carry (zero padded to 64 bytes).",
)
def verify(
    file: str, cpak: str, expect_rim: str | None, expect_rpv: str | None, challenge: str | None
) -> int:
    """Verify the CCA token in FILE: both signatures, the RAK binding, the claims, and any
    expected values. Prints one line per check; exits 0 only if all pass."""
    data = read_file(file, "token")
    try:
        key = attest.load_public_key(read_file(cpak, "key"))
    except attest.KeyError_ as e:
        raise click.ClickException(f"{cpak}: {e}") from None
    report = attest.verify_token(
        data,
        key,
        expect_rim=hex_option(expect_rim, "--expect-rim"),
        expect_rpv=hex_option(expect_rpv, "--expect-rpv"),
        challenge=hex_option(challenge, "--challenge"),
    )
    for line in report.lines():
        click.echo(line)
    click.echo("token verified" if report.ok else "token NOT verified")
    return 0 if report.ok else 1


@token.command()
@click.option("-o", "--output", metavar="FILE", help="Write the key here (default: stdout).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(KEY_FORMATS),
    default="pem",
    show_default=True,
    help="PEM (SubjectPublicKeyInfo), JWK or COSE_Key.",
)
def cpak(output: str | None, fmt: str) -> None:
    """Write the public CPAK of ccasim's default platform.

    The CCA platform attestation key signs the platform token of every token a realm on a
    default ``ccasim.Machine()`` gets; give this file to `ccasim token verify --cpak`. (It is
    a test key, derived from a published seed: it proves nothing about real hardware.)
    """
    key = dump_public_key(PlatformAttestation().cpak.public_key(), fmt)
    if output is not None:
        write_file(output, key, "key")
        return
    if fmt == "cose" and sys.stdout.isatty():
        raise click.ClickException("a COSE_Key is binary: write it with -o FILE")
    sys.stdout.flush()
    sys.stdout.buffer.write(key)
