"""A job's events reach every subscriber once and in order, even while the worker emits."""

from __future__ import annotations

import sys
import threading

from flashgen.serve.jobs import DONE, Job


def test_an_event_emitted_during_the_replay_comes_after_it():
    job = Job(id="j", payload=None)
    for i in range(3):
        job.progress(i, 3)
    emitting, emitted = threading.Event(), threading.Event()

    def emit_final():
        emitting.set()
        job.set_status(DONE)
        emitted.set()

    got = []

    def on_event(ev):
        if not got:  # mid-replay: let the worker emit the final status now, if it can
            threading.Thread(target=emit_final).start()
            emitting.wait(5)
            emitted.wait(0.2)  # times out when emission waits for the replay, as it should
        got.append(ev)

    unsubscribe = job.subscribe(on_event)
    assert emitted.wait(5)
    unsubscribe()
    assert [ev.seq for ev in got] == [0, 1, 2, 3]
    assert got[-1].data == {"status": DONE}


def test_concurrent_subscribers_each_see_every_event_in_order():
    job = Job(id="j", payload=None)
    for i in range(2000):
        job.progress(i, 2400)
    total = 2400

    def emit():
        for i in range(2000, total - 1):
            job.progress(i, total)
        job.set_status(DONE)

    seqs = [[] for _ in range(20)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: mid-replay emissions become likely
    try:
        emitter = threading.Thread(target=emit)
        emitter.start()
        unsubscribes = [job.subscribe(lambda ev, seq=seq: seq.append(ev.seq)) for seq in seqs]
        emitter.join()
    finally:
        sys.setswitchinterval(interval)
    for unsubscribe in unsubscribes:
        unsubscribe()
    for seq in seqs:
        assert seq == list(range(total))
