"""RMM profiles: the spec (default) and TF-RMM rmm-spec-v1.0-rel0, quirk by quirk.

For each quirk, the same host calls on a ``spec`` machine and on a machine with that quirk
alone: the spec's answer (the rule cited) on the first, TF-RMM's on the second, and nothing
else different. The crash classes stop the RMM: RmmPanic, no state changed, no more answers.
"""

from __future__ import annotations

from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ccasim
from ccasim.psci import PsciFid, PsciReturn
from ccasim.rmi import FID, Status
from ccasim.rmi.commands import RMI_COMMANDS
from ccasim.rmi.types import Ripas as RmiRipas
from ccasim.rmi.types import RttEntryState
from ccasim.rmm.profile import PROFILES, QUIRK_CLASS, Quirk, profile
from ccasim.smccc import NOT_SUPPORTED, SMCCC_VERSION, VERSION_1_2
from ccasim.trace import TraceWriter
from support import GRANULE, Host, Puppet, snapshot
from test_run import PLATFORM, cli, image, predicted_rim, run_json

SMCCC_ARCH_FEATURES = 0x8000_0001


def pair(*quirks: str) -> tuple[Host, Host]:
    """A host on the spec and one on the spec with ``quirks``, allocating alike."""
    return Host(), Host(rmm_profile=profile("spec", *quirks))


def test_profiles_and_quirks_by_name():
    assert ccasim.Machine().rmm_profile is PROFILES["spec"] and not PROFILES["spec"].quirks
    release, debug = PROFILES["tfrmm-1.0"], PROFILES["tfrmm-1.0-debug"]
    assert debug.quirks == frozenset(Quirk)
    assert debug.quirks - release.quirks == {Quirk.REC_AUX_UNLOCK_ASSERT}
    assert sorted(QUIRK_CLASS.values()) == list("ACDEFGHIJ")
    one = profile("spec", "x4-preserved")
    assert one.name == "spec+x4-preserved" and one.quirks == {Quirk.X4_PRESERVED}
    assert ccasim.Machine(rmm_profile="tfrmm-1.0").rmm_profile is release
    with pytest.raises(ValueError, match=r"unknown RMM quirk 'x5'.*x4-preserved"):
        profile("spec", "x5")
    with pytest.raises(ValueError, match=r"unknown RMM profile 'tf'.*tfrmm-1\.0"):
        ccasim.Machine(rmm_profile="tf")


# -- A: X4 -------------------------------------------------------------------------------------


@given(
    fid=st.sampled_from([*sorted(RMI_COMMANDS), 0xC400_0160, 0xC400_018F]),
    regs=st.lists(st.integers(0, (1 << 64) - 1), min_size=4, max_size=6),
)
def test_x4_preserved_returns_the_callers_x4(fid, regs):
    """(A) B1.2: X0-X16 that are not outputs read 0 on the spec; with x4-preserved, X4 is
    the caller's, except RTT_READ_ENTRY's own output on success. X0-X3 are the spec's."""
    spec, quirky = ccasim.Machine(), ccasim.Machine(rmm_profile=profile("spec", "x4-preserved"))
    a, b = spec.smc(fid, *regs), quirky.smc(fid, *regs)
    assert a[:4] == b[:4]
    if fid == FID.RTT_READ_ENTRY and a[0] == 0:
        assert b[4] == a[4]
    else:
        assert (a[4], b[4]) == (0, regs[3])


def test_x4_of_a_successful_read_entry_is_its_ripas():
    spec, quirky = pair("x4-preserved")
    for host in (spec, quirky):
        realm = host.realm()
        out = host.m.smc(FID.RTT_READ_ENTRY, realm.rd, 0, 0, 0xDEAD)
        assert out[0] == 0 and out[4] == RmiRipas.EMPTY


# -- C: rtt_base alignment ----------------------------------------------------------------------


