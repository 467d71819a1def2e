"""Hypothesis strategies several test modules share."""

from __future__ import annotations

from hypothesis import strategies as st

from ccasim.measure import Capabilities


@st.composite
def host_capabilities(draw, ipa_bits: int) -> Capabilities:
    """What a host may offer a realm with an ``ipa_bits`` IPA space: every capability set."""
    return Capabilities(
        ipa_bits=ipa_bits,
        num_bps=draw(st.integers(2, 16)),
        num_wps=draw(st.integers(2, 16)),
        sve_vl=draw(st.sampled_from([0, 128, 512, 2048])),
        pmu=draw(st.booleans()),
        pmu_num_ctrs=draw(st.integers(0, 31)),
        hash_algo=draw(st.sampled_from(["sha256", "sha512"])),
    )
