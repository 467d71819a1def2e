"""The adversarial campaign (python -m ccasim.fuzz): short runs with fixed seeds.

On the spec RMM nothing fails: every SMC keeps every invariant and no input crashes. On
TF-RMM's profile the campaign finds the host call that crashes it (quirk I), shrinks it and
writes a regression test that replays it: the test fails on that profile and passes on the
spec.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ccasim.fuzz import Campaign, replay, run_seed
from ccasim.fuzz.__main__ import main


def test_the_spec_rmm_keeps_every_invariant_under_a_hostile_host():
    campaign = Campaign(range(0, 40), length=150).run()
    assert campaign.failures == {} and campaign.smcs > 5000 and campaign.sequences == 40


def test_a_crash_is_found_shrunk_and_written_as_a_regression_test(tmp_path):
    campaign = Campaign(range(0, 40), length=150, profile="tfrmm-1.0").run()
    stopped = [f for f in campaign.failures.values() if f.kind == "stopped"]
    # one cause, one finding, whatever the addresses and levels of each sequence's crash
    assert len(stopped) == 1 and "does not exist" in stopped[0].message
    failure = stopped[0]
    # the starting RTTs' and the RD's delegations, REALM_CREATE, the call that crashes it
    assert failure.steps[-1].name.startswith("RMI_RTT_") and len(failure.steps) <= 20
    assert replay(failure.steps, "tfrmm-1.0").kind == "stopped"
    assert replay(failure.steps, "spec") is None
    (path,) = [p for p in campaign.write_regressions(tmp_path) if f"_{failure.seed}_" in p.name]
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
    done = subprocess.run(run, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "1 failed" in done.stdout  # it replays the crash
    path.write_text(path.read_text().replace("'tfrmm-1.0'", "'spec'"))
    done = subprocess.run(run, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_seeds_are_deterministic():
    assert run_seed(7, 120) == run_seed(7, 120)


def test_the_campaign_command(tmp_path, capsys):
    assert main(["--minutes", "1", "--sequences", "10", "--workers", "2",
                 "--regressions", str(tmp_path)]) == 0  # fmt: skip
    assert "10 sequences" in capsys.readouterr().out and not list(tmp_path.iterdir())
    for bad in (["--workers", "0"], ["--seed", "-1"], ["--regressions", __file__]):
        with pytest.raises(SystemExit) as stop:
            main(bad)
        assert stop.value.code == 2
        assert "error: " in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_same_campaign_on_a_local_ray_cluster():
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'ccasim[ray]'")
    on_ray = Campaign(range(0, 6), length=80, workers=2, ray="local").run()
    local = Campaign(range(0, 6), length=80, workers=2).run()
    assert (on_ray.smcs, list(on_ray.failures)) == (local.smcs, list(local.failures))


def test_a_campaign_over_a_huge_seed_range_stays_small():
    """Found running the campaign with its default (a billion seeds): the seeds were listed
    before the workers started, filling memory. They are ranges now: a time budget ends it."""
    campaign = Campaign(range(0, 10**12), length=20, seconds=1.0, workers=2).run()
    assert 0 < campaign.sequences < 10**6 and campaign.failures == {}
