"""Realms run (A4, A5.2, A5.4, A6, B5, B6): guest programs on RECs, REC exits and entries.

Guest programs record what they observe in ``SEEN`` (keyed by the test's ``tag``), the way a
debugger watching the realm would; the realm itself only uses architectural actions.
"""

import hashlib
import struct

import cbor2
import pytest

from ccasim import cose, guest
from ccasim.arch.timer import CNT_CTL_ISTATUS
from ccasim.guest import rsi
from ccasim.psci import PsciFid, PsciReturn
from ccasim.rmi import RecEnter, RecExitReason, Status, measurement
from ccasim.rmi.types import (
    ENTER_EMUL_MMIO,
    ENTER_INJECT_SEA,
    ENTER_RIPAS_RESPONSE_REJECT,
    ENTER_TRAP_WFE,
    ENTER_TRAP_WFI,
    HashAlgorithm,
    RecMpidr,
)
from ccasim.rmm.exits import EC_DATA_ABORT_LOWER, EC_INSTRUCTION_ABORT_LOWER, EC_WFX
from ccasim.rsi import RsiFid, RsiRipas, RsiStatus
from support import RAM_BASE, Host

SEEN: dict[str, list] = {}
MMIO = (1 << 47) + 0x1000  # an Unprotected IPA with nothing mapped
SCRATCH = RAM_BASE + 0x8000
LR_PENDING = 1 << 62
GROUP1 = 1 << 60


def rsi_calls(host):
    return [c for c in host.smc_log if c.interface == "RSI"]


def seen(tag):
    return SEEN.setdefault(tag, [])


def ec(esr: int) -> int:
    return esr >> 26


def lrs(*intids: int) -> list[int]:
    values = [LR_PENDING | GROUP1 | 0xA0 << 48 | i for i in intids]
    return values + [0] * (16 - len(values))


# -- guest programs ------------------------------------------------------------------------


@guest.program("t.record-smc")
def record_smc(cpu, tag, fid, a1=0, a2=0, a3=0, a4=0):
    seen(tag).append((yield guest.Smc(fid, a1, a2, a3, a4)))


@guest.program("t.rsi-basics")
def rsi_basics(cpu, tag):
    out = seen(tag)
    out.append((yield from rsi.version()))
    out.append((yield from rsi.version(0x20000)))
    out.append((yield guest.Smc(RsiFid.FEATURES, 0))[:2])
    out.append((yield from rsi.measurement_read(0)))
    yield from rsi.measurement_extend(2, b"\x01" * 32)
    out.append((yield from rsi.measurement_read(2)))
    out.append((yield guest.Smc(RsiFid.MEASUREMENT_READ, 5))[0])
    for index, size in ((0, 8), (5, 8), (1, 65)):
        out.append((yield guest.Smc(RsiFid.MEASUREMENT_EXTEND, index, size))[0])
    out.append((yield guest.Smc(0xC400_01AF))[0])  # an unallocated RSI FID
    out.append((yield guest.Smc(0xC200_0000))[0])  # not RSI or PSCI
    out.append((yield from rsi.realm_config(SCRATCH)))


@guest.program("t.access")
def access(cpu, tag, ipa, size=8, write=0):
    out = seen(tag)
    try:
        if write:
            yield guest.Store(ipa, bytes(range(size)))
            out.append("written")
        else:
            out.append((yield guest.Load(ipa, size)))
    except guest.SynchronousExternalAbort as e:
        out.append(("SEA", e.ipa))


@guest.program("t.hvc")
def hvc(cpu, tag):
    try:
        yield guest.Hvc(0, 1, 2)
    except guest.UndefinedInstruction:
        seen(tag).append("undef")


@guest.program("t.host-call")
def host_call(cpu, tag):
    seen(tag).append((yield from rsi.host_call(SCRATCH + 0x100, 7, 11, 22, 33)))


@guest.program("t.ripas")
def ripas_change(cpu, tag, base, top, value, flags=0):
    seen(tag).append((yield from rsi.ipa_state_set(base, top, value, flags)))
    seen(tag).append((yield from rsi.ipa_state_get(base, top)))


@guest.program("t.wfi")
def wfi(cpu, tag):
    intid = yield guest.Wfi()
    seen(tag).append(intid)
    yield guest.Eoi(intid)
    seen(tag).append((yield guest.AckInterrupt()))


@guest.program("t.wfe")
def wfe(cpu, tag):
    yield guest.Wfe()
    seen(tag).append("woke")


@guest.program("t.timer")
def timer(cpu, tag, delta):
    now = yield guest.ReadCounter()
    yield guest.SetTimer(now + delta)
    intid = yield guest.Wfi()
    seen(tag).append(intid)
    yield guest.SetTimer(0, enable=False)
    yield guest.Eoi(intid)


