"""Traces that line up with the reference RMM's logs (ccasim.trace, ``ccasim trace diff``).

The logs are those in ../shared/rmm-logs/: TF-RMM rmm-spec-v1.0-rel0's fake host (GENERATED),
an RK3588 board running a TF-RMM of the RMM 1.0 generation (OpenCCA), an FVP with v0.8.0, and
a log posted to the KVM list.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccasim.cli import main
from ccasim.rmi import FID, RecEnter
from ccasim.rmi.commands import RMI_COMMANDS
from ccasim.rmi.levels import RTT_ENTRIES, level_size
from ccasim.rmi.status import Status
from ccasim.rmi.types import ENTER_RIPAS_RESPONSE_REJECT, RecExitReason, RttEntryState
from ccasim.rmm.rsi.attestation import SIGN_STEP_TICKS
from ccasim.rsi import RSI_COMMANDS, RsiStatus
from ccasim.trace import (
    ANNOTATION,
    RELEASES,
    LogRecord,
    TraceWriter,
    first_divergence,
    format_call,
    parse_log,
    parse_record,
)
from ccasim.trace.tfrmm import Logged, fid_of
from support import Host, Puppet

LOGS = Path(__file__).resolve().parents[2] / "shared" / "rmm-logs"
GENERATED = LOGS / "GENERATED-tfrmm-v1.0-rel0-fakehost-loglevel40.txt"
GENERATED_VERBOSE = LOGS / "GENERATED-tfrmm-v1.0-rel0-fakehost-loglevel50-noaslr.txt"
BOARD = LOGS / "opencca-fosdem2026-demo.txt"
FVP_0_8 = LOGS / "arm-cca-forge-readme-fvp-tfrmm-v0.8.0.txt"
LKML = LOGS / "lkml-kvm-gshan-2024-09-09.txt"
needs_logs = pytest.mark.skipif(not LOGS.exists(), reason="../shared/rmm-logs not available")

REGISTER = st.integers(0, (1 << 64) - 1)
V1_0, V0_8 = RELEASES["tfrmm-1.0"], RELEASES["tfrmm-0.8"]


# -- the format, from the spec's command table -------------------------------------------------


def rmi_x0(status: int, index: int = 0) -> int:
    return status | index << 8


@pytest.mark.parametrize("release", [V1_0, V0_8], ids=lambda r: r.name)
@pytest.mark.parametrize("fid", sorted(RMI_COMMANDS), ids=lambda f: RMI_COMMANDS[f].name)
@given(regs=st.lists(REGISTER, min_size=17, max_size=17), index=st.integers(0, 3))
def test_rmi_lines_follow_the_handler_table(release, fid, regs, index):
    """Each RMI command prints its spec inputs (B4.3.x.1) from the release's column, then its
    outputs on success (zeros included), the index after RMI_ERROR_RTT, the outputs after
    RMI_ERROR_RTT only for the three commands that report a top; and only as its rule says."""
    command = RMI_COMMANDS[fid]
    args, outputs = tuple(regs[:5]), tuple(regs[5:9])
    n_in, n_out = len(command.inputs), len(command.outputs)
    rule = release.logged(fid)
    cases = {
        Status.SUCCESS: (0,),
        Status.ERROR_INPUT: (),
        Status.ERROR_RTT: (index,),
        Status.ERROR_REALM: (index,) if fid == FID.REC_ENTER else (),
    }
    for status, index_shown in cases.items():
        x0 = rmi_x0(status, index if index_shown else 0)
        line = format_call(release, fid, args, (x0, *outputs))
        if rule is Logged.NEVER or (rule is Logged.ON_ERROR and status == Status.SUCCESS):
            assert line is None
            assert format_call(release, fid, args, (x0, *outputs), every=True) is not None
            continue
        assert line is not None and format_call(release, fid, args, (x0, *outputs), 30) is None
        assert line.startswith(f"SMC_{command.name} ")
        if n_in:
            assert line[release.column - 1] == " " and line[release.column] != " "
        record = parse_record(line)
        assert record is not None and record.name == command.name
        assert record.args == args[:n_in]
        assert record.status == f"RMI_{status.name}"
        shown = status == Status.SUCCESS or (
            status == Status.ERROR_RTT
            and fid in (FID.DATA_DESTROY, FID.RTT_DESTROY, FID.RTT_UNMAP_UNPROTECTED)
        )
        printed_index = (index,) if status != Status.SUCCESS and index_shown else ()
        assert record.values == printed_index + (outputs[:n_out] if shown else ())


def test_rsi_names_and_counts_are_the_specs():
    """TF-RMM's RSI logger prints each command's spec inputs and outputs (B5.3.x.1), under
    the names TF-RMM gives them (ATTESTATION shortened to ATTEST)."""
    for fid, function in RSI_COMMANDS.items():
        args = tuple(range(1, len(function.inputs) + 1))
        outputs = tuple(range(0x100, 0x100 + len(function.outputs)))
        line = format_call(V1_0, fid, args, (RsiStatus.ERROR_INPUT, *outputs))
        record = parse_record(line)
        name = function.name.replace("ATTESTATION", "ATTEST")
        assert (record.name, record.args, record.status, record.values) == (
            name, args, "RSI_ERROR_INPUT", outputs
        )  # fmt: skip
        assert fid_of(f"SMC_{name}") == fid


def test_nothing_below_log_level_info():
    for level in (0, 10, 20, 30):
        assert format_call(V1_0, FID.VERSION, (0x10000,), (0, 0x10000, 0x10000), level) is None
    assert format_call(V1_0, FID.VERSION, (0x10000,), (0, 0x10000, 0x10000), 50) is not None


def test_a_realm_call_that_exits_is_printed_at_the_exit():
    """rmm-spec-v1.0-rel0 prints the registers the handler set (RSI_IPA_STATE_SET: X1 = top,
    as on the board); v0.8.0 prints no result (as on the FVP)."""
    args = (0x80000000, 0xA0000000, 1, 0)
    assert format_call(V1_0, 0xC400_0197, args, ()) == (
        "SMC_RSI_IPA_STATE_SET         80000000 a0000000 1 0 > RSI_SUCCESS a0000000 0"
    )
    assert format_call(V0_8, 0xC400_0197, args, ()) == (
        "SMC_RSI_IPA_STATE_SET             80000000 a0000000 1 0"
    )


# -- the logs ccasim reads and writes --------------------------------------------------------


def result_of(record: LogRecord) -> tuple[int, ...]:
    """X0.. as the record shows them (the inverse of the format)."""
    if not record.has_result:
        return ()
    if record.interface in ("PSCI", "SMC"):
        return record.values
    if record.interface == "RSI":
        return (RsiStatus[record.status.removeprefix("RSI_")], *record.values)
    status = Status[record.status.removeprefix("RMI_")]
    values = record.values
    index = 0
    if status == Status.ERROR_RTT or (
        status == Status.ERROR_REALM and record.command == "REC_ENTER"
    ):
        index, values = values[0], values[1:]
    return (rmi_x0(status, index), *values)


@needs_logs
@pytest.mark.parametrize(
    "log, release",
    [(GENERATED, V1_0), (GENERATED_VERBOSE, V1_0), (BOARD, V1_0), (FVP_0_8, V0_8)],
    ids=lambda v: getattr(v, "name", "")[:40],
)
def test_every_line_of_a_real_log_is_reproduced_byte_for_byte(log, release):
    """Format each SMC record of a TF-RMM log from the values it shows: the line TF-RMM
    printed comes back, byte for byte (column, names, zeros, index, order)."""
    records = list(parse_log(log.read_text().splitlines()))
    assert len(records) > 0
    for record in records:
        fid = fid_of(record.name if record.interface in ("PSCI", "SMC") else f"SMC_{record.name}")
        assert fid is not None, record.text
        line = format_call(release, fid, record.args, result_of(record), every=True)
        assert line == record.text


@needs_logs
def test_every_log_parses_and_every_record_is_found():
    """Each line holding an SMC record yields one (split lines joined, SMC_RMM_ read as
    RMI, console prefixes and timestamps skipped)."""
    for log in sorted(LOGS.glob("*.txt")):
        lines = log.read_text().splitlines()
        records = list(parse_log(lines))
        marked = [
            n for n, text in enumerate(lines, 1)
            if not text.startswith("#") and any(
                key in text for key in ("SMC_RMI_", "SMC_RSI_", "SMC_RMM_", "PSCI_8", "SMC_8")
            )
        ]  # fmt: skip
        assert [r.line for r in records] == marked, log.name
    split = list(parse_log((LOGS / "qemu-devel-rth-2025-07-13.txt").read_text().splitlines()))
    assert [(r.name, r.args, r.status) for r in split] == [
        ("RMI_REALM_ACTIVATE", (0x10045C6C000,), "RMI_SUCCESS")
    ]


# -- comparing logs ----------------------------------------------------------------------------


@st.composite
def logs(draw):
    """A log of RMI records over a few PAs, and the same calls on a host that put its
    granules elsewhere (an injective relocation of the PAs)."""
    pas = draw(st.lists(st.integers(1, 1 << 30), min_size=1, max_size=6, unique=True))
    moved = draw(
        st.lists(st.integers(1, 1 << 30), min_size=len(pas), max_size=len(pas), unique=True)
    )
    where = dict(zip([p << 12 for p in pas], [p << 12 for p in moved], strict=True))
    calls = draw(
        st.lists(
            st.tuples(
                st.sampled_from([FID.REALM_CREATE, FID.REC_CREATE, FID.DATA_DESTROY]),
                st.lists(st.sampled_from(sorted(where)), min_size=3, max_size=3),
                st.integers(0, 1 << 40),
            ),
            min_size=1,
            max_size=12,
        )
    )
    a, b = [], []
    for fid, pa, ipa in calls:
        if fid == FID.DATA_DESTROY:  # rd, then an IPA; failing, it reports no PA
            args, moved_args = (pa[0], ipa), (where[pa[0]], ipa)
            result = (rmi_x0(Status.ERROR_RTT, 3), 0, ipa)
        else:  # every argument a PA
            n = len(RMI_COMMANDS[fid].inputs)
            args, moved_args = tuple(pa[:n]), tuple(where[p] for p in pa[:n])
            result = (0,)
        a.append(format_call(V1_0, fid, args, result))
        b.append("[     rmm ] " + format_call(V0_8, fid, moved_args, result))
    return a, b


@given(logs(), st.data())
def test_logs_that_differ_only_in_pas_compare_equal_and_any_change_is_found(pair, data):
    a, b = pair
    ra, rb = list(parse_log(a)), list(parse_log(b))
    assert first_divergence(ra, rb) is None
    i = data.draw(st.integers(0, len(b) - 1))
    changed = list(b)
    changed[i] = re.sub(r"> RMI_.*$", "> RMI_ERROR_REALM", b[i])
    found = first_divergence(ra, list(parse_log(changed)))
    assert found is not None and (found.position, found.what) == (i, "status")
    shorter = first_divergence(ra, rb[:i])
    assert shorter is not None and (shorter.position, shorter.what) == (i, "missing")


# -- replaying the reference RMM's logs in ccasim ----------------------------------------------


def traced(host: Host, release: str = "tfrmm-1.0") -> list[str]:
    """The trace of ``host``'s machine from now on, as TF-RMM ``release`` prints it (the
    host keeps its own log too)."""
    lines: list[str] = []
    writer = TraceWriter(lines.append, release)
    keep = host._record
    host.m.on_rmm_log(lambda record: (keep(record), writer(record)))
    return lines


def dismantle(host: Host, rd: int, level: int, base: int, entries: int) -> None:
    """Destroy every DATA granule and RTT under the RTT at ``level`` covering ``base``,
    as a host does before RMI_REALM_DESTROY (each success unlogged by TF-RMM)."""
    for i in range(entries):
        ipa = base + i * level_size(level)
        entry = host.rmi.rtt_read_entry(rd, ipa, level).check()
        if entry.walk_level != level:
            continue
        if entry.state == RttEntryState.TABLE:
            dismantle(host, rd, level + 1, ipa, RTT_ENTRIES)
            host.rmi.rtt_destroy(rd, ipa, level + 1).check()
        elif entry.state == RttEntryState.ASSIGNED:
            host.rmi.data_destroy(rd, ipa).check()


def interrupted(record: LogRecord) -> bool:
    """A CONTINUE that met a physical interrupt while the token was signed (A7.2.2):
    RSI_INCOMPLETE with nothing copied."""
    return (
        record.command == "ATTEST_TOKEN_CONTINUE"
        and record.status == "RSI_INCOMPLETE"
        and (record.values == (0,))
    )


def replay_realm_calls(
    puppet: Puppet, records: list[LogRecord], on_rmi, interfaces: tuple[str, ...] = ("RSI",)
) -> None:
    """Have the realm make the log's calls of ``interfaces`` (RSI, PSCI, SMC) with the log's
    arguments, in order, and
    ``on_rmi`` make the host's RMI calls that come between them. A RIPAS change the realm
    asks for is rejected before its next call (the log does not say what the host did). A
    CONTINUE the log shows interrupted is: the host's timer fires while the RMM signs, and
    the host disables it before it enters the REC again."""
    pending_ripas = False
    machine = puppet.host.m
    for record in records:
        if record.interface == "RMI":
            on_rmi(record)
            continue
        if record.interface not in interfaces:
            continue
        if pending_ripas:
            puppet.finish(enter=RecEnter(flags=ENTER_RIPAS_RESPONSE_REJECT))
        if interrupted(record):
            machine.set_host_timer(machine.read_counter() + SIGN_STEP_TICKS)
        fid = fid_of(f"SMC_{record.name}") if record.interface == "RSI" else int(record.command, 16)
        exit_ = puppet.smc(fid, *record.args)
        if interrupted(record):
            assert exit_.exit_reason == RecExitReason.IRQ
            machine.set_host_timer(None)
        pending_ripas = exit_.exit_reason == RecExitReason.RIPAS_CHANGE


@needs_logs
@pytest.mark.parametrize("log", [GENERATED, GENERATED_VERBOSE], ids=["level40", "level50"])
def test_the_fake_host_run_of_rmm_spec_v1_0_rel0_replays_line_for_line(log):
    """TF-RMM's fake host (GENERATED, LOG_LEVEL 40 and 50): a realm built as it builds its
    own (the realm parameters of test_measurement's known answers, which give the RIM its
    log shows; RIPAS RAM and an unmeasured DATA granule at IPA 0x1000 for the token), run,
    attested and destroyed, prints the same lines in ccasim, PAs aside.

    Its first RSI_ATTEST_TOKEN_CONTINUE met a pending physical interrupt (A7.2.2: a REC exit
    due to IRQ, RSI_INCOMPLETE with nothing copied): the host's timer fires there in the
    replay too. One input is not ccasim's to reproduce: the fake host's platform token,
    whose length decides the last CONTINUE's output; that is the one difference."""
    reference = list(parse_log(log.read_text().splitlines()))
    host = Host()
    lines = traced(host)
    host.rmi.version(0x10000).check()
    puppet = Puppet(host, activate=False)
    realm = puppet.realm
    # the fake host's buffer for the token: RIPAS RAM, then an unmeasured DATA granule
    host.tables(realm, 0x1000)
    host.rmi.rtt_init_ripas(realm.rd, 0x1000, 0x2000).check()
    host.rmi.data_create_unknown(realm.rd, host.delegated(), 0x1000).check()
    host.rmi.realm_activate(realm.rd).check()
    replay_realm_calls(puppet, [r for r in reference if r.interface == "RSI"], None)
    dismantle(host, realm.rd, realm.level_start, 0, 1 << (48 - 39))
    host.rmi.rec_destroy(puppet.rec).check()
    host.rmi.realm_destroy(realm.rd).check()

    ours = list(parse_log(lines))
    found = first_divergence(ours, reference, ("RSI_HOST_CALL",))  # the puppet's own calls
    # ccasim's token is shorter: it ends in the chunk at 0x600, the fake host's goes on
    assert found is not None and found.what == "status"
    assert str(found.record_b) == "SMC_RSI_ATTEST_TOKEN_CONTINUE 1000 600 100 > RSI_INCOMPLETE 100"
    assert str(found.record_a).startswith(
        "SMC_RSI_ATTEST_TOKEN_CONTINUE 1000 600 100 > RSI_SUCCESS"
    )

    def without_last_chunks(records):
        return [
            r for r in records if not (r.command == "ATTEST_TOKEN_CONTINUE" and r.args[1] >= 0x600)
        ]

    ignore = ("RSI_HOST_CALL",)
    assert (
        first_divergence(without_last_chunks(ours), without_last_chunks(reference), ignore) is None
    )


