import os
import sys

from hypothesis import settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile("ci", deadline=None, max_examples=60)
settings.register_profile("long", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _whole_suite(config) -> bool:
    """The run covers every test: no paths, -k or -m given."""
    args = [a for a in config.invocation_params.args if not a.startswith("-")]
    return not args and not config.option.keyword and not config.option.markexpr


def _missing_conditions():
    from spec import FIDS, UNREACHABLE, failure_conditions
    from support import OBSERVED_FAILURES

    missing = []
    for name, conditions in sorted(failure_conditions().items()):
        for cond in conditions:
            seen = any((fid, cond) in OBSERVED_FAILURES for fid in FIDS[name])
            if not seen and (name, cond) not in UNREACHABLE:
                missing.append(f"{name}.{cond}")
    return missing


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from spec import SPEC, UNREACHABLE, failure_conditions

    if not SPEC.is_dir():
        terminalreporter.write_line(f"spec coverage: not checked, no spec at {SPEC}")
        return
    total = sum(len(c) for c in failure_conditions().values())
    missing = _missing_conditions()
    covered = total - len(missing) - len(UNREACHABLE)
    line = (
        f"spec coverage: {covered} of {total} RMI, RSI and PSCI failure conditions exercised, "
        f"{len(UNREACHABLE)} unreachable in a sequential model"
    )
    if missing and _whole_suite(config):
        line += f"; NOT EXERCISED: {', '.join(missing)}"
    terminalreporter.write_line(line)


def pytest_sessionfinish(session, exitstatus):
    from spec import SPEC

    if exitstatus == 0 and SPEC.is_dir() and _whole_suite(session.config) and _missing_conditions():
        session.exitstatus = 1
