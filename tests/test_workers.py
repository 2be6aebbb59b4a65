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

from tests.served import CLI, wait_for

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
    exec(PAUSE_AFTER_UNSUBSCRIBE, {})  # noqa: S102 - the same text the children run
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
