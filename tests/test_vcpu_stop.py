"""Why a vCPU's guest program stopped, as the host sees it: ``Machine.vcpu_stop``,
``Machine.vcpu_console`` and a record in the RMM's log, pointing at the program's own line."""

from __future__ import annotations

import inspect

import pytest

from ccasim import guest
from ccasim.guest import rsi
from ccasim.hw.vcpu import StopReason
from ccasim.psci import PsciFid
from ccasim.rmi import RecExitReason, Status
from ccasim.rmm.log import VcpuEvent
from support import RAM_BASE, Host

HERE = __file__


def line_of(fn, text: str) -> int:
    """The line number of the first line of ``fn`` that contains ``text``."""
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


@guest.program("stop.divide")
def divide(cpu, tag):
    yield guest.ReadCounter()
    return 1 // (cpu.gprs[1] * 0)  # a ZeroDivisionError in the program itself


@guest.program("stop.odd-store")
def odd_store(cpu, tag):
    yield guest.ReadCounter()
    yield guest.Store(RAM_BASE + 0x8000, b"eleven byte")  # 11 bytes: no such access


@guest.program("stop.bad-yield")
def bad_yield(cpu, tag):
    yield guest.ReadCounter()
    yield "not an action"


@guest.program("stop.bad-yield-caught")
def bad_yield_caught(cpu, tag):
    try:
        yield "not an action"  # like an undefined instruction: the program may handle it
    except guest.UndefinedInstruction:
        yield guest.Store(RAM_BASE + 0x8000, b"ok")
        yield guest.Smc(PsciFid.SYSTEM_OFF)


def test_yielding_what_is_not_an_action_is_an_undefined_instruction():
    host, rec, exit_ = crash("stop.bad-yield-caught")
    assert exit_.exit_reason == RecExitReason.PSCI and exit_.gprs[0] == PsciFid.SYSTEM_OFF
    assert host.m.vcpu_stop(rec) is None


@guest.program("stop.helper")
def helper(cpu, tag):
    yield from rsi.measurement_extend(7, b"x")  # RSI_ERROR_INPUT: the helper raises RsiError


@guest.program("stop.sea")
def unhandled_sea(cpu, tag):
    yield guest.Load((1 << 47) - 4096 * 1024, 8)  # RIPAS EMPTY: an SEA the program ignores


@guest.program("stop.returns")
def returns(cpu, tag):
    yield guest.ReadCounter()


@guest.program("stop.needs-arg")
def needs_arg(cpu, tag, required):
    yield guest.ReadCounter()


def crash(program: str, **params):
    """Run ``program`` until its vCPU's first exit: (host, REC, exit)."""
    host = Host()
    launched = host.launch(program, tag=program, **params)
    rec = launched.recs[0]
    return host, rec, host.enter(rec, launched.run)


@pytest.mark.parametrize(
    "program, fn, text, message",
    [
        ("stop.divide", divide, "1 //", "ZeroDivisionError: integer division or modulo by zero"),
        ("stop.odd-store", odd_store, "eleven byte",
         "ValueError: an access is 1, 2, 4, 8 or 4096 bytes, not 11"),
        ("stop.bad-yield", bad_yield, '"not an action"',
         "UndefinedInstruction: yielded 'not an action', which is not an action"),
        ("stop.helper", helper, "measurement_extend", "RsiError: RSI_MEASUREMENT_EXTEND"),
        ("stop.sea", unhandled_sea, "guest.Load", "SynchronousExternalAbort: synchronous"),
    ],
)  # fmt: skip
def test_a_crash_names_the_guest_programs_own_line(program, fn, text, message):
    """The realm resets (PSCI_SYSTEM_RESET); the host learns why, and where in the program."""
    host, rec, exit_ = crash(program)
    assert exit_.exit_reason == RecExitReason.PSCI and exit_.gprs[0] == PsciFid.SYSTEM_RESET
    stop = host.m.vcpu_stop(rec)
    assert stop is not None and stop.reason is StopReason.CRASHED
    assert message in stop.message
    assert (stop.file, stop.line) == (HERE, line_of(fn, text))
    assert str(stop).endswith(f"(at {HERE}:{stop.line})")
    console = host.m.vcpu_console(rec)
    assert console.startswith(f"program crashed: {stop.message}")
    if stop.traceback:  # an exception: the traceback starts in the program, not in the PE
        assert stop.traceback in console
        frames = [line for line in stop.traceback.splitlines() if line.startswith("  File")]
        assert HERE in frames[0] and "ccasim/hw" not in stop.traceback
    # The RMM's log records it once, before the PSCI call it turned into.
    events = [r for r in host.m.rmm_log if isinstance(r, VcpuEvent)]
    assert [str(e) for e in events] == [f"# REC {rec:x}: {stop}"]
    after = host.m.rmm_log[host.m.rmm_log.index(events[0]) + 1]
    assert str(after).startswith("SMC_PSCI_SYSTEM_RESET")


