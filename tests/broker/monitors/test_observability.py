"""The real Debian Prometheus and Alertmanager against a live worker and monitor.

Broker + worker + monitor exporter run; a log with a drifting board is replayed;
Prometheus (loopback, temporary storage) scrapes both exporters and evaluates the
rules; every panel query of every dashboard returns data; the drift alert goes
through Alertmanager to a local webhook receiver; `promtool check metrics` finds
nothing wrong with a real scrape.
"""

from __future__ import annotations

import subprocess
import urllib.parse
import urllib.request
from datetime import date

import orjson
import pytest
import yaml
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families

from bcfwatch import dashboards
from bcfwatch.core.plans import load_plan
from bcfwatch.core.topics import Topics
from bcfwatch.demo.worker_process import WorkerProcess
from monitors.alerting.alerts import AlertState
from monitors.service.monitor import Monitor
from producers.generate import Drift, GeneratorSpec, generate_frame, write_log
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from producers.sample_plan import write_sample_plan
from streams.app import WorkerConfig
from streams.state_reader import wait_until_caught_up
from tests.support import REPO, free_port, wait_for
from tests.support.receivers import JsonReceiver

pytestmark = pytest.mark.kafka
COMPOSE = REPO / "compose"
SCALE = 0.004
WORKER_METRICS, MONITOR_METRICS, PROMETHEUS, ALERTMANAGER, RECEIVER = (free_port() for _ in range(5))


def prometheus_query(expr: str) -> list:
    url = f"http://127.0.0.1:{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = orjson.loads(urllib.request.urlopen(url, timeout=10).read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


@pytest.fixture
def stack(broker, topic_prefix, tmp_path):
    """Worker, monitor exporter, Prometheus, Alertmanager and a receiver, all on loopback; stopped afterwards."""
    processes: list[subprocess.Popen] = []
    receiver = JsonReceiver(RECEIVER).start()
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topic_prefix, partitions=4,
                          datadir=tmp_path / "worker", web_port=free_port(), metrics_port=WORKER_METRICS)
    worker = WorkerProcess(config, tmp_path / "worker.log").start()

    alertmanager_config = yaml.safe_load((COMPOSE / "alertmanager/alertmanager.yml").read_text())
    alertmanager_config["route"]["group_wait"] = "1s"
    for receiver_config in alertmanager_config["receivers"]:
        for hook in receiver_config["webhook_configs"]:
            hook["url"] = f"http://127.0.0.1:{RECEIVER}/{receiver_config['name']}"
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config))
    processes.append(subprocess.Popen(
        ["prometheus-alertmanager", f"--config.file={tmp_path / 'alertmanager.yml'}",
         f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{ALERTMANAGER}",
         "--cluster.listen-address="], stdout=subprocess.DEVNULL, stderr=open(tmp_path / "am.log", "wb")))

    prometheus_config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(COMPOSE / "prometheus/rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ALERTMANAGER}"]}]}]},
        "scrape_configs": [
            {"job_name": "bcfwatch-worker", "static_configs": [{"targets": [f"127.0.0.1:{WORKER_METRICS}"]}]},
            {"job_name": "bcfwatch-monitor", "static_configs": [{"targets": [f"127.0.0.1:{MONITOR_METRICS}"]}]},
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config))
    processes.append(subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{PROMETHEUS}", "--rules.alert.resend-delay=1s"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb")))
    try:
        yield config, receiver
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
        worker.stop()
        receiver.stop()


def test_prometheus_alertmanager_and_dashboards_on_live_metrics(stack, broker, topic_prefix, tmp_path):
    config, receiver = stack
    log = tmp_path / "events.jsonl"
    write_log(generate_frame(GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=SCALE, seed=5,
                                           drifts=[Drift.parse("E08000025:+30%")], malformed_share=0.001)), log)
    replay(log, broker.bootstrap, Topics(topic_prefix), Pseudonymiser(load_key()), config.partitions)
    wait_until_caught_up(config, 600)
    plan_path = tmp_path / "plan.csv"
    write_sample_plan(plan_path, scale=SCALE)
    monitor = Monitor(config, load_plan(plan_path), date(2015, 4, 1))
    start_http_server(MONITOR_METRICS, addr="127.0.0.1")
    try:
        events = monitor.evaluate()
    finally:
        monitor.close()
    assert "E08000025" in {e.board for e in events if e.state is AlertState.RAISED}

    # A real scrape of each exporter passes promtool's lint.
    for port in (WORKER_METRICS, MONITOR_METRICS):
        lint = subprocess.run(["promtool", "check", "metrics"], input=scrape(port), capture_output=True, text=True)
        assert lint.returncode == 0 and lint.stdout.strip() == "" and lint.stderr.strip() == "", lint.stderr
    worker_metrics = scrape(WORKER_METRICS)
    assert 'bcf_events_processed_total{outcome="counted",type="admission"}' in worker_metrics
    # Low-cardinality labels only: never a patient, an event id or a subscriber (metric: one of 3 plan metrics).
    for port in (WORKER_METRICS, MONITOR_METRICS):
        labels = {name for family in text_string_to_metric_families(scrape(port)) if family.name.startswith("bcf_")
                  for sample in family.samples for name in sample.labels}
        assert labels <= {"board", "window", "type", "outcome", "reason", "partition", "le", "metric"}, labels

    wait_for(lambda: len([r for r in prometheus_query("up") if r["value"][1] == "1"]) == 2, 60,
             "Prometheus to scrape the worker and the monitor")

    # Every panel query of every dashboard returns data ($board = the drifting board).
    for name, build in dashboards.DASHBOARDS.items():
        for title, expr in dashboards.panel_queries(build()):
            query = expr.replace("$board", "E08000025")
            wait_for(lambda query=query: prometheus_query(query), 60, f"data for {name} / {title}: {query}")

    # The drift alert fires in Prometheus and reaches the board-leads receiver through Alertmanager.
    def drift_alert_delivered() -> bool:
        return any(path == "/board-leads" and any(a["labels"].get("board") == "E08000025" and
                                                  a["labels"]["alertname"] == "BoardDriftingOffPlan"
                                                  for a in body["alerts"])
                   for path, body in receiver.received)

    wait_for(drift_alert_delivered, 120, "the drift alert to reach the receiver through Alertmanager")
    assert all(path == "/board-leads" for path, body in receiver.received
               if any(a["labels"]["alertname"] == "BoardDriftingOffPlan" for a in body["alerts"]))