@guest.program("t.spin")
def spin(cpu, tag):
    while True:
        yield guest.ReadCounter()


@guest.program("t.smp")
def smp(cpu, tag):
    out = seen(tag)
    out.append(("start", cpu.mpidr, cpu.gprs[0]))
    if cpu.gprs[0] == 0:  # the boot vCPU starts the second one
        out.append((yield from rsi.cpu_on(1, RAM_BASE, 0x77)))
        out.append((yield from rsi.affinity_info(1)))
        out.append((yield from rsi.cpu_on(1, RAM_BASE, 0x77)))
        out.append((yield from rsi.cpu_on(5, RAM_BASE)))
        out.append((yield from rsi.cpu_on(1, 1 << 47)))
        out.append((yield from rsi.affinity_info(9)))


@guest.program("t.psci-misc")
def psci_misc(cpu, tag):
    out = seen(tag)
    out.append((yield guest.Smc(PsciFid.VERSION))[0])
    out.append((yield guest.Smc(PsciFid.FEATURES, PsciFid.CPU_ON))[0])
    out.append((yield guest.Smc(PsciFid.FEATURES, 0x8400_0100))[0])
    out.append((yield guest.Smc(0x8400_0011))[0])
    yield guest.Smc(PsciFid.CPU_SUSPEND, 0, RAM_BASE, 0)
    out.append("resumed")
    yield from rsi.system_off()


@guest.program("t.crash")
def crash(cpu, tag):
    yield guest.ReadCounter()
    raise ValueError("kernel bug")


@guest.program("t.attest")
def attest(cpu, tag, challenge):
    seen(tag).append((yield from rsi.attestation_token(challenge, RAM_BASE + 0x4000)))


@guest.program("t.attest-errors")
def attest_errors(cpu, tag):
    out = seen(tag)
    c = RsiFid.ATTESTATION_TOKEN_CONTINUE
    out.append((yield guest.Smc(c, SCRATCH, 0, 16))[0])  # no INIT yet: ERROR_STATE
    yield guest.Smc(RsiFid.ATTESTATION_TOKEN_INIT, 1)
    for args in (
        (SCRATCH + 8, 0, 16),
        (1 << 47, 0, 16),
        (SCRATCH, 4096, 1),
        (SCRATCH, 8, (1 << 64) - 4),
        (SCRATCH, 8, 4096),
    ):
        out.append((yield guest.Smc(c, *args))[0])


# -- tests ---------------------------------------------------------------------------------


def test_guest_image_round_trip_and_errors():
    data = guest.image("t.spin", tag="x", n=3, blob=b"\x00\x01")
    assert guest.decode_image(data) == ("t.spin", {"tag": "x", "n": 3, "blob": b"\x00\x01"})
    for bad in (b"", b"CCASIMG\0" + b"\xff" * 8, b"XXXXXXXX" + bytes(8), data[:-1]):
        with pytest.raises(guest.ImageError):
            guest.decode_image(bad)
    with pytest.raises(TypeError):
        guest.image("t.spin", x=1.5)


def test_no_image_at_the_pc_wedges_the_vcpu():
    """A REC whose PC holds no image takes an exception it cannot handle: the host only sees
    IRQ exits (its timer preempting a vCPU that makes no progress)."""
    host = Host()
    launched = host.launch("t.spin", tag="wedge", pc=RAM_BASE + 0x3000)  # a page of zeros
    for _ in range(2):
        assert host.enter(launched.recs[0], launched.run).exit_reason == RecExitReason.IRQ
    assert "no runnable program: at PC 0x80003000" in host.m.vcpu_console(launched.recs[0])


def test_rsi_version_features_measurements_and_config():
    """B5.3.10, B5.3.3, B5.3.8, B5.3.7, B5.3.9 and SMCCC_NOT_SUPPORTED for other SMCs."""
    host = Host()
    launched = host.launch("t.rsi-basics", tag="basics")
    exit_ = host.enter(launched.recs[0], launched.run)
    assert exit_.exit_reason == RecExitReason.PSCI and exit_.gprs[0] == PsciFid.CPU_OFF
    out = SEEN["basics"]
    assert out[0] == (0, 0x10000, 0x10000) and out[1] == (1, 0x10000, 0x10000)
    assert out[2] == (0, 0)
    rim = host.m.realm_measurements(launched.rd)[0]
    assert out[3] == rim.ljust(64, b"\0")
    expected = measurement.rem_extend(HashAlgorithm.SHA_256, bytes(64), b"\x01" * 32)
    assert out[4] == expected and host.m.realm_measurements(launched.rd)[2] == expected[:32]
    assert out[5:9] == [RsiStatus.ERROR_INPUT] * 4
    assert out[9] == out[10] == (1 << 64) - 1
    assert out[11] == (48, 0, bytes(64))


