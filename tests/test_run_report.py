"""``ccasim run --report``: the page renders in a real browser (headless Chromium) and shows
the run: its summary, the token's verdict, and four pictures drawn from the run's data."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import pytest

from ccasim.cli import main

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
needs_browser = pytest.mark.skipif(
    BROWSER is None,
    reason="no Chromium to render the report (.ci/run installs Debian's chromium package)",
)


def render(page) -> str:
    """The DOM after the page's scripts ran, as headless Chromium dumps it."""
    argv = [BROWSER, "--headless", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom",
            page.as_uri()]  # fmt: skip
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # Chromium refuses to sandbox as root
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@needs_browser
def test_the_report_renders_the_run_in_a_browser(capsys, tmp_path):
    page = tmp_path / "run.html"
    status = main(["run", "--json", "-c", "3", "-m", "256M", "--report", str(page)])
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    dom = render(page)
    painted = json.loads(html.unescape(re.search(r'data-painted="([^"]*)"', dom).group(1)))
    # Every RAM granule has RIPAS RAM after boot: each of the 65536 cells of the protected map
    # is inked; the shared alias is all UNASSIGNED_NS (inked too): the script drew both.
    assert painted["ipa-protected"] == 65536 == painted["ipa-unprotected"]
    assert painted["rtt"] > 0 and painted["granule-map"] > 0 and painted["timeline-map"] > 0
    text = re.sub(r"<[^>]+>", " ", dom)
    assert report["measurements"]["RIM"] in text and "verified" in text
    assert '<span id="ipa-row">2 MiB</span>' in dom and '<span id="ipa-cell">4 KiB</span>' in dom
    # A 33-bit IPA space starts at level 2 with 8 concatenated RTTs; RAM needs level 3 ones.
    rtts = re.search(r"\b(\d+) RTTs \(per level: level 2: 8, level 3: (\d+)\)", text)
    assert rtts and int(rtts[1]) == 8 + int(rtts[2]) and int(rtts[2]) >= 1
    exits = sum(report["rec_exits"].values())
    assert f"{exits} REC exits over" in text
    assert "smp: brought up 2 of 2 secondary CPU(s)" in text
