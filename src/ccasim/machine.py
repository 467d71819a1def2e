"""The machine: an Arm CCA platform with EL3 firmware and an RMM, driven from the Normal world.

:class:`Machine` is the public entry point. Its interface has three parts:

- **architectural**: what Normal-world software on real hardware can do: :attr:`~Machine.smc`,
  :meth:`~Machine.ns_read`, :meth:`~Machine.ns_write`, :meth:`~Machine.read_counter`,
  :attr:`~Machine.counter_frequency`, :meth:`~Machine.set_host_timer`;
- **configuration**, read only: :attr:`~Machine.platform` (the memory map) and
  :attr:`~Machine.attestation` (the platform's attestation keys and claims). What the RMM
  supports is what RMI_FEATURES returns, through :meth:`~Machine.smc`;
- **debug views**, read only, the way a debugger or a model's console shows what hardware
  would not: the RMM's log, granule states, measurements, why a vCPU stopped, physical memory
  regardless of PAS, and a copy of all RMM state. Nothing in them is needed to drive a realm.

Everything else (the memory system, the PE, EL3, the RMM) is private.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ccasim import guest
from ccasim.arch.registers import MASK64
from ccasim.arch.vmsa import GRANULE_MASK
from ccasim.el3.attestation import PlatformAttestation
from ccasim.el3.monitor import Monitor, RmmPanic
from ccasim.hw.bus import MemorySystem
from ccasim.hw.counter import SystemCounter
from ccasim.hw.gpt import Pas
from ccasim.hw.pe import Pe
from ccasim.hw.platform import Platform, fvp_base
from ccasim.hw.vcpu import Vcpu
from ccasim.isa import VcpuStop
from ccasim.rmm import state
from ccasim.rmm.core import Rmm
from ccasim.rmm.features import RmmFeatures
from ccasim.rmm.log import LogRecord
from ccasim.rmm.profile import RmmProfile, profile
from ccasim.rmm.state import RmmState


@dataclass(frozen=True)
class MachineState:
    """A copy of the machine's state (:meth:`Machine.debug_state`): the RMM's, the GPT
    entries that differ from the boot PAS, and every granule of memory that is not zero."""

    rmm: RmmState
    gpt: Mapping[int, Pas]
    memory: Mapping[int, bytes]


class Machine:
    """An Arm CCA machine: the platform, EL3 and the RMM.

    ``Machine()`` is the Arm FVP Base memory map with a 48-bit PA space and the default RMM
    features (see :mod:`ccasim.hw.platform` and :class:`~ccasim.rmm.features.RmmFeatures`).

    :param platform: the memory map; default :func:`~ccasim.hw.platform.fvp_base`.
    :param pa_bits: PA space width when ``platform`` is not given (52 turns LPA2 on).
    :param features: what the RMM supports; default derives S2SZ and LPA2 from ``pa_bits``.
    :param attestation: the platform's attestation keys and claims (default: published test
        keys, see :mod:`ccasim.el3.attestation`).
    :param trace: keep the RMM's log (every RMI, RSI and PSCI call, and every guest program
        that stops) in :attr:`rmm_log`.
    :param fallback: a guest program name and its parameters that a REC runs when memory at
        its PC holds no guest image (a real AArch64 kernel, say): ccasim executes guest
        programs, not AArch64 code (:func:`ccasim.guest.load`). Default: such a REC stops.
    :param feature_overrides: fields of :class:`~ccasim.rmm.features.RmmFeatures` to change
        from the defaults (counts are counts: ``num_bps=16`` is 16 breakpoints).
    :param rmm_profile: the RMM implementation modelled (:mod:`ccasim.rmm.profile`):
        ``"spec"`` (the default: the RMM specification exactly), ``"tfrmm-1.0"`` (TF-RMM
        rmm-spec-v1.0-rel0, Release build), ``"tfrmm-1.0-debug"``, or an
        :class:`~ccasim.rmm.profile.RmmProfile` with quirks of your choice
        (``profile("spec", "x4-preserved")``). Where a quirk crashes the RMM, the SMC raises
        :class:`RmmPanic` and the machine's RMM answers no more (:attr:`rmm_panic`).
    """

    def __init__(
        self,
        platform: Platform | None = None,
        *,
        pa_bits: int = 48,
        features: RmmFeatures | None = None,
        attestation: PlatformAttestation | None = None,
        trace: bool = False,
        fallback: tuple[str, Mapping[str, int | bytes | str]] | None = None,
        rmm_profile: str | RmmProfile = "spec",
        **feature_overrides: object,
    ) -> None:
        self._platform = platform if platform is not None else fvp_base(pa_bits)
        pa_bits = self._platform.pa_bits
        if features is None:
            defaults: dict[str, object] = {"max_ipa_width": pa_bits, "lpa2": pa_bits == 52}
            defaults.update(feature_overrides)
            features = RmmFeatures(**defaults)  # type: ignore[arg-type]
        elif feature_overrides:
            raise TypeError("give either features= or feature keyword arguments, not both")
        self._memory = MemorySystem(self._platform)
        self._counter = SystemCounter()
        loader = (
            guest.load if fallback is None else functools.partial(guest.load, fallback=fallback)
        )
        self._pe = Pe(self._memory, self._counter, loader)
        self._monitor = Monitor(self._memory, attestation)
        self._rmm = Rmm(self._memory, self._monitor, self._pe, features, profile(rmm_profile))
        self._monitor.rmm = self._rmm
        self._interceptor: Callable[..., tuple[int, ...]] | None = None
        self.rmm_log: list[LogRecord] = []
        if trace:
            self.on_rmm_log(self.rmm_log.append)

    # -- the architectural interface -------------------------------------------------------

    @functools.cached_property
    def smc(self) -> Callable[..., tuple[int, int, int, int, int]]:
        """``smc(fid, *args)``: execute an SMC from the Normal world with X0 = ``fid`` and
        X1.. = ``args``; returns X0..X4, registers a command does not write reading as 0.

        Values are taken as the 64-bit registers would hold them (negative numbers in two's
        complement); at most 17 argument registers (SMCCC 1.2). An SMC traps straight to EL3,
        so this is the EL3 monitor's entry itself (``Monitor.smc_from_ns``), with no call in
        between: the first access looks it up, later ones find it on the machine.
        """
        call = self._monitor.smc_from_ns
        interceptor = self._interceptor
        if interceptor is None:
            return call

        def intercepted(fid: int, *args: int) -> tuple[int, int, int, int, int]:
            return interceptor(call, fid, args)  # type: ignore[return-value]

        return intercepted

    def intercept_smc(self, interceptor: Callable[..., tuple[int, ...]]) -> None:
        """Route every Normal-world SMC through ``interceptor(smc, fid, args)``, which makes
        the call and returns its result (a debug hook: :mod:`ccasim.check` uses it). Install
        it before anything takes :attr:`smc` (a host kernel keeps the function it found)."""
        self._interceptor = interceptor
        self.__dict__.pop("smc", None)

    def ns_write(self, pa: int, data: bytes) -> None:
        """A Normal-world write of ``data`` at physical address ``pa``.

        Raises GranuleProtectionFault where a granule is not in the NS PAS and ExternalAbort
        where no memory is populated (or the address is outside the PA space).
        """
        self._memory.write(pa, data, Pas.NS)

    def ns_read(self, pa: int, size: int) -> bytes:
        """A Normal-world read of ``size`` bytes at physical address ``pa``.

        Raises GranuleProtectionFault where a granule is not in the NS PAS and ExternalAbort
        where no memory is populated (or the address is outside the PA space); ValueError for
        a negative size, which is no access at all.
        """
        if size < 0:
            raise ValueError(f"ns_read of {size} bytes: a size is not negative")
        return self._memory.read(pa, size, Pas.NS)

    def read_counter(self) -> int:
        """The system counter (CNTPCT_EL0), shared by every PE."""
        return self._counter.value

    @property
    def counter_frequency(self) -> int:
        """CNTFRQ_EL0: the system counter's ticks per second."""
        return self._counter.frequency_hz

    def set_host_timer(self, cval: int | None) -> None:
        """Program the host's EL2 physical timer (CNTHP_CVAL_EL2, enabled and unmasked in
        CNTHP_CTL_EL2), or disable it with None. Once the system counter reaches ``cval`` a
        physical interrupt is pending at the PE until the host disables or reprograms the
        timer: a realm running then is interrupted, a REC exit due to IRQ (A4.3.5, A6.1),
        and so is an attestation token being signed (A7.2.2, D1.7.2)."""
        if cval is not None and (isinstance(cval, bool) or not isinstance(cval, int)):
            raise TypeError(f"CNTHP_CVAL_EL2 is a 64-bit register, not {cval!r}")
        if cval is not None and not 0 <= cval <= MASK64:
            raise ValueError(f"CNTHP_CVAL_EL2 {cval:#x} does not fit in 64 bits")
        self._pe.host_timer_cval = cval

    def idle_until(self, count: int) -> None:
        """The Normal-world PE sleeps (WFI) until the system counter reaches ``count``: time
        passes. A count already reached changes nothing."""
        if count > self._counter.value:
            self._counter.advance(count - self._counter.value)

    # -- configuration (read only) ---------------------------------------------------------

    @property
    def platform(self) -> Platform:
        """The memory map."""
        return self._platform

    @property
    def attestation(self) -> PlatformAttestation:
        """The platform's attestation keys and claims: what EL3 signs platform tokens with."""
        return self._monitor.attestation

    # -- platform events -------------------------------------------------------------------

    def lend_to_secure_world(self, pa: int) -> bool:
        """EL3 moves the NS granule holding ``pa`` to the Secure PAS for the Secure world (as
        an FF-A memory lend does); False if it is not in the NS PAS. Then neither the Normal
        world nor RMI_GRANULE_DELEGATE (``gran_gpt``) can use it."""
        return self._memory.gpt.transition(Pas.NS, Pas.SECURE, pa & ~GRANULE_MASK)

    # -- debug views (read only; not architectural) ----------------------------------------

    def granule_state(self, pa: int) -> str:
        """The RMM's state for the granule holding ``pa``: "UNDELEGATED", "DELEGATED", "RD"..."""
        return self._rmm.granule_state(pa & ~GRANULE_MASK).value

    def granule_pas(self, pa: int) -> Pas:
        """The GPT entry of the granule holding ``pa``."""
        return self._memory.gpt.pas(pa)

    def realms(self) -> dict[int, str]:
        """The realms the RMM holds: RD -> state ("REALM_NEW", "REALM_ACTIVE",
        "REALM_SYSTEM_OFF")."""
        return {rd: realm.state.value for rd, realm in self._rmm.realms.items()}

    def realm_measurements(self, rd: int) -> list[bytes]:
        """[RIM, REM0, REM1, REM2, REM3] of the realm whose RD is at ``rd``, each the realm's
        hash length: item n is what RSI_MEASUREMENT_READ returns for index n (REMn is RSI
        index n + 1, and element n of the token's extensible-measurements claim)."""
        realm = self._rmm.realms.get(rd)
        if realm is None:
            raise ValueError(f"no realm has its RD at {rd:#x}")
        size = realm.hash_algo.digest_size
        return [m[:size] for m in realm.measured()]

    def vcpu_console(self, rec: int) -> str:
        """What the vCPU of the REC at ``rec`` printed on the model's debug console: why its
        guest program stopped (a crash with the program's traceback, a program that returned,
        an image that could not be started), one message per line. The realm's own output
        goes through the devices the host emulates, not here."""
        return "\n".join(self._vcpu(rec).console)

    def vcpu_stop(self, rec: int) -> VcpuStop | None:
        """Why the guest program of the REC at ``rec`` is not running, or None while it runs
        (or has not started): see :class:`~ccasim.isa.VcpuStop` (``reason``, ``message``,
        the program's ``file`` and ``line``, ``traceback``). PSCI_CPU_ON starts a new program
        and clears it; the console keeps the history."""
        return self._vcpu(rec).stop

    @property
    def rmm_profile(self) -> RmmProfile:
        """The RMM implementation this machine models (see ``rmm_profile`` above)."""
        return self._rmm.profile

    @property
    def rmm_panic(self) -> RmmPanic | None:
        """Why the RMM stopped answering (an assertion or a crash of the modelled RMM), or
        None while it runs: once set, every RMI call raises it again."""
        return self._monitor.panic

    def debug_read(self, pa: int, size: int) -> bytes:
        """Physical memory as a debugger reads it, whatever the granule's PAS (no granule
        protection check); unpopulated memory reads as zero."""
        if size < 0:
            raise ValueError(f"debug_read of {size} bytes: a size is not negative")
        return self._memory.memory.read(pa, size)

    def debug_state(self) -> MachineState:
        """A copy of all RMM state, the changed GPT entries and populated memory."""
        return MachineState(
            rmm=state.snapshot(self._rmm),
            gpt=MappingProxyType(self._memory.gpt.changed_granules()),
            memory=MappingProxyType(self._memory.memory.contents()),
        )

    def on_rmm_log(
        self, callback: Callable[[LogRecord], None] | None, *, hashes: bool = False
    ) -> None:
        """Call ``callback`` with the RMM's log record of every SMC it handles (RMI commands
        from the host, RSI and PSCI calls from realms: :class:`~ccasim.rmm.log.SmcCall`) and
        of every guest program that stops (:class:`~ccasim.rmm.log.VcpuEvent`); see
        :mod:`ccasim.rmm.log`. With ``hashes``, also every hash the RMM computes while
        measuring a realm (:class:`~ccasim.rmm.log.Measured`, what TF-RMM prints at
        LOG_LEVEL_VERBOSE), which makes it compute each RIM as it goes."""
        self._rmm.log = callback
        self._rmm.log_hashes(hashes and callback is not None)

    def _vcpu(self, rec: int) -> Vcpu:
        found = self._rmm.recs.get(rec)
        if found is None:
            raise ValueError(f"no REC is at {rec:#x}")
        return found.vcpu
