"""The README's snippets and commands run as written, from a checkout: each Python block alone,
the quick-start commands in order, and each ``$ command`` with the output the README shows."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
#: Setup lines a test run has already done (or must not do again, like running the tests).
SETUP = ("python3 -m venv", "pip install", "python -m pytest")


def python_blocks() -> list[str]:
    return [code for lang, code in BLOCKS if lang == "python"]


def quick_start() -> list[list[str]]:
    """The commands of the ``sh`` blocks, comments removed, setup lines left out."""
    commands = []
    for lang, code in BLOCKS:
        if lang != "sh":
            continue
        for line in code.splitlines():
            words = shlex.split(line, comments=True)
            if words and not line.startswith(SETUP):
                commands.append(words)
    return commands


def shown_commands() -> list[tuple[list[str], list[str]]]:
    """(command, the output lines shown under it) of each ``$ `` line in a plain block."""
    out = []
    for lang, code in BLOCKS:
        lines = code.splitlines()
        if lang or not lines or not lines[0].startswith("$ "):
            continue
        out.append((shlex.split(lines[0][2:]), lines[1:]))
    return out


@pytest.fixture
def workdir(tmp_path):
    """A directory laid out as the checkout (examples/ here, shared/ beside it) to run in."""
    work = tmp_path / "ccasim"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED)
    return work


def execute(words: list[str], cwd: Path) -> subprocess.CompletedProcess:
    if any("../shared/" in w for w in words) and not SHARED.is_dir():
        pytest.skip(f"the README's command needs {SHARED}")
    program = {"python": [sys.executable], "ccasim": [sys.executable, "-m", "ccasim"]}
    argv = program[words[0]] + words[1:]
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize("code", python_blocks(), ids=lambda c: c.splitlines()[0][:40])
def test_python_snippets_run_as_pasted(code):
    namespace: dict = {"__name__": "__readme__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "README.md", "exec"), namespace)


def test_the_quick_start_commands_run_in_order(workdir):
    commands = quick_start()
    assert [c[0] for c in commands] == ["ccasim", "python", "python", "ccasim", "ccasim", "ccasim"]
    for words in commands:
        done = execute(words, workdir)
        assert done.returncode == 0, f"{shlex.join(words)}:\n{done.stderr}"
    assert "token verified" in done.stdout or "RIM: " in done.stdout


def matches(shown: str, actual: str) -> bool:
    """A shown line matches the real one; "…" in it stands for the rest of a hex value."""
    pattern = "[0-9a-f]*".join(re.escape(part) for part in shown.split("…"))
    return re.fullmatch(pattern, actual) is not None


@pytest.mark.parametrize("command, shown", shown_commands(), ids=lambda v: str(v)[:30])
def test_shown_commands_print_what_the_readme_shows(workdir, command, shown):
    """Output lines in order; a shown error is the command's standard error, and it fails."""
    done = execute(command, workdir)
    if shown and shown[0].startswith("ccasim: error:"):
        assert done.returncode == 1 and done.stdout == ""
        printed = done.stderr
    else:
        assert done.returncode == 0, done.stderr
        printed = done.stdout
    actual = iter(printed.splitlines())
    for line in (s for s in shown if s != "..."):
        assert any(matches(line, a) for a in actual), f"not printed (in order): {line}"
