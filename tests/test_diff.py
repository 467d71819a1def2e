"""``ccasim diff``: generated sequences on two RMMs, classes of difference, reproducers.

Fixed seeds and budgets: the spec against TF-RMM's Debug profile finds every quirk class and
shrinks each to a handful of calls; the spec against itself finds nothing; a toy RMM built
from C here, behind the external ABI, shows the ctypes path end to end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccasim.cli import main
from ccasim.diff import Campaign, ExternalRmm, ModelRmm, Step, replay, shrink
from ccasim.diff.backends import ABI_HEADER
from ccasim.rmm.profile import QUIRK_CLASS, REALM_QUIRKS

TOY = Path(__file__).with_name("toy_rmm.c")
SEEDS = range(0, 300)


@pytest.fixture(scope="module")
def tfrmm_debug() -> Campaign:
    return Campaign("spec", "tfrmm-1.0-debug", SEEDS, length=200).run()


def test_the_spec_against_itself_differs_nowhere():
    campaign = Campaign("spec", "spec", range(0, 60), length=200).run()
    assert campaign.classes == {} and campaign.calls > 5000 and campaign.allowed == 0


def test_every_tfrmm_quirk_is_found_shrunk_and_named(tfrmm_debug):
    """Each class is one quirk's doing (replaying its reproducer with that quirk alone
    shows it), every quirk has a class, and each reproducer is a handful of calls that shows
    the class from a reset, and nothing on the spec against itself."""
    named: dict[str, list] = {}
    for found in tfrmm_debug.classes.values():
        assert len(found.quirks) == 1, (found.key, found.quirks)
        named.setdefault(found.quirks[0][0], []).append(found)
        assert 1 <= len(found.reproducer) <= 13 and len(found.reproducer) <= len(found.sequence)
        spec, debug = ModelRmm("spec"), ModelRmm("tfrmm-1.0-debug")
        assert any(d.key == found.key for d in replay(spec, debug, found.reproducer))
        assert replay(spec, ModelRmm("spec"), found.reproducer) == []
    host_side = [QUIRK_CLASS[q] for q in QUIRK_CLASS if q not in REALM_QUIRKS]
    assert sorted(named) == sorted(host_side)
    x4 = named["A"][0]
    assert x4.key == ("*", "mbz", "X4") and len(x4.commands) > 10 and len(x4.reproducer) == 1
    crashes = {f.key for c in "HI" for f in named[c]}
    assert all(kind == "stopped" for _, kind, _ in crashes)


def test_a_quirk_alone_is_found_alone():
    campaign = Campaign(
        "spec", "spec+read-entry-destroyed-no-desc", range(0, 120), length=200
    ).run()
    assert [f.quirks for f in campaign.classes.values()] == [["G: read-entry-destroyed-no-desc"]]
    (found,) = campaign.classes.values()
    assert found.key == ("RMI_RTT_READ_ENTRY", "output", "desc")


def test_seeds_are_deterministic_whatever_the_workers(tfrmm_debug):
    again = Campaign("spec", "tfrmm-1.0-debug", SEEDS, length=200, workers=2).run(
        shrink_classes=False
    )
    assert list(again.classes) == list(tfrmm_debug.classes)
    assert [c.seed for c in again.classes.values()] == [
        c.seed for c in tfrmm_debug.classes.values()
    ]
    assert again.calls == tfrmm_debug.calls


@given(st.lists(st.integers(0, 50), min_size=1, max_size=40), st.data())
def test_shrink_finds_a_minimal_subsequence(values, data):
    """ddmin keeps exactly the steps the property needs (here: two given ones, in order)."""
    steps = [Step(0xC400_0150, (v, i)) for i, v in enumerate(values)]
    need = sorted(data.draw(st.sets(st.integers(0, len(steps) - 1), min_size=1, max_size=2)))
    wanted = [steps[i] for i in need]

    def keeps(candidate):
        it = iter(candidate)
        return all(any(s == w for s in it) for w in wanted)

    assert shrink(steps, keeps) == wanted


def test_steps_round_trip_through_json(tfrmm_debug):
    for found in tfrmm_debug.classes.values():
        for step in found.reproducer:
            assert Step.from_json(json.loads(json.dumps(step.to_json()))) == step


# -- an RMM in C, behind the ABI -----------------------------------------------------------------


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> str:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the toy RMM")
    out = tmp_path_factory.mktemp("toy") / "libtoyrmm.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-Wall", "-Werror",
                    f"-I{ABI_HEADER.parent}", "-o", str(out), str(TOY)], check=True)  # fmt: skip
    return str(out)


def test_an_external_rmm_is_compared_through_the_abi(toy):
    """The toy implements VERSION, DELEGATE and UNDELEGATE as the spec says and nothing
    else: every class is a command it does not implement, none is one it does."""
    campaign = Campaign("spec", toy, range(0, 60), length=100).run()
    commands = {found.difference.step.name for found in campaign.classes.values()}
    assert "RMI_REALM_CREATE" in commands
    assert not commands & {"RMI_VERSION", "RMI_GRANULE_DELEGATE", "RMI_GRANULE_UNDELEGATE"}
    for found in campaign.classes.values():
        assert found.difference.b == "SMCCC_NOT_SUPPORTED" and found.quirks == []
    rmm = ExternalRmm(toy)
    rmm.reset()
    assert rmm.smc(0xC400_0151, (0x8800_0000,))[0] == 0
    assert rmm.granule_state(0x8800_0000) == "DELEGATED" and rmm.ns_read(0x8800_0000) is None
    assert not rmm.ns_write(0x8800_0000, b"x") and rmm.rim(0x8800_0000) is None


def test_a_library_without_the_abi_is_refused(tmp_path, toy):
    compiler = shutil.which("cc") or shutil.which("gcc")
    empty = tmp_path / "empty.c"
    empty.write_text("int nothing(void) { return 0; }\n")
    lib = tmp_path / "libempty.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(lib), str(empty)], check=True)
    with pytest.raises(ValueError, match="not an RMM for ccasim diff"):
        ExternalRmm(str(lib))


# -- the command line ----------------------------------------------------------------------------


def test_diff_command(tmp_path, capsys):
    report = tmp_path / "report.json"
    argv = ["diff", "--b", "spec+x4-preserved", "--sequences", "20", "--json", str(report)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "quirk: A: x4-preserved" in out and "B1.2" in out
    data = json.loads(report.read_text())
    assert data["sequences"] == 20 and [c["kind"] for c in data["classes"]] == ["mbz"]
    assert main(["diff", "--a", "spec", "--b", "spec", "--sequences", "5"]) == 0
    assert "no difference" in capsys.readouterr().out
    assert main(["diff", "--print-abi"]) == 0
    assert capsys.readouterr().out == ABI_HEADER.read_text()
    for bad in (
        ["--b", "tfrmm-9"],
        ["--b", "spec+x9"],
        ["--b", "./nothing.so"],
        ["--minutes", "0"],
        ["--workers", "0"],
        ["--length", "0"],
        ["--reproducers", __file__],  # a file, not a directory: refused before any call
        ["--json", str(tmp_path)],
    ):
        assert main(["diff", *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ccasim: error:") and len(err.splitlines()) == 1


def test_reproducers_are_written_as_tests_that_pass_once_the_rmms_agree(tmp_path, capsys):
    argv = ["diff", "--b", "spec+read-entry-destroyed-no-desc", "--sequences", "120",
            "--reproducers", str(tmp_path)]  # fmt: skip
    assert main(argv) == 1
    (path,) = tmp_path.glob("test_diff_*.py")
    assert "Quirk: G: read-entry-destroyed-no-desc" in path.read_text()
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
    assert subprocess.run(run, capture_output=True, check=False).returncode == 1
    path.write_text(path.read_text().replace("'spec+read-entry-destroyed-no-desc'", "'spec'"))
    assert subprocess.run(run, capture_output=True, check=False).returncode == 0
