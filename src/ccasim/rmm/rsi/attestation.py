"""RSI_ATTESTATION_TOKEN_INIT and RSI_ATTESTATION_TOKEN_CONTINUE (B5.3.2, B5.3.1; A7.2.2).

Signing a token is long (A7.2.2): the RMM signs it in steps during the first CONTINUEs and,
between steps, looks for a pending physical interrupt. If there is one the call returns
RSI_INCOMPLETE having copied nothing and the REC exits due to IRQ (D1.7.2); the realm calls
CONTINUE again once it runs. The model computes the token at INIT (its contents are fixed
then: the challenge, the measurements) and spends the signing's time in CONTINUE, a step
at a time, as the reference RMM's restartable ECDSA signing does.
"""

from __future__ import annotations

import struct

from ccasim.arch.registers import MASK64
from ccasim.arch.vmsa import GRANULE_MASK, GRANULE_SIZE
from ccasim.rmi.types import RecExitReason
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.exits import CompletedThenExit, RecExitInfo
from ccasim.rmm.realm_call import RealmCall
from ccasim.rmm.rsi.realm_memory import access_granule
from ccasim.rmm.token import cca_token
from ccasim.rsi import RsiStatus

#: Steps of signing a realm token, and the system counter ticks of each (250 us at the
#: model's 100 MHz counter: an ECDSA P-384 signature in about 2 ms, a software signer's
#: order of magnitude; the figures are the model's, not measured on hardware).
SIGN_STEPS = 8
SIGN_STEP_TICKS = 25_000


def attestation_token_init(call: RealmCall, *challenge: int) -> tuple[int, ...]:
    """B5.3.2: start a token for the 64-byte challenge in X1..X8; X1 = an upper bound on the
    token's size. Any operation already in progress on this REC is abandoned."""
    rec = call.rec
    rec.attest_challenge = struct.pack("<8Q", *challenge)
    rec.attest_in_progress = True
    rec.attest_token = cca_token(call.realm, rec.attest_challenge, call.rmm.monitor.attestation)
    rec.attest_offset = 0
    rec.attest_sign_steps = SIGN_STEPS
    upper_bound = (len(rec.attest_token) + GRANULE_SIZE - 1) & ~GRANULE_MASK
    return (RsiStatus.SUCCESS, upper_bound)


def attestation_token_continue(
    call: RealmCall, addr: int, offset: int, size: int
) -> tuple[int, ...]:
    """B5.3.1: copy the next part of the token (at most ``size`` bytes) to ``addr + offset``.

    Returns RSI_INCOMPLETE while more of the token remains, RSI_SUCCESS with the last part.
    While the token is being signed, a pending physical interrupt makes it RSI_INCOMPLETE with
    nothing copied and a REC exit due to IRQ (A7.2.2), before the buffer is looked at.
    """
    rec = call.rec
    if addr & GRANULE_MASK:
        raise CommandFailure("addr_align", RsiStatus.ERROR_INPUT)
    if not call.realm.is_protected(addr):
        raise CommandFailure("addr_bound", RsiStatus.ERROR_INPUT)
    if offset >= GRANULE_SIZE:
        raise CommandFailure("offset_bound", RsiStatus.ERROR_INPUT)
    if (offset + size) & MASK64 < offset:
        raise CommandFailure("size_overflow", RsiStatus.ERROR_INPUT)
    if offset + size > GRANULE_SIZE:
        raise CommandFailure("size_bound", RsiStatus.ERROR_INPUT)
    if not rec.attest_in_progress:
        raise CommandFailure("state", RsiStatus.ERROR_STATE)
    pe = call.rmm.pe
    while rec.attest_sign_steps:
        pe.spend(SIGN_STEP_TICKS)
        rec.attest_sign_steps -= 1
        if pe.physical_interrupt_pending(rec.vcpu):
            raise CompletedThenExit(RecExitInfo(RecExitReason.IRQ), (RsiStatus.INCOMPLETE, 0))
    pa = access_granule(call, addr)
    chunk = rec.attest_token[rec.attest_offset : rec.attest_offset + size]
    call.rmm.mem.memory.write(pa + offset, chunk)
    rec.attest_offset += len(chunk)
    if rec.attest_offset < len(rec.attest_token):
        return (RsiStatus.INCOMPLETE, len(chunk))
    rec.attest_in_progress = False
    rec.attest_token = b""
    return (RsiStatus.SUCCESS, len(chunk))