@pytest.mark.parametrize("addr, expected", [(SCRATCH + 8, 1), (1 << 47, 1)])
def test_realm_config_failures(addr, expected):
    """B5.3.9.2 addr_align, addr_bound."""
    host = Host()
    launched = host.launch("t.record-smc", tag=f"cfg{addr}", fid=RsiFid.REALM_CONFIG, a1=addr)
    host.enter(launched.recs[0], launched.run)
    assert SEEN[f"cfg{addr}"][0][0] == expected


def test_realm_config_into_unmapped_ram_exits_then_retries():
    """An RSI command whose buffer is not mapped yet makes a REC exit due to Data Abort; once
    the host maps it, the command runs again."""
    host = Host()
    launched = host.launch(
        "t.record-smc", tag="cfg-unmapped", fid=RsiFid.REALM_CONFIG, a1=SCRATCH, populate=False
    )
    exit_ = host.enter(launched.recs[0], launched.run)
    assert ec(exit_.esr) == EC_DATA_ABORT_LOWER and exit_.hpfar == (SCRATCH >> 12) << 4
    host.rmi.data_create_unknown(launched.rd, host.delegated(), SCRATCH).check()
    host.enter(launched.recs[0], launched.run)
    assert SEEN["cfg-unmapped"][0][0] == RsiStatus.SUCCESS


def test_realm_config_into_empty_ipa_fails():
    host = Host()
    addr = RAM_BASE + 0x10_0000  # beyond the RAM the realm was given: RIPAS EMPTY
    launched = host.launch("t.record-smc", tag="cfg-empty", fid=RsiFid.REALM_CONFIG, a1=addr)
    host.tables(launched.realm, addr)
    host.enter(launched.recs[0], launched.run)
    assert SEEN["cfg-empty"][0][0] == RsiStatus.ERROR_INPUT


def test_emulated_mmio_read_and_write():
    """A4.3.4.3 / A4.4: an Emulatable Data Abort; the host emulates and re-enters."""
    for write in (0, 1):
        host = Host()
        tag = f"mmio{write}"
        launched = host.launch("t.access", tag=tag, ipa=MMIO, size=4, write=write)
        exit_ = host.enter(launched.recs[0], launched.run)
        assert exit_.exit_reason == RecExitReason.SYNC and ec(exit_.esr) == EC_DATA_ABORT_LOWER
        assert exit_.esr >> 24 & 1 and (exit_.esr >> 22) & 3 == 2  # ISV, SAS = word
        assert (exit_.esr >> 6) & 1 == write
        assert (exit_.hpfar >> 4) << 12 | exit_.far == MMIO
        assert exit_.gprs[0] == (0x03020100 if write else 0)
        gprs = [0x1234_5678_9ABC] + [0] * 30
        host.enter(launched.recs[0], launched.run, RecEnter(flags=ENTER_EMUL_MMIO, gprs=gprs))
        assert SEEN[tag] == (["written"] if write else [bytes.fromhex("bc9a7856")])


def test_mmio_retried_when_not_emulated_and_sea_when_injected():
    """A4.4 (emul_mmio clear: the access runs again) and A4.2.3 (inject_sea)."""
    host = Host()
    launched = host.launch("t.access", tag="sea", ipa=MMIO, size=8)
    first = host.enter(launched.recs[0], launched.run)
    again = host.enter(launched.recs[0], launched.run)
    assert first.esr == again.esr and first.hpfar == again.hpfar
    host.enter(launched.recs[0], launched.run, RecEnter(flags=ENTER_INJECT_SEA))
    assert SEEN["sea"] == [("SEA", MMIO)]


def test_protected_empty_access_is_an_sea_in_the_realm():
    """A5.2.3: RIPAS EMPTY gives the realm a Synchronous External Abort, no REC exit."""
    host = Host()
    launched = host.launch("t.access", tag="empty", ipa=RAM_BASE + 0x40_0000)
    exit_ = host.enter(launched.recs[0], launched.run)
    assert exit_.exit_reason == RecExitReason.PSCI
    assert SEEN["empty"] == [("SEA", RAM_BASE + 0x40_0000)]