@needs_logs
def test_the_fake_host_construction_replays_with_its_measurement_hashes():
    """At LOG_LEVEL_VERBOSE TF-RMM prints every hash it computes while measuring: the fake
    host's construction (its realm parameters, RTTs to level 3 at IPA 0, RIPAS RAM over
    [0x1000, 0x2000), an unmeasured DATA granule there, a REC at 0x5555555611a5) gives, in
    ccasim with hashes logged, the same SMC lines and the same four hashes, in the same
    places: the initial RIM, the RIPAS descriptor's, the REC parameters' and the REC
    descriptor's (B4.3.9.4, B4.3.18.4, B4.3.12.4)."""
    reference = list(parse_log(GENERATED_VERBOSE.read_text().splitlines(), measurements=True))
    host = Host()
    lines: list[str] = []
    writer = TraceWriter(lines.append, level=50)
    host.m.on_rmm_log(writer, hashes=writer.hashes)
    host.rmi.version(0x10000).check()
    realm = host.realm()
    host.tables(realm, 0x1000)
    host.rmi.rtt_init_ripas(realm.rd, 0x1000, 0x2000).check()
    host.rmi.data_create_unknown(realm.rd, host.delegated(), 0x1000).check()
    params = host.rec_params(realm, pc=0x5555_5556_11A5)
    host.rmi.rec_create(realm.rd, host.delegated(), host.ns_page(), params).check()
    host.rmi.realm_activate(realm.rd).check()
    ours = list(parse_log(lines, measurements=True))
    assert [r.interface for r in ours].count("MEASUREMENT") == 4
    assert first_divergence(ours, reference[: len(ours)]) is None
    assert reference[len(ours)].name == "RSI_VERSION"  # construction is all there was


