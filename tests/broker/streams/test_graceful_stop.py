"""SIGTERM stops every long-running service gracefully within the bound, and nothing is lost.

* A worker signalled mid-replay at full speed snapshots what it applied, commits, leaves the group and
  exits 0 within the stop bound; restarted, its exported counts equal the pandas oracle exactly.
* The monitor finishes its round and exits 0; the notifier, signalled while it retries a webhook that is
  down, exits 0 without recording an outcome, and delivers the alert once after a restart.
* A second signal ends a process at once.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import orjson
import pandas as pd
import pytest
from kafka import KafkaProducer

from bcfwatch.core.topics import Topics
from bcfwatch.demo.webhook_receiver import WebhookReceiver
from bcfwatch.demo.worker_process import WorkerProcess
from bcfwatch.infra.kafka import ensure_topics
from producers.generate import GeneratorSpec
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from streams.app import WorkerConfig
from streams.daily_table import from_state
from streams.oracle import oracle_counts
from streams.state_reader import day_counts, latest_snapshots, wait_until_caught_up
from tests.broker.monitors.test_delivery import alert
from tests.support import free_port, read_topic, wait_for

pytestmark = pytest.mark.kafka
PARTITIONS = 4
STOP_BOUND = 10.0  # seconds: the requirement (and the default --stop-timeout)
LATENESS = 14 * 86_400
SECRET = "whsec_" + base64.b64encode(b"g" * 32).decode()


def exits_within(process: subprocess.Popen, seconds: float) -> tuple[int, float]:
    """Poll until the process exits; (exit code, seconds taken). Fails if it is still running after ``seconds``."""
    started = time.monotonic()
    code = wait_for(lambda: process.poll() is not None, seconds, "the process to exit", interval=0.05) and \
        process.returncode
    return code, time.monotonic() - started


def cli(*args: str, log: Path) -> subprocess.Popen:
    handle = open(log, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "bcfwatch.cli", *args], stdout=handle,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=os.environ.copy())
    finally:
        handle.close()


def answers(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@pytest.fixture(scope="module")
def event_log(generated_log) -> Path:
    return generated_log(GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=0.004, seed=7, late_share=0.05,
                                       duplicate_share=0.01, malformed_share=0.002))


def test_worker_stops_gracefully_mid_replay_and_restarts_to_the_oracle(broker, event_log, topic_prefix, tmp_path):
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topic_prefix, partitions=PARTITIONS,
                          datadir=tmp_path / "worker", web_port=free_port(), metrics_port=free_port())
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    replay_thread = threading.Thread(target=replay, args=(event_log, broker.bootstrap, Topics(topic_prefix),
                                                          Pseudonymiser(load_key()), PARTITIONS))
    replay_thread.start()
    lines = sum(1 for _ in open(event_log))
    try:
        def applied() -> int:
            return sum(offset + 1 for s in latest_snapshots(config).values() for offset in s["applied"].values())

        wait_for(lambda: applied() >= 0.2 * lines, 300, "the worker to apply a fifth of the log")
        assert applied() < lines, "the worker was no longer busy when signalled: use a bigger log"
        worker.process.send_signal(signal.SIGTERM)
        code, _ = exits_within(worker.process, STOP_BOUND)
        log_text = (tmp_path / "worker.log").read_text()
        assert code == 0, log_text[-3000:]
        assert "stopped gracefully" in log_text and "did not stop within" not in log_text
        assert "wait_empty: Waiting for tasks" not in log_text
        stopped_at = applied()

        worker = WorkerProcess(config, tmp_path / "worker.log").start()
        replay_thread.join(timeout=600)
        snapshots = wait_until_caught_up(config, 600)
        assert stopped_at < lines  # it stopped mid-stream, and the restart finished the job
        live = from_state(day_counts(snapshots))
        pd.testing.assert_frame_equal(live.reset_index(drop=True),
                                      oracle_counts(event_log, LATENESS).reset_index(drop=True))
    finally:
        replay_thread.join(timeout=600)
        worker.stop()


def test_a_second_signal_ends_a_worker_at_once(broker, topic_prefix, tmp_path):
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topic_prefix, partitions=PARTITIONS,
                          datadir=tmp_path / "worker", web_port=free_port(), metrics_port=free_port())
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{config.metrics_port}/readyz") == 200, 120,
                 "the worker to be ready")
        worker.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM received" in (tmp_path / "worker.log").read_text(), 5,
                 "the worker to take the first signal", interval=0.01)
        worker.process.send_signal(signal.SIGTERM)  # while it is still stopping
        code, _ = exits_within(worker.process, 5)
        assert code == 128 + signal.SIGTERM
        assert "second SIGTERM, exiting now" in (tmp_path / "worker.log").read_text()
    finally:
        worker.stop()


def test_monitor_exits_0_on_sigterm(broker, topic_prefix, tmp_path):
    port = free_port()
    log = tmp_path / "monitor.log"
    monitor = cli("monitor", "--sample-plan", "--topic-prefix", topic_prefix, "--bootstrap", broker.bootstrap,
                  "--interval", "1", "--metrics-port", str(port), log=log)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz") == 200, 120,
                 "the monitor to finish a round and be ready")
        monitor.send_signal(signal.SIGTERM)
        code, _ = exits_within(monitor, STOP_BOUND)
        assert code == 0, log.read_text()[-3000:]
        assert "stopped gracefully" in log.read_text()
    finally:
        if monitor.poll() is None:
            monitor.kill()


def test_notifier_exits_0_on_sigterm_mid_retry_and_delivers_after_restart(broker, topic_prefix, tmp_path):
    topics = Topics(topic_prefix)
    ensure_topics(broker.bootstrap, [topics.alerts], 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    producer.send(topics.alerts, key=b"E08000025", value=orjson.dumps(alert("E08000025", 1)))
    producer.close()
    receiver = WebhookReceiver(SECRET, free_port()).start()
    receiver.down = True
    subscriptions = tmp_path / "subscriptions.toml"
    subscriptions.write_text(f'[[subscriber]]\nname = "ops"\nboards = "all"\nmetrics = "all"\nchannel = "webhook"\n'
                             f'url = "{receiver.url}"\nsecret_env = "GRACEFUL_TEST_SECRET"\n')
    os.environ["GRACEFUL_TEST_SECRET"] = SECRET
    port = free_port()
    log = tmp_path / "notifier.log"
    args = ("notify", "--subscriptions", str(subscriptions), "--topic-prefix", topic_prefix, "--bootstrap",
            broker.bootstrap, "--metrics-port", str(port))
    notifier = cli(*args, log=log)
    try:
        wait_for(lambda: receiver.refused >= 2, 60, "the notifier to retry against the down receiver")
        notifier.send_signal(signal.SIGTERM)
        code, _ = exits_within(notifier, STOP_BOUND)
        assert code == 0, log.read_text()[-3000:]
        assert read_topic(broker.bootstrap, topics.deliveries) == []  # interrupted: no outcome recorded
        assert read_topic(broker.bootstrap, topics.delivery_dead_letter) == []

        receiver.down = False
        notifier = cli(*args, log=log)
        wait_for(lambda: receiver.accepted, 60, "the restarted notifier to deliver the alert")
        notifier.send_signal(signal.SIGTERM)
        code, _ = exits_within(notifier, STOP_BOUND)
        assert code == 0
        assert [payload["event_id"] for _, payload in receiver.accepted] == ["e08000025-a1-1"]
        assert [orjson.loads(r.value)["outcome"] for r in read_topic(broker.bootstrap, topics.deliveries)] == [
            "delivered"]
    finally:
        if notifier.poll() is None:
            notifier.kill()
        receiver.stop()
        os.environ.pop("GRACEFUL_TEST_SECRET", None)
