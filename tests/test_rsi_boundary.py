"""The realm's SMC boundary (B5, B6): any FID and register values from a realm give a return
code, and a call that fails changes nothing but the vCPU's registers.

A guest program makes random SMCs (RSI and PSCI FIDs, allocated or not, and arbitrary ones),
each followed by an RSI_HOST_CALL that exits to the host as a synchronisation point, where the
test snapshots the machine. The host answers the exits a call may cause (RIPAS change, PSCI)
at random.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccasim import guest
from ccasim.rmi import RecEnter, RecExitReason
from ccasim.rmi.types import ENTER_RIPAS_RESPONSE_REJECT
from ccasim.rsi import RsiFid
from support import RAM_BASE, Host, diff, snapshot

CALLS: dict[str, list[tuple[int, ...]]] = {}
RESULTS: dict[str, list[object]] = {}
SYNC = RAM_BASE + 0x8000  # the RsiHostCall structure of the synchronising host calls
HOST_CALL_EXITS = 50

fids = st.one_of(
    st.integers(0xC400_0190, 0xC400_01AF),  # the RSI range, allocated or not
    st.integers(0, 0x1F).map(lambda n: 0x8400_0000 + n),  # PSCI, SMC32
    st.integers(0, 0x1F).map(lambda n: 0xC400_0000 + n),  # PSCI, SMC64
    st.integers(0, 2**32 - 1),
)
values = st.one_of(
    st.sampled_from([0, 1, 2, 3, 32, 64, 512, 0x1000]),
    st.builds(lambda p, o: RAM_BASE + p * 0x1000 + o, st.integers(0, 31), st.sampled_from([0, 8])),
    st.integers(0, 15).map(lambda p: (1 << 47) + p * 0x1000),  # Unprotected IPAs
    st.integers(0, 2**64 - 1),
)
calls = st.lists(st.tuples(fids, st.lists(values, max_size=6)), min_size=1, max_size=5)


@guest.program("t.random-smcs")
def random_smcs(cpu, tag):
    out = RESULTS.setdefault(tag, [])
    for fid, args in CALLS[tag]:
        try:
            out.append((yield guest.Smc(fid, *args)))
        except (guest.SynchronousExternalAbort, guest.UndefinedInstruction) as e:
            out.append(e)
        yield guest.Smc(RsiFid.HOST_CALL, SYNC)


def outside_the_vcpu(changed: set) -> set:
    return {k for k in changed if not (k[0] == "rec" and k[2] == "vcpu")}


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(sequence=calls, answers=st.lists(st.booleans(), min_size=HOST_CALL_EXITS))
def test_failed_realm_calls_change_nothing(sequence, answers):
    tag = f"boundary-{id(sequence)}"
    CALLS[tag] = sequence
    host = Host()
    launched = host.launch("t.random-smcs", recs=2, ram_pages=32, tag=tag)
    rec, run = launched.recs[0], launched.run
    before, seen = None, 0
    enter = RecEnter()
    for answer in answers:
        result = host.rmi.rec_enter(rec, run, enter)
        if not result.ok:  # the realm turned itself off, or this vCPU
            assert str(result) in (
                "RMI_REC_ENTER -> RMI_ERROR_REALM 1",
                "RMI_REC_ENTER -> RMI_ERROR_REC",
            )
            break
        exit_ = host.rmi.rec_exit(run)
        enter = RecEnter()
        if exit_.exit_reason == RecExitReason.HOST_CALL:
            now, results = snapshot(host.m), RESULTS.get(tag, [])
            if before is not None and len(results) == seen + 1:
                last = results[-1]
                if not isinstance(last, tuple) or last[0] != 0:
                    changed = outside_the_vcpu(diff(before, now))
                    assert not changed, (hex(sequence[seen][0]), sorted(map(str, changed))[:4])
            before, seen = now, len(results)
        elif exit_.exit_reason == RecExitReason.RIPAS_CHANGE and not answer:
            enter = RecEnter(flags=ENTER_RIPAS_RESPONSE_REJECT)
        elif exit_.exit_reason == RecExitReason.PSCI:
            target = launched.recs[exit_.gprs[1] & 1] if answer else rec
            host.rmi.psci_complete(rec, target, 0)  # may fail: the host can be wrong too
    del CALLS[tag]
    RESULTS.pop(tag, None)
