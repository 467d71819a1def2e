"""The declarative command tables of the ABI (ccasim.rmi.commands, ccasim.rsi) against the
spec's Interface sections, and the RMM's handler tables against them."""

from __future__ import annotations

import inspect

import pytest

from ccasim.rmi import FID
from ccasim.rmi.commands import RMI_COMMANDS
from ccasim.rmm.rmi import HANDLERS as RMI_HANDLERS
from ccasim.rmm.rsi import HANDLERS as RSI_HANDLERS
from ccasim.rsi import RSI_COMMANDS, RsiFid
from spec import SPEC, interfaces

needs_spec = pytest.mark.skipif(not SPEC.is_dir(), reason=f"no spec at {SPEC}")


@needs_spec
@pytest.mark.parametrize("table", [RMI_COMMANDS, RSI_COMMANDS], ids=["RMI", "RSI"])
def test_each_command_has_the_registers_the_spec_declares(table):
    spec = interfaces()
    for function in table.values():
        assert (function.inputs, function.outputs) == spec[function.name], function.name


def test_every_fid_is_declared_once_and_named_after_it():
    assert set(RMI_COMMANDS) == set(FID) and set(RSI_COMMANDS) == set(RsiFid)
    for fid, function in RMI_COMMANDS.items():
        assert function.name == f"RMI_{FID(fid).name}"
    for fid, function in RSI_COMMANDS.items():
        assert function.name == f"RSI_{RsiFid(fid).name}"


@pytest.mark.parametrize(
    "handlers, table, context",
    [(RMI_HANDLERS, RMI_COMMANDS, ["rmm"]), (RSI_HANDLERS, RSI_COMMANDS, ["call"])],
    ids=["RMI", "RSI"],
)
def test_every_command_has_exactly_one_handler_taking_its_inputs(handlers, table, context):
    """As TF-RMM's handler table asserts: one handler per FID, with the declared arity."""
    assert set(handlers) == set(table)
    for fid, handler in handlers.items():
        params = list(inspect.signature(handler).parameters.values())
        assert [p.name for p in params[: len(context)]] == context
        rest = params[len(context) :]
        if rest and rest[-1].kind is inspect.Parameter.VAR_POSITIONAL:
            continue  # X1..X8 or X3..X10 taken as one group
        assert [p.name for p in rest] == list(table[fid].inputs), table[fid].name


def test_results_name_their_outputs():
    """B4.3.x.1.3 names: a host reads ``.aux_count``, ``.walk_level``, ``.out_top``..."""
    from support import Host

    host = Host()
    realm = host.realm()
    assert host.rmi.rec_aux_count(realm.rd).check().aux_count == 16
    entry = host.rmi.rtt_read_entry(realm.rd, 0, 0).check()
    assert entry.outputs == {"walk_level": 0, "state": 0, "desc": 0, "ripas": 0}
    assert (entry.walk_level, entry.regs) == (0, (0, 0, 0, 0, 0))
    version = host.rmi.version(0x20000)
    assert not version.ok and (version.lower, version.higher) == (0x10000, 0x10000)
    with pytest.raises(AttributeError, match="RMI_RTT_READ_ENTRY has no output 'top'"):
        _ = entry.top
    unknown = host.rmi.call(0xC400_018F)
    assert unknown.not_supported and unknown.outputs == {} and unknown.command == "FID 0xc400018f"