def test_rtt_align_unchecked_creates_the_realm():
    """(C) B4.3.9.2 rtt_align: two concatenated level 1 RTTs must start 8 KiB aligned; TF-RMM
    takes them where they are, and the realm works (a walk through the second one)."""
    results = []
    for host in pair("rtt-align-unchecked"):
        base = host.delegated(3)
        rtt_base = base if base % (2 * GRANULE) else base + GRANULE  # 4 KiB, not 8 KiB
        params = dict(s2sz=40, rtt_level_start=1, rtt_num_start=2, rtt_base=rtt_base)
        result = host.rmi.realm_create(
            host.delegated(), host.ns_page(), host.realm_params(**params)
        )
        results.append((result.status, host.last_condition))
        if result.ok:
            rd = host.smc_log[-1].args[0]
            assert host.rmi.rtt_read_entry(rd, 1 << 39, 1).check().walk_level == 1
    assert results == [(Status.ERROR_INPUT, "rtt_align"), (Status.SUCCESS, None)]


# -- D, E, F: RTT_INIT_RIPAS ---------------------------------------------------------------------


def init_ripas(host: Host, base: int, top: int, activate: bool = False, prepare=None):
    realm = host.realm()
    host.tables(realm, 0)
    if prepare:
        prepare(host, realm)
    if activate:
        host.rmi.realm_activate(realm.rd).check()
    before = host.m.realm_measurements(realm.rd)[0]
    result = host.rmi.rtt_init_ripas(realm.rd, base, top)
    return result, host.last_condition, before != host.m.realm_measurements(realm.rd)[0]


@pytest.mark.parametrize("activate", [False, True], ids=["new", "active"])
def test_init_ripas_base_input(activate):
    """(D) A base not 4 KiB aligned: B4.3.18.2 base_align is RMI_ERROR_RTT(walk level), and
    unordered with realm_state (ccasim checks the state first); TF-RMM: RMI_ERROR_INPUT,
    before the state."""
    spec, quirky = (
        init_ripas(h, 0x1800, 0x3000, activate)[:2] for h in pair("init-ripas-base-input")
    )
    expected = (Status.ERROR_REALM, 0) if activate else (Status.ERROR_RTT, 3)
    assert (spec[0].status, spec[0].index) == expected
    assert (quirky[0].status, quirky[1]) == (
        Status.ERROR_INPUT,
        "base_align [init-ripas-base-input]",
    )


def assigned_at_0x2000(host, realm):
    host.data(realm, 0x2000)


def destroyed_at_0x2000(host, realm):
    host.data(realm, 0x2000)
    host.rmi.data_destroy(realm.rd, 0x2000).check()


@pytest.mark.parametrize("prepare", [assigned_at_0x2000, destroyed_at_0x2000])
def test_init_ripas_stops_early(prepare):
    """(E) An ASSIGNED or DESTROYED entry after the first: the spec goes on to the first
    TABLE entry or top (RttSkipEntriesWithRipas, B3.75); TF-RMM stops there, with a smaller
    out_top and fewer RIM descriptors."""
    spec, quirky = (
        init_ripas(h, 0x1000, 0x4000, prepare=prepare) for h in pair("init-ripas-stops-early")
    )
    assert spec[0].check().out_top == 0x4000 and quirky[0].check().out_top == 0x2000
    assert spec[2] and quirky[2]


def test_init_ripas_refuses_destroyed():
    """(F) The first entry UNASSIGNED with RIPAS DESTROYED: no condition of B4.3.18.2 holds,
    success; TF-RMM: RMI_ERROR_RTT(3) and the RIM unchanged."""
    spec, quirky = (
        init_ripas(h, 0x2000, 0x3000, prepare=destroyed_at_0x2000)
        for h in pair("init-ripas-refuses-destroyed")
    )
    assert spec[0].check().out_top == 0x3000 and spec[2]
    assert (quirky[0].status, quirky[0].index, quirky[2]) == (Status.ERROR_RTT, 3, False)


# -- G: RTT_READ_ENTRY --------------------------------------------------------------------------