def test_unassigned_ram_access_exits_and_retries_after_the_host_maps_it():
    """A5.2.9: Protected, RIPAS RAM, HIPAS UNASSIGNED: a REC exit due to Data Abort."""
    host = Host()
    launched = host.launch("t.access", tag="fault-in", ipa=SCRATCH, size=8, populate=False)
    exit_ = host.enter(launched.recs[0], launched.run)
    assert ec(exit_.esr) == EC_DATA_ABORT_LOWER and exit_.esr & 0x3F == 0b000111  # level 3
    assert not exit_.esr >> 24 & 1 and exit_.far == 0  # not emulatable
    host.rmi.data_create_unknown(launched.rd, host.delegated(), SCRATCH).check()
    host.enter(launched.recs[0], launched.run)
    assert SEEN["fault-in"] == [bytes(8)]


def test_destroyed_access_exits():
    host = Host()
    launched = host.launch("t.access", tag="destroyed", ipa=SCRATCH)
    host.rmi.data_destroy(launched.rd, SCRATCH).check()
    exit_ = host.enter(launched.recs[0], launched.run)
    assert ec(exit_.esr) == EC_DATA_ABORT_LOWER and exit_.hpfar == (SCRATCH >> 12) << 4


def test_instruction_abort_when_the_image_is_not_mapped():
    """A4.3.4.2: the entry PC is RAM but unassigned: the host sees an Instruction Abort."""
    host = Host()
    launched = host.launch("t.spin", tag="ia", populate=False)
    host.rmi.data_destroy(launched.rd, RAM_BASE).check()
    exit_ = host.enter(launched.recs[0], launched.run)
    assert ec(exit_.esr) == EC_INSTRUCTION_ABORT_LOWER and exit_.hpfar == (RAM_BASE >> 12) << 4


def test_hvc_is_an_unknown_exception_in_the_realm():
    """A4.5."""
    host = Host()
    launched = host.launch("t.hvc", tag="hvc")
    host.enter(launched.recs[0], launched.run)
    assert SEEN["hvc"] == ["undef"]


def test_host_call_round_trip():
    """A4.3.9 and A4.2.2: exit.imm and exit.gprs from RsiHostCall; enter.gprs written back."""
    host = Host()
    launched = host.launch("t.host-call", tag="hc")
    exit_ = host.enter(launched.recs[0], launched.run)
    assert exit_.exit_reason == RecExitReason.HOST_CALL and exit_.imm == 7
    assert exit_.gprs[:4] == [11, 22, 33, 0]
    reply = list(range(100, 131))
    host.enter(launched.recs[0], launched.run, RecEnter(gprs=reply))
    assert SEEN["hc"] == [reply]


def apply_ripas_change(host, launched, exit_, steps=1):
    rec = launched.recs[0]
    base, top = exit_.ripas_base, exit_.ripas_top
    for _ in range(steps):
        base = host.rmi.rtt_set_ripas(launched.rd, rec, base, top).check().out_top
    return base


def test_ripas_change_accepted():
    """A5.4: IPA_STATE_SET exits with the range; RTT_SET_RIPAS applies it; X1 reports it."""
    host = Host()
    base, top = RAM_BASE + 0x2000, RAM_BASE + 0x5000
    launched = host.launch("t.ripas", tag="rip-ok", base=base, top=top, value=RsiRipas.EMPTY)
    exit_ = host.enter(launched.recs[0], launched.run)
    assert exit_.exit_reason == RecExitReason.RIPAS_CHANGE
    assert (exit_.ripas_base, exit_.ripas_top, exit_.ripas_value) == (base, top, 0)
    assert apply_ripas_change(host, launched, exit_) == top
    host.enter(launched.recs[0], launched.run)
    assert SEEN["rip-ok"] == [(top, False), (top, RsiRipas.EMPTY)]


def test_ripas_change_partially_applied_then_completed():
    """A5.4: new_base < top: the realm asks again from new_base."""
    host = Host()
    base, top = RAM_BASE + 0x1F_F000, RAM_BASE + 0x20_2000  # crosses into a second L3 RTT
    launched = host.launch(
        "t.ripas", tag="rip-part", base=base, top=top, value=RsiRipas.RAM, ram_pages=1
    )
    host.tables(launched.realm, top)
    exit_ = host.enter(launched.recs[0], launched.run)
    assert apply_ripas_change(host, launched, exit_) == RAM_BASE + 0x20_0000
    exit_ = host.enter(launched.recs[0], launched.run)  # the realm asks for the rest
    assert (
        exit_.exit_reason == RecExitReason.RIPAS_CHANGE and exit_.ripas_base == RAM_BASE + 0x20_0000
    )
    assert apply_ripas_change(host, launched, exit_) == top
    host.enter(launched.recs[0], launched.run)
    # IPA_STATE_GET reports the run of equal RIPAS within one RTT: up to the RTT's end
    assert SEEN["rip-part"] == [(top, False), (RAM_BASE + 0x20_0000, RsiRipas.RAM)]


