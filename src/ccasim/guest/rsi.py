"""RSI and PSCI calls for guest programs, as a realm kernel wraps them (``yield from``)::

@guest.program("attest")
def attest(cpu):
    token = yield from rsi.attestation_token(b"challenge", buffer=0x8010_0000)
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from typing import Any

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.isa import Load, Smc, Store
from ccasim.psci import PsciFid
from ccasim.rsi import HostCall, RsiFid, RsiRipas, RsiStatus

Call = Generator[Any, Any, Any]


class RsiError(RuntimeError):
    """An RSI command returned an error status."""

    def __init__(self, command: str, status: int) -> None:
        name = RsiStatus(status).name if status in RsiStatus._value2member_map_ else hex(status)
        super().__init__(f"{command} failed: {name}")
        self.status = status


def call(fid: int, *args: int) -> Call:
    """An RSI or PSCI SMC; evaluates to X0..X10."""
    return (yield Smc(fid, *args))


def version(requested: int = 0x1_0000) -> Call:
    """RSI_VERSION: (status, lower, higher)."""
    regs = yield Smc(RsiFid.VERSION, requested)
    return regs[0], regs[1], regs[2]


def measurement_read(index: int) -> Call:
    """RSI_MEASUREMENT_READ: the 64-byte measurement (zero padded); ``index`` 0 is the RIM,
    1..4 are REM0..REM3."""
    regs = yield Smc(RsiFid.MEASUREMENT_READ, index)
    if regs[0]:
        raise RsiError("RSI_MEASUREMENT_READ", regs[0])
    return struct.pack("<8Q", *regs[1:9])


def measurement_extend(index: int, value: bytes) -> Call:
    """RSI_MEASUREMENT_EXTEND with up to 64 bytes: ``index`` 1..4 extends REM0..REM3."""
    words = struct.unpack("<8Q", value.ljust(64, b"\0"))
    regs = yield Smc(RsiFid.MEASUREMENT_EXTEND, index, len(value), *words)
    if regs[0]:
        raise RsiError("RSI_MEASUREMENT_EXTEND", regs[0])


def realm_config(buffer: int) -> Call:
    """RSI_REALM_CONFIG into the granule at ``buffer``: (ipa_width, hash_algo, rpv)."""
    regs = yield Smc(RsiFid.REALM_CONFIG, buffer)
    if regs[0]:
        raise RsiError("RSI_REALM_CONFIG", regs[0])
    data = yield Load(buffer, GRANULE_SIZE)
    ipa_width, hash_algo = struct.unpack_from("<QB", data, 0)
    return ipa_width, hash_algo, data[0x200:0x240]


def ipa_state_get(base: int, top: int) -> Call:
    """RSI_IPA_STATE_GET: (out_top, ripas)."""
    regs = yield Smc(RsiFid.IPA_STATE_GET, base, top)
    if regs[0]:
        raise RsiError("RSI_IPA_STATE_GET", regs[0])
    return regs[1], RsiRipas(regs[2])


def ipa_state_set(base: int, top: int, ripas: int, flags: int = 0) -> Call:
    """RSI_IPA_STATE_SET until the whole range is done or the host rejects it (A5.4).

    Evaluates to (new_base, rejected).
    """
    while True:
        regs = yield Smc(RsiFid.IPA_STATE_SET, base, top, ripas, flags)
        if regs[0]:
            raise RsiError("RSI_IPA_STATE_SET", regs[0])
        base, rejected = regs[1], bool(regs[2])
        if rejected or base >= top:
            return base, rejected


def host_call(addr: int, imm: int, *gprs: int) -> Call:
    """RSI_HOST_CALL with the RsiHostCall at ``addr`` (256-byte aligned); evaluates to the
    X0..X30 the host returned."""
    data = HostCall(imm, list(gprs) + [0] * (31 - len(gprs)))
    page = addr & ~(GRANULE_SIZE - 1)
    current = yield Load(page, GRANULE_SIZE)
    offset = addr - page
    yield Store(page, current[:offset] + data.pack() + current[offset + HostCall.SIZE :])
    regs = yield Smc(RsiFid.HOST_CALL, addr)
    if regs[0]:
        raise RsiError("RSI_HOST_CALL", regs[0])
    result = yield Load(page, GRANULE_SIZE)
    return HostCall.unpack(result[offset : offset + HostCall.SIZE]).gprs


def attestation_token(challenge: bytes, buffer: int, max_size: int = 0x10000) -> Call:
    """RSI_ATTESTATION_TOKEN_INIT, then _CONTINUE granule by granule (A7.2.2, the loop of the
    spec's pseudocode). ``buffer`` is the IPA of enough RAM granules for the token."""
    words = struct.unpack("<8Q", challenge.ljust(64, b"\0")[:64])
    regs = yield Smc(RsiFid.ATTESTATION_TOKEN_INIT, *words)
    if regs[0]:
        raise RsiError("RSI_ATTESTATION_TOKEN_INIT", regs[0])
    upper = min(regs[1], max_size)
    token = bytearray()
    granule = buffer
    while granule < buffer + upper:
        offset = 0
        while True:
            regs = yield Smc(
                RsiFid.ATTESTATION_TOKEN_CONTINUE, granule, offset, GRANULE_SIZE - offset
            )
            if regs[0] not in (RsiStatus.SUCCESS, RsiStatus.INCOMPLETE):
                raise RsiError("RSI_ATTESTATION_TOKEN_CONTINUE", regs[0])
            offset += regs[1]
            if regs[0] != RsiStatus.INCOMPLETE or offset >= GRANULE_SIZE:
                break
        data = yield Load(granule, GRANULE_SIZE)
        token += data[:offset]
        if regs[0] == RsiStatus.SUCCESS:
            return bytes(token)
        granule += GRANULE_SIZE
    raise RsiError("RSI_ATTESTATION_TOKEN_CONTINUE", RsiStatus.INCOMPLETE)


def cpu_on(target_mpidr: int, entry: int, context_id: int = 0) -> Call:
    """PSCI_CPU_ON (64-bit): the PSCI return code, signed."""
    regs = yield Smc(PsciFid.CPU_ON, target_mpidr, entry, context_id)
    return regs[0] - (1 << 64) if regs[0] >> 63 else regs[0]


def affinity_info(target_mpidr: int) -> Call:
    """PSCI_AFFINITY_INFO (level 0): 0 ON, 1 OFF, or a negative error."""
    regs = yield Smc(PsciFid.AFFINITY_INFO, target_mpidr, 0)
    return regs[0] - (1 << 64) if regs[0] >> 63 else regs[0]


def system_off() -> Call:
    yield Smc(PsciFid.SYSTEM_OFF)