def test_read_entry_destroyed_no_desc():
    """(G) An ASSIGNED entry with RIPAS DESTROYED (DATA_CREATE_UNKNOWN over a destroyed page
    keeps the RIPAS, A5.3.5): B4.3.20.3 desc is the DATA granule's PA; TF-RMM: 0."""
    entries = []
    for host in pair("read-entry-destroyed-no-desc"):
        realm = host.realm()
        destroyed_at_0x2000(host, realm)
        data = host.delegated()
        host.rmi.data_create_unknown(realm.rd, data, 0x2000).check()
        entry = host.rmi.rtt_read_entry(realm.rd, 0x2000, 3).check()
        entries.append((entry.state, entry.ripas, entry.desc, data))
    (s_state, s_ripas, s_desc, s_data), (q_state, q_ripas, q_desc, _) = entries
    assert (s_state, s_ripas, s_desc) == (RttEntryState.ASSIGNED, RmiRipas.DESTROYED, s_data)
    assert (q_state, q_ripas, q_desc) == (RttEntryState.ASSIGNED, RmiRipas.DESTROYED, 0)


# -- H, I: the RMM stops -----------------------------------------------------------------------


def stops(host: Host, call) -> ccasim.RmmPanic:
    """Run ``call``: it raises RmmPanic, changes nothing, and the RMM answers no more."""
    before = snapshot(host.m)
    with pytest.raises(ccasim.RmmPanic) as raised:
        call()
    assert snapshot(host.m) == before
    assert host.m.rmm_panic is raised.value
    with pytest.raises(ccasim.RmmPanic):
        host.m.smc(FID.VERSION, 0x10000)
    return raised.value


@pytest.mark.parametrize("bad", [0, 1, 5])
def test_rec_aux_unlock_assert(bad):
    """(H) An auxiliary granule that is not DELEGATED: B4.3.12.2 aux_state, RMI_ERROR_INPUT,
    on the spec and on TF-RMM's Release build; its Debug build stops when it is not the
    first."""
    outcomes = []
    for name in ("spec", "tfrmm-1.0", "tfrmm-1.0-debug"):
        host = Host(rmm_profile=name)
        realm = host.realm()
        params = host.rec_params(realm)
        params.aux[bad] = host.alloc()  # NS: not DELEGATED
        rec, page = host.delegated(), host.ns_page(params.pack())
        call = partial(host.m.smc, FID.REC_CREATE, realm.rd, rec, page)
        if name.endswith("debug") and bad:
            panic = stops(host, call)
            assert "auxiliary granule" in panic.reason and panic.fid == FID.REC_CREATE
            outcomes.append("panic")
        else:
            outcomes.append((call()[0], host.last_condition))
    expected = (Status.ERROR_INPUT, "aux_state")
    assert outcomes == [expected, expected, "panic" if bad else expected]


@pytest.mark.parametrize("command", ["map", "unmap"])
def test_unprotected_level_crash(command):
    """(I) Level 1 in a realm whose RTTs start at level 2: B4.3.19.2 / B4.3.22.2
    level_bound, RMI_ERROR_INPUT; TF-RMM walks into a table that does not exist."""
    for name in ("spec", "tfrmm-1.0"):
        host = Host(rmm_profile=name)
        realm = level2_realm(host)
        ipa, desc = 1 << 31, 0x4000_0000 | 0x7 << 2 | 0x3 << 6  # unprotected 1 GiB, NS RW
        if command == "map":
            call = partial(host.rmi.rtt_map_unprotected, realm.rd, ipa, 1, desc)
        else:
            call = partial(host.rmi.rtt_unmap_unprotected, realm.rd, ipa, 1)
        if name == "spec":
            assert (call().status, host.last_condition) == (Status.ERROR_INPUT, "level_bound")
        else:
            assert "does not exist" in stops(host, call).reason


def level2_realm(host: Host):
    """A realm with 32-bit IPAs whose RTTs start at level 2 (four concatenated RTTs)."""
    base = host.delegated(8)
    rtt_base = (base + 4 * GRANULE - 1) & ~(4 * GRANULE - 1)
    return host.realm(s2sz=32, rtt_level_start=2, rtt_num_start=4, rtt_base=rtt_base)


