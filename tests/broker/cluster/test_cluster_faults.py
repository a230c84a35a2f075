"""Faults on a real three-broker KRaft cluster (``bcfwatch kafka start --brokers 3``; issue 26). Every topic is
created with three copies, two of which must have each write. Each fault ends with the counts equal to the
oracle (and the offline backtest) in every column, so no event is lost or doubled, and the outage is reported
while it lasts (``/readyz`` names the unreachable broker).

* the ``kafka`` commands: start a cluster, stop and start one node, status of every node, stop all;
* kill -9 the leader of the event partitions mid-replay, then kill -9 the leader of the state partitions while
  the worker snapshots;
* a rolling restart of all three brokers while the replay, two workers, the monitor and the notifier run: every
  expected alert is on the topic once and delivered once.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import date
from pathlib import Path

import orjson
import pandas as pd
import pytest

from bcfwatch.core.plans import load_plan
from bcfwatch.core.topics import Topics
from bcfwatch.demo.webhook_receiver import WebhookReceiver
from bcfwatch.demo.worker_process import WorkerProcess
from bcfwatch.infra.cluster import Cluster
from bcfwatch.infra.kafka import admin_client, ensure_topics, reader, topic_partitions
from monitors.alerting.topic_schemas import parse_alert
from monitors.analysis.backtest import backtest, timeline_key
from producers.generate import Drift, GeneratorSpec
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from producers.sample_plan import write_sample_plan
from streams.config import WorkerConfig
from streams.daily_table import from_state
from streams.oracle import oracle_counts
from streams.state_reader import day_counts, latest_snapshots, wait_until_caught_up
from tests.broker.services.test_health import get, samples
from tests.broker.streams.test_graceful_stop import cli
from tests.support import discard_cluster, free_cluster_port, free_port, read_topic, wait_for

pytestmark = pytest.mark.kafka
PARTITIONS = 4
LATENESS = 14 * 86_400
SCALE = 0.005
PLAN_YEAR = date(2015, 4, 1)
DRIFT = "E08000025:+20%"
SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster(port=free_cluster_port(3), brokers=3)
    cluster.start(fresh=True)
    yield cluster
    discard_cluster(cluster)


@pytest.fixture(scope="module")
def event_log(generated_log) -> Path:
    return generated_log(GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=SCALE, seed=26,
                                       drifts=[Drift.parse(DRIFT)], late_share=0.05, duplicate_share=0.01,
                                       malformed_share=0.002), name="cluster-log")


@pytest.fixture(scope="module")
def oracle(event_log) -> pd.DataFrame:
    return oracle_counts(event_log, LATENESS)


def kafka_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bcfwatch.cli", "kafka", *args], capture_output=True, text=True,
                          timeout=300)


def test_the_kafka_commands_run_a_three_node_cluster(tmp_path, caplog):
    port = free_cluster_port(3)
    started = kafka_cli("start", "--brokers", "3", "--port", str(port), "--fresh")
    cluster = Cluster(port=port, brokers=3)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"cluster of 3 is up at {cluster.bootstrap}" in " ".join(started.stdout.split())
        status = kafka_cli("status", "--port", str(port))
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("running") == 3 and "none under-replicated" in status.stdout
        assert "every replica in sync" in status.stdout
        admin = admin_client(cluster.bootstrap)  # the brokers' own topics are replicated too
        try:
            assert len(admin.describe_cluster()["brokers"]) == 3
        finally:
            admin.close()

        # A topic found with fewer copies than configured is reported loudly, at start and by status.
        from kafka.admin import NewTopic

        admin = admin_client(cluster.bootstrap)
        try:
            admin.create_topics([NewTopic("thin.admission", 1, 1)])
            wait_for(lambda: admin.describe_topics(["thin.admission"])[0]["partitions"], 30,
                     "the new topic's partitions to be in every broker's metadata")
        finally:
            admin.close()
        with caplog.at_level(logging.ERROR, logger="bcfwatch.infra.kafka"):
            ensure_topics(cluster.bootstrap, ["thin.admission", "thin.discharge"], 1)
        assert any("thin.admission keeps 1 copy of each partition, fewer than the 3 configured" in r.getMessage()
                   for r in caplog.records)
        thin = kafka_cli("status", "--port", str(port), "--topic-prefix", "thin")
        assert thin.returncode == 1 and "under-replicated" in thin.stdout and "thin.admission" in thin.stdout
        assert "thin.discharge" not in thin.stdout  # created by ensure_topics with three copies

        stopped = kafka_cli("stop", "--port", str(port), "--node", "2")
        assert stopped.returncode == 0 and "node 2 stopped" in stopped.stdout
        degraded = kafka_cli("status", "--port", str(port))
        assert degraded.returncode == 1 and "not running" in degraded.stdout
        assert cluster.running() == [1, 3]

        back = kafka_cli("start", "--port", str(port), "--node", "2")
        assert back.returncode == 0 and "node 2 is up" in back.stdout, back.stdout + back.stderr
        # a restarted node catches up its replicas before status is clean again ("wait before the next restart")
        wait_for(lambda: kafka_cli("status", "--port", str(port)).returncode == 0, 120,
                 "every replica back in sync after node 2's restart")

        no_cluster = kafka_cli("stop", "--port", str(free_port()), "--node", "2")
        assert no_cluster.returncode != 0 and "needs a cluster" in no_cluster.stderr
        assert "Traceback" not in no_cluster.stderr
    finally:
        done = kafka_cli("stop", "--port", str(port))
        assert "3 of 3 nodes were running" in done.stdout or cluster.running() == []
        assert cluster.running() == []
        discard_cluster(cluster)


def leader_of(cluster: Cluster, topic: str, partition: int = 0) -> int:
    admin = admin_client(cluster.bootstrap)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    return next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == partition)


def kill_node(cluster: Cluster, number: int) -> None:
    node = cluster.node(number)
    pid = node.pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not node.accepts_connections(), 30, f"node {number} to stop listening")
    node.pid_file.unlink(missing_ok=True)


def reports_unreachable(config: WorkerConfig, node_bootstrap: str) -> bool:
    """``/readyz`` names the lost broker, and the metric the KafkaBrokerLost rule reads counts it."""
    status, body = get(f"http://127.0.0.1:{config.metrics_port}/readyz")
    named = status is not None and node_bootstrap in orjson.loads(body).get("brokers_unreachable", [])
    assert config.metrics_port is not None
    return named and samples(config.metrics_port).get("bcf_kafka_brokers_unreachable", 0) >= 1


def applied(config: WorkerConfig) -> int:
    return sum(offset + 1 for snapshot in latest_snapshots(config).values() for offset in snapshot["applied"].values())


def assert_equal_to_oracle(config: WorkerConfig, oracle: pd.DataFrame) -> pd.DataFrame:
    live = from_state(day_counts(wait_until_caught_up(config, 600)))
    pd.testing.assert_frame_equal(live.reset_index(drop=True), oracle.reset_index(drop=True))
    return live


def run_replay(bootstrap: str, event_log: Path, prefix: str, failures: list, rate: float | None,
               read: list[int] | None = None) -> None:
    """The replay of ``event_log`` at ``rate`` events/s; ``read`` (one number) follows the lines it has read."""
    def on_progress(lines: int) -> None:
        if read is not None:
            read[0] += lines

    try:
        replay(event_log, bootstrap, Topics(prefix), Pseudonymiser(load_key()), PARTITIONS, events_per_second=rate,
               delivery_timeout=300, on_progress=on_progress)
    except BaseException as error:
        failures.append(error)


def published_events(cluster: Cluster, config: WorkerConfig) -> int:
    """Records on the event topics (every one of them acknowledged once the replay has returned)."""
    consumer = reader(cluster.bootstrap, "bcfwatch-test-published")
    try:
        partitions = [tp for topic in config.topics.events for tp in topic_partitions(consumer, topic)]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def restart_stopped_nodes(cluster: Cluster) -> None:
    """Bring back any node a failed test left down, so the next test of the module starts on three."""
    for number in (1, 2, 3):
        if number not in cluster.running():
            cluster.start_node(number)


class AlertPipeline:
    """The monitor and the notifier as processes on the cluster, delivering to a signed-webhook receiver; at the
    end, every alert the offline backtest expects must be on the topic once and delivered once."""

    def __init__(self, cluster: Cluster, prefix: str, tmp_path: Path) -> None:
        self.cluster, self.prefix = cluster, prefix
        self.plan = tmp_path / "plan.csv"
        write_sample_plan(self.plan, scale=SCALE)
        self.receiver = WebhookReceiver(SECRET, free_port()).start()
        subscriptions = tmp_path / "subscriptions.toml"
        subscriptions.write_text(f'[[subscriber]]\nname = "ops"\nboards = "all"\nmetrics = "all"\n'
                                 f'questions = "all"\n'
                                 f'channel = "webhook"\nurl = "{self.receiver.url}"\n'
                                 'secret_env = "CLUSTER_TEST_SECRET"\n')
        os.environ["CLUSTER_TEST_SECRET"] = SECRET
        common = ("--topic-prefix", prefix, "--bootstrap", cluster.bootstrap)
        self.monitor = cli("monitor", "--plan", str(self.plan), *common, "--interval", "2", "--metrics-port",
                           str(free_port()), log=tmp_path / "monitor.log")
        self.notifier = cli("notify", "--subscriptions", str(subscriptions), *common, "--metrics-port",
                            str(free_port()), log=tmp_path / "notifier.log")

    def assert_every_alert_once(self, event_log: Path, live: pd.DataFrame) -> None:
        offline = backtest(event_log, load_plan(self.plan), PLAN_YEAR)
        pd.testing.assert_frame_equal(offline.counts.reset_index(drop=True), live.reset_index(drop=True))
        expected = sorted(offline.alerts, key=timeline_key)
        assert any(alert.board == "E08000025" for alert in expected)

        def on_topic() -> list:
            records = read_topic(self.cluster.bootstrap, Topics(self.prefix).alerts)
            return sorted((parse_alert(record.value) for record in records), key=timeline_key)

        wait_for(lambda: on_topic() == expected, 180, "the monitor to raise exactly the expected alerts")
        wait_for(lambda: len(self.receiver.accepted) >= len(expected), 180, "the notifier to deliver every alert")
        delivered = Counter(payload["event_id"] for _, payload in self.receiver.accepted)
        assert sorted(delivered) == sorted(alert.event_id for alert in expected)
        assert set(delivered.values()) == {1}, "an alert was delivered twice"
        assert self.monitor.poll() is None and self.notifier.poll() is None, "the monitor or notifier died"

    def stop(self) -> None:
        for process in (self.monitor, self.notifier):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
        self.receiver.stop()
        os.environ.pop("CLUSTER_TEST_SECRET", None)


def test_killing_the_leaders_of_the_events_and_of_the_snapshots(cluster, event_log, oracle, topic_prefix,
                                                                tmp_path):
    config = WorkerConfig(bootstrap=cluster.bootstrap, topic_prefix=topic_prefix, partitions=PARTITIONS,
                          datadir=tmp_path / "worker", web_port=free_port(), metrics_port=free_port())
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    alerts = AlertPipeline(cluster, topic_prefix, tmp_path)
    failures: list[BaseException] = []
    read = [0]
    feeder = threading.Thread(target=run_replay,
                              args=(cluster.bootstrap, event_log, topic_prefix, failures, 3000, read), daemon=True)
    lines = sum(1 for _ in open(event_log))

    def carried_on(before: int) -> bool:
        """Applied 1,000 more since ``before``, or (the replay having ended meanwhile) every published event."""
        now = applied(config)
        return now > before + 1000 or (not feeder.is_alive() and now >= published_events(cluster, config))

    try:
        wait_for(lambda: get(f"http://127.0.0.1:{config.metrics_port}/readyz")[0] == 200, 120, "the worker")
        feeder.start()
        for share, topic in ((0.25, config.topics.event("admission")), (0.6, config.state_topic)):
            # Each kill comes while the replay still has most of the log to send (a worker catching up on a
            # backlog could otherwise have applied everything before the kill, and have nothing to carry on with).
            wait_for(lambda share=share: read[0] >= share * lines and applied(config) > 0, 300,
                     f"the replay to have read {share:.0%} of the log")
            victim = leader_of(cluster, topic)
            kill_node(cluster, victim)
            wait_for(lambda victim=victim: reports_unreachable(config, cluster.node(victim).bootstrap), 30,
                     "the worker to report the lost broker")
            before = applied(config)
            wait_for(lambda before=before: carried_on(before), 120, "the worker to carry on with two brokers")
            assert get(f"http://127.0.0.1:{config.metrics_port}/readyz")[0] == 200  # it still serves
            cluster.start_node(victim)
            cluster.wait_in_sync()
        feeder.join(timeout=600)
        assert not failures, failures
        alerts.assert_every_alert_once(event_log, assert_equal_to_oracle(config, oracle))
        assert worker.alive(), "the worker must ride out the faults without a restart"
    finally:
        alerts.stop()
        worker.stop()
        restart_stopped_nodes(cluster)


def test_a_rolling_restart_under_the_whole_pipeline(cluster, event_log, oracle, topic_prefix, tmp_path):
    configs = [WorkerConfig(bootstrap=cluster.bootstrap, topic_prefix=topic_prefix, partitions=PARTITIONS,
                            datadir=tmp_path / f"worker-{n}", web_port=free_port(), metrics_port=free_port())
               for n in (1, 2)]
    workers = [WorkerProcess(config, tmp_path / f"worker-{n}.log").start() for n, config in enumerate(configs)]
    alerts = AlertPipeline(cluster, topic_prefix, tmp_path)
    failures: list[BaseException] = []
    feeder = threading.Thread(target=run_replay, args=(cluster.bootstrap, event_log, topic_prefix, failures, 2500),
                              daemon=True)
    try:
        feeder.start()
        for number in (1, 2, 3):  # one at a time, each back in sync before the next goes
            wait_for(lambda: applied(configs[0]) > 0, 300, "the workers to be counting")
            assert cluster.stop_node(number)
            wait_for(lambda number=number: all(reports_unreachable(c, cluster.node(number).bootstrap)
                                               for c in configs), 30, "the workers to report the restart")
            cluster.start_node(number)
            cluster.wait_in_sync()
        feeder.join(timeout=600)
        assert not failures, failures
        alerts.assert_every_alert_once(event_log, assert_equal_to_oracle(configs[0], oracle))
        assert all(worker.alive() for worker in workers)
    finally:
        alerts.stop()
        for worker in workers:
            worker.stop()
        restart_stopped_nodes(cluster)


def test_the_secure_mode_works_across_the_cluster():
    """``kafka start --secure --brokers 3``: one CA, SCRAM users and ACLs shared by the three; a service principal
    writes through one broker and reads through the others, and sees its topics once the ACLs just granted have
    reached that broker (polled with a deadline)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from tests.broker.infra.test_security import _read_all

    port = free_cluster_port(3)
    started = kafka_cli("start", "--brokers", "3", "--port", str(port), "--fresh", "--secure", "--topic-prefix", "sec",
                        "--partitions", "4")  # as test_security.PARTITIONS (its reader)
    cluster = Cluster(port=port, brokers=3, secure=True)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "SASL_SSL" in started.stdout and "ACLs" in started.stdout
        worker = cluster.nodes[0].client_security("worker")
        assert ensure_topics(cluster.bootstrap, ["sec.admission"], 4, security=worker).factor == 3
        replay_principal = cluster.nodes[0].client_security("replay")

        def first_write() -> KafkaProducer | None:
            """A producer through node 3 whose first write is acknowledged, or None: the ACLs just granted reach
            each broker through the KRaft metadata log, so the first idempotent producer id may be refused
            (ClusterAuthorizationFailed) for a moment on a busy machine; a refused producer is spent."""
            candidate = KafkaProducer(bootstrap_servers=cluster.nodes[2].bootstrap, acks="all", max_block_ms=15_000,
                                      **replay_principal.kafka_python_options())
            try:
                candidate.send("sec.admission", key=b"E08000025", value=b"event 0").get(timeout=15)
                return candidate
            except KafkaError:
                candidate.close()
                return None

        producer = wait_for(first_write, 90, "the replay principal's first write through node 3")
        try:
            for n in range(1, 10):
                producer.send("sec.admission", key=b"E08000025", value=b"event %d" % n).get(timeout=15)
        finally:
            producer.close()
        read = _read_all(cluster.nodes[1], worker, "sec.admission")
        assert sorted(read) == sorted(b"event %d" % n for n in range(10))
        env = kafka_cli("env", "--port", str(port), "--secure", "--service", "worker")
        assert f"BCFWATCH_BOOTSTRAP={cluster.bootstrap}" in env.stdout.replace("'", "")
    finally:
        discard_cluster(cluster)