def test_ripas_change_rejected():
    """A5.4 / B3.40: a rejected change to RAM reports RSI_REJECT with new_base == base."""
    host = Host()
    base, top = RAM_BASE + 0x40_0000, RAM_BASE + 0x40_2000
    launched = host.launch("t.ripas", tag="rip-no", base=base, top=top, value=RsiRipas.RAM)
    host.tables(launched.realm, base)
    host.enter(launched.recs[0], launched.run)
    host.enter(launched.recs[0], launched.run, RecEnter(flags=ENTER_RIPAS_RESPONSE_REJECT))
    assert SEEN["rip-no"] == [(base, True), (top, RsiRipas.EMPTY)]


@pytest.mark.parametrize(
    "base, top, value",
    [(RAM_BASE + 1, RAM_BASE + 0x1000, 0), (RAM_BASE, RAM_BASE + 0x800, 0),
     (RAM_BASE, RAM_BASE, 0), (RAM_BASE, 1 << 48, 0), (RAM_BASE, RAM_BASE + 0x1000, 2)],
)  # fmt: skip
def test_ipa_state_set_failures(base, top, value):
    """B5.3.6.2 base_align, top_align, size_valid, rgn_bound, ripas_valid."""
    host = Host()
    tag = f"set-{base}-{top}-{value}"
    launched = host.launch(
        "t.record-smc", tag=tag, fid=RsiFid.IPA_STATE_SET, a1=base, a2=top, a3=value
    )
    host.enter(launched.recs[0], launched.run)
    assert SEEN[tag][0][0] == RsiStatus.ERROR_INPUT


def test_wfi_and_wfe_traps():
    """A4.3.4.1: with trap_wfi / trap_wfe the REC exits with EC 0x01 and ISS.TI."""
    host = Host()
    launched = host.launch("t.wfi", tag="wfi-trap")
    exit_ = host.enter(launched.recs[0], launched.run, RecEnter(flags=ENTER_TRAP_WFI))
    assert ec(exit_.esr) == EC_WFX and exit_.esr & 3 == 0
    host2 = Host()
    launched = host2.launch("t.wfe", tag="wfe")
    exit_ = host2.enter(launched.recs[0], launched.run, RecEnter(flags=ENTER_TRAP_WFE))
    assert ec(exit_.esr) == EC_WFX and exit_.esr & 3 == 1
    host2.enter(launched.recs[0], launched.run, RecEnter(flags=ENTER_TRAP_WFE))
    assert SEEN["wfe"] == ["woke"]  # the trapped WFE is not executed again


def test_trapped_wfi_is_skipped_and_reads_the_interrupt_injected_on_entry():
    """A trapped WFI is not executed again on the next entry (the reference RMM advances the
    PC on the REC exit); the program goes on to acknowledge what the host injected."""
    host = Host()
    launched = host.launch("t.wfi", tag="wfi-skip")
    host.enter(launched.recs[0], launched.run, RecEnter(flags=ENTER_TRAP_WFI))
    exit_ = host.enter(
        launched.recs[0], launched.run, RecEnter(flags=ENTER_TRAP_WFI, gicv3_lrs=lrs(40))
    )
    assert SEEN["wfi-skip"] == [40, 1023]
    assert exit_.exit_reason != RecExitReason.SYNC  # no second WFI trap


def test_virtual_interrupt_from_list_registers():
    """A6.1: the host injects a vINTID in a list register; the realm takes it (WFI wakes,
    acknowledge makes it active, EOI deactivates); exit.gicv3_lrs report the state."""
    host = Host()
    launched = host.launch("t.wfi", tag="virq")
    exit_ = host.enter(launched.recs[0], launched.run)
    assert exit_.exit_reason == RecExitReason.IRQ  # WFI with nothing pending
    exit_ = host.enter(launched.recs[0], launched.run, RecEnter(gicv3_lrs=lrs(40)))
    assert SEEN["virq"] == [40, 1023]
    assert exit_.gicv3_lrs[0] >> 62 == 0  # invalid again after EOI


def test_timer_interrupt_round_trip():
    """A6.2 / D1.6.2: the EL1 timer fires, the REC exits due to IRQ with the timer state; the
    host injects the virtual timer interrupt (27) and the realm handles it."""
    host = Host()
    launched = host.launch("t.timer", tag="timer", delta=5000)
    exit_ = host.enter(launched.recs[0], launched.run)
    assert exit_.exit_reason == RecExitReason.IRQ
    assert exit_.cntv_ctl & CNT_CTL_ISTATUS and exit_.cntv_cval <= host.m.read_counter()
    exit_ = host.enter(launched.recs[0], launched.run, RecEnter(gicv3_lrs=lrs(27)))
    assert SEEN["timer"] == [27]
    assert exit_.exit_reason == RecExitReason.PSCI


