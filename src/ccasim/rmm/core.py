"""The RMM: its state, the lookups every command shares, and the RMI dispatcher."""

from __future__ import annotations

from bisect import bisect_right as _bisect_right
from collections.abc import Callable
from typing import TYPE_CHECKING

from ccasim.el3.monitor import RmmPanic
from ccasim.hw.gpt import Pas
from ccasim.hw.memory import GRANULE_MASK, GRANULE_SHIFT, GRANULE_SIZE
from ccasim.rmi.commands import RMI_COMMANDS
from ccasim.rmi.fid import FID, SMCCC_NOT_SUPPORTED
from ccasim.rmi.levels import level_shift
from ccasim.rmi.status import Status, return_code
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.features import RmmFeatures
from ccasim.rmm.log import LogRecord, Panicked, SmcCall
from ccasim.rmm.profile import PROFILES, Quirk, RmmProfile
from ccasim.rmm.realm import Realm
from ccasim.rmm.rec import Rec
from ccasim.rmm.rmi import HANDLERS
from ccasim.rmm.s2tt import TABLE, Rtte, Walk
from ccasim.rmm.types import GranuleState
from ccasim.rmm.verbose import hashing_dispatch

if TYPE_CHECKING:
    from ccasim.el3.monitor import Monitor
    from ccasim.hw.bus import MemorySystem
    from ccasim.hw.pe import Pe

UNDELEGATED = GranuleState.UNDELEGATED
_NS = Pas.NS
_tuple_new = tuple.__new__
NO_OUTPUTS = (0, 0, 0, 0)
SUCCESS = (0, 0, 0, 0, 0)
#: Zeros to complete X1..X4 after n outputs, and the registers a caller did not set.
PAD = tuple(NO_OUTPUTS[n:] for n in range(5))
ZEROS = (0,) * 17
NOT_SUPPORTED = (SMCCC_NOT_SUPPORTED, 0, 0, 0, 0)
SPEC = PROFILES["spec"]
_READ_ENTRY = FID.RTT_READ_ENTRY
#: FID -> (handler, number of input registers X1..), from the RMI's declaration.
DISPATCH = {fid: (HANDLERS[fid], len(RMI_COMMANDS[fid].inputs)) for fid in HANDLERS}


