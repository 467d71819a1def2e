"""Host-side helpers for the tests: a granule allocator, realm construction, a realm that
makes the SMCs the host asks for, and state snapshots.

The helpers drive the machine only through ``Machine.smc`` and NS memory, as host software
does. REC state that only a running realm creates (a pending RIPAS change or PSCI request,
SYSTEM_OFF) is created by a realm making that call (:class:`Puppet`). Snapshots read the
machine's documented debug view (``Machine.debug_state``): they are the tests' view of what
the spec calls the command footprint, not part of the interface under test.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import ccasim
from ccasim import guest
from ccasim.guest import rsi
from ccasim.isa import GuestException
from ccasim.rmi import (
    FID,
    RealmParams,
    RecEnter,
    RecExit,
    RecParams,
    Rmi,
    RmiResult,
    Status,
    levels,
)
from ccasim.rmi.types import RecExitReason, RecMpidr
from ccasim.rmm.log import SmcCall

#: (fid, condition) of every failure any test machine reported: the suite's spec coverage.
OBSERVED_FAILURES: set[tuple[int, str]] = set()

GRANULE = 4096
DRAM0 = 0x8000_0000
DRAM1 = 0x88_8000_0000
SECURE = 0x0600_0000
DEVICE = 0x1C0B_0000
UNPOPULATED = 0x4000_0000


RAM_BASE = 0x8000_0000  # IPA of guest RAM and of the image, as kvmtool places it


@dataclass
class RealmHandle:
    rd: int
    params: RealmParams
    params_ptr: int

    @property
    def ipa_width(self) -> int:
        return self.params.s2sz

    @property
    def level_start(self) -> int:
        return self.params.rtt_level_start

    @property
    def unprotected(self) -> int:
        """The first Unprotected IPA."""
        return 1 << (self.params.s2sz - 1)


@dataclass
class Launched:
    realm: RealmHandle
    recs: list[int]
    run: int
    image: bytes

    @property
    def rd(self) -> int:
        return self.realm.rd


class Host:
    """A test host: allocates granules from DRAM and builds realms with RMI calls."""

    def __init__(self, machine: ccasim.Machine | None = None, **machine_kwargs) -> None:
        self.m = machine if machine is not None else ccasim.Machine(**machine_kwargs)
        self.m.on_rmm_log(self._record)
        self.rmi = Rmi(self.m)
        self._next = DRAM0 + 0x100_0000

    def _record(self, record) -> None:
        self.m.rmm_log.append(record)
        if isinstance(record, SmcCall) and record.condition is not None:
            OBSERVED_FAILURES.add((record.fid, record.condition))

    # -- granules ------------------------------------------------------------------------

    def alloc(self, n: int = 1) -> int:
        """n contiguous NS granules."""
        pa = self._next
        self._next += n * GRANULE
        return pa

    def delegated(self, n: int = 1) -> int:
        """n contiguous delegated granules."""
        pa = self.alloc(n)
        for i in range(n):
            self.rmi.granule_delegate(pa + i * GRANULE).check()
        return pa

    def ns_page(self, data: bytes = b"") -> int:
        pa = self.alloc()
        if data:
            self.m.ns_write(pa, data.ljust(GRANULE, b"\0"))
        return pa

    # -- realms --------------------------------------------------------------------------

    def realm_params(self, **overrides) -> RealmParams:
        values = dict(s2sz=48, num_bps=1, num_wps=1, rtt_level_start=0, rtt_num_start=1, vmid=1)
        values.update(overrides)
        return RealmParams(**values)

    def realm(self, activate: bool = False, **overrides) -> RealmHandle:
        params = self.realm_params(**overrides)
        if "rtt_base" not in overrides:
            params.rtt_base = self.delegated(params.rtt_num_start)
        rd = self.delegated()
        ptr = self.ns_page()
        self.rmi.realm_create(rd, ptr, params).check()
        if activate:
            self.rmi.realm_activate(rd).check()
        return RealmHandle(rd, params, ptr)

    def tables(self, realm: RealmHandle, ipa: int, level: int = 3) -> list[int]:
        """Create the RTTs that map ``ipa`` down to ``level`` (skipping existing ones)."""
        created = []
        for lvl in range(realm.level_start + 1, level + 1):
            base = ipa & ~((1 << levels.level_shift(lvl - 1)) - 1)
            entry = self.rmi.rtt_read_entry(realm.rd, base, lvl - 1).check()
            if entry[1] == lvl - 1 and entry[2] == 2:  # already a TABLE
                continue
            rtt = self.delegated()
            self.rmi.rtt_create(realm.rd, rtt, base, lvl).check()
            created.append(rtt)
        return created

    def rec_params(
        self, realm: RealmHandle, index: int = 0, runnable: bool = True, *,
        aux_count: int | None = None, **kw,
    ):  # fmt: skip
        """RmiRecParams for REC ``index`` with its auxiliary granules delegated (their count
        asked with RMI_REC_AUX_COUNT unless ``aux_count`` gives it)."""
        count = self.aux_count(realm) if aux_count is None else aux_count
        aux = [self.delegated() for _ in range(count)]
        values = dict(
            flags=int(runnable),
            mpidr=RecMpidr.from_index(index).encode(),
            pc=0x8008_0000,
            num_aux=len(aux),
            aux=aux + [0] * (16 - len(aux)),
        )
        values.update(kw)
        return RecParams(**values)

    def aux_count(self, realm: RealmHandle) -> int:
        return self.rmi.rec_aux_count(realm.rd).check().aux_count

    def rec(
        self, realm: RealmHandle, index: int = 0, runnable: bool = True, *,
        params_page: int | None = None, **kw,
    ) -> int:  # fmt: skip
        """A REC of ``realm``, its RmiRecParams written to ``params_page`` (a new NS page by
        default)."""
        params = self.rec_params(realm, index, runnable, **kw)
        rec = self.delegated()
        page = self.ns_page() if params_page is None else params_page
        self.rmi.rec_create(realm.rd, rec, page, params).check()
        return rec

    def data(self, realm: RealmHandle, ipa: int, content: bytes = b"\xa5" * GRANULE) -> int:
        self.tables(realm, ipa)
        data = self.delegated()
        src = self.ns_page(content)
        self.rmi.data_create(realm.rd, data, ipa, src, 1).check()
        return data

    def block(self, realm: RealmHandle, ipa: int, measure: int = 0) -> int:
        """Fill the 2 MiB at ``ipa`` with DATA from a 2 MiB-aligned contiguous PA range
        (foldable into a level 2 block); returns that PA."""
        self.tables(realm, ipa)
        self._next = (self._next + 0x1F_FFFF) & ~0x1F_FFFF
        pa = self.delegated(512)
        src = self.ns_page()
        for i in range(512):
            self.rmi.data_create(
                realm.rd, pa + i * GRANULE, ipa + i * GRANULE, src, measure
            ).check()
        return pa

    def launch(
        self,
        program: str,
        *,
        recs: int = 1,
        ram_pages: int = 16,
        populate: bool = True,
        runnable: tuple[int, ...] = (0,),
        activate: bool = True,
        pc: int = RAM_BASE,
        vmid: int = 1,
        **params,
    ) -> Launched:
        """Build and activate a realm running guest ``program`` (image at RAM_BASE, RAM over
        ``ram_pages`` pages with RIPAS RAM, the rest backed by DATA if ``populate``)."""
        from ccasim import guest

        realm = self.realm(vmid=vmid)
        top = RAM_BASE + ram_pages * GRANULE
        for ipa in range(RAM_BASE, top, 0x20_0000):
            self.tables(realm, ipa)
        self.rmi.rtt_init_ripas(realm.rd, RAM_BASE, top).check()
        image = guest.image(program, **params)
        pages = (len(image) + GRANULE - 1) // GRANULE
        for i in range(ram_pages if populate else pages):
            content = image[i * GRANULE : (i + 1) * GRANULE]
            src = self.ns_page(content)
            self.rmi.data_create(realm.rd, self.delegated(), RAM_BASE + i * GRANULE, src, 1).check()
        # as KVM: the auxiliary count asked once, one page for every REC's parameters
        aux_count, params_page = self.aux_count(realm), self.ns_page()
        rec_addrs = []
        for i in range(recs):
            gprs = [i, 0, 0, 0, 0, 0, 0, 0]
            rec = self.rec(realm, i, i in runnable, pc=pc, gprs=gprs, aux_count=aux_count,
                           params_page=params_page)  # fmt: skip
            rec_addrs.append(rec)
        if activate:
            self.rmi.realm_activate(realm.rd).check()
        return Launched(realm, rec_addrs, self.ns_page(), image)

    def enter(self, rec: int, run: int, enter: RecEnter | None = None) -> RecExit:
        """RMI_REC_ENTER (which must succeed) and the RmiRecExit it left."""
        self.rmi.rec_enter(rec, run, enter or RecEnter()).check()
        return self.rmi.rec_exit(run)

    # -- results -------------------------------------------------------------------------

    @property
    def last_condition(self) -> str | None:
        return self.smc_log[-1].condition

    @property
    def smc_log(self) -> list[SmcCall]:
        """The RMM's log without the vCPU events."""
        return [r for r in self.m.rmm_log if isinstance(r, SmcCall)]


