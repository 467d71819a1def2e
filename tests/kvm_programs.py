"""Guest programs the KVM tests run in realms. Each records what it observes in ``SEEN``
under the tag it is given."""

from __future__ import annotations

from collections import defaultdict

from ccasim import guest
from ccasim.guest import rsi
from ccasim.isa import GuestException
from ccasim.rsi import RIPAS_CHANGE_DESTROYED, RsiRipas

SEEN: dict[str, list] = defaultdict(list)


def words(*values: int) -> bytes:
    """Integers as an image parameter (images take int, bytes or str)."""
    return b"".join(v.to_bytes(8, "little") for v in values)


def unwords(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)]


def off():
    yield from rsi.system_off()


@guest.program("t.kvm-idle")
def idle(cpu):
    yield from off()


@guest.program("t.kvm-touch")
def touch(cpu, tag, addrs, write=1, width=8):
    """Store to (or load from) each address, recording what a load saw or the exception."""
    for addr in unwords(addrs):
        try:
            if write:
                yield guest.Store(addr, addr.to_bytes(8, "little").ljust(width, b"\0"))
                SEEN[tag].append("ok")
            else:
                SEEN[tag].append((yield guest.Load(addr, width)))
        except GuestException as e:
            SEEN[tag].append(type(e).__name__)
    yield from off()


@guest.program("t.kvm-mmio")
def mmio(cpu, tag, addr):
    yield guest.Store(addr, b"\x5a")
    yield guest.Store(addr + 8, (0x1122334455667788).to_bytes(8, "little"))
    SEEN[tag].append((yield guest.Load(addr + 4, 4)))
    SEEN[tag].append((yield guest.Load(addr + 2, 2)))
    yield from off()


@guest.program("t.kvm-ripas")
def ripas(cpu, tag, changes, before=b"", after=b""):
    """Store to each address of ``before``; RSI_IPA_STATE_SET for each (base, top, ripas),
    recording (new_base, rejected) or the error; then load each address of ``after``,
    recording the value or the exception."""
    for addr in unwords(before):
        yield guest.Store(addr, b"\xee" * 8)
    flat = unwords(changes)
    for base, top, value in zip(flat[::3], flat[1::3], flat[2::3], strict=True):
        try:
            SEEN[tag].append((yield from rsi.ipa_state_set(base, top, value)))
        except rsi.RsiError as e:
            SEEN[tag].append(("error", e.status))
    for addr in unwords(after):
        try:
            SEEN[tag].append((yield guest.Load(addr, 8)))
        except GuestException as e:
            SEEN[tag].append(type(e).__name__)
    yield from off()


@guest.program("t.kvm-share")
def share(cpu, tag, page, shared_bit):
    """Share a page as a realm kernel does (RIPAS EMPTY, then use the shared alias), read it
    back through both aliases, then make it private again."""
    yield guest.Store(page, b"private!")
    # as Linux's set_memory_decrypted: the host may have destroyed the page already
    yield from rsi.ipa_state_set(page, page + 4096, RsiRipas.EMPTY, RIPAS_CHANGE_DESTROYED)
    try:
        yield guest.Load(page, 8)
    except GuestException as e:
        SEEN[tag].append(type(e).__name__)
    yield guest.Store(page | shared_bit, b"shared!!")
    SEEN[tag].append((yield guest.Load(page | shared_bit, 8)))
    yield from rsi.ipa_state_set(page, page + 4096, RsiRipas.RAM)
    SEEN[tag].append((yield guest.Load(page, 8)))
    yield from off()


@guest.program("t.kvm-hostcall")
def hostcall(cpu, tag, buffer):
    SEEN[tag].append((yield from rsi.host_call(buffer, 3, 0xC600_0001, 11, 22))[:3])
    yield from off()


@guest.program("t.kvm-smp")
def smp(cpu, tag, secondaries, entry):
    """vCPU 0 starts the others (each records its MPIDR and X0), waits until each is on and
    then off again, and turns the system off."""
    if cpu.mpidr:
        SEEN[tag].append(("secondary", cpu.mpidr, cpu.gprs[0]))
        return  # PSCI_CPU_OFF
    secondaries = unwords(secondaries)
    for mpidr in secondaries:
        SEEN[tag].append(("cpu_on", mpidr, (yield from rsi.cpu_on(mpidr, entry, mpidr + 100))))
    SEEN[tag].append(("again", (yield from rsi.cpu_on(secondaries[0], entry, 0))))
    for mpidr in secondaries:
        for _ in range(POLLS):
            if (yield from rsi.affinity_info(mpidr)) == 1:
                break
            yield guest.Wfe()
        else:
            SEEN[tag].append(("still on", mpidr))
    SEEN[tag].append("all off")
    yield from off()


#: How many times a realm polls PSCI_AFFINITY_INFO before it gives up.
POLLS = 300


@guest.program("t.kvm-wfi")
def wfi(cpu, tag, timer=0):
    if timer:
        now = yield guest.ReadCounter()
        yield guest.SetTimer(now + timer)
    intid = yield guest.Wfi()
    while intid == 1023:
        intid = yield guest.Wfi()
    SEEN[tag].append(intid)
    yield guest.Eoi(intid)
    if timer:
        yield guest.SetTimer(0, enable=False)
    yield from off()


@guest.program("t.kvm-crash")
def crash(cpu):
    raise RuntimeError("the realm kernel panics")
    yield  # pragma: no cover


@guest.program("t.kvm-race")
def race(cpu, tag, page, count):
    """vCPU 0 starts the others at the same image; every vCPU stores to ``page``; vCPU 0
    waits until the others are off, then turns the system off."""
    me = cpu.mpidr
    if me == 0:
        for mpidr in range(1, count):
            yield from rsi.cpu_on(mpidr, cpu.pc)
    yield guest.Store(page, bytes([me + 1]) * 8)
    SEEN[tag].append(me)
    if me:
        return
    for mpidr in range(1, count):
        while (yield from rsi.affinity_info(mpidr)) != 1:
            yield guest.Wfe()
    yield from off()


@guest.program("t.kvm-halt")
def halt(cpu, tag, page):
    """vCPU 0 starts vCPU 1, which stores to ``page`` for ever; vCPU 0 turns the system off."""
    if cpu.mpidr:
        while True:
            yield guest.Store(page, b"spinning")
    SEEN[tag].append((yield from rsi.cpu_on(1, cpu.pc)))
    yield from off()


@guest.program("t.kvm-life")
def life(cpu, tag, ram, shared_bit):
    """A realm's ordinary life: private pages faulted in, a page shared and taken back, a
    host call, then the system turned off."""
    for i in range(3):
        yield guest.Store(ram + 0x30_0000 + i * 0x1000, b"private!")
    page = ram + 0x20_0000
    yield from rsi.ipa_state_set(page, page + 0x2000, RsiRipas.EMPTY, RIPAS_CHANGE_DESTROYED)
    yield guest.Store(page | shared_bit, b"shared!!")
    SEEN[tag].append((yield guest.Load(page | shared_bit, 8)))
    yield from rsi.ipa_state_set(page, page + 0x2000, RsiRipas.RAM)
    yield guest.Store(page, b"private2")
    SEEN[tag].append((yield from rsi.host_call(ram + 0x8000, 1, 0xC600_0002))[0])
    SEEN[tag].append((yield from rsi.cpu_on(1, cpu.pc)))  # PSCI_COMPLETE by the host
    yield from off()