class Rmm:
    """The Realm Management Monitor: the RMI interface over the RMM's own state.

    Nothing outside ``ccasim.rmm`` reads these attributes: the host sees registers and NS
    memory only. ``granules`` maps each granule not in state UNDELEGATED (by its PA >> 12, which
    spreads over a dict's slots as PAs, multiples of 4096, do not) to its state
    (RmmGranule.state, C1.6); ``realms``, ``recs`` and ``rtts`` hold the objects stored in RD,
    REC and RTT granules.
    """

    def __init__(
        self,
        memory: MemorySystem,
        monitor: Monitor,
        pe: Pe,
        features: RmmFeatures,
        profile: RmmProfile = SPEC,
    ) -> None:
        self.mem = memory
        self.monitor = monitor
        self.pe = pe
        self.features = features
        #: The implementation modelled (ccasim.rmm.profile): the spec, or one with quirks.
        self.profile = profile
        self.quirks = profile.quirks
        if Quirk.X4_PRESERVED in profile.quirks:
            self.handle_rmi = self._handle_rmi_keeping_x4  # type: ignore[method-assign]
        self.granules: dict[int, GranuleState] = {}
        self.realms: dict[int, Realm] = {}
        self.recs: dict[int, Rec] = {}
        self.rtts: dict[int, list[Rtte]] = {}
        self.vmids: set[int] = set()
        self.log: Callable[[LogRecord], None] | None = None
        #: FID -> (handler, inputs): DISPATCH, or with hashes logged (log_hashes)
        self.dispatch = DISPATCH
        self.note: str | None = None  # what the running command adds to its log record
        self._delegable = memory.platform.is_delegable
        self._delegable_bases = memory.platform.delegable_bases
        self._delegable_tops = memory.platform.delegable_tops
        self._pa_limit = 1 << memory.platform.pa_bits
        #: [base, top) of the delegable regions the last bound checks of a granule and of an
        #: NS buffer found (none yet): most arguments fall in the region of the one before
        self._last_delegable = (0, 0)
        self._last_ns_delegable = (0, 0)
        #: The memory contents and the GPT, for the commands' direct use.
        self.memory = memory.memory
        self.gpt = memory.gpt

    # -- dispatch ------------------------------------------------------------------------------

    def handle_rmi(self, fid: int, args: tuple[int, ...]) -> tuple[int, int, int, int, int]:
        """Run the RMI command ``fid`` with X1.. = ``args``; return X0..X4."""
        command = self.dispatch.get(fid)
        if command is None:
            if self.log is not None:
                note, self.note = self.note, None
                self.log(SmcCall(fid, args, NOT_SUPPORTED, None, note))
            return NOT_SUPPORTED
        handler, nargs = command
        # registers the caller did not set hold zero; those past the inputs are ignored
        regs = args if len(args) == nargs else (args + ZEROS)[:nargs]
        try:
            outputs = handler(self, *regs)
        except CommandFailure as failure:
            return self._failed(fid, regs, failure)
        except RmmPanic as panic:  # the RMM stops here (a quirk of the profile)
            if self.log is not None:
                self.log(Panicked(fid, regs, panic.reason))
            raise
        result = (0, *outputs) + PAD[len(outputs)] if outputs else SUCCESS
        if self.log is not None:
            note, self.note = self.note, None
            self.log(SmcCall(fid, regs, result, None, note))
        return result  # type: ignore[return-value]  # always five registers

    def _handle_rmi_keeping_x4(
        self, fid: int, args: tuple[int, ...]
    ) -> tuple[int, int, int, int, int]:
        """handle_rmi, with the caller's X4 back in X4 wherever the command wrote no output
        there (Quirk.X4_PRESERVED: TF-RMM's SMC entry keeps X4 in its result)."""
        result = Rmm.handle_rmi(self, fid, args)
        if fid == _READ_ENTRY and result[0] == 0:
            return result  # the one command that writes X4 (ripas), on success
        return (*result[:4], args[3] if len(args) > 3 else 0)  # type: ignore[return-value]

    def _failed(
        self, fid: int, regs: tuple[int, ...], failure: CommandFailure
    ) -> tuple[int, int, int, int, int]:
        """The registers of a command that failed ``failure``'s condition, logged."""
        outputs = failure.outputs
        result = (return_code(failure.status, failure.index), *outputs, *PAD[len(outputs)])
        if self.log is not None:
            note, self.note = self.note, None
            self.log(SmcCall(fid, regs, result, failure.condition, note))
        return result  # type: ignore[return-value]

    def log_hashes(self, on: bool) -> None:
        """Log every hash computed while measuring a realm, as TF-RMM prints them at
        LOG_LEVEL_VERBOSE (:mod:`ccasim.rmm.verbose`), or stop."""
        self.dispatch = hashing_dispatch(DISPATCH) if on else DISPATCH

    # -- granules ------------------------------------------------------------------------------

    def granule_state(self, pa: int) -> GranuleState:
        if pa & GRANULE_MASK:  # not a granule's address
            return UNDELEGATED
        return self.granules.get(pa >> GRANULE_SHIFT, UNDELEGATED)

    def _delegable_region(self, addr: int) -> tuple[int, int] | None:
        """PaIsDelegable (B3.25) within the PA space: ``[base, top)`` of the delegable region
        holding ``addr``, or None."""
        i = _bisect_right(self._delegable_bases, addr) - 1
        if i < 0 or addr >= self._delegable_tops[i] or addr >= self._pa_limit:
            return None
        return self._delegable_bases[i], min(self._delegable_tops[i], self._pa_limit)

    def expect_granule(
        self, addr: int, state: GranuleState, name: str, state_id: str = "state"
    ) -> None:
        """The shared checks on a granule argument: ``{name}_align``, ``_bound``, ``_state``."""
        if not addr & GRANULE_MASK:
            if state is not UNDELEGATED:
                if self.granules.get(addr >> GRANULE_SHIFT) is state:
                    return  # only delegable granules are ever in a state but UNDELEGATED
            else:
                base, top = self._last_delegable
                if base <= addr < top and addr >> GRANULE_SHIFT not in self.granules:
                    return  # in the delegable region the last bound check found
        if addr & GRANULE_MASK:
            raise CommandFailure(f"{name}_align")
        region = self._delegable_region(addr)
        if region is None:
            raise CommandFailure(f"{name}_bound")
        self._last_delegable = region
        if self.granules.get(addr >> GRANULE_SHIFT, UNDELEGATED) is not state:
            raise CommandFailure(f"{name}_{state_id}")

    def expect_ns_granule(self, addr: int, name: str) -> None:
        """The checks on an NS buffer argument: ``{name}_align``, ``_bound``, ``_pas`` (B3.20)."""
        if addr & GRANULE_MASK:
            raise CommandFailure(f"{name}_align")
        base, top = self._last_ns_delegable
        if not base <= addr < top:
            region = self._delegable_region(addr)
            if region is None:
                raise CommandFailure(f"{name}_bound")
            self._last_ns_delegable = region
        if self.gpt.pas(addr) is not _NS:
            raise CommandFailure(f"{name}_pas")

    def find_realm(self, rd: int) -> Realm:
        """Check ``rd`` names an RD granule (rd_align, rd_bound, rd_state) and return its realm."""
        realm = self.realms.get(rd)
        if realm is not None:  # an RD: aligned, delegable and in state RD
            return realm
        self.expect_granule(rd, GranuleState.RD, "rd")
        return self.realms[rd]

    def find_rec(self, addr: int, name: str = "rec", state_id: str = "gran_state") -> Rec:
        """Check ``addr`` names a REC granule and return the REC."""
        self.expect_granule(addr, GranuleState.REC, name, state_id)
        return self.recs[addr]

    def read_ns_granule(self, addr: int) -> bytes:
        """Read a whole NS granule the host passed (already checked by expect_ns_granule)."""
        return self.mem.memory.granule(addr)

    def delegable_delegated(self, addr: int) -> bool:
        """PaIsDelegable(addr) and Granule(addr).state == DELEGATED (as in AuxStateEqual, B3.13)."""
        return (
            not addr & GRANULE_MASK  # a granule's address (the map knows only those)
            and addr < self._pa_limit
            and self._delegable(addr)
            and self.granules.get(addr >> GRANULE_SHIFT, UNDELEGATED) is GranuleState.DELEGATED
        )

    # -- RTT walk ------------------------------------------------------------------------------

    def rtt_walk(self, realm: Realm, ipa: int, level: int) -> Walk:
        """RttWalk (B3.78, A5.5.10): walk from the starting level towards ``level``.

        The walk stops at ``level`` or at the first entry that is not TABLE. ``ipa`` must be
        below 2^ipa_width.
        """
        lvl = realm.rtt_level_start
        shift = level_shift(lvl)
        top_index = ipa >> shift
        rtt_addr = realm.rtt_base + (top_index >> 9) * GRANULE_SIZE
        index = top_index & 511
        rtts = self.rtts
        rtte = rtts[rtt_addr][index]
        while lvl < level and rtte.state is TABLE:
            lvl += 1
            shift -= 9
            rtt_addr = rtte.addr
            index = (ipa >> shift) & 511
            rtte = rtts[rtt_addr][index]
        return _tuple_new(Walk, (lvl, rtt_addr, index, rtte))


__all__ = ["Rmm", "SmcCall", "Status"]
