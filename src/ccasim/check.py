"""The security invariants of the whole stack, checked through debug views after every SMC.

What must hold whatever the host does (A1.3, A2.2, A5, A7.1), checked on a machine's debug
views only (:meth:`ccasim.Machine.debug_state`, ``granule_pas``, ``debug_read``,
``realm_measurements``):

- every granule is in exactly one state, and the RMM's objects agree: an RD granule holds a
  realm, a REC granule a REC, an RTT granule a table, a DELEGATED one nothing (C1.6, C1.7);
- the RTT trees are well formed: each table reached by exactly one entry (or a realm's
  starting-level base), levels consistent, blocks aligned, entries of each IPA half in the
  states that half allows, every DATA granule mapped by exactly one entry, every REC_AUX
  granule listed by exactly one REC (A5.5, C1.29);
- the GPT agrees: a granule in any state but UNDELEGATED is in the Realm PAS, so that the
  Normal world can neither read nor write it, and no other granule left its boot PAS (A2.2.3);
- realms only move forward (NEW, ACTIVE, SYSTEM_OFF), their RIM never changes once ACTIVE,
  RECs are READY between host calls, VMIDs are those of live realms (A2.1, C1.18, C1.20);
- a granule the Normal world gets back (UNDELEGATE) holds nothing it had in the Realm world;
- the RIM is what replaying the construction the host asked for gives, step by step (A7.1.1);
- with a KVM host, its page accounting matches: each page KVM gave the RMM (RD, RTTs, REC,
  auxiliary, DATA) is in that state, every other granule the RMM holds is one KVM leaked.

:class:`InvariantChecker` runs them around every Normal-world SMC of a machine
(``InvariantChecker(machine)`` before anything takes ``machine.smc``): the granules and the
realm an SMC names at once, everything every ``full_every`` SMCs and on :meth:`finish`. A
violation raises :class:`InvariantViolation`, naming the SMC after which it was seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.hw.gpt import Pas
from ccasim.machine import Machine
from ccasim.rmi import levels, measurement
from ccasim.rmi.fid import FID
from ccasim.rmi.structs import RealmParams, RecParams
from ccasim.rmi.types import DATA_MEASURE_CONTENT, REC_RUNNABLE, HashAlgorithm
from ccasim.rmm.s2tt import ASSIGNED, ASSIGNED_NS, TABLE, UNASSIGNED, UNASSIGNED_NS
from ccasim.rmm.types import GranuleState, RealmState, RecState, Ripas

__all__ = ["InvariantChecker", "InvariantViolation", "check_host_pages", "check_structure"]

_ORDER = [s.value for s in (RealmState.NEW, RealmState.ACTIVE, RealmState.SYSTEM_OFF)]
_NAMES = {int(f): f"RMI_{f.name}" for f in FID}
#: Which argument of a measuring command is its parameters page.
_PARAMS_ARG: dict[int, int] = {FID.REALM_CREATE: 1, FID.REC_CREATE: 2}


class InvariantViolation(AssertionError):
    """An invariant of the stack does not hold: the model (or a profile's quirk) broke it."""


def _fail(message: str) -> None:
    raise InvariantViolation(message)


def check_structure(m: Machine) -> None:
    """Every structural invariant over the whole machine (see the module's list)."""
    state = m.debug_state()
    rmm = state.rmm
    for pa, granule in rmm.granules.items():
        if granule is GranuleState.UNDELEGATED:
            _fail(f"{pa:#x} is in the granule map as UNDELEGATED")
        if m.granule_pas(pa) is not Pas.REALM:
            _fail(f"{pa:#x} is {granule.value} but not in the Realm PAS")
        for kind, objects in ((GranuleState.RD, rmm.realms), (GranuleState.REC, rmm.recs),
                              (GranuleState.RTT, rmm.rtts)):  # fmt: skip
            if (granule is kind) != (pa in objects):
                _fail(f"{pa:#x} is {granule.value}: the RMM's {kind.value} objects disagree")
        if granule is GranuleState.DELEGATED and pa in state.memory:
            _fail(f"DELEGATED granule {pa:#x} holds data")
    for pa, pas in state.gpt.items():
        if pas is Pas.REALM and pa not in rmm.granules:
            _fail(f"{pa:#x} is in the Realm PAS but UNDELEGATED")
    parents: Counter[int] = Counter()
    data_refs: Counter[int] = Counter()
    for realm in rmm.realms.values():
        if rmm.granules.get(realm.rd) is not GranuleState.RD:
            _fail(f"realm {realm.rd:#x}: its RD granule is not in state RD")
        for index, addr in enumerate(realm.starting_rtts()):
            parents[addr] += 1
            level = realm.rtt_level_start
            base = index * levels.entries_per_rtt(level) * levels.level_size(level)
            _check_rtt(rmm, realm, addr, level, base, parents, data_refs)
    if set(parents) != set(rmm.rtts) or any(n != 1 for n in parents.values()):
        _fail("an RTT granule is reached by no entry, or by more than one")
    data = {pa for pa, s in rmm.granules.items() if s is GranuleState.DATA}
    if set(data_refs) != data or any(n != 1 for n in data_refs.values()):
        _fail("a DATA granule is mapped by no entry, or by more than one")
    aux = Counter(a for rec in rmm.recs.values() for a in rec.aux)
    if set(aux) != {pa for pa, s in rmm.granules.items() if s is GranuleState.REC_AUX} or any(
        n != 1 for n in aux.values()
    ):
        _fail("a REC_AUX granule is listed by no REC, or by more than one")
    for rec in rmm.recs.values():
        if rec.state is not RecState.READY:
            _fail(f"REC {rec.addr:#x} is {rec.state.value} between host calls")
        if rmm.granules.get(rec.owner) is not GranuleState.RD:
            _fail(f"REC {rec.addr:#x} belongs to {rec.owner:#x}, which is no realm")
    owners = Counter(rec.owner for rec in rmm.recs.values())
    for rd, realm in rmm.realms.items():
        if realm.num_recs != owners[rd]:
            _fail(f"realm {rd:#x} counts {realm.num_recs} RECs and owns {owners[rd]}")
    if rmm.vmids != {realm.vmid for realm in rmm.realms.values()}:
        _fail("the VMIDs in use are not those of the live realms")


def _check_rtt(rmm: Any, realm: Any, addr: int, level: int, base: int, parents: Counter[int],
               data_refs: Counter[int]) -> None:  # fmt: skip
    size = levels.level_size(level)
    half = levels.protected_limit(realm.ipa_width)
    for i, entry in enumerate(rmm.rtts[addr]):
        ipa = base + i * size
        allowed = (
            (UNASSIGNED, ASSIGNED, TABLE) if ipa < half else (UNASSIGNED_NS, ASSIGNED_NS, TABLE)
        )
        if entry.state not in allowed:
            _fail(f"realm {realm.rd:#x}: {entry.state.value} entry at IPA {ipa:#x}")
        if (ipa >= half or entry.state is TABLE) and entry.ripas is not Ripas.EMPTY:
            _fail(f"realm {realm.rd:#x}: entry at IPA {ipa:#x} carries a RIPAS")
        if entry.state is TABLE:
            if (
                level >= levels.RTT_PAGE_LEVEL
                or rmm.granules.get(entry.addr) is not GranuleState.RTT
            ):
                _fail(f"realm {realm.rd:#x}: TABLE entry at IPA {ipa:#x} reaches no RTT")
            parents[entry.addr] += 1
            if parents[entry.addr] == 1:  # a table reached twice is reported, not walked twice
                _check_rtt(rmm, realm, entry.addr, level + 1, ipa, parents, data_refs)
        elif entry.state is ASSIGNED:
            if entry.addr % size or level < 1:
                _fail(f"realm {realm.rd:#x}: block at IPA {ipa:#x} is not aligned")
            for page in range(entry.addr, entry.addr + size, GRANULE_SIZE):
                if rmm.granules.get(page) is not GranuleState.DATA:
                    _fail(f"realm {realm.rd:#x}: IPA {ipa:#x} maps {page:#x}, not a DATA granule")
                data_refs[page] += 1
        elif entry.state is ASSIGNED_NS and entry.addr % size:
            # (it may map any PA: B4.3.19 checks no PAS, the GPT stops a Realm-PAS access)
            _fail(f"realm {realm.rd:#x}: block at Unprotected IPA {ipa:#x} is not aligned")


def check_host_pages(kvm: Any, m: Machine) -> None:
    """KVM's page accounting against the RMM's granules: each page KVM gave the RMM is in
    the state it gave it for, and every granule the RMM holds is one of those, or leaked."""
    from ccasim.kvm.memory import Owner

    expected = {
        Owner.RD: {"RD"}, Owner.ROOT_RTT: {"RTT"}, Owner.RTT: {"RTT", "DELEGATED"},
        Owner.REC: {"REC"}, Owner.REC_AUX: {"REC_AUX"}, Owner.DATA: {"DATA"},
    }  # fmt: skip
    given: set[int] = set()
    for owner, states in expected.items():
        for pa in kvm.pages.pages(owner):
            given.add(pa)
            if m.granule_state(pa) not in states:
                _fail(f"KVM holds {pa:#x} as {owner.value}; the RMM has it {m.granule_state(pa)}")
    leaked = set(kvm.pages.pages(Owner.LEAKED))
    for pa in m.debug_state().rmm.granules:
        if pa not in given and pa not in leaked:
            _fail(f"the RMM holds {pa:#x} ({m.granule_state(pa)}) but KVM does not account it")


class InvariantChecker:
    """Checks ``machine``'s invariants around every Normal-world SMC (install it before
    anything takes ``machine.smc``): the granules an SMC names and the realms at once, all of
    them every ``full_every`` SMCs; ``checks`` counts the checks made."""

    def __init__(self, machine: Machine, full_every: int = 1) -> None:
        self.machine = machine
        self.full_every = max(full_every, 1)
        self.checks = 0
        self.smcs = 0
        self._realms: dict[int, tuple[str, bytes]] = {}  # RD -> (state, RIM) last seen
        self._rim: dict[int, tuple[HashAlgorithm, bytes]] = {}  # RD -> the replayed RIM
        machine.intercept_smc(self._smc)

    def _smc(self, smc: Callable[..., tuple[int, ...]], fid: int, args: tuple[int, ...]):
        page = self._page_read(fid, args)
        result = smc(fid, *args)
        self.smcs += 1
        try:
            self._after(fid & 0xFFFF_FFFF, args, result, page)
            if self.smcs % self.full_every == 0:
                self.checks += 1
                check_structure(self.machine)
        except InvariantViolation as e:
            name = _NAMES.get(fid & 0xFFFF_FFFF, f"SMC {fid:#x}")
            call = " ".join((name, *(f"{a:#x}" for a in args)))
            raise InvariantViolation(f"after {call}: {e}") from None
        return result

    def finish(self) -> None:
        """The whole check once more (at the end of a run)."""
        self.checks += 1
        check_structure(self.machine)

    # -- around one SMC --------------------------------------------------------------------

    def _page_read(self, fid: int, args: tuple[int, ...]) -> bytes | None:
        """The parameters page a measuring command reads, as it is before the call."""
        where = _PARAMS_ARG.get(fid & 0xFFFF_FFFF)
        if where is None or len(args) <= where:
            return None
        return self.machine.debug_read(args[where] & ~(GRANULE_SIZE - 1), GRANULE_SIZE)

    def _after(self, fid: int, args: tuple[int, ...], result: tuple[int, ...],
               page: bytes | None) -> None:  # fmt: skip
        m = self.machine
        self.checks += 1
        undelegated = fid == FID.GRANULE_UNDELEGATE and result[0] == 0
        if undelegated and any(m.debug_read(args[0], GRANULE_SIZE)):
            _fail(f"{args[0]:#x} came back to the Normal world holding data")
        for value in (*args[:5], *result[1:]):
            self._check_granule(value)
        if result[0] == 0 and args:
            self._replay_rim(fid, args, result, page)
        self._check_realms()

    def _check_granule(self, pa: int) -> None:
        m = self.machine
        if pa % GRANULE_SIZE or pa >> 64 or m.platform.region_at(pa) is None:
            return
        state = m.granule_state(pa)
        if (m.granule_pas(pa) is Pas.REALM) != (state != "UNDELEGATED"):
            _fail(f"{pa:#x} is {state} and in the {m.granule_pas(pa)} PAS")

    def _check_realms(self) -> None:
        """Realms move forward only, and their RIM is fixed once they are not NEW."""
        realms = self.machine.realms()
        for rd, state in realms.items():
            rim = self.machine.realm_measurements(rd)[0]
            old = self._realms.get(rd)
            if old is not None:
                old_state, old_rim = old
                if _ORDER.index(state) < _ORDER.index(old_state):
                    _fail(f"realm {rd:#x} went back from {old_state} to {state}")
                if old_state != RealmState.NEW.value and rim != old_rim:
                    _fail(f"realm {rd:#x}: its RIM changed after activation")
            self._realms[rd] = (state, rim)
        for rd in set(self._realms) - set(realms):
            del self._realms[rd]
            self._rim.pop(rd, None)

    def _replay_rim(self, fid: int, args: tuple[int, ...], result: tuple[int, ...],
                    page: bytes | None) -> None:  # fmt: skip
        """A7.1.1: extend the replayed RIM as the spec's measurement functions say for the
        construction the host asked for, and compare it with the realm's."""
        m, rd = self.machine, args[0]
        if fid == FID.REALM_CREATE and page is not None:
            params = RealmParams.unpack(page)
            algo = HashAlgorithm(params.hash_algo)
            self._rim[rd] = (algo, measurement.rim_init(algo, params))
        elif rd in self._rim:  # (a realm created before the checker has no replay)
            algo, rim = self._rim[rd]
            if fid == FID.RTT_INIT_RIPAS:
                size = levels.level_size(_walk_level(m, rd, args[1]))
                rim = measurement.rim_extend_ripas(algo, rim, args[1], result[1], size)
            elif fid == FID.DATA_CREATE:
                measured = args[4] == DATA_MEASURE_CONTENT
                content = m.debug_read(args[1], GRANULE_SIZE) if measured else None
                rim = measurement.rim_extend_data(algo, rim, args[2], args[4], content)
            elif fid == FID.REC_CREATE and page is not None:
                params = RecParams.unpack(page)
                if params.flags & REC_RUNNABLE:  # only a runnable REC is measured (B4.3.12.4)
                    rim = measurement.rim_extend_rec(algo, rim, params)
            else:
                return
            self._rim[rd] = (algo, rim)
        else:
            return
        algo, rim = self._rim[rd]
        if m.realm_measurements(rd)[0] != rim[: algo.digest_size]:
            _fail(f"realm {rd:#x}: the RIM is not the replay of its construction")


def _walk_level(m: Machine, rd: int, ipa: int) -> int:
    """The level at which the RTT walk for ``ipa`` stops in realm ``rd`` (debug view)."""
    rmm = m.debug_state().rmm
    realm = rmm.realms[rd]
    level = realm.rtt_level_start
    shift = levels.level_shift(level)
    index = ipa >> shift
    addr = realm.rtt_base + (index >> 9) * GRANULE_SIZE
    entry = rmm.rtts[addr][index & 511]
    while entry.state is TABLE and level < levels.RTT_PAGE_LEVEL:
        level += 1
        shift -= 9
        entry = rmm.rtts[entry.addr][(ipa >> shift) & 511]
    return level
