"""The RIM of a realm under construction is completed before anything observes it, whether
the RMM computes the chain itself or its helper process does (ccasim.rmm.rim): any sequence of
measured and unmeasured pages, other RIM extensions and reads, over several realms, gives the
RIMs and the log the spec's step-by-step extension gives, including when the helper dies."""

from __future__ import annotations

import hashlib
import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccasim.rmi import measurement
from ccasim.rmi.types import HashAlgorithm
from ccasim.rmm import hash_worker, rim
from support import GRANULE, Host

SHA = {0: HashAlgorithm.SHA_256, 1: HashAlgorithm.SHA_512}


@pytest.fixture
def helper(monkeypatch):
    """The helper takes over from the first batch, and batches are small."""
    monkeypatch.setattr(rim, "WORKER_AFTER", 1)
    monkeypatch.setattr(hash_worker, "BATCH", 3)
    monkeypatch.delenv("CCASIM_HASH_WORKER", raising=False)
    if rim.worker() is None:
        pytest.skip("the helper process cannot run here")
    return rim.worker()


@pytest.fixture
def no_helper(monkeypatch):
    monkeypatch.setenv("CCASIM_HASH_WORKER", "0")
    monkeypatch.setattr(rim, "_worker", None)


class Build:
    """Realms built page by page on one host, with the RIM each should have by the spec."""

    def __init__(self, algos: list[int]) -> None:
        self.host = Host()
        self.realms = []
        self.expected = []
        self.next_ipa = []
        self.recs = [0] * len(algos)
        for i, algo in enumerate(algos):
            realm = self.host.realm(vmid=i + 1, hash_algo=algo)
            self.realms.append(realm)
            self.expected.append(self.host.m.realm_measurements(realm.rd)[0].ljust(64, b"\0"))
            self.next_ipa.append(0)

    def data(self, i: int, measured: bool, seed: int) -> None:
        realm, ipa = self.realms[i], self.next_ipa[i]
        if ipa % 0x20_0000 == 0:
            self.host.tables(realm, ipa)
        page = hashlib.sha512(seed.to_bytes(8, "little")).digest() * (GRANULE // 64)
        src = self.host.ns_page(page)
        flags = 1 if measured else 0
        self.host.rmi.data_create(realm.rd, self.host.delegated(), ipa, src, flags).check()
        algo = SHA[realm.params.hash_algo]
        self.expected[i] = measurement.rim_extend_data(
            algo, self.expected[i], ipa, flags, page if measured else None
        )
        self.next_ipa[i] = ipa + GRANULE

    def rec(self, i: int) -> None:
        """REC_CREATE: the RMM reads the RIM to extend it (an observation)."""
        realm = self.realms[i]
        runnable = self.recs[i] % 2 == 0  # only a runnable REC extends the RIM (B4.3.12.4)
        params = self.host.rec_params(realm, index=self.recs[i], runnable=runnable)
        self.recs[i] += 1
        if runnable:
            algo = SHA[realm.params.hash_algo]
            self.expected[i] = measurement.rim_extend_rec(algo, self.expected[i], params)
        rec, run = self.host.delegated(), self.host.ns_page()
        self.host.rmi.rec_create(realm.rd, rec, run, params).check()

    def rim(self, i: int) -> bytes:
        realm = self.realms[i]
        size = SHA[realm.params.hash_algo].digest_size
        return self.host.m.realm_measurements(realm.rd)[0][:size]

    def check(self) -> None:
        for i, realm in enumerate(self.realms):
            size = SHA[realm.params.hash_algo].digest_size
            assert self.rim(i) == self.expected[i][:size], f"realm {i}"


KINDS = st.sampled_from(["data", "data", "data", "unmeasured", "rec", "read"])
STEPS = st.lists(st.tuples(KINDS, st.integers(0, 1), st.integers(0, 1 << 32)), max_size=40)
FIXTURES = [HealthCheck.function_scoped_fixture]  # the fixtures only set the mode


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES)
@given(algos=st.lists(st.integers(0, 1), min_size=1, max_size=2), steps=STEPS)
def test_any_build_gives_the_spec_rim_with_the_helper(helper, algos, steps):
    run_steps(algos, steps)


