"""Property-based tests: random RMI sequences keep the RMM's invariants (A2.2, A5.5, B1.6).

Each example builds a machine with one realm, then issues random RMI commands whose arguments
are drawn from a small pool of granules, IPAs and levels, biased towards granules in the
state a command expects so that deep paths are reached. After every call it checks:

- every granule is in exactly one state, consistent with the GPT and the RMM's objects;
- every RTT is reachable from exactly one parent (a TABLE entry or a realm's RTT base);
- every DATA granule is mapped by exactly one ASSIGNED entry, every REC_AUX owned by one REC;
- a Normal-world access succeeds exactly on NS granules;
- a failing command changes nothing;
- an undelegated granule shows no data from its time in the Realm world;
- every invariant ccasim.rmm.types documents (DELEGATED granules hold nothing, RTT entry
  states fit their IPA half, realms only move forward and keep their RIM once active, ...).
"""

from hypothesis import given
from hypothesis import strategies as st

import ccasim
from ccasim.check import InvariantChecker, check_structure
from ccasim.hw import Pas
from ccasim.rmi import FID, RealmParams, RecEnter, RecParams
from ccasim.rmi.types import RecMpidr
from ccasim.rmm.types import RealmState
from support import GRANULE, Host, snapshot

POOL = 40
IPAS = [
    0x1000,
    0x5000,
    0,
    0x20_1000,
    0x20_0000,
    1 << 30,
    1 << 39,
    1 << 47,
    (1 << 47) + 0x1000,
    1 << 48,
]
LEVELS = [-1, 0, 1, 2, 3, 4]
RTT_CONFIGS = [(48, 0, 1), (39, 1, 1), (40, 1, 2), (40, 0, 2)]
NS_DESC = 0b101 << 2 | 0b11 << 6
REALM_ORDER = [RealmState.NEW, RealmState.ACTIVE, RealmState.SYSTEM_OFF]


def check_ns_access(m: ccasim.Machine, pool: list[int]) -> None:
    """A Normal-world access succeeds exactly on NS granules (the GPT, through the bus)."""
    for pa in pool:
        try:
            m.ns_read(pa, 8)
            assert m.granule_pas(pa) is Pas.NS
        except ccasim.GranuleProtectionFault:
            assert m.granule_pas(pa) is not Pas.NS


class Scenario:
    """A machine with one realm and a pool of granules for random commands to use."""

    def __init__(self) -> None:
        machine = ccasim.Machine(rec_aux_count=2)
        self.checker = InvariantChecker(machine)  # every invariant, around every SMC
        self.host = Host(machine=machine)
        self.m = machine
        self.pool = [self.host.alloc() for _ in range(POOL)]
        self.ns = self.host.ns_page(b"\x77" * GRANULE)  # source of DATA, params, run
        new = self.host.realm(vmid=10)
        active = self.host.realm(vmid=11)
        for realm in (new, active):
            self.host.tables(realm, 0, 3)
            self.host.tables(realm, 1 << 47, 3)
        self.host.rec(active)
        self.host.rmi.realm_activate(active.rd).check()
        self.pool += [g for g in self.m.debug_state().rmm.granules if g not in self.pool]

    def in_state(self, state: str) -> list[int]:
        return [pa for pa in self.pool if self.m.granule_state(pa) == state]


def addresses(data, sc: Scenario, state: str, n: int = 1) -> list[int]:
    """Mostly ``n`` distinct granules in ``state``; sometimes any pool granules, or misaligned."""
    candidates = sc.in_state(state)
    if len(candidates) >= n and data.draw(st.integers(0, 7)):
        first = data.draw(st.integers(0, len(candidates) - n))
        pas = candidates[first : first + n]
    else:
        pas = [data.draw(st.sampled_from(sc.pool)) for _ in range(n)]
    return [pa + (8 if data.draw(st.integers(0, 31)) == 0 else 0) for pa in pas]


def address(data, sc: Scenario, state: str) -> int:
    return addresses(data, sc, state)[0]