#: RSI_REALM_CONFIG's buffer on the board (a DATA granule).
BOARD_REALM_CONFIG = 0x830D_A000


def revealed_rtts(records: list[LogRecord]) -> set[int]:
    """The level 3 RTTs a log's DATA_DESTROY failures reveal: a walk that stopped at level 3
    went through one."""
    return {
        r.args[1] & ~(level_size(2) - 1)
        for r in records
        if r.command == "DATA_DESTROY" and r.status == "RMI_ERROR_RTT" and r.values[0] == 3
    }


def revealed_page(record: LogRecord) -> int | None:
    """The ASSIGNED page a DATA_DESTROY failure at level 3 reveals: its X2 (top, the next
    live entry, B4.3.3.1.3) when that is inside the same level 3 RTT."""
    if record.status != "RMI_ERROR_RTT" or record.values[0] != 3:
        return None
    top = record.values[2]
    return top if top & (level_size(2) - 1) else None


@needs_logs
def test_the_board_log_replays_its_rmi_failures_and_rsi_calls():
    """The OpenCCA board (TF-RMM of the RMM 1.0 generation): a realm with the RTTs its
    DATA_DESTROY failures reveal (``revealed_rtts``: nothing else, so that the walks that
    stopped at level 2 find no RTT), whose host maps each page the log shows live by the time
    it does (``revealed_page``: the guest touched it, DATA_CREATE_UNKNOWN, unlogged), gives
    the same DATA_DESTROY failures (level, X1 = 0, X2 = the next live IPA, B4.3.3.1.3) and the
    same RSI results, line for line; with the TF-RMM profile, the same PSCI and other SMC
    results too (TF-RMM answers SMCCC_VERSION: quirk J), so every record of the log.
    On the spec profile those two records differ, and only they (B1.1, B6.3.5)."""
    reference = list(parse_log(BOARD.read_text().splitlines()))
    spec_run = replay_the_board("spec", reference)
    found = first_divergence(spec_run, reference, ("RSI_HOST_CALL",))
    assert (
        found is not None and str(found.record_b) == "PSCI_8400000a 80000000 0 0 0 0 0 0 > 0 0 0 0"
    )
    spec_run = [r for r in spec_run if r.command not in ("8400000a", "80000000")]
    board = [r for r in reference if r.command not in ("8400000a", "80000000")]
    assert first_divergence(spec_run, board, ("RSI_HOST_CALL",)) is None
    tfrmm_run = replay_the_board("tfrmm-1.0", reference)
    assert len(tfrmm_run) > 100
    assert first_divergence(tfrmm_run, reference, ("RSI_HOST_CALL",)) is None