def expect(host: Host, result: RmiResult, status: Status, index: int = 0, condition=None) -> None:
    """Assert an RMI result: its status, index and (if given) the failure condition ID."""
    assert (result.status, result.index) == (status, index), (
        f"{result}: expected {status.name} {index}, condition {host.last_condition}"
    )
    if condition is not None:
        assert host.last_condition == condition, f"{result}: condition {host.last_condition}"


# -- state snapshots ----------------------------------------------------------------------


def snapshot(m: ccasim.Machine) -> dict:
    """Everything the RMM and the memory system hold (the machine's documented debug view),
    keyed so that two snapshots can be diffed."""
    machine = m.debug_state()
    rmm = machine.rmm
    state: dict = {}
    for pa, st in rmm.granules.items():
        state["granule", pa] = st
    for rd, realm in rmm.realms.items():
        for k, v in dataclasses.asdict(realm).items():
            state["realm", rd, k] = v
    for addr, rec in rmm.recs.items():
        for f in dataclasses.fields(rec):
            if f.name != "vcpu":
                state["rec", addr, f.name] = getattr(rec, f.name)
        for f in dataclasses.fields(rec.vcpu):
            value = getattr(rec.vcpu, f.name)
            # the guest program's position: compare by identity
            state["rec", addr, "vcpu", f.name] = id(value) if f.name == "program" else value
    for pa, rtt in rmm.rtts.items():
        for i, e in enumerate(rtt):
            state["rtte", pa, i] = e
    for v in rmm.vmids:
        state["vmid", v] = True
    for pa, pas in machine.gpt.items():
        state["gpt", pa] = pas
    for pa, page in machine.memory.items():
        state["mem", pa] = page
    return state


