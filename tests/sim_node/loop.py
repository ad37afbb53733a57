"""Virtual time: an asyncio event loop whose clock only moves when nothing can run.

:class:`VirtualLoop` is a complete asyncio loop for code that does no real
I/O (the simulated network and disk replace sockets and files): when no
callback is ready it jumps its clock to the next timer instead of sleeping,
so a simulated minute of a cluster costs only the CPU of its callbacks, and
every run of a seed executes the same callbacks in the same order.

Members: every callback carries the ``contextvars`` context it was
scheduled in, and each simulated process runs in a context whose
:data:`PROCESS` variable names its :class:`Process`. The loop checks it
before running a callback: a killed process's callbacks (timers, task
steps, executor work, deliveries) are dropped, a paused one's are held and
run late when it resumes (SIGSTOP / SIGCONT, a long GC pause, a VM freeze).
So killing a member needs no cooperation from its code, exactly like
``kill -9``.

:class:`SimExecutor` replaces the node's thread pool: each submitted call
runs on the loop after a random virtual delay (an fsync's latency, now and
then a stall), in the submitting process's context.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import heapq
import itertools
import random
from collections.abc import Callable
from typing import Any

__all__ = ["PROCESS", "Deadlock", "Process", "SimExecutor", "VirtualLoop"]

# A timer heap with more cancelled handles than this fraction is rebuilt (as asyncio does).
_MIN_SCHEDULED = 100
_CANCELLED_FRACTION = 0.5
# Callbacks run without virtual time moving before the loop calls it a livelock.
_LIVELOCK = 2_000_000


class Deadlock(RuntimeError):
    """Nothing is ready and no timer is pending (or callbacks spin forever without
    time moving): the simulation cannot move."""


class Process:
    """One incarnation of a simulated process (see the module docstring).

    ``state`` is ``"running"``, ``"paused"`` or ``"dead"``; ``held`` keeps a
    paused process's callbacks in order.
    """

    __slots__ = ("held", "name", "state")

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = "running"
        self.held: list[asyncio.Handle] = []

    @property
    def alive(self) -> bool:
        """Not killed (running or paused)."""
        return self.state != "dead"

    def __repr__(self) -> str:
        return f"<Process {self.name} {self.state}>"


PROCESS: contextvars.ContextVar[Process | None] = contextvars.ContextVar(
    "sim_process", default=None
)


class VirtualLoop(asyncio.BaseEventLoop):
    """An event loop on a virtual clock (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        self.callbacks = 0  # callbacks run so far (a cost measure)
        # Timers as (when, sequence, handle): tuples compare in C, and the
        # sequence keeps timers due at the same instant in scheduling order.
        self._timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._seq = itertools.count()
        self.ended = False  # set by end(): every process's callbacks are dropped
        self._spin = 0  # callbacks run since virtual time last moved
        self.livelock = _LIVELOCK

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        """Schedule ``callback(*args)`` at virtual time ``when``."""
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        timer._scheduled = True
        return timer

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        if handle._scheduled:
            self._timer_cancelled_count += 1

    def time(self) -> float:
        """Virtual seconds since the loop was made."""
        return self._now

    def _process_events(self, event_list: Any) -> None:  # no selector: nothing to process
        pass

    def _write_to_self(self) -> None:  # no other threads to wake the loop
        pass

    def context_of(self, process: Process) -> contextvars.Context:
        """A fresh context that runs as ``process``."""
        ctx = contextvars.copy_context()
        ctx.run(PROCESS.set, process)
        return ctx

    def end(self) -> None:
        """The simulation is over: finalise every coroutine left, then close the loop.

        Every process is stopped first, so the ``finally`` blocks that run
        when their coroutines are closed change nothing that matters; doing
        it here, with the loop still open, keeps them from failing later in
        the garbage collector (where they would print tracebacks).
        """
        self.ended = True
        for task in list(asyncio.all_tasks(self)):
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            coro = task.get_coro()
            try:
                coro.close()  # type: ignore[union-attr]
            except BaseException:
                pass
        self.run_until_complete(self.shutdown_asyncgens())
        self.close()

    def kill(self, process: Process) -> None:
        """Drop every callback of ``process`` from now on (held ones too)."""
        process.state = "dead"
        process.held.clear()

    def pause(self, process: Process) -> None:
        """Hold ``process``'s callbacks until :meth:`resume`."""
        if process.state == "running":
            process.state = "paused"

    def resume(self, process: Process) -> None:
        """Run the held callbacks (in their order) and keep running ``process``."""
        if process.state != "paused":
            return
        process.state = "running"
        held, process.held = process.held, []
        for handle in held:
            if not handle._cancelled:
                self._ready.append(handle)

    def _run_once(self) -> None:
        timers = self._timers
        if (
            len(timers) > _MIN_SCHEDULED
            and self._timer_cancelled_count / len(timers) > _CANCELLED_FRACTION
        ):
            live = []
            for item in timers:
                if item[2]._cancelled:
                    item[2]._scheduled = False
                else:
                    live.append(item)
            heapq.heapify(live)
            self._timers = timers = live
            self._timer_cancelled_count = 0
        else:
            while timers and timers[0][2]._cancelled:
                self._timer_cancelled_count -= 1
                heapq.heappop(timers)[2]._scheduled = False
        ready = self._ready
        if not ready and not self._stopping:
            if not timers:
                raise Deadlock("no callback is ready and no timer is pending")
            when = timers[0][0]
            if when > self._now:
                self._now = when  # the only place virtual time moves
                self._spin = 0
        now = self._now
        while timers and timers[0][0] <= now:
            h = heapq.heappop(timers)[2]
            h._scheduled = False
            ready.append(h)
        for _ in range(len(ready)):
            h = ready.popleft()
            if h._cancelled:
                continue
            proc = h._context.get(PROCESS)
            if proc is not None and (proc.state != "running" or self.ended):
                if proc.state == "paused":
                    proc.held.append(h)
                continue  # a dead process's callbacks never run
            self.callbacks += 1
            self._spin += 1
            h._run()
        if self._spin > self.livelock:
            raise Deadlock(f"{self._spin} callbacks ran at virtual time {self._now:.3f} "
                           "without time moving (a livelock)")


class SimExecutor(concurrent.futures.Executor):
    """Runs submitted calls on the loop after a random virtual delay.

    ``delay`` draws the delay (seconds) from the given random source; the
    call then runs in the context that submitted it, so a killed process's
    pending work is dropped with it.
    """

    def __init__(self, loop: VirtualLoop, rng: random.Random,
                 delay: Callable[[random.Random], float]) -> None:
        self._loop = loop
        self._rng = rng
        self._delay = delay
        self._shutdown = False
        self.calls = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future[Any]:
        """Schedule ``fn(*args, **kwargs)``; its future completes when it has run."""
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.calls += 1
        self._loop.call_later(self._delay(self._rng), _run, fut, fn, args, kwargs)
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work (work already scheduled still runs)."""
        self._shutdown = True


def _run(fut: concurrent.futures.Future[Any], fn: Callable[..., Any], args: tuple[Any, ...],
         kwargs: dict[str, Any]) -> None:
    if not fut.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # SimulatedCrash too: the awaiting task dies with it
        fut.set_exception(exc)
    else:
        fut.set_result(result)
