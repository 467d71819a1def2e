"""The machine: an Arm CCA platform with EL3 firmware and an RMM, driven from the Normal world.

:class:`Machine` is the public entry point. The host side sees exactly what Normal-world
software on real hardware sees: it issues SMCs with register values and reads and writes
physical memory through the Non-secure PAS.
"""

from __future__ import annotations

from collections.abc import Callable

from ccasim import guest
from ccasim.arch.vmsa import GRANULE_MASK
from ccasim.el3.attestation import PlatformAttestation
from ccasim.el3.monitor import Monitor
from ccasim.hw.bus import MemorySystem
from ccasim.hw.counter import SystemCounter
from ccasim.hw.gpt import Pas
from ccasim.hw.pe import Pe
from ccasim.hw.platform import Platform, fvp_base
from ccasim.isa import VcpuStop
from ccasim.rmm.core import Rmm
from ccasim.rmm.features import RmmFeatures
from ccasim.rmm.log import LogRecord


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
    """

    def __init__(
        self,
        platform: Platform | None = None,
        *,
        pa_bits: int = 48,
        features: RmmFeatures | None = None,
        attestation: PlatformAttestation | None = None,
        trace: bool = False,
        **feature_overrides: object,
    ) -> None:
        self.platform = platform if platform is not None else fvp_base(pa_bits)
        pa_bits = self.platform.pa_bits
        if features is None:
            defaults: dict[str, object] = {"max_ipa_width": pa_bits, "lpa2": pa_bits == 52}
            defaults.update(feature_overrides)
            features = RmmFeatures(**defaults)  # type: ignore[arg-type]
        elif feature_overrides:
            raise TypeError("give either features= or feature keyword arguments, not both")
        self.memory = MemorySystem(self.platform)
        self.counter = SystemCounter()
        self.pe = Pe(self.memory, self.counter, guest.load)
        self.monitor = Monitor(self.memory, attestation)
        self._rmm = Rmm(self.memory, self.monitor, self.pe, features)
        self.monitor.rmm = self._rmm
        # An SMC from the Normal world traps straight to EL3.
        self.smc = self.monitor.smc_from_ns  # type: ignore[method-assign, assignment]
        self.rmm_log: list[LogRecord] = []
        if trace:
            self.on_rmm_log(self.rmm_log.append)

    # -- the architectural interface -------------------------------------------------------

    def smc(self, fid: int, *args: int) -> tuple[int, int, int, int, int]:
        """Execute an SMC from the Normal world with X0 = ``fid`` and X1.. = ``args``.

        Values are taken as the 64-bit registers would hold them (negative numbers in two's
        complement); at most 17 argument registers (SMCCC 1.2). Returns X0..X4; registers a
        command does not write read as 0. (Bound in ``__init__`` to the EL3 monitor's entry.)
        """
        return self.monitor.smc_from_ns(fid, *args)

    def ns_write(self, pa: int, data: bytes) -> None:
        """A Normal-world write of ``data`` at physical address ``pa``.

        Raises GranuleProtectionFault where a granule is not in the NS PAS and ExternalAbort
        where no memory is populated (or the address is outside the PA space).
        """
        self.memory.write(pa, data, Pas.NS)

    def ns_read(self, pa: int, size: int) -> bytes:
        """A Normal-world read of ``size`` bytes at physical address ``pa``.

        Raises GranuleProtectionFault where a granule is not in the NS PAS and ExternalAbort
        where no memory is populated (or the address is outside the PA space); ValueError for
        a negative size, which is no access at all.
        """
        if size < 0:
            raise ValueError(f"ns_read of {size} bytes: a size is not negative")
        return self.memory.read(pa, size, Pas.NS)

    # -- debug views (read only; not architectural) ----------------------------------------

    def granule_state(self, pa: int) -> str:
        """The RMM's state for the granule holding ``pa``: "UNDELEGATED", "DELEGATED", "RD"..."""
        return self._rmm.granule_state(pa & ~GRANULE_MASK).value

    def granule_pas(self, pa: int) -> Pas:
        """The GPT entry of the granule holding ``pa``."""
        return self.memory.gpt.pas(pa)

    def realm_measurements(self, rd: int) -> list[bytes]:
        """[RIM, REM0, REM1, REM2, REM3] of the realm whose RD is at ``rd``, each the realm's
        hash length: item n is what RSI_MEASUREMENT_READ returns for index n (REMn is RSI
        index n + 1, and element n of the token's extensible-measurements claim)."""
        realm = self._rmm.realms.get(rd)
        if realm is None:
            raise ValueError(f"no realm has its RD at {rd:#x}")
        size = realm.hash_algo.digest_size
        return [m[:size] for m in realm.measurements]

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

    def _vcpu(self, rec: int):
        found = self._rmm.recs.get(rec)
        if found is None:
            raise ValueError(f"no REC is at {rec:#x}")
        return found.vcpu

    def on_rmm_log(self, callback: Callable[[LogRecord], None] | None) -> None:
        """Call ``callback`` with the RMM's log record of every SMC it handles (RMI commands
        from the host, RSI and PSCI calls from realms: :class:`~ccasim.rmm.log.SmcCall`) and
        of every guest program that stops (:class:`~ccasim.rmm.log.VcpuEvent`); see
        :mod:`ccasim.rmm.log`."""
        self._rmm.log = callback

    @property
    def features(self) -> RmmFeatures:
        return self._rmm.features