def diff(before: dict, after: dict) -> set:
    """Keys whose value differs (or that appear or disappear) between two snapshots."""
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def call_changes(host: Host, fid: FID, *args: int) -> tuple[RmiResult, set]:
    """Make an RMI call; return its result and the set of state keys it changed."""
    before = snapshot(host.m)
    result = host.rmi.call(fid, *args)
    return result, diff(before, snapshot(host.m))


def expect_failure(
    host: Host, fid: FID, args: tuple[int, ...], status: Status, index: int, condition: str
) -> RmiResult:
    """Call, and assert the command failed with this return code and condition, changing
    nothing (B1.6: a failing command is aborted)."""
    result, changed = call_changes(host, fid, *args)
    expect(host, result, status, index, condition)
    assert changed == set(), f"failed command changed {sorted(map(str, changed))[:5]}"
    return result


# -- a realm that makes the SMCs the host asks for -------------------------------------------

PUPPET_CALL = RAM_BASE + 0x8000  # where the puppet's RsiHostCall lives
PUPPET_IMM = 0x5E7


#: Orders that are not SMCs (no FID is above 32 bits): a load or a store at order[1].
PUPPET_LOAD, PUPPET_STORE = 1 << 32 | 1, 1 << 32 | 2


@guest.program("t.puppet")
def puppet(cpu, tag=""):
    """Ask the host, by a host call, which SMC to make (or which address to load or store:
    PUPPET_LOAD, PUPPET_STORE); make it; report X0..X10 in the next host call (for an access,
    0 and what was loaded, or 1 if the realm took an exception). So a test creates, with the
    calls and accesses a real realm would make, the REC state only a running realm leaves."""
    result: tuple[int, ...] = ()
    while True:
        order = yield from rsi.host_call(PUPPET_CALL, PUPPET_IMM, *result)
        if order[0] not in (PUPPET_LOAD, PUPPET_STORE):
            result = yield guest.Smc(order[0], *order[1:11])
            continue
        try:
            if order[0] == PUPPET_STORE:
                yield guest.Store(order[1], order[2].to_bytes(8, "little"))
                result = (0,)
            else:
                result = (0, int.from_bytes((yield guest.Load(order[1], 8)), "little"))
        except GuestException:
            result = (1,)


class Puppet:
    """A launched realm running ``t.puppet`` on each of its RECs."""

    def __init__(self, host: Host, recs: int = 1, runnable: tuple[int, ...] = (0,), **launch):
        self.host = host
        self.launched = host.launch("t.puppet", recs=recs, runnable=runnable, **launch)
        self.realm = self.launched.realm
        self.rd = self.launched.rd
        self.recs = self.launched.recs
        self.rec = self.recs[0]
        self.run = self.launched.run
        self._waiting: dict[int, bool] = {}  # REC -> at its host call (ready for an order)

    def enter(self, rec: int, enter: RecEnter | None = None) -> RecExit:
        return self.host.enter(rec, self.run, enter)

    def smc(self, fid: int, *args: int, rec: int | None = None) -> RecExit:
        """Have ``rec`` (the first REC by default) make SMC ``fid`` with X1.. = ``args``.
        Returns the REC exit it leads to: HOST_CALL with X0.. in gprs if the RMM answered it,
        else the exit the call needs (RIPAS_CHANGE, PSCI, ...)."""
        rec = self.recs[0] if rec is None else rec
        if not self._waiting.get(rec):
            exit_ = self.finish(rec)
            assert exit_.exit_reason == RecExitReason.HOST_CALL, exit_
        order = [fid, *args] + [0] * (31 - 1 - len(args))
        exit_ = self.enter(rec, RecEnter(gprs=order))
        self._waiting[rec] = exit_.exit_reason == RecExitReason.HOST_CALL
        return exit_

    def finish(self, rec: int | None = None, enter: RecEnter | None = None) -> RecExit:
        """Run ``rec`` until it is back at its host call (completing a pending exit with
        ``enter``); the HOST_CALL exit carries the last SMC's X0.. in gprs."""
        rec = self.recs[0] if rec is None else rec
        exit_ = self.enter(rec, enter)
        self._waiting[rec] = exit_.exit_reason == RecExitReason.HOST_CALL
        return exit_