def test_a_spinning_vcpu_is_preempted():
    host = Host()
    launched = host.launch("t.spin", tag="spin")
    before = host.m.read_counter()
    assert host.enter(launched.recs[0], launched.run).exit_reason == RecExitReason.IRQ
    assert host.m.read_counter() > before


def test_psci_cpu_on_affinity_info_and_psci_complete():
    """B6.3.3, B6.3.1 with RMI_PSCI_COMPLETE (B4.3.7, D1.4)."""
    host = Host()
    launched = host.launch("t.smp", tag="smp", recs=2)
    rec0, rec1 = launched.recs
    mpidr1 = RecMpidr.from_index(1).encode()
    exit_ = host.enter(rec0, launched.run)
    assert exit_.exit_reason == RecExitReason.PSCI
    assert exit_.gprs[:4] == [PsciFid.CPU_ON, 1, RAM_BASE, 0x77]
    assert host.rmi.rec_enter(rec0, launched.run).status == Status.ERROR_REC  # rec_psci
    host.rmi.psci_complete(rec0, rec1, 0).check()
    exit_ = host.enter(rec0, launched.run)  # AFFINITY_INFO(1)
    assert exit_.gprs[:3] == [PsciFid.AFFINITY_INFO, 1, 0]
    host.rmi.psci_complete(rec0, rec1, 0).check()
    exit_ = host.enter(rec0, launched.run)  # CPU_ON(1) again
    host.rmi.psci_complete(rec0, rec1, 0).check()
    host.enter(rec0, launched.run)  # rest of the boot vCPU runs to the end
    host.enter(rec1, host.ns_page())  # the second vCPU starts at the entry point
    out = SEEN["smp"]
    assert out[0] == ("start", 0, 0)
    assert out[1:6] == [
        0,
        0,
        PsciReturn.ALREADY_ON,
        PsciReturn.INVALID_PARAMETERS,
        PsciReturn.INVALID_ADDRESS,
    ]
    assert out[6] == PsciReturn.INVALID_PARAMETERS
    assert out[7] == ("start", mpidr1, 0x77)


@guest.program("t.restart")
def restart(cpu, tag):
    seen(tag).append(("start", cpu.mpidr, cpu.gprs[0]))
    if cpu.mpidr == 0:
        for context in (0x11, 0x22):
            seen(tag).append((yield from rsi.cpu_on(1, RAM_BASE, context)))
            while (yield from rsi.affinity_info(1)) != 1:
                pass


def test_cpu_on_restarts_a_rec_that_turned_itself_off():
    """B6.3.3: after PSCI_CPU_OFF, a PSCI_CPU_ON completed with RMI_PSCI_COMPLETE starts the
    REC afresh at the entry point; nothing of its last exit (the CPU_OFF) is completed on its
    next entry."""
    host = Host()
    launched = host.launch("t.restart", tag="restart", recs=2)
    rec0, rec1 = launched.recs
    run1 = host.ns_page()
    for _ in range(2):
        exit_ = host.enter(rec0, launched.run)  # CPU_ON(1)
        host.rmi.psci_complete(rec0, rec1, 0).check()
        exit_ = host.enter(rec1, run1)  # rec1 runs its program to the end: CPU_OFF
        assert exit_.exit_reason == RecExitReason.PSCI and exit_.gprs[0] == PsciFid.CPU_OFF
        exit_ = host.enter(rec0, launched.run)  # AFFINITY_INFO(1): OFF
        host.rmi.psci_complete(rec0, rec1, 0).check()
    host.enter(rec0, launched.run)
    mpidr1 = RecMpidr.from_index(1).encode()
    assert SEEN["restart"] == [("start", 0, 0), ("start", mpidr1, 0x11), 0,
                               ("start", mpidr1, 0x22), 0]  # fmt: skip
    assert host.m.vcpu_stop(rec1).reason.name == "RETURNED"


