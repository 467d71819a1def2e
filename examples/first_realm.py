"""Build a small realm through raw RMI calls and print the RMM's log and measurements.

    python examples/first_realm.py

Every step is an SMC with register values and NS memory, as KVM would issue it. The RIMs
printed are the known answers the reference RMM (TF-RMM) gives for the same sequence.
"""

import sys

import ccasim
from ccasim.rmi import RealmParams, RecParams, Rmi
from ccasim.rmi.types import DATA_MEASURE_CONTENT, REC_RUNNABLE, RecMpidr
from ccasim.trace import TraceWriter

m = ccasim.Machine()
# the RMM's log as TF-RMM prints it, every call (level None: successes TF-RMM leaves out too)
m.on_rmm_log(TraceWriter(sys.stdout.write, level=None))
rmi = Rmi(m)

free = iter(range(0x8800_0000, 0x9000_0000, 0x1000))


def delegated() -> int:
    pa = next(free)
    rmi.granule_delegate(pa).check()
    return pa


rmi.version(0x10000).check()
rmi.features(0).check()

rd, rtt_base, params_page = delegated(), delegated(), next(free)
params = RealmParams.from_counts(
    breakpoints=2, watchpoints=2, s2sz=48, rtt_base=rtt_base, rtt_num_start=1, vmid=1
)
rmi.realm_create(rd, params_page, params).check()
print(f"RIM after REALM_CREATE     {m.realm_measurements(rd)[0].hex()}")

for level in (1, 2, 3):
    rmi.rtt_create(rd, delegated(), 0, level).check()
rmi.rtt_init_ripas(rd, 0x1000, 0x2000).check()
print(f"RIM after RTT_INIT_RIPAS   {m.realm_measurements(rd)[0].hex()}")

src = next(free)
m.ns_write(src, b"\xa5" * 4096)
rmi.data_create(rd, delegated(), 0x1000, src, DATA_MEASURE_CONTENT).check()
print(f"RIM after DATA_CREATE      {m.realm_measurements(rd)[0].hex()}")

aux = [delegated() for _ in range(rmi.rec_aux_count(rd).check().aux_count)]
rec_params = RecParams(
    flags=REC_RUNNABLE,
    mpidr=RecMpidr.from_index(0).encode(),
    pc=0x5555_5556_11A5,
    num_aux=len(aux),
    aux=aux + [0] * (16 - len(aux)),
)
rmi.rec_create(rd, delegated(), next(free), rec_params).check()
print(f"RIM after REC_CREATE       {m.realm_measurements(rd)[0].hex()}")
rmi.realm_activate(rd).check()

# A mistake: the RMM names the failure condition of the spec that caught it.
rmi.data_create(rd, delegated(), 0x2000, src, DATA_MEASURE_CONTENT)
