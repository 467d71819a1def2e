"""The platform ``ccasim run`` boots on: an FVP-like machine whose RMM supports what the
host-capability options say (the options ``ccasim measure`` takes, with the same meaning).

What is not given is the RMM's default (:class:`~ccasim.rmm.features.RmmFeatures`): a 48-bit
IPA space, 16 breakpoints and watchpoints, SVE up to 2048 bits, a PMU with 31 counters, SHA-256
and SHA-512. DRAM is the FVP's two banks, the second grown so that the host has ``host_ram``
in all (memory costs nothing until it is used).
"""

from __future__ import annotations

from collections.abc import Mapping

from ccasim.hw.platform import GiB, fvp_base
from ccasim.machine import Machine
from ccasim.rmm.features import RmmFeatures
from ccasim.rmm.profile import RmmProfile
from ccasim.vmm.capabilities import Capabilities

DEFAULT_HOST_RAM = 32 * GiB
DRAM0 = 2 * GiB


def full_caps(given: Capabilities) -> Capabilities:
    """``given`` with every value it leaves open set to the RMM's default."""
    f = RmmFeatures()
    lpa2 = given.lpa2 if given.lpa2 is not None else bool(given.ipa_bits and given.ipa_bits > 48)
    pmu = given.pmu if given.pmu is not None else f.pmu
    return Capabilities(
        ipa_bits=given.ipa_bits if given.ipa_bits is not None else f.max_ipa_width,
        num_bps=given.num_bps if given.num_bps is not None else f.num_bps,
        num_wps=given.num_wps if given.num_wps is not None else f.num_wps,
        sve_vl=given.sve_vl if given.sve_vl is not None else (f.max_sve_vl + 1) * 128,
        pmu=pmu,
        pmu_num_ctrs=(given.pmu_num_ctrs if given.pmu_num_ctrs is not None else f.pmu_num_ctrs)
        if pmu
        else 0,
        lpa2=lpa2,
        hash_algo=given.hash_algo,
    )


def rmm_features(caps: Capabilities, hpmn0: bool = True) -> RmmFeatures:
    """The RMM features of a platform offering ``caps`` (complete: see :func:`full_caps`),
    with or without FEAT_HPMN0."""
    assert caps.ipa_bits is not None and caps.sve_vl is not None
    return RmmFeatures(
        max_ipa_width=caps.ipa_bits,
        lpa2=bool(caps.lpa2),
        sve=caps.sve_vl > 0,
        max_sve_vl=max(caps.sve_vl // 128 - 1, 0),
        num_bps=caps.num_bps or 2,
        num_wps=caps.num_wps or 2,
        pmu=bool(caps.pmu),
        pmu_num_ctrs=caps.pmu_num_ctrs or 0,
        sha_256=caps.hash_algo in (None, "sha256"),
        sha_512=caps.hash_algo in (None, "sha512"),
        hpmn0=hpmn0,
    )


def make_machine(
    caps: Capabilities,
    host_ram: int = DEFAULT_HOST_RAM,
    fallback: tuple[str, Mapping[str, int | bytes | str]] | None = None,
    rmm_profile: RmmProfile | str = "spec",
    hpmn0: bool = True,
) -> Machine:
    """The machine: FVP memory map (52-bit PAs with LPA2), ``host_ram`` of DRAM, the RMM
    ``rmm_profile`` models (:mod:`ccasim.rmm.profile`)."""
    if host_ram <= DRAM0 or host_ram % (2 << 20):
        raise ValueError(f"the host's RAM must be a multiple of 2 MiB above {DRAM0 >> 30} GiB")
    features = rmm_features(caps, hpmn0)
    pa_bits = 52 if features.lpa2 else 48
    platform = fvp_base(pa_bits, dram0_size=DRAM0, dram1_size=host_ram - DRAM0)
    return Machine(platform, features=features, fallback=fallback, rmm_profile=rmm_profile)