def test_a_program_that_returns_turns_its_vcpu_off_and_says_so():
    host, rec, exit_ = crash("stop.returns")
    assert exit_.exit_reason == RecExitReason.PSCI and exit_.gprs[0] == PsciFid.CPU_OFF
    stop = host.m.vcpu_stop(rec)
    assert stop is not None and stop.reason is StopReason.RETURNED and not stop.traceback
    assert host.m.vcpu_console(rec) == "program returned: the vCPU turns off (PSCI_CPU_OFF)"


@pytest.mark.parametrize(
    "launch, message",
    [
        ({"program": "stop.retrns"}, "no guest program named 'stop.retrns' is registered"
                                     " (did you mean 'stop.returns'?)"),
        ({"program": "stop.needs-arg"}, "needs_arg() missing 1 required positional argument"),
        ({"program": "stop.returns", "pc": RAM_BASE + 0x3000}, "no guest image (bad magic)"),
        ({"program": "stop.returns", "pc": RAM_BASE + 0x20_0000},
         "instruction abort at IPA 0x80200000"),
    ],
)  # fmt: skip
def test_a_vcpu_with_nothing_to_run_says_why_once(launch, message):
    """No image (a typo in the program's name, parameters it does not take, zeros at the PC,
    memory with RIPAS EMPTY): the vCPU makes no progress and the host sees IRQ exits only,
    but the reason is in the log once and in the vCPU's stop."""
    host = Host()
    program = launch.pop("program")
    launched = host.launch(program, tag="nothing", **launch)
    rec = launched.recs[0]
    for _ in range(3):
        assert host.enter(rec, launched.run).exit_reason == RecExitReason.IRQ
    stop = host.m.vcpu_stop(rec)
    assert stop is not None and stop.reason is StopReason.NO_PROGRAM
    assert message in stop.message and stop.file is None
    events = [r for r in host.m.rmm_log if isinstance(r, VcpuEvent)]
    assert len(events) == 1 and message in events[0].text


@guest.program("stop.smp")
def smp(cpu, tag):
    if cpu.gprs[0] == 0:  # the boot vCPU starts the secondary, which crashes
        yield from rsi.cpu_on(1, RAM_BASE, 1)
        while True:
            yield guest.ReadCounter()
    yield guest.ReadCounter()
    raise RuntimeError(f"secondary {cpu.mpidr} panics")


def test_each_vcpu_has_its_own_console_and_cpu_on_starts_afresh():
    host = Host()
    launched = host.launch("stop.smp", tag="smp", recs=2)
    rec0, rec1 = launched.recs
    exit_ = host.enter(rec0, launched.run)  # CPU_ON
    assert exit_.exit_reason == RecExitReason.PSCI
    assert host.m.vcpu_stop(rec1) is None and host.m.vcpu_console(rec1) == ""
    host.rmi.psci_complete(rec0, rec1, 0).check()
    exit_ = host.enter(rec1, launched.run)
    assert exit_.gprs[0] == PsciFid.SYSTEM_RESET
    stop = host.m.vcpu_stop(rec1)
    assert stop.message == "RuntimeError: secondary 1 panics"
    assert host.m.vcpu_stop(rec0) is None and host.m.vcpu_console(rec0) == ""


def test_the_views_refuse_what_is_not_a_rec():
    host = Host()
    launched = host.launch("stop.returns", tag="views")
    for view in (host.m.vcpu_stop, host.m.vcpu_console):
        with pytest.raises(ValueError, match="no REC is at 0x"):
            view(launched.rd)
    assert host.rmi.rec_enter(launched.rd, launched.run).status == Status.ERROR_INPUT
