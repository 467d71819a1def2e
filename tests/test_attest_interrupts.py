"""A physical interrupt while the RMM signs a realm token (A7.2.2, D1.7.2).

Generating a token is long; if a physical interrupt becomes pending meanwhile, the REC exits
due to IRQ and, when it runs again, RSI_ATTESTATION_TOKEN_CONTINUE returns RSI_INCOMPLETE
with nothing copied; the realm calls it again and gets the same token. The interrupts here
are the host's EL2 timer (``Machine.set_host_timer``) and the realm's own virtual timer.
"""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ccasim
from ccasim import cose, guest
from ccasim.arch.timer import CNT_CTL_ISTATUS
from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.guest import rsi
from ccasim.rmi import RecExitReason
from ccasim.rmm.rsi.attestation import SIGN_STEP_TICKS, SIGN_STEPS
from ccasim.rsi import RsiFid, RsiStatus
from ccasim.trace import TraceWriter
from support import RAM_BASE, Host, Puppet

BUFFER = RAM_BASE + 0xC000  # a RAM granule of the puppet's realm that it does not use
SIGNING = SIGN_STEPS * SIGN_STEP_TICKS
CHALLENGE = [0x5A] * 8
SEEN: dict[str, object] = {}


def init(puppet: Puppet) -> bytes:
    """RSI_ATTESTATION_TOKEN_INIT; the token the RMM then holds for the REC (a debug view)."""
    exit_ = puppet.smc(RsiFid.ATTESTATION_TOKEN_INIT, *CHALLENGE)
    assert exit_.exit_reason == RecExitReason.HOST_CALL and exit_.gprs[0] == RsiStatus.SUCCESS
    return puppet.host.m.debug_state().rmm.recs[puppet.rec].attest_token


def buffer_contents(puppet: Puppet) -> bytes:
    """The token buffer's granule, through the realm's RTT (debug view)."""
    host = puppet.host
    desc = host.rmi.rtt_read_entry(puppet.rd, BUFFER, 3).check().desc
    return host.m.debug_read(desc, GRANULE_SIZE)


def collect(puppet: Puppet, on_irq=None) -> tuple[bytes, list[tuple[int, int]]]:
    """Run the spec's CONTINUE loop (A7.2.2) from the host's side, one 256-byte chunk a call
    into BUFFER; ``on_irq`` is called at each REC exit due to IRQ before the REC is entered
    again. Returns the token and every (X0, X1) the realm saw."""
    token, results = b"", []
    while True:
        offset = 0
        while True:
            exit_ = puppet.smc(RsiFid.ATTESTATION_TOKEN_CONTINUE, BUFFER, offset, 0x100)
            while exit_.exit_reason == RecExitReason.IRQ:
                if on_irq is not None:
                    on_irq(exit_)
                exit_ = puppet.finish()
            assert exit_.exit_reason == RecExitReason.HOST_CALL, exit_
            x0, x1 = exit_.gprs[0], exit_.gprs[1]
            results.append((x0, x1))
            assert x0 in (RsiStatus.SUCCESS, RsiStatus.INCOMPLETE), results
            offset += x1
            if x0 == RsiStatus.SUCCESS or offset >= GRANULE_SIZE:
                break
        token += buffer_contents(puppet)[:offset]
        if x0 == RsiStatus.SUCCESS:
            return token, results


def test_a_host_interrupt_while_signing_returns_incomplete_with_nothing_copied():
    """D1.7.2: the REC exits due to IRQ; on the next entry CONTINUE returns RSI_INCOMPLETE
    and X1 (bytes copied) 0; the buffer is untouched; the next call goes on, and the realm
    gets the whole token all the same."""
    host = Host()
    puppet = Puppet(host)
    token = init(puppet)
    before = buffer_contents(puppet)
    host.m.set_host_timer(host.m.read_counter() + SIGN_STEP_TICKS)  # during the signing
    exit_ = puppet.smc(RsiFid.ATTESTATION_TOKEN_CONTINUE, BUFFER, 0, 0x100)
    assert exit_.exit_reason == RecExitReason.IRQ
    assert buffer_contents(puppet) == before
    host.m.set_host_timer(None)  # the host's handler
    back = puppet.finish()
    assert back.exit_reason == RecExitReason.HOST_CALL
    assert (back.gprs[0], back.gprs[1]) == (RsiStatus.INCOMPLETE, 0)
    collected, results = collect(puppet)
    assert collected == token and results[0] == (RsiStatus.INCOMPLETE, 0x100)