def replay_the_board(rmm_profile: str, reference: list[LogRecord]) -> list[LogRecord]:
    """The board's realm (see above) on ``rmm_profile``, making the calls of ``reference``
    (the board's records): the records of its trace."""
    host = Host(rmm_profile=rmm_profile)
    lines = traced(host)
    puppet = Puppet(host, activate=False)
    realm = puppet.realm
    for base in sorted(revealed_rtts(reference)):
        host.tables(realm, base)
    host.data(realm, BOARD_REALM_CONFIG)
    host.rmi.realm_activate(realm.rd).check()
    built = len(list(parse_log(lines)))  # REALM_CREATE, REC_AUX_COUNT, REC_CREATE, ACTIVATE

    def host_call(record: LogRecord) -> None:
        assert record.command == "DATA_DESTROY", record.text
        page = revealed_page(record)
        if page is not None and host.rmi.rtt_read_entry(realm.rd, page, 3).state == 0:
            host.rmi.data_create_unknown(realm.rd, host.delegated(), page).check()
        host.m.smc(FID.DATA_DESTROY, realm.rd, record.args[1])

    interfaces = ("RSI", "PSCI", "SMC")
    replay_realm_calls(puppet, reference[4:], host_call, interfaces)  # after construction
    assert built == 4
    return list(parse_log(lines))


