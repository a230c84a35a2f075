"""Liveness and readiness: /healthz, /readyz and the health metrics of the worker, monitor and notifier,
and a worker that loses its broker says so (readiness, metric, log line) and recovers when it is back."""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bcfwatch.demo.worker_process import WorkerProcess
from bcfwatch.infra.broker import Broker
from streams.app import WorkerConfig
from tests.broker.streams.test_graceful_stop import cli
from tests.support import free_port, wait_for

pytestmark = pytest.mark.kafka


def get(url: str) -> tuple[int | None, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return None, b""


def samples(port: int) -> dict[str, float]:
    """Unlabelled bcf_ samples of a scrape, by name."""
    _, body = get(f"http://127.0.0.1:{port}/metrics")
    return {s.name: s.value for family in text_string_to_metric_families(body.decode())
            for s in family.samples if s.name.startswith("bcf_") and not s.labels}


def test_worker_health_follows_its_broker(tmp_path, topic_prefix):
    # A broker of its own, so it can be taken away without disturbing the session's.
    kafka = Broker(port=free_port(), controller_port=free_port())
    kafka.start(fresh=True)
    config = WorkerConfig(bootstrap=kafka.bootstrap, topic_prefix=topic_prefix, partitions=2,
                          datadir=tmp_path / "worker", web_port=free_port(), metrics_port=free_port())
    log = tmp_path / "worker.log"
    worker = WorkerProcess(config, log).start()
    health = f"http://127.0.0.1:{config.metrics_port}"
    try:
        wait_for(lambda: get(f"{health}/readyz")[0] == 200, 120, "the worker to be ready")
        status, body = get(f"{health}/healthz")
        report = orjson.loads(body)
        assert status == 200 and report["live"] and report["broker_connected"] and report["status"] == "running"
        assert get(f"http://127.0.0.1:{config.web_port}/readyz")[0] == 200  # on the Faust web port too
        metrics = samples(config.metrics_port)
        assert metrics["bcf_up"] == 1 and metrics["bcf_ready"] == 1 and metrics["bcf_broker_connected"] == 1
        assert metrics["bcf_consumer_lag_messages"] == 0 and metrics["bcf_heartbeat_timestamp_seconds"] > 0
        lint = subprocess.run(["promtool", "check", "metrics"], input=get(f"{health}/metrics")[1].decode(),
                              capture_output=True, text=True)
        assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint.stderr

        kafka.stop()
        wait_for(lambda: get(f"{health}/readyz")[0] == 503, 30, "the worker to report itself not ready")
        report = orjson.loads(get(f"{health}/healthz")[1])
        assert report["live"] and report["broker_connected"] is False and report["disconnected_since"]
        assert samples(config.metrics_port)["bcf_broker_connected"] == 0
        assert samples(config.metrics_port)["bcf_broker_disconnected_since_timestamp_seconds"] > 0
        wait_for(lambda: f"unreachable: disconnected since {report['disconnected_since']}" in log.read_text(), 10,
                 "the worker to log that it cannot reach the broker")

        kafka.start()
        wait_for(lambda: get(f"{health}/readyz")[0] == 200, 60, "the worker to be ready again")
        assert "reachable again" in log.read_text()
    finally:
        worker.stop()
        kafka.stop()
        shutil.rmtree(kafka.home, ignore_errors=True)


def test_monitor_and_notifier_serve_health(broker, topic_prefix, tmp_path):
    subscriptions = tmp_path / "subscriptions.toml"
    subscriptions.write_text('[[subscriber]]\nname = "leads"\nboards = "all"\nmetrics = "all"\nchannel = "email"\n'
                             'to = ["lead@example.nhs.uk"]\nsmtp_host = "127.0.0.1"\nsmtp_port = 2525\n'
                             'smtp_tls = "none"\n'
                             'from = "bcfwatch@example.nhs.uk"\n')
    monitor_port, notifier_port = free_port(), free_port()
    common = ("--topic-prefix", topic_prefix, "--bootstrap", broker.bootstrap)
    processes = [cli("monitor", "--sample-plan", *common, "--interval", "1", "--metrics-port", str(monitor_port),
                     log=tmp_path / "monitor.log"),
                 cli("notify", "--subscriptions", str(subscriptions), *common, "--metrics-port", str(notifier_port),
                     log=tmp_path / "notifier.log")]
    try:
        for port, name in ((monitor_port, "monitor"), (notifier_port, "notifier")):
            wait_for(lambda port=port: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 120, f"the {name} ready")
            report = orjson.loads(get(f"http://127.0.0.1:{port}/healthz")[1])
            assert report["service"] == name and report["live"] and report["broker_connected"]
            assert report["consumer_lag"] in (0, None)  # None: nothing on its input topic yet
            metrics = samples(port)
            assert metrics["bcf_up"] == 1 and metrics["bcf_ready"] == 1 and metrics["bcf_broker_connected"] == 1
            assert get(f"http://127.0.0.1:{port}/nothing")[0] == 404
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
    assert [process.returncode for process in processes] == [0, 0]


def test_a_monitor_rides_out_a_broker_outage_between_rounds(caplog):
    """A Kafka error in one round (a broker restart) is logged and the next round runs; with --once it fails."""
    import threading

    from kafka.errors import KafkaTimeoutError

    from monitors.service.monitor import Monitor

    monitor = object.__new__(Monitor)  # the loop only: evaluate() is replaced below
    monitor.stop = threading.Event()
    outcomes = [KafkaTimeoutError("Failed to get offsets by timestamps in 30000 ms"), [], []]

    def evaluate():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monitor.evaluate = evaluate
    rounds: list[list] = []
    with caplog.at_level("WARNING"):
        def on_round(events):
            rounds.append(events)
            if len(rounds) == 2:
                monitor.stop.set()
        monitor.run(0.01, on_round)
    assert rounds == [[], []]
    assert "Kafka did not answer" in caplog.text

    monitor.stop.clear()
    outcomes[:] = [KafkaTimeoutError("again")]
    with pytest.raises(KafkaTimeoutError):
        monitor.run(0.01, rounds.append, rounds=1)
