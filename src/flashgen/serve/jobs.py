"""A bounded job queue drained by one worker thread: one generation at a time per loaded model.

A job's life: queued -> running -> done | failed | cancelled (a queued job can be cancelled
straight away; a running one stops after its current step). Every change is an event appended
to the job under its lock; listeners (an SSE stream, an awaiting request) get each event, the
ones before they subscribed included, so nothing is missed between "look" and "listen".
Listeners are called under the job's lock (the replay on the subscriber's thread, later events
on the emitting thread), so each sees every event once and in order: they must only hand the
event over (call_soon_threadsafe), never block or call back into the job.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flashgen.errors import OutOfMemoryBudget
from flashgen.sampling.samplers import Cancelled

log = logging.getLogger("flashgen.serve")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
TERMINAL = frozenset({DONE, FAILED, CANCELLED})

# run(payload, on_step) -> result; on_step(step, total) returns False to stop (the pipeline's
# callback then raises Cancelled).
RunFn = Callable[[Any, Callable[[int, int], bool]], Any]


class QueueFull(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str  # "status" | "progress"
    data: dict


@dataclass
class Job:
    id: str
    payload: Any
    status: str = QUEUED
    step: int = 0
    total: int = 0
    result: Any = None
    error: dict | None = None  # {"message", "type"}
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    events: list[Event] = field(default_factory=list)
    _listeners: list[Callable[[Event], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def _emit(self, kind: str, data: dict) -> None:
        with self._lock:
            ev = Event(len(self.events), kind, data)
            self.events.append(ev)
            for fn in self._listeners:
                fn(ev)

    def set_status(self, status: str, **extra) -> None:
        self.status = status
        now = time.time()
        if status == RUNNING:
            self.started = now
        if status in TERMINAL:
            self.finished = now
        self._emit("status", {"status": status, **extra})

    def progress(self, step: int, total: int) -> None:
        self.step, self.total = step, total
        self._emit("progress", {"step": step, "total": total})

    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call fn with every past event now and every future one; returns the unsubscribe."""
        # replay and registration under the lock that _emit holds: no event can slip in between
        with self._lock:
            for ev in self.events:
                fn(ev)
            self._listeners.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)

        return unsubscribe

    def summary(self) -> dict:
        return {
            "id": self.id,
            "status": self.status,
            "progress": {"step": self.step, "total": self.total},
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "error": self.error,
        }


async def wait_finished(job: Job) -> Job:
    """Await the job's terminal status from the event loop without holding a thread."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()

    def on_event(ev: Event) -> None:
        if ev.kind == "status" and ev.data["status"] in TERMINAL:
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))

    unsubscribe = job.subscribe(on_event)
    try:
        await fut
    finally:
        unsubscribe()
    return job


async def wait_or_cancel(job: Job, queue: JobQueue, is_disconnected, poll_s: float = 0.25) -> Job:
    """wait_finished, but the job is cancelled if `await is_disconnected()` turns true first: a
    synchronous client that went away has nowhere to receive its images, and its job would keep
    the one worker busy (and its queue slot taken) for nothing."""
    waiter = asyncio.ensure_future(wait_finished(job))
    try:
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=poll_s)
            if not waiter.done() and await is_disconnected():
                queue.cancel(job)  # a running job stops after its current step
                await waiter
        return waiter.result()
    finally:
        waiter.cancel()  # no-op once done


class JobQueue:
    """At most `max_waiting` jobs wait behind the running one; older finished jobs are forgotten."""

    def __init__(self, run: RunFn, *, max_waiting: int = 16, keep_finished: int = 64):
        if max_waiting < 1:
            raise ValueError(f"queue size must be >= 1, got {max_waiting}")
        self._run = run
        self.max_waiting = max_waiting
        self.keep_finished = keep_finished
        self._pending: deque[Job] = deque()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._finished_order: deque[str] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._running: Job | None = None
        self._durations: deque[float] = deque(maxlen=20)
        self._counter = itertools.count()

    # -- producer side (event loop) -------------------------------------------------------
    def submit(self, payload: Any, *, listed: bool = True) -> Job:
        """Queue a job; raises QueueFull. Unlisted jobs (the synchronous APIs') are not kept."""
        job = Job(id=f"job-{next(self._counter)}-{secrets.token_hex(6)}", payload=payload)
        with self._cond:
            if len(self._pending) >= self.max_waiting:
                raise QueueFull(self._retry_after_locked())
            self._ensure_worker_locked()
            self._pending.append(job)
            position = len(self._pending)
            if listed:
                self._jobs[job.id] = job
            self._cond.notify()
        job._emit("status", {"status": QUEUED, "position": position})
        return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """1 = next to run, 0 = running or finished."""
        with self._cond:
            try:
                return self._pending.index(job) + 1
            except ValueError:
                return 0

    def cancel(self, job: Job) -> bool:
        """Cancel a queued job now, or ask a running one to stop after its current step."""
        with self._cond:
            if job.terminal:
                return False
            job.cancel_requested = True
            queued = job in self._pending
            if queued:
                self._pending.remove(job)
        if queued:
            job.set_status(CANCELLED)
            self._remember(job)
        return True

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._pending)

    @property
    def busy(self) -> bool:
        return self._running is not None

    def _retry_after_locked(self) -> int:
        avg = sum(self._durations) / len(self._durations) if self._durations else 1.0
        return max(1, math.ceil(avg * (len(self._pending) + 1)))

    # -- worker side ----------------------------------------------------------------------
    def _ensure_worker_locked(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name="flashgen-worker", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._pending.popleft()
                self._running = job
            try:
                self._execute(job)
            finally:
                with self._cond:
                    self._running = None
                self._remember(job)

    def _execute(self, job: Job) -> None:
        job.set_status(RUNNING)
        t0 = time.perf_counter()

        def on_step(step: int, total: int) -> bool:
            job.progress(step, total)
            return not job.cancel_requested

        try:
            job.result = self._run(job.payload, on_step)
        except Exception as e:  # the job fails; the server and the worker carry on
            if isinstance(e, Cancelled):
                job.set_status(CANCELLED)
                return
            if isinstance(e, OutOfMemoryBudget):  # the pipeline's --max-memory guard
                job.error = {"message": str(e), "type": "out_of_memory_budget"}
            elif isinstance(e, ValueError):  # UsageError and friends: the message is for the user
                job.error = {"message": str(e), "type": "invalid_request_error"}
            else:
                log.exception("generation failed for %s", job.id)
                job.error = {"message": f"{type(e).__name__}: {e}", "type": "server_error"}
            job.set_status(FAILED, error=job.error)
            return
        self._durations.append(time.perf_counter() - t0)
        job.set_status(DONE)

    def _remember(self, job: Job) -> None:
        """Keep the last `keep_finished` listed jobs' results; forget older ones (bounded memory)."""
        with self._cond:
            if job.id not in self._jobs:
                return
            self._finished_order.append(job.id)
            while len(self._finished_order) > self.keep_finished:
                self._jobs.pop(self._finished_order.popleft(), None)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel everything and join the worker (the running job stops after its step)."""
        with self._cond:
            pending, self._pending = list(self._pending), deque()
            running = self._running
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        for job in pending:
            job.cancel_requested = True
            job.set_status(CANCELLED)
        if running is not None:
            running.cancel_requested = True
        if thread is not None:
            thread.join(timeout)
