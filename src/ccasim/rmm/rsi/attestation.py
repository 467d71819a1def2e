"""RSI_ATTESTATION_TOKEN_INIT and RSI_ATTESTATION_TOKEN_CONTINUE (B5.3.2, B5.3.1; A7.2.2)."""

from __future__ import annotations

import struct

from ccasim.arch.registers import MASK64
from ccasim.arch.vmsa import GRANULE_MASK, GRANULE_SIZE
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.realm_call import RealmCall
from ccasim.rmm.rsi.realm_memory import access_granule
from ccasim.rmm.token import cca_token
from ccasim.rsi import RsiStatus


def attestation_token_init(call: RealmCall, *challenge: int) -> tuple[int, ...]:
    """B5.3.2: start a token for the 64-byte challenge in X1..X8; X1 = an upper bound on the
    token's size. Any operation already in progress on this REC is abandoned."""
    rec = call.rec
    rec.attest_challenge = struct.pack("<8Q", *challenge)
    rec.attest_in_progress = True
    rec.attest_token = cca_token(call.realm, rec.attest_challenge, call.rmm.monitor.attestation)
    rec.attest_offset = 0
    upper_bound = (len(rec.attest_token) + GRANULE_SIZE - 1) & ~GRANULE_MASK
    return (RsiStatus.SUCCESS, upper_bound)


def attestation_token_continue(
    call: RealmCall, addr: int, offset: int, size: int
) -> tuple[int, ...]:
    """B5.3.1: copy the next part of the token (at most ``size`` bytes) to ``addr + offset``.

    Returns RSI_INCOMPLETE while more of the token remains, RSI_SUCCESS with the last part.
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
    pa = access_granule(call, addr)
    chunk = rec.attest_token[rec.attest_offset : rec.attest_offset + size]
    call.rmm.mem.memory.write(pa + offset, chunk)
    rec.attest_offset += len(chunk)
    if rec.attest_offset < len(rec.attest_token):
        return (RsiStatus.INCOMPLETE, len(chunk))
    rec.attest_in_progress = False
    rec.attest_token = b""
    return (RsiStatus.SUCCESS, len(chunk))