def test_a_panic_is_in_the_trace(tmp_path):
    lines: list[str] = []
    m = ccasim.Machine(rmm_profile="tfrmm-1.0")
    host = Host(machine=m)
    realm = level2_realm(host)
    m.on_rmm_log(TraceWriter(lines.append))
    with pytest.raises(ccasim.RmmPanic):
        host.rmi.rtt_unmap_unprotected(realm.rd, 1 << 31, 1)
    assert lines == [
        f"ccasim: RMM panic in SMC_RMI_RTT_UNMAP_UNPROTECTED {realm.rd:x} 80000000 1: "
        f"{m.rmm_panic.reason}\n"
    ]


# -- J: SMCCC_VERSION from a realm --------------------------------------------------------------


@pytest.mark.parametrize("quirks", [(), ("smccc-version-answered",)])
def test_smccc_version_from_a_realm(quirks):
    """(J) B1.1: a realm's SMC that is not RSI or PSCI returns SMCCC_NOT_SUPPORTED, and
    PSCI_FEATURES says so of SMCCC_VERSION (B6.3.5 func_not_ok); TF-RMM answers SMCCC 1.2
    and reports it supported. Other SMCs and PSCI_FEATURES answers are the same on both."""
    host = Host(rmm_profile=profile("spec", *quirks))
    puppet = Puppet(host)
    version = puppet.smc(SMCCC_VERSION).gprs[:4]
    features = puppet.smc(PsciFid.FEATURES, SMCCC_VERSION).gprs[0]
    arch_features = puppet.smc(SMCCC_ARCH_FEATURES, SMCCC_VERSION).gprs[0]
    psci_version = puppet.smc(PsciFid.FEATURES, PsciFid.VERSION).gprs[0]
    if quirks:
        assert (version, features) == ([VERSION_1_2, 0, 0, 0], PsciReturn.SUCCESS.encode())
    else:
        assert (version, features) == ([NOT_SUPPORTED, 0, 0, 0], PsciReturn.NOT_SUPPORTED.encode())
    assert arch_features == NOT_SUPPORTED and psci_version == PsciReturn.SUCCESS.encode()


# -- the command line ----------------------------------------------------------------------------


def test_run_and_measure_take_the_profile(capsys, tmp_path):
    """``ccasim run --rmm-profile tfrmm-1.0`` boots the realm on the TF-RMM profile, whose
    RIM is what ``ccasim measure --rmm-profile tfrmm-1.0`` predicts for the same launch (no
    quirk meets a VMM's construction, and measure says so)."""
    status, report, err = run_json(capsys, "-m", "64M", "--rmm-profile", "tfrmm-1.0",
                                   "--rmm-quirk", "x4-preserved")  # fmt: skip
    assert status == 0, err
    assert report["platform"]["rmm_profile"] == "tfrmm-1.0" and report["rim_as_predicted"]
    measured = report["measurements"]["RIM"]
    kernel = image(tmp_path)  # the default guest's image, which the run embeds
    tfrmm = [*PLATFORM, "--rmm-profile", "tfrmm-1.0"]
    assert predicted_rim(capsys, "-c", "2", "-m", "64M", "-k", kernel, platform=tfrmm) == measured
    status, _, err = cli(capsys, "measure", *PLATFORM, "--rmm-profile", "tfrmm-1.0-debug",
                         "kvmtool", "--realm", "-c", "2", "-m", "64M", "-k", kernel)  # fmt: skip
    assert status == 0 and "the measurements are the spec's" in err
    status, _, err = cli(capsys, "run", "--rmm-profile", "tfrmm-2")
    assert status == 2 and "tfrmm-2" in err and len(err.splitlines()) == 1


def test_a_platform_without_hpmn0_refuses_a_pmu_with_no_counters(capsys):
    """B3.34 RealmParamsSupported: a PMU with 0 counters needs FEAT_HPMN0."""
    argv = ("-m", "64M", "--pmu-num-ctrs", "0", "--pmu")
    status, report, err = run_json(capsys, *argv, "--hpmn0", "false")
    assert status == 1 and "RMI_REALM_CREATE failed" in report["refused"]
    status, report, err = run_json(capsys, *argv)
    assert status == 0, err
