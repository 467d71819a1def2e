"""A typed host-side RMI client: one method per command, over any ``smc`` callable.

It only does what host software does: put arguments in registers, write parameter structures
into Non-secure memory, and decode the return code. Use it with :class:`ccasim.Machine`::

    rmi = Rmi(machine)
    rmi.granule_delegate(pa).check()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ccasim.rmi.commands import RMI_COMMANDS
from ccasim.rmi.fid import FID, SMCCC_NOT_SUPPORTED
from ccasim.rmi.status import Status, decode_return_code, describe_return_code
from ccasim.rmi.structs import REC_RUN_EXIT_OFFSET, RealmParams, RecEnter, RecExit, RecParams


class Host(Protocol):
    def smc(self, fid: int, *args: int) -> tuple[int, int, int, int, int]: ...
    def ns_write(self, pa: int, data: bytes) -> None: ...
    def ns_read(self, pa: int, size: int) -> bytes: ...


class RmiError(Exception):
    """An RMI command failed (raised by :meth:`RmiResult.check`)."""

    def __init__(self, command: str, result: RmiResult) -> None:
        super().__init__(f"{command}: {describe_return_code(result.x0)}")
        self.result = result


@dataclass(frozen=True)
class RmiResult:
    """X0..X4 of an RMI call, with X0 decoded and the outputs named as the spec names them
    (B4.3.x.1.3): ``rmi.rec_aux_count(rd).check().aux_count``,
    ``rmi.rtt_read_entry(rd, ipa, 3).walk_level``. ``regs`` (or indexing) gives the raw
    registers; after a failure, outputs the spec leaves undefined read as the RMM left them.
    """

    command: str
    regs: tuple[int, int, int, int, int]
    fid: int | None = None

    @property
    def x0(self) -> int:
        return self.regs[0]

    @property
    def status(self) -> Status | int:
        return decode_return_code(self.regs[0])[0]

    @property
    def index(self) -> int:
        return decode_return_code(self.regs[0])[1]

    @property
    def ok(self) -> bool:
        return self.regs[0] == Status.SUCCESS

    @property
    def not_supported(self) -> bool:
        return self.regs[0] == SMCCC_NOT_SUPPORTED

    @property
    def outputs(self) -> dict[str, int]:
        """The command's output registers X1.. by name (empty for an unknown FID)."""
        function = RMI_COMMANDS.get(self.fid) if self.fid is not None else None
        names = function.outputs if function is not None else ()
        return dict(zip(names, self.regs[1:], strict=False))

    def check(self) -> RmiResult:
        """Return self on success, else raise :class:`RmiError`."""
        if not self.ok:
            raise RmiError(self.command, self)
        return self

    def __getattr__(self, name: str) -> int:
        if name.startswith("_") or "fid" not in self.__dict__:  # copying, unpickling
            raise AttributeError(name)
        outputs = self.outputs
        if name in outputs:
            return outputs[name]
        raise AttributeError(f"{self.command} has no output {name!r} (outputs: {list(outputs)})")

    def __getitem__(self, i: int) -> int:
        return self.regs[i]

    def __str__(self) -> str:
        return f"{self.command} -> {describe_return_code(self.x0)}"


