"""A worker rides out a broker outage by itself (issue 26): the one-node broker stopped for 40 s, or killed
with SIGKILL for 90 s, during a replay. Each time readiness reports the outage while it lasts (``/readyz``
503 naming what cannot be written, ``bcf_ready`` 0), the worker catches up within 60 s of the broker's return
without a restart, the outage is logged a bounded number of times, and the final counts equal the oracle."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from datetime import date
from pathlib import Path

import orjson
import pandas as pd
import pytest

from bcfwatch.core.topics import Topics
from bcfwatch.demo.worker_process import WorkerProcess
from bcfwatch.infra.broker import Broker
from producers.generate import GeneratorSpec
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from streams.config import WorkerConfig
from streams.daily_table import from_state
from streams.oracle import oracle_counts
from streams.state_reader import day_counts, events_behind, latest_snapshots, wait_until_caught_up
from tests.broker.services.test_health import get, samples
from tests.support import free_port, wait_for

pytestmark = pytest.mark.kafka
PARTITIONS = 4
LATENESS = 14 * 86_400
CATCH_UP_SECONDS = 60.0  # the bound, from the broker's return


@pytest.fixture(scope="module")
def event_log(generated_log) -> Path:
    return generated_log(GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=0.006, seed=11, late_share=0.05,
                                       duplicate_share=0.01, malformed_share=0.002))


def kill_broker(kafka: Broker) -> None:
    pid = kafka.pid()
    assert pid is not None, "the broker is not running"
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not kafka.accepts_connections(), 30, "the killed broker to stop listening")
    kafka.pid_file.unlink(missing_ok=True)


def outage(kafka: Broker, config: WorkerConfig, seconds: float, take_down, names_partitions: bool) -> None:
    """Take the broker down for ``seconds`` while checking the worker says it is not ready; bring it back.

    ``names_partitions``: also wait for the partitions whose snapshots cannot be written to be named. A partition
    is named only once a snapshot it needs has been given up; whether one is pending when the broker goes depends
    on the moment (a worker fully caught up and snapshotted has nothing to write), so the second outage does not
    ask it (tests/unit/streams/test_snapshot_failures.py covers the naming deterministically)."""
    health = f"http://127.0.0.1:{config.metrics_port}"
    take_down(kafka)
    back_at = time.monotonic() + seconds
    wait_for(lambda: get(f"{health}/readyz")[0] == 503, 30, "the worker to report itself not ready")
    assert samples(config.metrics_port)["bcf_ready"] == 0
    report = orjson.loads(get(f"{health}/readyz")[1])
    assert report["ready"] is False and report["broker_connected"] is False, report
    # It names what it cannot do: the partitions whose snapshots cannot be written (once the first write has
    # been given up, SNAPSHOT_WRITE_SECONDS after it began).
    if names_partitions:
        wait_for(lambda: any(reason.startswith("partition ") for reason in
                             orjson.loads(get(f"{health}/readyz")[1]).get("not_ready_because", {})),
                 seconds - 2, "the worker to name the partitions whose snapshots cannot be written")
    # The outage lasts its full length; the worker must stay live (a supervisor must not restart it) and
    # not ready all along.
    wait_for(lambda: time.monotonic() >= back_at or get(f"{health}/readyz")[0] != 503, seconds + 5,
             "the outage to last its length")
    assert get(f"{health}/readyz")[0] == 503, "ready while the broker was down"
    assert get(f"{health}/healthz")[0] == 200, "the worker stopped being live during the outage"
    kafka.start()


STOPPED = pytest.param([(0.15, 40.0, Broker.stop, True)], id="stopped-40s")
KILLED = pytest.param([(0.45, 90.0, kill_broker, False)], id="killed-90s")


@pytest.mark.parametrize("outages", [STOPPED, KILLED])
def test_a_worker_rides_out_a_broker_outage(event_log, topic_prefix, tmp_path, outages):
    kafka = Broker(port=free_port(), controller_port=free_port())
    kafka.start(fresh=True)
    config = WorkerConfig(bootstrap=kafka.bootstrap, topic_prefix=topic_prefix, partitions=PARTITIONS,
                          datadir=tmp_path / "worker", web_port=free_port(), metrics_port=free_port(),
                          snapshot_seconds=1.0)
    worker_log = tmp_path / "worker.log"
    worker = WorkerProcess(config, worker_log).start()
    failures: list[BaseException] = []

    def run_replay() -> None:
        try:
            replay(event_log, kafka.bootstrap, Topics(topic_prefix), Pseudonymiser(load_key()), PARTITIONS,
                   events_per_second=1500, delivery_timeout=300)
        except BaseException as error:
            failures.append(error)

    replay_thread = threading.Thread(target=run_replay, daemon=True)
    lines = sum(1 for _ in open(event_log))

    def applied() -> int:
        try:
            return sum(offset + 1 for s in latest_snapshots(config).values() for offset in s["applied"].values())
        except Exception:  # the broker is down: nothing can be read
            return -1

    try:
        wait_for(lambda: get(f"http://127.0.0.1:{config.metrics_port}/readyz")[0] == 200, 120,
                 "the worker to be ready")
        replay_thread.start()
        for share, seconds, take_down, names in outages:
            wait_for(lambda share=share: applied() >= share * lines, 300, f"the worker to apply {share:.0%}")
            before = applied()
            outage(kafka, config, seconds, take_down, names)
            returned = time.monotonic()
            # Caught up: every event the broker holds now is covered by a snapshot, within the bound.
            wait_for(lambda before=before: applied() > before and events_behind(config, latest_snapshots(config))
                     < 1500 * 2, CATCH_UP_SECONDS, "the worker to catch up after the broker's return")
            assert time.monotonic() - returned <= CATCH_UP_SECONDS
            wait_for(lambda: get(f"http://127.0.0.1:{config.metrics_port}/readyz")[0] == 200, 30,
                     "the worker to be ready again")
            assert worker.alive(), worker_log.read_text()[-3000:]
        replay_thread.join(timeout=600)
        assert not failures, failures
        snapshots = wait_until_caught_up(config, 300)
        assert worker.alive(), "the worker was restarted or died: it must recover by itself"
        live = from_state(day_counts(snapshots))
        pd.testing.assert_frame_equal(live.reset_index(drop=True),
                                      oracle_counts(event_log, LATENESS).reset_index(drop=True))
        text = worker_log.read_text()
        assert "Crashed" not in text, text[-3000:]
        # Rate-limited: 130 s of outage must not flood the log (the issue saw 355,000 lines).
        assert len(text.splitlines()) < 2000, f"{len(text.splitlines())} log lines"
    finally:
        replay_thread.join(timeout=30)  # a failed test leaves it to its delivery timeout (a daemon thread)
        worker.stop()
        kafka.stop()
        shutil.rmtree(kafka.home, ignore_errors=True)