def test_psci_version_features_suspend_and_system_off():
    """B6.3.8, B6.3.5, B6.3.4, B6.3.6; REC_ENTER then fails with (RMI_ERROR_REALM, 1)."""
    host = Host()
    launched = host.launch("t.psci-misc", tag="psci")
    exit_ = host.enter(launched.recs[0], launched.run)  # CPU_SUSPEND
    assert exit_.exit_reason == RecExitReason.PSCI and exit_.gprs[0] == PsciFid.CPU_SUSPEND
    exit_ = host.enter(launched.recs[0], launched.run)  # SYSTEM_OFF
    assert exit_.gprs[0] == PsciFid.SYSTEM_OFF
    assert SEEN["psci"] == [
        0x10001,
        0,
        PsciReturn.NOT_SUPPORTED.encode(),
        PsciReturn.NOT_SUPPORTED.encode(),
        "resumed",
    ]
    x = host.rmi.rec_enter(launched.recs[0], launched.run)
    assert (x.status, x.index) == (Status.ERROR_REALM, 1)


def test_a_program_that_returns_turns_its_vcpu_off():
    host = Host()
    launched = host.launch("t.hvc", tag="off")
    exit_ = host.enter(launched.recs[0], launched.run)
    assert exit_.exit_reason == RecExitReason.PSCI and exit_.gprs[0] == PsciFid.CPU_OFF
    assert host.rmi.rec_enter(launched.recs[0], launched.run).status == Status.ERROR_REC


def test_a_crashing_program_resets_the_realm():
    """A guest exception is a kernel panic that resets the system (PSCI_SYSTEM_RESET)."""
    host = Host()
    launched = host.launch("t.crash", tag="crash")
    exit_ = host.enter(launched.recs[0], launched.run)
    assert exit_.exit_reason == RecExitReason.PSCI and exit_.gprs[0] == PsciFid.SYSTEM_RESET
    assert "ValueError: kernel bug" in host.m.vcpu_console(launched.recs[0])


def test_attestation_token():
    """A7.2: a token requested in chunks; both signatures verify and the RAK is bound."""
    host = Host()
    challenge = bytes(range(64))
    launched = host.launch("t.attest", tag="token", challenge=challenge)
    host.enter(launched.recs[0], launched.run)
    token = SEEN["token"][0]
    outer = cbor2.loads(token)
    assert outer.tag == 399 and set(outer.value) == {44234, 44241}
    realm_sign1 = cbor2.loads(outer.value[44241])
    platform_sign1 = cbor2.loads(outer.value[44234])
    assert realm_sign1.tag == platform_sign1.tag == 18
    protected, _, payload, signature = realm_sign1.value
    claims = cbor2.loads(payload)
    attestation = host.m.attestation
    assert cose.verify1(protected, payload, signature, attestation.rak.public_key())
    assert claims[10] == challenge and claims[265] == "tag:arm.com,2023:realm#1.0.0"
    assert claims[44238] == host.m.realm_measurements(launched.rd)[0]
    assert claims[44239] == [bytes(32)] * 4 and claims[44236] == "sha-256"
    assert claims[44237] == cose.cose_key(attestation.rak.public_key())
    p_protected, _, p_payload, p_signature = platform_sign1.value
    assert cose.verify1(p_protected, p_payload, p_signature, attestation.cpak.public_key())
    assert cbor2.loads(p_payload)[10] == hashlib.sha256(claims[44237]).digest()


def test_attestation_token_continue_failures():
    """B5.3.1.2 state, addr_align, addr_bound, offset_bound, size_overflow, size_bound."""
    host = Host()
    launched = host.launch("t.attest-errors", tag="att-err")
    host.enter(launched.recs[0], launched.run)
    assert SEEN["att-err"] == [RsiStatus.ERROR_STATE] + [RsiStatus.ERROR_INPUT] * 5


def test_guest_program_decorator_requires_a_generator():
    with pytest.raises(TypeError):
        guest.program("t.not-a-generator")(lambda cpu: None)


def test_measurement_values_are_doublewords():
    assert struct.calcsize("<8Q") == 64


@pytest.mark.parametrize(
    "base, top, cond",
    [(RAM_BASE + 8, RAM_BASE + 0x1000, "base_align"), (RAM_BASE, RAM_BASE + 0x10, "end_align"),
     (RAM_BASE + 0x1000, RAM_BASE, "size_valid"), (RAM_BASE, (1 << 47) + 0x1000, "rgn_bound")],
)  # fmt: skip
def test_ipa_state_get_failures(base, top, cond):
    """B5.3.5.2 base_align, end_align, size_valid, rgn_bound."""
    host = Host()
    tag = f"get-{cond}"
    launched = host.launch("t.record-smc", tag=tag, fid=RsiFid.IPA_STATE_GET, a1=base, a2=top)
    host.enter(launched.recs[0], launched.run)
    assert SEEN[tag][0][0] == RsiStatus.ERROR_INPUT
    assert rsi_calls(host)[0].condition == cond


