"""ccasim.check: the stack's invariants, around every SMC; and that a broken state is caught.

The invariants hold on every path the other tests take (test_properties runs the checker on
random RMI sequences, the KVM tests audit the host's pages with it); here, each kind of
violation is made by hand in a machine's state, and the checker names it.
"""

from __future__ import annotations

import json

import pytest

import ccasim
from ccasim.check import InvariantChecker, InvariantViolation, check_host_pages, check_structure
from ccasim.kvm import Owner
from ccasim.rmi import FID
from ccasim.rmm.s2tt import TABLE, rtte
from ccasim.rmm.types import GranuleState, Ripas
from kvm_host import program_realm, serve
from support import Host, RealmHandle
from test_run import run_json


def built() -> tuple[ccasim.Machine, InvariantChecker, Host, RealmHandle]:
    """A machine with the checker on, and a realm with a DATA granule and a REC."""
    m = ccasim.Machine()
    checker = InvariantChecker(m)
    host = Host(machine=m)
    realm = host.realm()
    host.data(realm, 0x1000)
    host.rec(realm)
    return m, checker, host, realm


def test_a_realm_built_and_activated_keeps_every_invariant():
    m, checker, host, realm = built()
    host.rmi.realm_activate(realm.rd).check()
    checker.finish()
    assert checker.smcs > 20 and checker.checks > 2 * checker.smcs


@pytest.mark.parametrize("break_it, message", [
    (lambda rmm, rd: rmm.granules.__setitem__(rd >> 12, GranuleState.DELEGATED),
     "objects disagree"),
    (lambda rmm, rd: rmm.realms[rd].__setattr__("num_recs", 5), "counts 5 RECs"),
    (lambda rmm, rd: rmm.vmids.add(77), "VMIDs in use"),
    (lambda rmm, rd: rmm.rtts[rmm.realms[rd].rtt_base].__setitem__(
        0x100, rtte(TABLE, Ripas.EMPTY, rmm.rtts[rmm.realms[rd].rtt_base][0].addr)),
     "reached by no entry, or by more than one"),
    (lambda rmm, rd: rmm.mem.memory.write(next(
        g << 12 for g, s in rmm.granules.items() if s is GranuleState.DELEGATED), b"x"),
     "holds data"),
])  # fmt: skip
def test_a_broken_state_is_named(break_it, message):
    """Made by hand in the RMM's state (what a bug would do), each violation is caught at
    the next SMC, named with that SMC."""
    m, _, host, realm = built()
    host.delegated()  # one DELEGATED granule holding nothing, for the last case
    break_it(m._rmm, realm.rd)
    with pytest.raises(InvariantViolation, match=message) as caught:
        m.smc(FID.VERSION, 0x10000)
    assert str(caught.value).startswith("after RMI_VERSION 0x10000: ")


def test_a_rim_that_is_not_the_replay_is_caught():
    """A7.1.1: the RIM must be what the construction the host asked for gives."""
    m, _, host, realm = built()
    m._rmm.realms[realm.rd].measurements[0] = bytes(64)  # as if a step had not been measured
    with pytest.raises(InvariantViolation, match="not the replay of its construction"):
        host.data(realm, 0x2000)


def test_the_host_pages_balance_with_the_rmm():
    """KVM's accounting (ccasim.kvm) against the granule states, and a page it loses track
    of is named."""
    realm = program_realm("t.kvm-idle")
    serve(realm.vcpus[0])
    kvm, m = realm.kvm, realm.kvm.machine
    check_host_pages(kvm, m)
    check_structure(m)
    page = kvm.pages.pages(Owner.DATA)[0]
    kvm.pages.give(page, Owner.KERNEL)
    with pytest.raises(InvariantViolation, match=f"{page:#x}"):
        check_host_pages(kvm, m)


def test_run_check_invariants(capsys):
    status, report, err = run_json(capsys, "-m", "64M", "--check-invariants")
    assert status == 0 and report["error"] is None, err
    assert report["invariants"]["smcs"] > 1000
    assert report["invariants"]["checks"] > report["invariants"]["smcs"]
    json.dumps(report)


def test_an_unprotected_mapping_of_a_realm_granule_is_no_violation():
    """Found by the campaign (a false alarm of the checker's): RTT_MAP_UNPROTECTED checks no
    PAS (B4.3.19), so an Unprotected IPA may be mapped to a Realm granule's address; the GPT
    is what keeps the granule from an access through the NS PAS."""
    m, checker, host, realm = built()
    host.tables(realm, 1 << 47, 3)
    granule = host.delegated()
    attrs = 0x7 << 2 | 0x3 << 6
    assert host.rmi.rtt_map_unprotected(realm.rd, 1 << 47, 3, granule | attrs).ok
    checker.finish()  # no InvariantViolation
    assert m.granule_state(granule) == "DELEGATED"