@needs_logs
def test_trace_diff_command(tmp_path, capsys):
    """``ccasim trace diff``: 0 for the same records (a board log against itself in the
    other column width), 1 at a divergence with the records around it, 2 for a missing
    file (one line, no traceback)."""
    board = BOARD.read_text().splitlines()
    wide = tmp_path / "wide.log"
    wide.write_text("\n".join(line.replace("SMC_RMI_REALM_CREATE          ",
                                           "SMC_RMI_REALM_CREATE              ")
                              for line in board))  # fmt: skip
    assert main(["trace", "diff", str(BOARD), str(wide)]) == 0
    assert "same: 123 SMC records compared" in capsys.readouterr().out
    changed = tmp_path / "changed.log"
    changed.write_text(
        "\n".join(board).replace("RMI_ERROR_RTT 2 0 9d400000", "RMI_ERROR_RTT 3 0 9d400000", 1)
    )
    assert main(["trace", "diff", "-C", "1", str(BOARD), str(changed)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == [
        "first divergence at SMC record 20: the status's index differs",
        f"  A {BOARD}:40",
        f"  B {changed}:40",
    ]
    assert " >     40 SMC_RMI_DATA_DESTROY P0 99600000 > RMI_ERROR_RTT 2 0 9d400000" in out
    assert "       41 SMC_RMI_DATA_DESTROY P0 9d400000 > RMI_ERROR_RTT 3 0 9d51d000" in out
    verbose = ["trace", "diff", "--measurements", "--ignore", "RSI_ATTEST_TOKEN_INIT"]
    assert main([*verbose, str(GENERATED_VERBOSE), str(GENERATED_VERBOSE)]) == 0
    assert "same: 22 SMC records and measurements compared" in capsys.readouterr().out
    assert main([*verbose, str(GENERATED), str(GENERATED_VERBOSE)]) == 1  # level 40: none
    assert "SMC record 2: the command differs" in capsys.readouterr().out
    assert main(["trace", "diff", str(BOARD), str(tmp_path / "none.log")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ccasim: error: cannot read") and len(err.splitlines()) == 1


def test_run_trace_formats(tmp_path):
    """``ccasim run --trace``: TF-RMM's lines at level 40 by default (no successful
    DELEGATE, DATA_CREATE or REC_ENTER), every call with ``--trace-level all``, v0.8.0's
    lines with ``--trace-format tfrmm-0.8``; ccasim's notes on lines of their own; below
    level 40 only the notes of guest programs that stopped."""
    traces = {}
    for name, options in {
        "default": [],
        "all": ["--trace-level", "all"],
        "wide": ["--trace-format", "tfrmm-0.8", "--no-trace-notes"],
        "quiet": ["--trace-level", "30"],
    }.items():
        path = tmp_path / f"{name}.log"
        run = ["run", "-q", "-m", "64M", "--json", "--challenge", "ab" * 64, "--trace", str(path)]
        assert main([*run, *options]) == 0
        traces[name] = path.read_text().splitlines()
    default, every = traces["default"], traces["all"]
    names = {r.name for r in parse_log(default)}
    assert {"RMI_REALM_CREATE", "RSI_VERSION", "RMI_DATA_DESTROY"} <= names
    assert not names & {"RMI_GRANULE_DELEGATE", "RMI_DATA_CREATE", "RMI_REC_ENTER"}
    assert {"RMI_GRANULE_DELEGATE", "RMI_DATA_CREATE", "RMI_REC_ENTER"} <= {
        r.name for r in parse_log(every)
    }
    notes = [line for line in default if not parse_record(line)]
    assert notes and all(line.startswith(ANNOTATION) for line in notes)
    assert any(line == f"{ANNOTATION}failure condition rtte_state" for line in notes)
    wide = traces["wide"]
    assert all(parse_record(line) for line in wide)
    # the same calls, but v0.8.0 prints a successful RMI_FEATURES no more
    assert first_divergence(list(parse_log(default)), list(parse_log(wide)), ("FEATURES",)) is None
    assert "RMI_FEATURES" in names and "RMI_FEATURES" not in {r.name for r in parse_log(wide)}
    assert wide[0] == "SMC_RMI_VERSION                   10000 > RMI_SUCCESS 10000 10000"
    stops = [line for line in default if re.match(f"{ANNOTATION}REC [0-9a-f]+: ", line)]
    assert stops and traces["quiet"] == stops


@needs_logs
def test_the_fvp_log_of_tfrmm_0_8_replays_line_for_line():
    """The FVP run of TF-RMM v0.8.0 (RMM 1.0; a kvmtool realm with EDK2, 512 MiB of RAM at
    0x80000000): a realm whose REALM_CONFIG buffer, at the top of that RAM, is mapped RAM,
    making the log's RSI calls and other SMCs, prints the same records in v0.8.0's format:
    the RIPAS change's REC exit without a result, IPA_STATE_GET of the EMPTY space below RAM
    answered in whole ranges, and SMCCC_VERSION answered (quirk J) on the TF-RMM profile."""
    reference = list(parse_log(FVP_0_8.read_text().splitlines()))
    assert len(reference) == 26
    tfrmm = replay_the_fvp("tfrmm-1.0", reference)
    assert len([r for r in tfrmm if r.command != "HOST_CALL"]) == 26
    assert first_divergence(tfrmm, reference, ("RSI_HOST_CALL",)) is None
    found = first_divergence(replay_the_fvp("spec", reference), reference, ("RSI_HOST_CALL",))
    assert found is not None and str(found.record_b) == "SMC_80000000 0 0 0 0 0 0 0 > 10002 0 0 0"


def replay_the_fvp(rmm_profile: str, reference: list[LogRecord]) -> list[LogRecord]:
    host = Host(rmm_profile=rmm_profile)
    lines = traced(host, "tfrmm-0.8")
    host.rmi.version(0x10000).check()
    puppet = realm_with_ram_at(host, 0x9FFF_1000)
    replay_realm_calls(puppet, reference[5:], None, ("RSI", "SMC"))
    return list(parse_log(lines))


def realm_with_ram_at(host: Host, ipa: int, recs: int = 1) -> Puppet:
    """An active puppet realm with a DATA granule of RIPAS RAM at ``ipa`` besides its own
    RAM (where a log's realm has the buffer of its RSI_REALM_CONFIG)."""
    puppet = Puppet(host, recs=recs, activate=False)
    realm = puppet.realm
    host.tables(realm, ipa)
    host.rmi.rtt_init_ripas(realm.rd, ipa, ipa + 0x1000).check()
    host.rmi.data_create_unknown(realm.rd, host.delegated(), ipa).check()
    host.rmi.realm_activate(realm.rd).check()
    return puppet


@needs_logs
def test_the_lkml_log_replays_line_for_line():
    """The log Gavin Shan posted to the KVM list (RMM 1.0, column 30): a realm with two RECs
    (one RmiRecParams page for both, the auxiliary count asked once, as KVM does), its
    REALM_CONFIG, a RIPAS change printed at the REC exit with the registers set by then
    (RSI_SUCCESS and the requested top), and an IPA_STATE_GET of EMPTY space."""
    reference = list(parse_log(LKML.read_text().splitlines()))
    assert len(reference) == 9
    host = Host()
    lines = traced(host)
    puppet = realm_with_ram_at(host, 0x82B2_B000, recs=2)
    replay_realm_calls(puppet, reference[5:], None)
    ours = list(parse_log(lines))
    assert len([r for r in ours if r.command != "HOST_CALL"]) == 9
    assert first_divergence(ours, reference, ("RSI_HOST_CALL",)) is None
