"""How the host runs vCPU threads: one at a time, deterministically.

A VMM runs each vCPU in a thread that loops on ``Vcpu.run()``. In the model those threads
take turns on one host CPU. The kernel code calls :meth:`Threads.preempt` where Linux drops
its locks or may be rescheduled (the *preemption points* below) and :meth:`Threads.block`
where a vCPU sleeps (a powered-off vCPU, a trapped WFI). Without a scheduler
(:class:`SingleThread`, the default) nothing is ever preempted, and a sleep that nothing in
the thread itself can end is reported as an error. A :class:`Scheduler` runs several
threads and, at each preemption point, switches to another one when its seeded random
generator says so: every interleaving is reproducible from the seed.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ccasim.kvm.errors import KvmError

if TYPE_CHECKING:
    from ccasim.machine import Machine

import errno

#: The places the kernel may be preempted, and what happens there in Linux.
PREEMPTION_POINTS = {
    "run": "the KVM_RUN loop, before the REC is entered (interrupts and signals are checked)",
    "enter": "just before RMI_REC_ENTER: the other host CPUs run on meanwhile",
    "exit": "after RMI_REC_ENTER returns, before the exit is handled (preemption enabled)",
    "wfe": "a trapped WFE: the vCPU yields (kvm_vcpu_on_spin)",
    "fault:delegated": "a protected fault between delegating the page and mapping it",
    "fault:shared": "a shared fault between finding the memslot page and mapping it",
    "ripas:pass": "between passes of the RIPAS completion loop (mmu_lock dropped)",
    "populate": "between the 2 MiB chunks of POPULATE_REALM (cond_resched)",
}

#: A sleeping thread wakes when this returns True.
Wake = Callable[[], bool]
#: The system counter value at which a sleeping thread's timer wakes it, if any.
Deadline = Callable[[], int | None]


class WouldBlockForever(KvmError):
    """A vCPU thread sleeps and nothing can wake it: no other thread is runnable and no
    timer is armed. In Linux the thread would sleep until a signal; the model reports it
    (errno EINTR, as the interrupted ioctl would return)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EINTR, message)


class Threads:
    """The interface the kernel uses: preemption points and sleeping."""

    def preempt(self, point: str) -> None:
        raise NotImplementedError

    def block(self, why: str, wake: Wake, deadline: Deadline) -> None:
        raise NotImplementedError


class SingleThread(Threads):
    """No scheduler: the caller's thread is the only one."""

    def __init__(self, machine: Machine) -> None:
        self._machine = machine

    def preempt(self, point: str) -> None:
        return None

    def block(self, why: str, wake: Wake, deadline: Deadline) -> None:
        if wake():
            return
        when = deadline()
        if when is None:
            raise WouldBlockForever(f"{why}, and nothing else runs to wake it")
        self._machine.idle_until(when)


@dataclass(eq=False)
class _Thread:
    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    thread: threading.Thread | None = None
    done: bool = False
    blocked: tuple[str, Wake, Deadline] | None = None
    error: BaseException | None = None
    result: Any = None
    abort: BaseException | None = field(default=None, repr=False)
    #: Waited on by this thread only (on the scheduler's lock): a hand-over wakes just the
    #: thread it chose, not every thread.
    cond: threading.Condition | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Switch:
    """A scheduling decision: at ``point`` the CPU went from thread ``left`` to ``to``."""

    left: str
    to: str
    point: str


