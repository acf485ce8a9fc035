"""The job queue on its own: ordering, forgetting old jobs, cancel, stop (plain run functions)."""

from __future__ import annotations

import threading

import pytest

from flashgen.sampling.samplers import Cancelled
from flashgen.serve.jobs import CANCELLED, DONE, FAILED, JobQueue, QueueFull


def wait(job, timeout=10.0):
    done = threading.Event()
    job.subscribe(lambda ev: ev.data.get("status") in (DONE, FAILED, CANCELLED) and done.set())
    assert done.wait(timeout), job.summary()
    return job


def test_jobs_run_in_order_and_old_finished_jobs_are_forgotten():
    order = []
    queue = JobQueue(lambda p, on_step: order.append(p) or p * 2, max_waiting=8, keep_finished=3)
    jobs = [queue.submit(i) for i in range(6)]
    for job in jobs:
        wait(job)
    assert order == list(range(6)) and [j.result for j in jobs] == [0, 2, 4, 6, 8, 10]
    assert [queue.get(j.id) is not None for j in jobs] == [False] * 3 + [True] * 3
    queue.stop()


def step_until_cancelled(gate: threading.Event):
    def run(payload, on_step):
        gate.set()
        for i in range(10_000):
            if on_step(i + 1, 10_000) is False:
                raise Cancelled("stop")
            threading.Event().wait(0.001)
        return "finished"

    return run


def test_cancel_running_and_queued_jobs_and_queue_full():
    started = threading.Event()
    queue = JobQueue(step_until_cancelled(started), max_waiting=1)
    running = queue.submit("a")
    assert started.wait(10)
    waiting = queue.submit("b")
    with pytest.raises(QueueFull) as full:
        queue.submit("c")
    assert full.value.retry_after >= 1
    assert queue.cancel(waiting) and waiting.status == CANCELLED  # at once
    assert queue.cancel(running)
    wait(running)
    assert running.status == CANCELLED and 0 < running.step < 10_000
    assert not queue.cancel(running)  # already finished
    queue.stop()


def test_a_failing_job_reports_and_the_worker_carries_on():
    def run(payload, on_step):
        if payload == "bad":
            raise ValueError("width must be a multiple of 16")
        if payload == "boom":
            raise RuntimeError("kaput")
        return payload

    queue = JobQueue(run)
    bad, boom, good = (wait(queue.submit(p)) for p in ("bad", "boom", "good"))
    assert bad.status == FAILED and bad.error["type"] == "invalid_request_error"
    assert boom.status == FAILED and boom.error["type"] == "server_error"
    assert good.status == DONE and good.result == "good"
    queue.stop()


def test_stop_cancels_pending_and_running_jobs():
    started = threading.Event()
    queue = JobQueue(step_until_cancelled(started), max_waiting=4)
    jobs = [queue.submit(i) for i in range(3)]
    assert started.wait(10)
    queue.stop()
    assert [j.status for j in jobs] == [CANCELLED] * 3
