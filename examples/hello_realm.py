"""Run a realm: a guest program that talks to the RMM and the host, then attests itself.

    python examples/hello_realm.py [TOKEN_FILE]

The host side is written out step by step with raw RMI calls: build the realm, place the guest
image in its memory (measured), share a page with it, create a REC and enter it, answering
each REC exit. The realm passes its attestation token back through the shared page; with a
file name, the host saves it, ready for `ccasim token verify`.
"""

import sys

import ccasim
from ccasim import guest
from ccasim.guest import rsi
from ccasim.rmi import RealmParams, RecEnter, RecExitReason, RecParams, Rmi
from ccasim.rmi.types import DATA_MEASURE_CONTENT, ENTER_EMUL_MMIO, REC_RUNNABLE, RecMpidr
from ccasim.rsi import RsiRipas

RAM = 0x8000_0000  # guest RAM and the image, where kvmtool puts them
UNPROTECTED = 1 << 47  # the top IPA bit of a 48-bit realm: the shared (Unprotected) half
UART = UNPROTECTED + 0x1000  # an emulated device: nothing mapped, every access exits
SHARED = UNPROTECTED + 0x2000  # a page of host memory the realm may read and write
NORMAL_RW = 0b101 << 2 | 0b11 << 6  # stage 2 MemAttr Normal write-back, S2AP read/write


@guest.program("hello")
def hello(cpu, greeting):
    status, _, _ = yield from rsi.version()
    if status:  # RSI 1.0 is not available: nothing else would work
        return
    yield from rsi.ipa_state_set(RAM + 0x10000, RAM + 0x20000, RsiRipas.RAM)
    for ch in greeting.encode():  # a byte at a time to the emulated UART
        yield guest.Store(UART, bytes([ch]))
    reply = yield from rsi.host_call(RAM + 0x8000, 1, 42)
    yield from rsi.measurement_extend(1, b"config v1")  # REM0
    token = yield from rsi.attestation_token(b"nonce from a verifier", RAM + 0x10000)
    yield guest.Store(SHARED, token.ljust(4096, b"\0"))  # one whole granule
    yield from rsi.host_call(RAM + 0x8000, 2, len(token), reply[0])


m = ccasim.Machine()
m.on_rmm_log(print)
rmi = Rmi(m)
free = iter(range(0x8800_0000, 0x9000_0000, 0x1000))


def delegated() -> int:
    pa = next(free)
    rmi.granule_delegate(pa).check()
    return pa


rd, rtt_base = delegated(), delegated()
params = RealmParams.from_counts(
    breakpoints=2, watchpoints=2, s2sz=48, rtt_base=rtt_base, rtt_num_start=1, vmid=1
)
rmi.realm_create(rd, next(free), params).check()
for ipa in (RAM, SHARED):
    for level in (1, 2, 3):  # an RTT maps the range of one entry of the level above
        rmi.rtt_create(rd, delegated(), ipa & -(1 << (12 + 9 * (4 - level))), level).check()
rmi.rtt_init_ripas(rd, RAM, RAM + 0x10000).check()
image = guest.image("hello", greeting="Hello from a realm\n")
for i in range(16):  # measured image, then zeros: 64 KiB of populated RAM
    src = next(free)
    m.ns_write(src, image[i * 4096 : (i + 1) * 4096].ljust(4096, b"\0"))
    rmi.data_create(rd, delegated(), RAM + i * 4096, src, DATA_MEASURE_CONTENT).check()
shared = next(free)  # stays in the Normal world: the host reads what the realm writes
rmi.rtt_map_unprotected(rd, SHARED, 3, shared | NORMAL_RW).check()
aux = [delegated() for _ in range(rmi.rec_aux_count(rd).check().aux_count)]
rec = delegated()
rec_params = RecParams(
    flags=REC_RUNNABLE, mpidr=RecMpidr.from_index(0).encode(), pc=RAM,
    num_aux=len(aux), aux=aux + [0] * (16 - len(aux)),
)  # fmt: skip
rmi.rec_create(rd, rec, next(free), rec_params).check()
rmi.realm_activate(rd).check()

run, console, enter = next(free), bytearray(), RecEnter()
while True:
    rmi.rec_enter(rec, run, enter).check()
    exit_ = rmi.rec_exit(run)
    enter = RecEnter()
    if exit_.exit_reason == RecExitReason.SYNC:  # the UART write: emulate it
        console.append(exit_.gprs[0] & 0xFF)
        enter.flags = ENTER_EMUL_MMIO
    elif exit_.exit_reason == RecExitReason.RIPAS_CHANGE:  # back the range with memory
        for ipa in range(exit_.ripas_base, exit_.ripas_top, 4096):
            rmi.data_create_unknown(rd, delegated(), ipa).check()
        base = exit_.ripas_base
        while base < exit_.ripas_top:
            base = rmi.rtt_set_ripas(rd, rec, base, exit_.ripas_top).check().out_top
    elif exit_.exit_reason == RecExitReason.HOST_CALL:
        if exit_.imm == 2:
            token = m.ns_read(shared, exit_.gprs[0])
            print(f"realm says: token of {len(token)} bytes")
            break
        enter.gprs = [exit_.gprs[0] + 1] + [0] * 30
    elif exit_.exit_reason == RecExitReason.PSCI:  # the program stopped: say why
        sys.exit(f"the realm stopped: {m.vcpu_stop(rec)}")
print(f"console: {console.decode()!r}")
print(f"RIM  {m.realm_measurements(rd)[0].hex()}")
print(f"REM0 {m.realm_measurements(rd)[1].hex()}")
if len(sys.argv) > 1:
    with open(sys.argv[1], "wb") as out:
        out.write(token)
    print(f"token written to {sys.argv[1]}: ccasim token verify {sys.argv[1]} --cpak CPAK_FILE")