class Scheduler(Threads):
    """Runs VMM threads (usually one per vCPU) one at a time, switching at preemption
    points with probability ``switch`` as a ``random.Random(seed)`` decides.

    ``spawn`` the threads, then ``run()`` them all to completion; ``trace`` lists every
    switch, so two runs with the same seed make the same decisions.
    """

    def __init__(self, machine: Machine, seed: int = 0, switch: float = 0.5) -> None:
        if not 0.0 <= switch <= 1.0:
            raise ValueError("switch is a probability")
        self._machine = machine
        self.rng = random.Random(seed)
        self.switch = switch
        self.trace: list[Switch] = []
        self._threads: list[_Thread] = []
        self._lock = threading.Lock()
        self._main = threading.Condition(self._lock)  # run() waits here for the end
        self._running: _Thread | None = None
        self._started = False

    def spawn(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        """Add a thread that runs ``fn(*args)``."""
        if self._started:
            raise RuntimeError("spawn threads before run()")
        self._threads.append(_Thread(name, fn, args, cond=threading.Condition(self._lock)))

    def run(self) -> list[Any]:
        """Run every thread until it returns; the results in spawn order. The first error
        a thread raised is raised here once all have stopped."""
        if not self._threads:
            return []
        self._started = True
        for t in self._threads:
            t.thread = threading.Thread(target=self._body, args=(t,), name=t.name, daemon=True)
        with self._lock:
            self._running = self._threads[0]
            for t in self._threads:
                assert t.thread is not None
                t.thread.start()
            while not all(t.done for t in self._threads):
                self._main.wait()
        errors = [t.error for t in self._threads if t.error is not None]
        first = next((e for e in errors if not isinstance(e, WouldBlockForever)), None)
        if first is not None:
            raise first
        if errors:
            raise errors[0]
        return [t.result for t in self._threads]

    # -- inside threads ----------------------------------------------------------------------

    def _current(self) -> _Thread | None:
        """The scheduled thread calling, or None when called from elsewhere (the VMM's main
        thread before or after ``run()``), which is then the only one running."""
        me = self._running
        if me is None or me.thread is not threading.current_thread():
            return None
        return me

    def _body(self, t: _Thread) -> None:
        assert t.cond is not None
        with self._lock:
            while self._running is not t:
                t.cond.wait()
        try:
            t.result = t.fn(*t.args)
        except BaseException as error:
            t.error = error
        with self._lock:
            t.done = True
            t.blocked = None
            self._pass_on(t)
            to = self._running
            if to is not None and to.cond is not None:
                to.cond.notify()
            self._main.notify()

    def preempt(self, point: str) -> None:
        me = self._current()
        if me is None:
            return
        others = [t for t in self._threads if t is not me and self._can_run(t)]
        if not others or self.rng.random() >= self.switch:
            return
        to = self.rng.choice(others)
        self.trace.append(Switch(me.name, to.name, point))
        self._hand_over(me, to)

    def block(self, why: str, wake: Wake, deadline: Deadline) -> None:
        me = self._current()
        if me is None:
            SingleThread(self._machine).block(why, wake, deadline)
            return
        while not wake():
            me.blocked = (why, wake, deadline)
            to = self._choose(exclude=None)
            if to is None:
                me.blocked = None
                raise WouldBlockForever(self._deadlock_report())
            if to is me:
                continue  # the deadline passed: look again
            self.trace.append(Switch(me.name, to.name, "block"))
            self._hand_over(me, to)
            if me.abort is not None:
                error, me.abort = me.abort, None
                me.blocked = None
                raise error
        me.blocked = None

    # -- choosing --------------------------------------------------------------------------

    @staticmethod
    def _can_run(t: _Thread) -> bool:
        return not t.done and (t.blocked is None or t.blocked[1]())

    def _choose(self, exclude: _Thread | None) -> _Thread | None:
        """A thread that can run (advancing time to the earliest timer if that is what wakes
        one), or None if every thread sleeps for ever."""
        ready = [t for t in self._threads if t is not exclude and self._can_run(t)]
        if ready:
            return self.rng.choice(ready)
        deadlines = [
            (when, i)
            for i, t in enumerate(self._threads)
            if t is not exclude and not t.done and t.blocked is not None
            for when in [t.blocked[2]()]
            if when is not None
        ]
        if not deadlines:
            return None
        when, _ = min(deadlines)
        self._machine.idle_until(when)
        ready = [t for t in self._threads if t is not exclude and self._can_run(t)]
        return self.rng.choice(ready) if ready else None

    def _pass_on(self, t: _Thread) -> None:
        """``t`` finished: give the CPU to another thread (aborting sleepers that nothing
        can wake any more)."""
        to = self._choose(exclude=t)
        if to is None:
            sleepers = [x for x in self._threads if not x.done and x is not t]
            if not sleepers:
                self._running = None
                return
            to = sleepers[0]
            to.abort = WouldBlockForever(self._deadlock_report())
        self.trace.append(Switch(t.name, to.name, "exit"))
        self._running = to

    def _hand_over(self, me: _Thread, to: _Thread) -> None:
        assert me.cond is not None and to.cond is not None
        with self._lock:
            self._running = to
            to.cond.notify()
            while self._running is not me:
                me.cond.wait()

    def _deadlock_report(self) -> str:
        waiting = [f"{t.name}: {t.blocked[0]}" for t in self._threads if t.blocked and not t.done]
        return "every thread sleeps and nothing can wake one (" + "; ".join(waiting) + ")"


__all__ = [
    "PREEMPTION_POINTS",
    "Scheduler",
    "SingleThread",
    "Switch",
    "Threads",
    "WouldBlockForever",
]