def test_the_interrupted_call_is_logged_with_its_result_and_the_exit():
    """The RMM's log shows the call as the realm sees it (RSI_INCOMPLETE 0, as TF-RMM prints
    it) and the REC exit that came with it."""
    host = Host()
    puppet = Puppet(host)
    init(puppet)
    host.m.set_host_timer(host.m.read_counter() + SIGN_STEP_TICKS)
    exit_ = puppet.smc(RsiFid.ATTESTATION_TOKEN_CONTINUE, BUFFER, 0, 0x100)
    assert exit_.exit_reason == RecExitReason.IRQ
    last = [c for c in host.smc_log if c.fid == RsiFid.ATTESTATION_TOKEN_CONTINUE][-1]
    assert last.result == (RsiStatus.INCOMPLETE, 0) and last.note == "REC exit IRQ"


@settings(max_examples=25, deadline=None)
@given(delay=st.integers(0, SIGNING + 2 * SIGN_STEP_TICKS))
def test_whenever_the_host_timer_fires_the_realm_gets_the_same_token(delay):
    """Whether the host's timer fires before the call, during the signing or after it, the
    realm gets the token INIT made, with one REC exit due to IRQ if the timer expired while
    the REC ran, and one RSI_INCOMPLETE with nothing copied if that was during the signing."""
    host = Host()
    puppet = Puppet(host)
    token = init(puppet)
    start = host.m.read_counter()
    host.m.set_host_timer(start + delay)
    irqs: list[int] = []

    def on_irq(exit_):
        irqs.append(host.m.read_counter())
        host.m.set_host_timer(None)

    collected, results = collect(puppet, on_irq)
    assert collected == token
    end_of_signing = start + SIGNING  # at least: the calls themselves take time too
    if not irqs and start + delay <= host.m.read_counter():
        # it expired with the realm's last action (its host call): the next entry takes it
        assert puppet.finish().exit_reason == RecExitReason.IRQ
        on_irq(None)
    assert len(irqs) == (1 if start + delay <= host.m.read_counter() else 0)
    interrupted_signing = results.count((RsiStatus.INCOMPLETE, 0))
    assert interrupted_signing <= 1
    if interrupted_signing:
        assert start + delay <= irqs[0] and irqs[0] >= start + SIGN_STEP_TICKS
    if delay > end_of_signing + SIGN_STEP_TICKS:
        assert not interrupted_signing


def test_init_during_an_interrupted_signing_starts_it_again():
    """B5.3.2: INIT abandons the operation in progress: the new token is signed from its
    first step (the whole signing time again) and carries the new challenge's claims."""
    host = Host()
    puppet = Puppet(host)
    init(puppet)
    host.m.set_host_timer(host.m.read_counter() + SIGN_STEP_TICKS)
    assert puppet.smc(RsiFid.ATTESTATION_TOKEN_CONTINUE, BUFFER, 0, 0x100).exit_reason == (
        RecExitReason.IRQ
    )
    host.m.set_host_timer(None)
    assert puppet.finish().gprs[:2] == [RsiStatus.INCOMPLETE, 0]
    token = init(puppet)
    start = host.m.read_counter()
    exit_ = puppet.smc(RsiFid.ATTESTATION_TOKEN_CONTINUE, BUFFER, 0, 0x100)
    assert exit_.gprs[0] == RsiStatus.INCOMPLETE and exit_.gprs[1] == 0x100
    assert host.m.read_counter() - start >= SIGNING
    assert buffer_contents(puppet)[:0x100] == token[:0x100]