@pytest.mark.parametrize(
    "addr, cond", [(SCRATCH + 0x80, "addr_align"), ((1 << 47) + 0x100, "addr_bound")]
)
def test_host_call_failures(addr, cond):
    """B5.3.4.2 addr_align (256 bytes), addr_bound."""
    host = Host()
    tag = f"hc-{cond}"
    launched = host.launch("t.record-smc", tag=tag, fid=RsiFid.HOST_CALL, a1=addr)
    host.enter(launched.recs[0], launched.run)
    assert SEEN[tag][0][0] == RsiStatus.ERROR_INPUT
    assert rsi_calls(host)[0].condition == cond


def test_affinity_info_lowest_level_must_be_zero():
    """B6.3.1.2 target_bound."""
    host = Host()
    launched = host.launch("t.record-smc", tag="aff-level", fid=PsciFid.AFFINITY_INFO, a1=0, a2=1)
    host.enter(launched.recs[0], launched.run)
    assert SEEN["aff-level"][0][0] == PsciReturn.INVALID_PARAMETERS.encode()


def test_rmm_log_shows_realm_calls_and_exits():
    """The RMM's log records RSI and PSCI calls as TF-RMM does, and why REC_ENTER returned."""
    host = Host()
    launched = host.launch("t.host-call", tag="log")
    host.enter(launched.recs[0], launched.run)
    lines = [str(rsi_calls(host)[0]), str(host.m.rmm_log[-1])]
    assert lines[0].startswith("SMC_RSI_HOST_CALL") and lines[0].endswith(
        "> ...  [REC exit HOST_CALL]"
    )
    assert lines[1].startswith("SMC_RMI_REC_ENTER") and "[exit HOST_CALL]" in lines[1]


@guest.program("t.cpu-on-denied")
def cpu_on_denied(cpu, tag):
    seen(tag).append((yield from rsi.cpu_on(1, RAM_BASE)))


def test_host_may_deny_cpu_on():
    """B3.27 / B4.3.7: the host completes CPU_ON with PSCI_DENIED; the realm sees DENIED and the
    target stays off."""
    host = Host()
    launched = host.launch("t.cpu-on-denied", tag="denied", recs=2)
    rec0, rec1 = launched.recs
    host.enter(rec0, launched.run)
    host.rmi.psci_complete(rec0, rec1, PsciReturn.DENIED.encode()).check()
    host.enter(rec0, launched.run)
    assert SEEN["denied"] == [PsciReturn.DENIED]
    assert host.rmi.rec_enter(rec1, launched.run).status == Status.ERROR_REC  # not runnable


@guest.program("t.attest-rem")
def attest_rem(cpu, tag):
    yield from rsi.measurement_extend(3, b"\xee" * 64)
    seen(tag).append((yield from rsi.attestation_token(b"\x01" * 64, RAM_BASE + 0x4000)))


def test_sha512_realm_token_carries_64_byte_measurements():
    host = Host()
    realm = host.realm(hash_algo=1)
    host.tables(realm, RAM_BASE)
    host.rmi.rtt_init_ripas(realm.rd, RAM_BASE, RAM_BASE + 0x10000).check()
    image = guest.image("t.attest-rem", tag="sha512")
    for i in range(16):
        src = host.ns_page(image[i * 4096 : (i + 1) * 4096])
        host.rmi.data_create(realm.rd, host.delegated(), RAM_BASE + i * 4096, src, 1).check()
    rec = host.rec(realm, pc=RAM_BASE)
    host.rmi.realm_activate(realm.rd).check()
    host.enter(rec, host.ns_page())
    claims = cbor2.loads(cbor2.loads(cbor2.loads(SEEN["sha512"][0]).value[44241]).value[2])
    assert claims[44236] == "sha-512" and len(claims[44238]) == 64
    rems = host.m.realm_measurements(realm.rd)[1:]
    assert claims[44239] == rems and rems[2] != bytes(64)


def test_user_supplied_attestation_keys_sign_the_token():
    from cryptography.hazmat.primitives.asymmetric import ec

    from ccasim.el3.attestation import PlatformAttestation

    cpak = ec.generate_private_key(ec.SECP256R1())
    import ccasim

    host = Host(machine=ccasim.Machine(attestation=PlatformAttestation(cpak=cpak)))
    launched = host.launch("t.attest", tag="own-key", challenge=b"\x05" * 64)
    host.enter(launched.recs[0], launched.run)
    platform = cbor2.loads(cbor2.loads(SEEN["own-key"][0]).value[44234])
    protected, _, payload, signature = platform.value
    assert cbor2.loads(protected) == {1: -7}  # ES256 for a P-256 key
    assert cose.verify1(protected, payload, signature, cpak.public_key())
