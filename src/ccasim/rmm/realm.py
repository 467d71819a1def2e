"""The Realm Descriptor: attributes of a realm (A2.1.3, C1.16)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.rmi.levels import protected_limit
from ccasim.rmi.measurement import MEASUREMENT_SIZE
from ccasim.rmi.types import HashAlgorithm
from ccasim.rmm import rim
from ccasim.rmm.types import RealmState

_KEYS = itertools.count(1)  # a realm's key for the RIM helper (RDs are reused; keys are not)


@dataclass(slots=True, eq=False)
class Realm:
    """RmmRealm (C1.16), kept by the RMM for the RD granule at ``rd``.

    Besides the spec's attributes it records the configuration the host selected at creation
    (SVE, PMU, debug) that the realm can later query, and the REC auxiliary granule count.
    """

    rd: int
    ipa_width: int
    hash_algo: HashAlgorithm
    rtt_base: int
    rtt_level_start: int
    rtt_num_start: int
    vmid: int
    rpv: bytes
    feat_lpa2: bool = False
    state: RealmState = RealmState.NEW
    #: RIM, REM0..REM3 (RmmRealmMeasurement, C1.17) without the RIM extensions still
    #: pending: whatever reads them reads ``measured()``.
    measurements: list[bytes] = field(default_factory=lambda: [bytes(MEASUREMENT_SIZE)] * 5)
    rec_index: int = 0
    num_recs: int = 0
    rec_aux_count: int = 0
    sve_vl: int = 0
    feat_sve: bool = False
    feat_pmu: bool = False
    pmu_num_ctrs: int = 0
    num_bps: int = 0
    num_wps: int = 0
    #: The first Unprotected IPA (derived from ipa_width).
    protected_top: int = field(default=0, init=False)
    #: RIM extensions by DATA_CREATE not yet applied to the RIM (:mod:`ccasim.rmm.rim`).
    #: Flat: IPA, flags, contents (None if not measured) of each.
    rim_pending: list[int | bytes | None] = field(default_factory=list, init=False)
    #: How many of them the helper process has (-1: it failed; the RMM computes them).
    rim_submitted: int = field(default=0, init=False)
    rim_key: int = field(default=0, init=False)

    def measured(self) -> list[bytes]:
        """RIM, REM0..REM3 with every pending RIM extension applied (:mod:`ccasim.rmm.rim`):
        what any reader of the measurements must use."""
        if self.rim_pending:
            rim.complete(self)
        return self.measurements

    @property
    def rim_base(self) -> bytes:
        """The RIM before the pending extensions."""
        return self.measurements[0]

    @rim_base.setter
    def rim_base(self, value: bytes) -> None:
        self.measurements[0] = value

    @property
    def par_size(self) -> int:
        """Size of the Protected IPA range: the lower half of the IPA space (A5.2.1)."""
        return protected_limit(self.ipa_width)

    def is_protected(self, ipa: int) -> bool:
        """AddrIsProtected (B3.4)."""
        return ipa < self.protected_top

    def __post_init__(self) -> None:
        self.protected_top = protected_limit(self.ipa_width)
        self.rim_key = next(_KEYS)

    def starting_rtts(self) -> list[int]:
        """PAs of the starting-level RTT granules."""
        return [self.rtt_base + i * GRANULE_SIZE for i in range(self.rtt_num_start)]
