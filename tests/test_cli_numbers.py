"""How ccasim's own options read numbers: decimal, 0x-hex in either case, and K/M/G/T sizes
where sizes make sense, never confusing a suffix with a hex digit (ccasim.cli.numbers)."""

from __future__ import annotations

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccasim.cli import cli, main
from ccasim.cli.numbers import SUFFIXES, Number, parse_number

MAX64 = (1 << 64) - 1
values = st.one_of(st.integers(0, MAX64), st.integers(0, 1 << 20), st.sampled_from([0, MAX64]))


def spellings(value: int) -> list[str]:
    """Every way a user may write ``value`` for an option that takes a number."""
    hexits = f"{value:x}"
    grouped = "_".join(hexits[max(0, i - 4) : i] for i in range(len(hexits), 0, -4)[::-1])
    return [str(value), f"0x{value:x}", f"0X{value:X}", f"0x{value:X}", f"0x{grouped}"]


def size_spellings(value: int) -> list[str]:
    """The size forms of ``value``: each suffix that divides it, in several cases."""
    out = []
    for letter, unit in SUFFIXES.items():
        if value % unit == 0:
            n = value // unit
            out += [f"{n}{letter}", f"{n}{letter.lower()}iB", f"{n}{letter}B", f"0x{n:X}{letter}"]
    return out


@given(value=values)
def test_every_spelling_of_a_number_reads_back(value):
    for text in spellings(value):
        assert parse_number(text) == value, text
        assert parse_number(text, suffixes=True) == value, text


@given(value=values, shift=st.sampled_from([10, 20, 30, 40]))
def test_sizes_read_back_and_hex_digits_are_not_suffixes(value, shift):
    size = (value >> shift) << shift  # a multiple of the unit
    for text in size_spellings(size):
        assert parse_number(text, suffixes=True) == size, text
        with pytest.raises(ValueError, match="not a decimal or 0x-hex number"):
            parse_number(text)  # a register value takes no suffix
    # A hex number ending in B (or any letter a-f) is a number, never "bytes".
    assert parse_number(f"0x{value:x}B", suffixes=True) == value * 16 + 0xB


@pytest.mark.parametrize(
    "text, message",
    [("-1", "is negative"), ("", "is not"), ("0x", "is not"), ("12Q", "is not"),
     ("1_", "is not"), ("0x_1", "is not"), ("1.5G", "is not"), ("G", "is not"),
     ("0xfffffffffffffffff", None)],
)  # fmt: skip
def test_what_is_not_a_number(text, message):
    if message is None:  # parses; too large for a register is the option type's business
        assert parse_number(text) == (1 << 68) - 1
        return
    with pytest.raises(ValueError, match=message):
        parse_number(text, suffixes=True)


def _options(command: click.Command, path: str = "ccasim"):
    for param in command.params:
        if isinstance(param, click.Option):
            yield f"{path} {param.opts[-1]}", param
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options(sub, f"{path} {name}")


def test_every_numeric_option_reads_numbers_one_way():
    """No option of any command parses numbers with click's int (decimal only) or float."""
    numeric = {name: p for name, p in _options(cli) if isinstance(p.type, Number)}
    assert {"ccasim measure --rmi-features", "ccasim measure custom --pc"} <= set(numeric)
    for name, param in _options(cli):
        assert not isinstance(param.type, click.types.IntParamType | click.types.FloatParamType), (
            name
        )


def measure_custom(*extra: str) -> tuple[int, str]:
    caps = ["--ipa-bits", "48", "--num-bps", "2", "--num-wps", "2", "--sve-vl", "0",
            "--pmu", "false", "--hash-algo", "sha256"]  # fmt: skip
    return main(["measure", "-v", *caps, "custom", *extra])


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pc=st.integers(0, MAX64), x0=st.integers(0, MAX64), form=st.integers(0, 4))
def test_register_options_read_every_spelling_through_the_cli(capsys, pc, x0, form):
    """--pc and --x0 as the REC_CREATE step shows them (the README's 0x8000AFFF case)."""
    status = measure_custom("--pc", spellings(pc)[form], "--x0", spellings(x0)[form])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert f"REC_CREATE pc={pc:#x} x0={x0:#x}" in out


def test_rmi_features_in_hex_as_an_rmm_log_prints_it(capsys):
    """X1 of RMI_FEATURES as an RMM log shows it: hex that may end in a letter."""
    argv = ["measure", "--rmi-features", "0x3A0C0E230", "--hash-algo", "sha256", "custom"]
    assert main(argv) == 0, capsys.readouterr().err
    assert main([*argv[:2], "0X3a0c0e230", *argv[3:]]) == 0
    assert main([*argv[:2], "1K", *argv[3:]]) == 2
    assert "'1K' is not a decimal or 0x-hex number" in capsys.readouterr().err


def test_counts_take_hex_and_keep_their_ranges(capsys):
    assert measure_custom("--pc", "0x8000AFFF") == 0
    capsys.readouterr()
    assert main(["measure", "--num-bps", "0x10", "--num-wps", "0x40", "custom"]) == 1
    err = capsys.readouterr().err  # valid counts; what is missing is the rest
    assert "num_bps" not in err and "ipa_bits" in err
    assert main(["measure", "--num-bps", "0x41", "custom"]) == 1
    assert "num_bps=65 is outside 2..64" in capsys.readouterr().err


def test_a_register_too_large_is_named(capsys):
    assert measure_custom("--x0", "0x1" + "0" * 16) == 2
    assert "does not fit in 64 bits" in capsys.readouterr().err