def operation(data, sc: Scenario) -> tuple[int, ...]:
    """Draw one RMI call (FID and arguments), writing any in-memory parameters first."""
    kind = data.draw(st.sampled_from(sorted(FID, key=int)))
    a = lambda state: address(data, sc, state)  # noqa: E731
    ipa = data.draw(st.sampled_from(IPAS))
    if kind in (FID.RTT_MAP_UNPROTECTED, FID.RTT_UNMAP_UNPROTECTED) and data.draw(st.booleans()):
        ipa |= 1 << 47
    level = data.draw(st.sampled_from(LEVELS)) if data.draw(st.booleans()) else 3
    if kind == FID.REALM_CREATE:
        s2sz, level_start, num = data.draw(st.sampled_from(RTT_CONFIGS))
        params = RealmParams(
            s2sz=s2sz, num_bps=1, num_wps=1, rtt_level_start=level_start, rtt_num_start=num,
            vmid=data.draw(st.integers(0, 3)),
        )  # fmt: skip
        rd, params.rtt_base = addresses(data, sc, "DELEGATED", 2)
        sc.m.ns_write(sc.ns, params.pack())
        return kind, rd, sc.ns
    if kind == FID.REC_CREATE:
        rec, *aux = addresses(data, sc, "DELEGATED", 3)
        params = RecParams(
            flags=data.draw(st.integers(0, 1)),
            mpidr=RecMpidr.from_index(data.draw(st.integers(0, 2))).encode(),
            num_aux=len(aux), aux=aux + [0] * 14,
        )  # fmt: skip
        sc.m.ns_write(sc.ns, params.pack())
        return kind, a("RD"), rec, sc.ns
    if kind == FID.REC_ENTER:
        sc.m.ns_write(sc.ns, RecEnter().pack())
        return kind, a("REC"), sc.ns
    i = lambda *values: data.draw(st.sampled_from(values))  # noqa: E731
    top = lambda: ipa + i(0x1000, 0x3000, 0x20_0000, 0x800) if i(0, 1, 1) else i(*IPAS)  # noqa: E731
    args = {
        FID.VERSION: lambda: (i(0x10000, 0x10001, 0x20000),),
        FID.FEATURES: lambda: (i(0, 1),),
        FID.GRANULE_DELEGATE: lambda: (a("UNDELEGATED"),),
        FID.GRANULE_UNDELEGATE: lambda: (a("DELEGATED"),),
        FID.REALM_ACTIVATE: lambda: (a("RD"),),
        FID.REALM_DESTROY: lambda: (a("RD"),),
        FID.REC_AUX_COUNT: lambda: (a("RD"),),
        FID.REC_DESTROY: lambda: (a("REC"),),
        FID.PSCI_COMPLETE: lambda: (a("REC"), a("REC"), 0),
        FID.DATA_CREATE: lambda: (a("RD"), a("DELEGATED"), ipa, sc.ns, i(0, 1)),
        FID.DATA_CREATE_UNKNOWN: lambda: (a("RD"), a("DELEGATED"), ipa),
        FID.DATA_DESTROY: lambda: (a("RD"), ipa),
        FID.RTT_CREATE: lambda: (a("RD"), a("DELEGATED"), ipa, level),
        FID.RTT_DESTROY: lambda: (a("RD"), ipa, level),
        FID.RTT_FOLD: lambda: (a("RD"), ipa, level),
        FID.RTT_READ_ENTRY: lambda: (a("RD"), ipa, level),
        FID.RTT_MAP_UNPROTECTED: lambda: (a("RD"), ipa, level, sc.ns | NS_DESC),
        FID.RTT_UNMAP_UNPROTECTED: lambda: (a("RD"), ipa, level),
        FID.RTT_INIT_RIPAS: lambda: (a("RD"), ipa, top()),
        FID.RTT_SET_RIPAS: lambda: (a("RD"), a("REC"), ipa, top()),
    }[kind]()
    return (kind, *args)


@given(st.data())
def test_random_rmi_sequences_keep_the_invariants(data):
    """ccasim.check's invariants around every call (the checker raises on a violation), a
    Normal-world access succeeding exactly on NS granules, and a failing call changing
    nothing."""
    sc = Scenario()
    check_structure(sc.m)
    check_ns_access(sc.m, sc.pool)
    for _ in range(data.draw(st.integers(1, 40))):
        call = operation(data, sc)
        before = snapshot(sc.m)
        x = sc.m.smc(*call)
        if x[0] != 0:
            assert snapshot(sc.m) == before, f"failed {sc.m.rmm_log[-1]} changed state"
        check_ns_access(sc.m, sc.pool)
    assert sc.checker.smcs >= 1 and sc.checker.checks >= 2 * sc.checker.smcs


@given(st.integers(0, 2**64 - 1), st.lists(st.integers(0, 2**64 - 1), max_size=6))
def test_any_register_values_give_a_return_code_and_change_nothing_on_failure(fid_low, args):
    """The SMC boundary: any values in X0..X6 for an RMI FID never raise."""
    sc_host = Host()
    realm = sc_host.realm()
    fid = 0xC400_0150 + fid_low % 0x40
    before = snapshot(sc_host.m)
    x = sc_host.m.smc(fid, *args)
    assert len(x) == 5 and all(0 <= v < 2**64 for v in x)
    if x[0] != 0:
        assert snapshot(sc_host.m) == before
    assert sc_host.m.granule_state(realm.rd) == "RD" or fid == FID.REALM_DESTROY