@settings(max_examples=10, deadline=None, suppress_health_check=FIXTURES)
@given(algos=st.lists(st.integers(0, 1), min_size=1, max_size=2), steps=STEPS)
def test_any_build_gives_the_spec_rim_without_the_helper(no_helper, algos, steps):
    run_steps(algos, steps)


def run_steps(algos: list[int], steps: list) -> None:
    build = Build(algos)
    for kind, which, seed in steps:
        i = which % len(algos)
        if kind == "rec":
            build.rec(i)
        elif kind == "read":
            build.check()
        else:
            build.data(i, kind == "data", seed)
    build.check()


def test_activation_seals_the_rim_the_helper_computed(helper):
    build = Build([0])
    for seed in range(20):
        build.data(0, True, seed)
    build.host.rmi.realm_activate(build.realms[0].rd).check()  # the RIM is final here
    assert build.rim(0) == build.expected[0][:32]


def test_the_ring_wraps_and_many_realms_interleave(monkeypatch, helper):
    monkeypatch.setattr(hash_worker, "BATCH", 200)
    build = Build([0, 1, 0])
    for n in range(hash_worker.SLOTS // 3 + 300):  # more items than the ring has slots
        for i in range(3):
            build.data(i, n % 7 != 0, n * 3 + i)
    build.check()


def test_a_helper_that_dies_leaves_the_rim_exact(helper):
    build = Build([0, 1])
    for n in range(30):
        build.data(n % 2, True, n)
    helper._child.kill()
    helper._child.wait()
    for n in range(30, 40):
        build.data(n % 2, True, n)
    build.check()
    assert rim.worker() is not helper  # a new helper serves later realms


def test_a_realm_destroyed_before_its_rim_was_read_is_forgotten(helper):
    """Pages measured, the realm torn down unread, a new realm made in the same RD and
    starting RTT: its RIM starts from its own REALM_CREATE, not from the old chain."""
    host = Host()
    realm = host.realm(vmid=1)
    host.tables(realm, 0)
    for n in range(12):
        src = host.ns_page(bytes([n]) * GRANULE)
        host.rmi.data_create(realm.rd, host.delegated(), n * GRANULE, src, 1).check()
    for n in range(12):
        host.rmi.data_destroy(realm.rd, n * GRANULE).check()
    for level in (3, 2, 1):
        host.rmi.rtt_destroy(realm.rd, 0, level).check()
    host.rmi.realm_destroy(realm.rd).check()

    params = host.realm_params(vmid=2, rtt_base=realm.params.rtt_base)
    host.rmi.realm_create(realm.rd, host.ns_page(), params).check()
    again = type(realm)(realm.rd, params, realm.params_ptr)
    host.tables(again, 0)
    page = b"\x5a" * GRANULE
    host.rmi.data_create(realm.rd, host.delegated(), 0, host.ns_page(page), 1).check()
    start = measurement.rim_init(HashAlgorithm.SHA_256, params)
    expected = measurement.rim_extend_data(HashAlgorithm.SHA_256, start, 0, 1, page)
    assert host.m.realm_measurements(realm.rd)[0] == expected[:32]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_process_computes_the_rim_itself_and_leaves_the_helper_alone(helper):
    build = Build([0])
    for n in range(20):
        build.data(0, True, n)
    pid = os.fork()
    if pid == 0:  # the child: the parent's helper is not its own
        try:
            build.data(0, True, 99)
            build.check()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    build.check()  # the parent's chain was not disturbed
    assert rim.worker() is helper


def test_a_helper_that_cannot_start_leaves_the_rim_exact(monkeypatch):
    monkeypatch.setattr(rim, "WORKER_AFTER", 1)
    monkeypatch.setattr(hash_worker, "BATCH", 3)
    monkeypatch.delenv("CCASIM_HASH_WORKER", raising=False)
    monkeypatch.setattr(rim, "_worker", None)
    monkeypatch.setattr(rim, "_worker_failed", False)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    build = Build([1])
    for n in range(12):
        build.data(0, True, n)
    build.check()
    assert rim.worker() is None