class Rmi:
    """The RMI commands of RMM 1.0 as methods (B4.3). Arguments are register values."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def call(self, fid: FID, *args: int) -> RmiResult:
        function = RMI_COMMANDS.get(fid)
        name = function.name if function is not None else f"FID {fid:#x}"
        return RmiResult(name, self.host.smc(fid, *args), fid)

    def version(self, requested: int = 0x10000) -> RmiResult:
        return self.call(FID.VERSION, requested)

    def features(self, index: int = 0) -> RmiResult:
        return self.call(FID.FEATURES, index)

    def granule_delegate(self, addr: int) -> RmiResult:
        return self.call(FID.GRANULE_DELEGATE, addr)

    def granule_undelegate(self, addr: int) -> RmiResult:
        return self.call(FID.GRANULE_UNDELEGATE, addr)

    def realm_create(
        self, rd: int, params_ptr: int, params: RealmParams | None = None
    ) -> RmiResult:
        """Write ``params`` (if given) to the NS granule at ``params_ptr``, then create."""
        if params is not None:
            self.host.ns_write(params_ptr, params.pack())
        return self.call(FID.REALM_CREATE, rd, params_ptr)

    def realm_activate(self, rd: int) -> RmiResult:
        return self.call(FID.REALM_ACTIVATE, rd)

    def realm_destroy(self, rd: int) -> RmiResult:
        return self.call(FID.REALM_DESTROY, rd)

    def rec_aux_count(self, rd: int) -> RmiResult:
        return self.call(FID.REC_AUX_COUNT, rd)

    def rec_create(
        self, rd: int, rec: int, params_ptr: int, params: RecParams | None = None
    ) -> RmiResult:
        if params is not None:
            self.host.ns_write(params_ptr, params.pack())
        return self.call(FID.REC_CREATE, rd, rec, params_ptr)

    def rec_destroy(self, rec: int) -> RmiResult:
        return self.call(FID.REC_DESTROY, rec)

    def rec_enter(self, rec: int, run_ptr: int, enter: RecEnter | None = None) -> RmiResult:
        if enter is not None:
            self.host.ns_write(run_ptr, enter.pack())
        return self.call(FID.REC_ENTER, rec, run_ptr)

    def rec_exit(self, run_ptr: int) -> RecExit:
        """Read the RmiRecExit half of the run granule at ``run_ptr``."""
        return RecExit.unpack(self.host.ns_read(run_ptr + REC_RUN_EXIT_OFFSET, RecExit.SIZE))

    def psci_complete(self, calling_rec: int, target_rec: int, status: int = 0) -> RmiResult:
        return self.call(FID.PSCI_COMPLETE, calling_rec, target_rec, status)

    def data_create(self, rd: int, data: int, ipa: int, src: int, flags: int = 0) -> RmiResult:
        return self.call(FID.DATA_CREATE, rd, data, ipa, src, flags)

    def data_create_unknown(self, rd: int, data: int, ipa: int) -> RmiResult:
        return self.call(FID.DATA_CREATE_UNKNOWN, rd, data, ipa)

    def data_destroy(self, rd: int, ipa: int) -> RmiResult:
        return self.call(FID.DATA_DESTROY, rd, ipa)

    def rtt_create(self, rd: int, rtt: int, ipa: int, level: int) -> RmiResult:
        return self.call(FID.RTT_CREATE, rd, rtt, ipa, level)

    def rtt_destroy(self, rd: int, ipa: int, level: int) -> RmiResult:
        return self.call(FID.RTT_DESTROY, rd, ipa, level)

    def rtt_fold(self, rd: int, ipa: int, level: int) -> RmiResult:
        return self.call(FID.RTT_FOLD, rd, ipa, level)

    def rtt_read_entry(self, rd: int, ipa: int, level: int) -> RmiResult:
        return self.call(FID.RTT_READ_ENTRY, rd, ipa, level)

    def rtt_map_unprotected(self, rd: int, ipa: int, level: int, desc: int) -> RmiResult:
        return self.call(FID.RTT_MAP_UNPROTECTED, rd, ipa, level, desc)

    def rtt_unmap_unprotected(self, rd: int, ipa: int, level: int) -> RmiResult:
        return self.call(FID.RTT_UNMAP_UNPROTECTED, rd, ipa, level)

    def rtt_init_ripas(self, rd: int, base: int, top: int) -> RmiResult:
        return self.call(FID.RTT_INIT_RIPAS, rd, base, top)

    def rtt_set_ripas(self, rd: int, rec: int, base: int, top: int) -> RmiResult:
        return self.call(FID.RTT_SET_RIPAS, rd, rec, base, top)