def test_the_host_timer_interrupts_a_running_realm_too():
    """A4.3.5: a physical interrupt pending while the realm runs is a REC exit due to IRQ;
    pending at entry, the realm makes no progress at all until the host clears it."""
    host = Host()
    puppet = Puppet(host)
    puppet.finish()  # at its host call
    host.m.set_host_timer(host.m.read_counter())
    for _ in range(3):
        assert puppet.finish().exit_reason == RecExitReason.IRQ
    host.m.set_host_timer(None)
    exit_ = puppet.smc(RsiFid.VERSION, 0x10000)
    assert exit_.exit_reason == RecExitReason.HOST_CALL and exit_.gprs[0] == RsiStatus.SUCCESS


@guest.program("t.attest-own-timer")
def attest_with_own_timer(cpu, tag=""):
    """Arm the virtual timer to expire in the middle of the signing, then get a token."""
    now = yield guest.ReadCounter()
    yield guest.SetTimer(now + 3 * SIGN_STEP_TICKS, enable=True, mask=False)
    SEEN[tag] = yield from rsi.attestation_token(bytes(64), BUFFER)
    yield from rsi.host_call(RAM_BASE + 0x9000, 0)


def test_the_realms_own_timer_interrupts_the_signing():
    """The realm's EL1 virtual timer is a physical interrupt at R-EL2 too: the REC exits due
    to IRQ with the timer's state (ISTATUS) in the exit, and the realm's token loop carries
    on past the RSI_INCOMPLETE with nothing copied."""
    host = Host()
    launched = host.launch("t.attest-own-timer", tag="own-timer")
    exits = []
    while True:
        exit_ = host.enter(launched.recs[0], launched.run)
        exits.append(exit_)
        if exit_.exit_reason == RecExitReason.HOST_CALL:
            break
        assert exit_.exit_reason == RecExitReason.IRQ, exit_
    assert [e.exit_reason for e in exits] == [RecExitReason.IRQ, RecExitReason.HOST_CALL]
    assert exits[0].cntv_ctl & CNT_CTL_ISTATUS
    continues = [c.result for c in host.smc_log if c.fid == RsiFid.ATTESTATION_TOKEN_CONTINUE]
    assert continues[0] == (RsiStatus.INCOMPLETE, 0)
    outer = cbor2.loads(SEEN["own-timer"])
    protected, _, payload, signature = cbor2.loads(outer.value[44241]).value
    assert cose.verify1(protected, payload, signature, host.m.attestation.rak.public_key())


def test_the_interrupted_call_in_tfrmm_traces():
    """TF-RMM prints a realm call that exits at the exit: rmm-spec-v1.0-rel0 with the
    registers set by then (the fake host's ``RSI_INCOMPLETE 0``), v0.8.0 onwards without a
    result (``SMC_RSI_ATTEST_TOKEN_CONTINUE 1000 0 100``, as the later fake host's log)."""
    host = Host()
    v1_0, v0_8 = [], []
    keep = host._record
    writers = TraceWriter(v1_0.append, "tfrmm-1.0"), TraceWriter(v0_8.append, "tfrmm-0.8")
    host.m.on_rmm_log(lambda r: (keep(r), *(w(r) for w in writers)))
    puppet = Puppet(host)
    init(puppet)
    host.m.set_host_timer(host.m.read_counter() + SIGN_STEP_TICKS)
    puppet.smc(RsiFid.ATTESTATION_TOKEN_CONTINUE, 0x1000, 0, 0x100)  # the log's arguments
    assert v1_0[-2:] == [
        "SMC_RSI_ATTEST_TOKEN_CONTINUE 1000 0 100 > RSI_INCOMPLETE 0\n",
        "ccasim: REC exit IRQ\n",
    ]
    assert v0_8[-2:] == ["SMC_RSI_ATTEST_TOKEN_CONTINUE     1000 0 100\n", "ccasim: REC exit IRQ\n"]


def test_the_host_timer_takes_a_64_bit_value():
    machine = ccasim.Machine()
    for bad, error in (
        (-1, ValueError),
        (1 << 64, ValueError),
        (1.5, TypeError),
        (True, TypeError),
    ):
        with pytest.raises(error):
            machine.set_host_timer(bad)
    machine.set_host_timer((1 << 64) - 1)
    machine.set_host_timer(None)
