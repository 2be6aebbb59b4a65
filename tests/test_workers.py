"""RQ workers start and stop promptly: the time machine's burst worker and a real
`campaign-canvas worker` process never wait on RQ's command listener (redis-py 8 joins it
with no time limit, and RQ lets it wait a minute per message).

Whether a stop waited that minute was a race: the listener thread had to read the
UNSUBSCRIBE reply before the stopping thread cleared its flag, which a loaded machine
(a test suite on two cores) does often and an idle one rarely. `loaded_machine` makes the
stopping thread as slow as a loaded one, every time, by pausing 50 ms after redis-py sends
UNSUBSCRIBE: in this process, and in the processes a test starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta

import pytest
import redis.client
from rq import Queue, Worker

from tests.served import CLI, stop, wait_for

PAUSE_AFTER_UNSUBSCRIBE = """
import time, redis.client
_unsubscribe = redis.client.PubSub.unsubscribe
def _slow(self, *args, **kwargs):
    answer = _unsubscribe(self, *args, **kwargs)
    time.sleep(0.05)
    return answer
redis.client.PubSub.unsubscribe = _slow
"""


@pytest.fixture
def loaded_machine(monkeypatch, tmp_path):
    """A PYTHONPATH for child processes (and this process patched alike) on which stopping an
    RQ worker is as slow as on a busy machine."""
    (tmp_path / "sitecustomize.py").write_text(PAUSE_AFTER_UNSUBSCRIBE)
    monkeypatch.setattr(redis.client.PubSub, "unsubscribe", redis.client.PubSub.unsubscribe)  # restored after
    exec(PAUSE_AFTER_UNSUBSCRIBE, {})  # the same text the children run
    return os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))


def test_the_time_machine_runs_a_job_in_a_burst_worker_in_well_under_a_second(harness, loaded_machine):
    harness.rt.wakeups.schedule_sweep(timedelta(0))  # one job due now; it schedules the next
    started = time.perf_counter()
    harness.machine.run_due()
    took = time.perf_counter() - started
    assert harness.machine.jobs_run == 1
    assert took < 1.0, f"a burst worker took {took:.2f} s to run one job and stop"


def test_the_time_machine_on_an_empty_queue_starts_no_worker_and_returns_at_once(harness):
    started = time.perf_counter()
    harness.machine.run_due()
    assert harness.machine.jobs_run == 0
    assert time.perf_counter() - started < 1.0


@pytest.mark.processes
def test_a_worker_process_stops_within_seconds_of_sigterm(harness, redis_url, database_url, loaded_machine):
    env = {**os.environ, "PYTHONPATH": loaded_machine, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "CC_QUEUE": harness.rt.settings.queue_name}
    worker = subprocess.Popen([CLI, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    queue = Queue(harness.rt.settings.queue_name, connection=harness.rt.redis)
    try:
        wait_for(lambda: len(Worker.all(queue=queue)) == 1, what="the worker to register")
        time.sleep(0.5)  # let its command listener settle into its wait
        started = time.perf_counter()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        took = time.perf_counter() - started
    finally:
        if worker.poll() is None:
            worker.kill()
        output = worker.communicate()[0]
    assert worker.returncode == 0, output
    assert took < 5.0, f"the worker took {took:.1f} s to stop after SIGTERM\n{output}"
    assert Worker.all(queue=queue) == [], "a stopped worker unregisters itself"


@pytest.mark.processes
def test_a_worker_counts_again_and_keeps_working_soon_after_redis_loses_its_data(harness, api, redis_url,
                                                                                database_url):
    """After a FLUSHALL (or a failover to an empty replica) a live worker is back in RQ's
    registry, so `cc_rq_workers` and `campaign-canvas check` count it again, within one idle
    heartbeat (15 s); its sweep chain, lost with the data, is back too."""
    from engine.core import clock
    from engine.journeys import campaigns
    from tests.conftest import flush_keeping_claim
    from tests.support import add_profiles, doc, positions
    from tests.test_ops import ours, scrape

    queue = harness.rt.settings.queue_name
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "CC_QUEUE": queue}
    worker = subprocess.Popen([CLI, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    virtual = clock.use(clock.SystemClock())  # the worker runs on the wall clock

    def metrics() -> dict[str, float]:
        return ours(scrape(api), queue)

    try:
        wait_for(lambda: metrics()["cc_rq_workers"] == 1.0, what="the worker to register")
        wait_for(lambda: metrics()["cc_rq_scheduled_jobs"] == 1.0, what="its first sweep to schedule the next")
        flush_keeping_claim(harness.rt.redis)
        assert (metrics()["cc_rq_workers"], metrics()["cc_rq_scheduled_jobs"]) == (0.0, 0.0)
        flushed = time.monotonic()
        wait_for(lambda: metrics()["cc_rq_workers"] == 1.0, timeout=40, what="the worker to register again")
        assert time.monotonic() - flushed < 20, "within one idle heartbeat (15 s) and a little"
        wait_for(lambda: metrics()["cc_rq_scheduled_jobs"] == 1.0, what="the sweep chain to be back")

        with harness.transaction() as s:  # and it runs jobs
            add_profiles(s, 30)
            cid = campaigns.create(s, doc([("all", "select_segment", {"source": "all"}),
                                           ("pts", "award_points", {"points": 2})], [("all", "out", "pts")])).id
            campaigns.launch(s, cid, clock.now())
        wait_for(lambda: positions(harness, cid) == {("pts", "done"): 30}, what="the worker to run the campaign")
        assert metrics()["cc_rq_workers"] == 1.0
    finally:
        clock.use(virtual)
        output = stop(worker)
    assert "registered again" in output
    assert "Traceback" not in output, output
