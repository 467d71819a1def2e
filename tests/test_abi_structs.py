"""The RMI in-memory structures as host code writes them (B4.4.12, B4.4.19, B4.4.20): counts
against their encodings, and values that do not fit a member."""

from __future__ import annotations

import dataclasses
import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccasim.measure import Capabilities, Launch, RimCalculator
from ccasim.rmi import RealmParams, RecEnter, RecExit, RecParams, measurement
from ccasim.rmi.types import REALM_FLAG_SVE, HashAlgorithm

STRUCTS = (RealmParams, RecParams, RecEnter, RecExit)
counts = st.integers(2, 64)
vector_lengths = st.sampled_from([0, *range(128, 2049, 128)])


@given(breakpoints=counts, watchpoints=counts, vl=vector_lengths)
def test_counts_and_their_encodings(breakpoints, watchpoints, vl):
    """B4.4.12: num_bps/num_wps are counts minus one, sve_vl is VL/128 - 1 with the SVE flag;
    from_counts writes them and the properties read them back."""
    params = RealmParams.from_counts(
        breakpoints=breakpoints, watchpoints=watchpoints, sve_vector_length=vl
    )
    assert (params.num_bps, params.num_wps) == (breakpoints - 1, watchpoints - 1)
    assert bool(params.flags & REALM_FLAG_SVE) == bool(vl)
    assert params.sve_vl == (vl // 128 - 1 if vl else 0)
    assert (params.breakpoints, params.watchpoints, params.sve_vector_length) == (
        breakpoints,
        watchpoints,
        vl,
    )
    assert RealmParams.unpack(params.pack()) == params


def test_a_count_written_as_an_encoding_is_another_realm():
    """The trap the docs warn of: num_bps=2 asks for three breakpoints, so its RIM is not the
    one ``ccasim measure --num-bps 2`` predicts, which is from_counts(breakpoints=2)'s."""
    caps = Capabilities(ipa_bits=48, num_bps=2, num_wps=2, sve_vl=0, pmu=False, hash_algo="sha256")
    calculator = RimCalculator(Launch(caps, [], [], 0, 0))
    calculator.compute()
    predicted = calculator.steps[0].rim  # after REALM_CREATE
    right = RealmParams.from_counts(breakpoints=2, watchpoints=2, s2sz=48)
    wrong = RealmParams(s2sz=48, num_bps=2, num_wps=2)
    assert (right.breakpoints, wrong.breakpoints) == (2, 3)
    rim = [measurement.rim_init(HashAlgorithm.SHA_256, p) for p in (right, wrong)]
    assert rim[0] == predicted != rim[1]


@pytest.mark.parametrize(
    "counts, message",
    [({"breakpoints": 1, "watchpoints": 2}, "breakpoints=1"),
     ({"breakpoints": 2, "watchpoints": 65}, "watchpoints=65"),
     ({"breakpoints": 2, "watchpoints": 2, "sve_vector_length": 100}, "sve_vector_length=100")],
)  # fmt: skip
def test_counts_outside_the_architecture_are_refused(counts, message):
    with pytest.raises(ValueError, match=message):
        RealmParams.from_counts(**counts)


def _members(cls):
    for f in dataclasses.fields(cls):
        fmt = f.metadata["fmt"]
        if not fmt.endswith("s"):
            bits = 8 * struct.calcsize(fmt)
            signed = fmt.islower()
            yield f.name, f.metadata["count"], bits, signed


@st.composite
def misfits(draw):
    """A structure, one of its integer members, and a value that member cannot hold."""
    cls = draw(st.sampled_from(STRUCTS))
    name, count, bits, signed = draw(st.sampled_from(list(_members(cls))))
    low, high = (-(1 << bits - 1), (1 << bits - 1) - 1) if signed else (0, (1 << bits) - 1)
    value = draw(st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)))
    index = draw(st.integers(0, count - 1))
    return cls, name, count, index, value


@given(misfit=misfits())
def test_a_value_that_does_not_fit_is_named(misfit):
    """Not a struct.error: a ValueError naming the structure, the member and its range."""
    cls, name, count, index, value = misfit
    obj = cls()
    if count > 1:
        getattr(obj, name)[index] = value
        where = f"{name}[{index}]"
    else:
        setattr(obj, name, value)
        where = name
    expected = re.escape(f"{cls.__name__}.{where}={value} does not fit its ")
    with pytest.raises(ValueError, match=rf"^{expected}\d+-bit field"):
        obj.pack()


def test_bytes_are_never_truncated():
    with pytest.raises(ValueError, match=r"RealmParams\.rpv holds at most 64 bytes, not 65"):
        RealmParams(rpv=bytes(65)).pack()
    assert RealmParams(rpv=b"\x01" * 3).pack()[0x400:0x440] == b"\x01" * 3 + bytes(61)
