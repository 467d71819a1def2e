"""Random host behaviour for ``ccasim diff``: mostly valid RMI sequences, some invalid input.

A :class:`Host` keeps the books a host keeps (granules it delegated, realms it created, their
RTTs, DATA and RECs), as the reference RMM's answers say, and from them proposes the next
steps: build several small realms, map and unmap, change RIPAS, create RECs, activate, read
entries, destroy, and now and then an argument made invalid (misaligned, out of range, a
granule in the wrong state or of the other world, a wrong level) or garbage in registers the
command does not read. It favours the few IPAs and states where implementations are most
likely to part: entries of one RTT that are ASSIGNED, DESTROYED or both, blocks, the levels
around the starting one. Everything is drawn from one seeded generator: the same seed gives
the same steps, given the same answers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ccasim.diff.steps import Step
from ccasim.rmi import levels
from ccasim.rmi.commands import RMI_COMMANDS
from ccasim.rmi.fid import FID, RMI_FID_FIRST, RMI_FID_LAST
from ccasim.rmi.structs import RealmParams, RecParams
from ccasim.rmi.types import REALM_FLAG_PMU, RecMpidr

__all__ = ["Host"]

GRANULE = 4096
#: Where the host takes granules from (FVP DRAM, delegable) and where it keeps NS pages.
POOL, NS_POOL = 0x8800_0000, 0x9800_0000
#: Addresses that are not delegable DRAM: Secure memory, a gap, beyond the PA space.
OTHER_WORLD = (0x0600_0000, 0x4000_0000, 1 << 48, 0x8000_0000 - GRANULE)
#: (s2sz, starting level) of the realms the host builds: 48-bit from level 0, concatenated
#: starting RTTs, and 32- or 33-bit realms starting at level 2.
CONFIGS = ((48, 0), (40, 1), (39, 1), (36, 1), (33, 2), (32, 2))
#: A valid Non-secure descriptor's attributes (MemAttr normal WB, S2AP read-write).
NS_ATTRS = 0x7 << 2 | 0x3 << 6


@dataclass
class RealmBook:
    """What the host knows of one of its realms."""

    rd: int
    s2sz: int
    level_start: int
    tables: set[tuple[int, int]] = field(default_factory=set)  # (base IPA, level)
    data: dict[int, int] = field(default_factory=dict)  # IPA -> PA of the DATA granule
    created_recs: int = 0

    @property
    def unprotected(self) -> int:
        return levels.protected_limit(self.s2sz)

    def ipas(self) -> list[int]:
        """The IPAs the host works on: a few pages of two RTTs, around a block boundary."""
        return [0x1000, 0x2000, 0x3000, 0x5000, 0x20_0000 - GRANULE, 0x20_0000, 0x20_1000]


class Host:
    """A host's books and its next steps (:meth:`next_steps`), drawn from ``seed``."""

    def __init__(self, seed: int, invalid: float = 0.12) -> None:
        self.rng = random.Random(seed)
        self.invalid = invalid
        self._next = POOL
        self._next_ns = NS_POOL
        self.delegated: list[int] = []
        self.realms: dict[int, RealmBook] = {}
        self.recs: dict[int, int] = {}  # REC -> its realm's RD
        self.vmid = 1
        self.aux_count = 16

    # -- granules ----------------------------------------------------------------------------

    def fresh(self, n: int = 1, align: int = 1) -> int:
        """``n`` contiguous granules never used, the first aligned to ``align`` granules."""
        size = align * GRANULE
        pa = (self._next + size - 1) // size * size
        self._next = pa + n * GRANULE
        return pa

    def ns_page(self, data: bytes) -> tuple[int, tuple[tuple[int, bytes], ...]]:
        pa = self._next_ns
        self._next_ns += GRANULE
        return pa, ((pa, data),)

    def maybe_bad(self, value: int, kind: str = "pa") -> int:
        """``value``, or now and then a broken one of its kind."""
        if self.rng.random() >= self.invalid:
            return value
        rng = self.rng
        if kind == "ipa":
            return rng.choice([value + 0x800, value | 1 << 63, value + (1 << 52)])
        if kind == "level":
            return rng.choice([value - 1, value + 1, 4, -1 & ((1 << 64) - 1)])
        return rng.choice([value + 0x800, *OTHER_WORLD, self.fresh(), value | 1 << 60])

    def garbage(self, args: tuple[int, ...], fid: int) -> tuple[int, ...]:
        """Registers past the command's inputs, up to X7: zeros, or now and then garbage."""
        n = len(RMI_COMMANDS[fid].inputs) if fid in RMI_COMMANDS else len(args)
        extra = [0] * (7 - n)
        if self.rng.random() < 0.3:
            extra = [self.rng.getrandbits(64) if self.rng.random() < 0.5 else 0 for _ in extra]
        return tuple(args[:n]) + tuple(extra)

    def step(self, fid: int, *args: int, writes: tuple[tuple[int, bytes], ...] = ()) -> Step:
        return Step(fid, self.garbage(args, fid), writes)

    def delegate(self, n: int = 1, align: int = 1) -> tuple[int, list[Step]]:
        pa = self.fresh(n, align)
        return pa, [self.step(FID.GRANULE_DELEGATE, pa + i * GRANULE) for i in range(n)]

    # -- what to do next ---------------------------------------------------------------------

    def next_steps(self) -> list[Step]:
        """The host's next steps (a command, and the delegations it needs first)."""
        rng = self.rng
        actions = [
            (self.realm_create, 3 if len(self.realms) < 3 else 0.3),
            (self.rtt_create, 4), (self.data_create, 4), (self.init_ripas, 3),
            (self.data_destroy, 2), (self.read_entry, 3), (self.map_unprotected, 2),
            (self.unmap_unprotected, 1.5), (self.rtt_destroy, 1), (self.rtt_fold, 0.5),
            (self.rec_create, 1), (self.activate, 0.7), (self.undelegate, 1),
            (self.destroy_something, 0.4), (self.query, 0.7), (self.junk, 0.3),
        ]  # fmt: skip
        while True:
            action = rng.choices([a for a, _ in actions], [w for _, w in actions])[0]
            steps = action()
            if steps:
                return steps

    def realm(self) -> RealmBook | None:
        return self.rng.choice(list(self.realms.values())) if self.realms else None

    def realm_create(self) -> list[Step]:
        rng = self.rng
        s2sz, level = rng.choice(CONFIGS)
        num = levels.starting_level_rtts(s2sz, level, False)
        misaligned = num > 1 and rng.random() < 0.25  # concatenated RTTs off their alignment
        rtt_base, steps = self.delegate(num + misaligned, align=num)
        rtt_base += GRANULE * misaligned
        rd, more = self.delegate()
        pmu = rng.random() < 0.3
        params = RealmParams(
            flags=REALM_FLAG_PMU if pmu else 0,
            s2sz=s2sz if rng.random() > self.invalid else rng.choice([31, 49, 52]),
            num_bps=rng.randint(1, 15),
            num_wps=rng.randint(1, 15),
            pmu_num_ctrs=rng.randint(0, 31) if pmu else 0,
            hash_algo=rng.choice([0, 1]),
            vmid=self.vmid if rng.random() > self.invalid else 0,
            rtt_base=self.maybe_bad(rtt_base),
            rtt_level_start=level,
            rtt_num_start=num,
        )
        self.vmid += 1
        ptr, writes = self.ns_page(params.pack())
        create = self.step(FID.REALM_CREATE, self.maybe_bad(rd), ptr, writes=writes)
        return [*steps, *more, create]

    def rtt_create(self) -> list[Step]:
        realm = self.realm()
        if realm is None:
            return []
        ipa = self.rng.choice([*realm.ipas(), realm.unprotected])
        level = realm.level_start + 1
        while level <= 3 and (levels.align_down(ipa, level - 1), level) in realm.tables:
            level += 1
        if level > 3:
            return []
        base = self.maybe_bad(levels.align_down(ipa, level - 1), "ipa")
        rtt, steps = self.delegate()
        level = self.maybe_bad(level, "level")
        return [*steps, self.step(FID.RTT_CREATE, realm.rd, self.maybe_bad(rtt), base, level)]

    def data_create(self) -> list[Step]:
        realm = self.realm()
        if realm is None:
            return []
        ipa = self.maybe_bad(self.rng.choice(realm.ipas()), "ipa")
        data, steps = self.delegate()
        if self.rng.random() < 0.4:
            return [*steps, self.step(FID.DATA_CREATE_UNKNOWN, realm.rd, self.maybe_bad(data), ipa)]
        content = self.rng.randbytes(32).ljust(GRANULE, b"\0")
        src, writes = self.ns_page(content)
        flags = self.rng.choice([0, 1, 1, 1]) if self.rng.random() > self.invalid else 2
        return [*steps, self.step(FID.DATA_CREATE, realm.rd, self.maybe_bad(data), ipa,
                                  self.maybe_bad(src), flags, writes=writes)]  # fmt: skip

    def init_ripas(self) -> list[Step]:
        realm = self.realm()
        if realm is None:
            return []
        base = self.maybe_bad(self.rng.choice(realm.ipas()), "ipa")
        top = (base & ~(GRANULE - 1)) + GRANULE * self.rng.choice([1, 2, 4, 8, 512])
        return [self.step(FID.RTT_INIT_RIPAS, realm.rd, base, top)]

    def data_destroy(self) -> list[Step]:
        realm = self.realm()
        if realm is None:
            return []
        ipas = list(realm.data) or realm.ipas()
        return [self.step(FID.DATA_DESTROY, realm.rd, self.maybe_bad(self.rng.choice(ipas), "ipa"))]

    def read_entry(self) -> list[Step]:
        realm = self.realm()
        if realm is None:
            return []
        level = self.rng.randint(realm.level_start, 3)
        ipa = self.rng.choice([*realm.ipas(), realm.unprotected])
        ipa = levels.align_down(ipa, level)
        return [self.step(FID.RTT_READ_ENTRY, realm.rd, ipa, self.maybe_bad(level, "level"))]

    def map_unprotected(self) -> list[Step]:
        realm = self.realm()
        if realm is None:
            return []
        level = self.rng.choice([3, 3, 2, 1])
        ipa = realm.unprotected
        addr = 0x8000_0000 if level < 3 else self.fresh()
        desc = addr | NS_ATTRS
        return [
            self.step(FID.RTT_MAP_UNPROTECTED, realm.rd, self.maybe_bad(ipa, "ipa"), level, desc)
        ]

    def unmap_unprotected(self) -> list[Step]:
        realm = self.realm()
        if realm is None:
            return []
        level = self.rng.choice([3, 2, 1])
        return [self.step(FID.RTT_UNMAP_UNPROTECTED, realm.rd, realm.unprotected, level)]

    def rtt_destroy(self) -> list[Step]:
        realm = self.realm()
        if realm is None or not realm.tables:
            return []
        base, level = self.rng.choice(sorted(realm.tables))
        return [self.step(FID.RTT_DESTROY, realm.rd, base, self.maybe_bad(level, "level"))]

    def rtt_fold(self) -> list[Step]:
        realm = self.realm()
        if realm is None or not realm.tables:
            return []
        base, level = self.rng.choice(sorted(realm.tables))
        return [self.step(FID.RTT_FOLD, realm.rd, base, level)]

    def rec_create(self) -> list[Step]:
        realm = self.realm()
        if realm is None:
            return []
        steps = [self.step(FID.REC_AUX_COUNT, realm.rd)]
        aux, more = self.delegate(self.aux_count)
        steps += more
        auxes = [aux + i * GRANULE for i in range(self.aux_count)]
        if self.rng.random() < self.invalid and len(auxes) > 2:
            auxes[self.rng.randrange(len(auxes))] = self.rng.choice([self.fresh(), auxes[0]])
        rec, more = self.delegate()
        params = RecParams(
            flags=1,
            mpidr=RecMpidr.from_index(realm.created_recs).encode(),
            pc=self.rng.getrandbits(48) & ~3,
            gprs=[self.rng.getrandbits(64) for _ in range(8)],
            num_aux=len(auxes),
            aux=auxes + [0] * (16 - len(auxes)),
        )
        ptr, writes = self.ns_page(params.pack())
        create = self.step(FID.REC_CREATE, realm.rd, self.maybe_bad(rec), ptr, writes=writes)
        return [*steps, *more, create]

    def activate(self) -> list[Step]:
        realm = self.realm()
        return [self.step(FID.REALM_ACTIVATE, realm.rd)] if realm is not None else []

    def undelegate(self) -> list[Step]:
        pa = self.rng.choice(self.delegated) if self.delegated else self.fresh()
        return [self.step(FID.GRANULE_UNDELEGATE, self.maybe_bad(pa))]

    def destroy_something(self) -> list[Step]:
        if self.recs and self.rng.random() < 0.6:
            return [self.step(FID.REC_DESTROY, self.rng.choice(list(self.recs)))]
        realm = self.realm()
        return [self.step(FID.REALM_DESTROY, realm.rd)] if realm is not None else []

    def query(self) -> list[Step]:
        if self.rng.random() < 0.5:
            return [self.step(FID.VERSION, self.rng.choice([0x10000, 0x10001, 0x20000, 0]))]
        return [self.step(FID.FEATURES, self.rng.choice([0, 0, 1, 7]))]

    def junk(self) -> list[Step]:
        fid = self.rng.randint(RMI_FID_FIRST, RMI_FID_LAST)
        return [Step(fid, tuple(self.rng.getrandbits(64) for _ in range(7)))]

    # -- the books, from the reference RMM's answers -------------------------------------------

    def record(self, step: Step, result: tuple[int, ...] | str) -> None:
        """Keep the books after ``step`` answered ``result`` (on the reference RMM)."""
        if isinstance(result, str) or result[0] != 0:
            return
        fid, a = step.fid, step.args
        realm = self.realms.get(a[0]) if a else None
        if fid == FID.REC_DESTROY:
            self.recs.pop(a[0], None)
        elif fid == FID.GRANULE_DELEGATE:
            self.delegated.append(a[0])
        elif fid == FID.GRANULE_UNDELEGATE and a[0] in self.delegated:
            self.delegated.remove(a[0])
        elif fid == FID.REALM_CREATE:
            params = RealmParams.unpack(step.writes[0][1])
            self.realms[a[0]] = RealmBook(a[0], params.s2sz, params.rtt_level_start)
        elif realm is not None:
            self._record_realm(realm, fid, a, result)

    def _record_realm(self, realm: RealmBook, fid: int, a: tuple[int, ...], result) -> None:
        if fid == FID.RTT_CREATE:
            realm.tables.add((a[2], a[3]))
        elif fid == FID.RTT_DESTROY:
            realm.tables.discard((a[1], a[2]))
        elif fid in (FID.DATA_CREATE, FID.DATA_CREATE_UNKNOWN):
            realm.data[a[2]] = a[1]
        elif fid == FID.DATA_DESTROY:
            realm.data.pop(a[1], None)
        elif fid == FID.REC_CREATE:
            realm.created_recs += 1
            self.recs[a[1]] = a[0]
        elif fid == FID.REC_AUX_COUNT:
            self.aux_count = min(result[1], 16)
        elif fid == FID.REALM_DESTROY:
            del self.realms[a[0]]
