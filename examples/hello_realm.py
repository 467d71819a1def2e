"""Run a realm: a guest program that talks to the RMM and the host, then attests itself.

    python examples/hello_realm.py

The host side is written out step by step with raw RMI calls: build the realm, place the guest
image in its memory (measured), create a REC and enter it, answering each REC exit.
"""

import ccasim
from ccasim import guest
from ccasim.guest import rsi
from ccasim.rmi import RealmParams, RecEnter, RecExitReason, RecParams, Rmi
from ccasim.rmi.types import DATA_MEASURE_CONTENT, ENTER_EMUL_MMIO, REC_RUNNABLE, RecMpidr
from ccasim.rsi import RsiRipas

RAM = 0x8000_0000  # guest RAM and the image, where kvmtool puts them
UART = (1 << 47) + 0x1000  # an emulated device at an Unprotected IPA


@guest.program("hello")
def hello(cpu, greeting):
    status, _, _ = yield from rsi.version()
    if status:  # RSI 1.0 is not available: nothing else would work
        return
    yield from rsi.ipa_state_set(RAM + 0x10000, RAM + 0x20000, RsiRipas.RAM)
    for ch in greeting.encode():  # a byte at a time to the emulated UART
        yield guest.Store(UART, bytes([ch]))
    reply = yield from rsi.host_call(RAM + 0x8000, 1, 42)
    yield from rsi.measurement_extend(1, b"config v1")
    token = yield from rsi.attestation_token(b"nonce from a verifier", RAM + 0x10000)
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
params = RealmParams(s2sz=48, num_bps=1, num_wps=1, rtt_base=rtt_base, rtt_num_start=1, vmid=1)
rmi.realm_create(rd, next(free), params).check()
for level in (1, 2, 3):  # an RTT maps the range of one entry of the level above
    rmi.rtt_create(rd, delegated(), RAM & -(1 << (12 + 9 * (4 - level))), level).check()
rmi.rtt_init_ripas(rd, RAM, RAM + 0x10000).check()
image = guest.image("hello", greeting="Hello from a realm\n")
for i in range(16):  # measured image, then zeros: 64 KiB of populated RAM
    src = next(free)
    m.ns_write(src, image[i * 4096 : (i + 1) * 4096].ljust(4096, b"\0"))
    rmi.data_create(rd, delegated(), RAM + i * 4096, src, DATA_MEASURE_CONTENT).check()
aux = [delegated() for _ in range(rmi.rec_aux_count(rd).check()[1])]
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
            base = rmi.rtt_set_ripas(rd, rec, base, exit_.ripas_top).check()[1]
    elif exit_.exit_reason == RecExitReason.HOST_CALL:
        if exit_.imm == 2:
            print(f"realm says: token of {exit_.gprs[0]} bytes")
            break
        enter.gprs = [exit_.gprs[0] + 1] + [0] * 30
print(f"console: {console.decode()!r}")
print(f"RIM  {m.realm_measurements(rd)[0].hex()}")
print(f"REM1 {m.realm_measurements(rd)[1].hex()}")
