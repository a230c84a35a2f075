"""Issue 15 on a real secured broker (SASL_SSL, SCRAM-SHA-512, StandardAuthorizer, ACLs per service).

One secured broker for the module (its own ports, TLS material and passwords in its cache dir). Plaintext
and wrong passwords are refused; each service principal is denied outside its ACLs; and the whole path
(replay -> worker -> counts -> monitor -> notifier) works over TLS + SASL. The same run is the leak scan:
the log hides valid NHS numbers, in every accepted form, in free-text fields and malformed lines, and
none of them may appear on any topic, dead-letter reason, log line, metric, alert or report.
"""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import orjson
import pandas as pd
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAuthorizationFailedError

from bcfwatch.core.nhs_number import is_valid_nhs_number
from bcfwatch.core.plans import load_plan
from bcfwatch.core.topics import Topics
from bcfwatch.demo.webhook_receiver import WebhookReceiver
from bcfwatch.demo.worker_process import WorkerProcess
from bcfwatch.infra.broker import SERVICES, Broker
from bcfwatch.infra.errors import KafkaSecurityError
from bcfwatch.infra.kafka import authorise_prefix, event_retention_ms, prefix_topics
from bcfwatch.infra.kafka_security import KafkaSecurity
from monitors.alerting.delivery import Notifier
from monitors.alerting.subscriptions import Subscriber
from monitors.analysis.backtest import backtest, write_outputs, write_side_outputs
from monitors.analysis.report import write_report
from monitors.service.monitor import Monitor
from producers.generate import Drift, GeneratorSpec, generate_frame, write_log
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from producers.sample_plan import write_sample_plan
from streams.app import WorkerConfig
from streams.daily_table import from_state
from streams.oracle import oracle_counts
from streams.state_reader import day_counts, wait_until_caught_up
from tests.support import free_port, wait_for
from tests.support.receivers import SAMPLE_ALERT

pytestmark = pytest.mark.kafka
PREFIX = "sec"
PARTITIONS = 4
BIRMINGHAM = "E08000025"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture(scope="module")
def secure_broker() -> Broker:
    kafka = Broker(port=free_port(), controller_port=free_port(), secure=True)
    kafka.start(fresh=True)
    try:
        authorise_prefix(kafka.bootstrap, PREFIX, PARTITIONS, kafka.client_security("admin"))
        yield kafka
    finally:
        kafka.stop()
        shutil.rmtree(kafka.home, ignore_errors=True)


def _as(monkeypatch: pytest.MonkeyPatch, broker: Broker, service: str) -> None:
    """Make every client built from now on (and every child process) connect as ``service``."""
    for name, value in {"BCFWATCH_BOOTSTRAP": broker.bootstrap, **broker.client_security(service).env()}.items():
        monkeypatch.setenv(name, value)


def _write(broker: Broker, security: KafkaSecurity, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", max_block_ms=15_000,
                             **security.kafka_python_options())
    try:
        producer.send(topic, key=b"probe", value=b"probe").get(timeout=15)  # keyed: some are compacted
    finally:
        producer.close()


def _read_all(broker: Broker, security: KafkaSecurity, topic: str, timeout: float = 30.0) -> list[bytes]:
    """Every value on ``topic`` (raises TopicAuthorizationFailedError when the principal may not read it)."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             **security.kafka_python_options())
    try:
        partitions = [TopicPartition(topic, p) for p in range(_partitions(topic))]
        end = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        values: list[bytes] = []
        wait_for(lambda: values.extend(r.value for batch in consumer.poll(timeout_ms=300).values() for r in batch)
                 or all(consumer.position(tp) >= end[tp] for tp in partitions), timeout, f"reading {topic}",
                 interval=0)
        return values
    finally:
        consumer.close()


def _partitions(topic: str) -> int:
    return next(count for name, count, _ in prefix_topics(PREFIX, PARTITIONS) if name == topic)


# -- authentication ---------------------------------------------------------------------------------------
def test_plaintext_client_is_refused(secure_broker):
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        KafkaAdminClient(bootstrap_servers=secure_broker.bootstrap, bootstrap_timeout_ms=4000)
    # the same client with the admin's settings gets in
    admin = KafkaAdminClient(bootstrap_servers=secure_broker.bootstrap, bootstrap_timeout_ms=15_000,
                             **secure_broker.client_security("admin").kafka_python_options())
    try:
        assert f"{PREFIX}.admission" in admin.list_topics()
    finally:
        admin.close()


def test_wrong_password_is_refused(secure_broker, tmp_path):
    wrong = tmp_path / "replay.password"
    wrong.write_text(secrets.token_urlsafe(24))
    wrong.chmod(0o600)
    security = KafkaSecurity("SASL_SSL", username="replay", password_file=wrong, ca_file=secure_broker.ca_file)
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=secure_broker.bootstrap, bootstrap_timeout_ms=4000,
                         **security.kafka_python_options())
    # the same settings with the right password get in
    wrong.write_text(secure_broker.password_file("replay").read_text())
    KafkaAdminClient(bootstrap_servers=secure_broker.bootstrap, bootstrap_timeout_ms=15_000,
                     **security.kafka_python_options()).close()
    # an unknown principal is refused the same way
    unknown = KafkaSecurity("SASL_SSL", username="mallory", password_file=secure_broker.password_file("replay"),
                            ca_file=secure_broker.ca_file)
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=secure_broker.bootstrap, bootstrap_timeout_ms=4000,
                         **unknown.kafka_python_options())


def test_client_settings_are_checked_before_connecting(tmp_path):
    password = tmp_path / "password"
    password.write_text("x")
    password.chmod(0o644)
    with pytest.raises(KafkaSecurityError, match="chmod 600"):
        KafkaSecurity("SASL_SSL", username="replay", password_file=password).kafka_python_options()
    with pytest.raises(KafkaSecurityError, match="unencrypted"):
        KafkaSecurity.from_env({"BCFWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"})
    with pytest.raises(KafkaSecurityError, match="BCFWATCH_KAFKA_USERNAME"):
        KafkaSecurity.from_env({"BCFWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    assert KafkaSecurity.from_env({}).kafka_python_options() == {}  # plaintext stays the default
    assert KafkaSecurity.from_env({}).aiokafka_options() == {}
    assert KafkaSecurity.from_env({}).faust_broker_credentials() is None


def test_secrets_are_private_files(secure_broker):
    assert secure_broker.secrets_dir.stat().st_mode & 0o777 == 0o700
    for path in secure_broker.secrets_dir.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    assert (secure_broker.home / "server.properties").stat().st_mode & 0o077 == 0


# -- authorisation: each principal only inside its ACLs ---------------------------------------------------
topics = Topics(PREFIX)
STATE = f"bcfwatch-{PREFIX}-state"
ALLOWED_WRITES = [("replay", topics.event("admission")), ("replay", topics.dead_letter),
                  ("worker", topics.late_events),  # (not board_days/state: the pipeline test reads them)
                  ("monitor", topics.alerts), ("notifier", topics.deliveries),
                  ("notifier", topics.delivery_dead_letter)]
DENIED_WRITES = [("monitor", topics.event("admission")), ("notifier", topics.event("discharge")),
                 ("replay", topics.board_days), ("replay", topics.alerts), ("worker", topics.alerts),
                 ("worker", topics.deliveries), ("monitor", topics.board_days), ("notifier", topics.alerts)]
ALLOWED_READS = [("worker", topics.event("admission")), ("worker", STATE), ("monitor", topics.board_days),
                 ("monitor", topics.alerts), ("notifier", topics.alerts), ("notifier", topics.deliveries)]
DENIED_READS = [("replay", topics.event("admission")), ("replay", topics.dead_letter), ("monitor", STATE),
                ("monitor", topics.event("care_home_placement")), ("notifier", topics.board_days),
                ("notifier", topics.dead_letter), ("worker", topics.alerts), ("replay", topics.deliveries)]


def test_each_principal_is_denied_outside_its_acls(secure_broker):
    for service, topic in ALLOWED_WRITES:
        _write(secure_broker, secure_broker.client_security(service), topic)
    for service, topic in DENIED_WRITES:
        with pytest.raises(TopicAuthorizationFailedError):
            _write(secure_broker, secure_broker.client_security(service), topic)
    for service, topic in ALLOWED_READS:
        assert _read_all(secure_broker, secure_broker.client_security(service), topic) is not None
    assert b"probe" in _read_all(secure_broker, secure_broker.client_security("worker"), topics.event("admission"))
    for service, topic in DENIED_READS:
        with pytest.raises(TopicAuthorizationFailedError):
            _read_all(secure_broker, secure_broker.client_security(service), topic)
    # nobody but the admin may create topics or consume in another service's group
    admin = KafkaAdminClient(bootstrap_servers=secure_broker.bootstrap,
                             **secure_broker.client_security("monitor").kafka_python_options())
    try:
        from kafka.admin import NewTopic

        with pytest.raises(TopicAuthorizationFailedError):
            admin.create_topics([NewTopic(f"{PREFIX}.mine", 1, 1)])
    finally:
        admin.close()


def test_event_topics_have_retention_and_state_topics_are_compacted(secure_broker):
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=secure_broker.bootstrap,
                             **secure_broker.client_security("admin").kafka_python_options())
    try:
        def config(topic: str) -> dict[str, str]:
            response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            (by_name,) = response.values()
            entries = by_name[topic]
            return {key: (value.get("value") if isinstance(value, dict) else value) for key, value in entries.items()}

        for topic in (*topics.events, topics.dead_letter, topics.late_events, topics.held_events):
            assert config(topic)["retention.ms"] == str(event_retention_ms()) == str(30 * 86_400_000), topic
        assert config(STATE)["cleanup.policy"] == "compact"
        assert config(topics.board_days)["cleanup.policy"] == "compact"
    finally:
        admin.close()


# -- the whole path over TLS + SASL, and the leak scan -------------------------------------------------------
NHS_FORMS = ["{d}", "{a} {b} {c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "{d0} {d1} {d2} {d3} {d4} {d5} {d6} {d7} {d8} {d9}",
             "{a}-{b}{c}", "{a}  {b}  {c}"]


def _hidden_numbers(count: int) -> list[str]:
    """Valid NHS numbers (Modulus 11) to hide in the log, none used by the generator's patients."""
    numbers, n = [], 400_000_000
    while len(numbers) < count:
        n += 7919
        digits = str(n)[:9]
        for last in range(10):
            if is_valid_nhs_number(digits + str(last)):
                numbers.append(digits + str(last))
                break
    return numbers


def _form(number: str, template: str) -> str:
    return template.format(d=number, a=number[:3], b=number[3:6], c=number[6:],
                           **{f"d{i}": number[i] for i in range(10)})


def _leaky_log(folder: Path) -> tuple[Path, list[str]]:
    """A two-year log plus lines hiding valid NHS numbers in free-text fields and in malformed lines."""
    spec = GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=0.003, seed=15,
                         drifts=[Drift.parse(f"{BIRMINGHAM}:+60%")], malformed_share=0.001)
    log = folder / "events.jsonl"
    write_log(generate_frame(spec), log)
    lines = log.read_bytes().splitlines(keepends=True)
    template = next(orjson.loads(line) for line in lines if b'"admission"' in line and b"nhs_number" in line)
    hidden = _hidden_numbers(len(NHS_FORMS) * 5)
    extra = []
    for i, template_form in enumerate(NHS_FORMS):
        numbers = [_form(n, template_form) for n in hidden[i * 5:(i + 1) * 5]]
        extra += [
            orjson.dumps({**template, "event_id": f"leak-{numbers[0]}"}),
            orjson.dumps({**template, "event_id": f"leak-p{i}", "provider": f"R{numbers[1]}"}),
            orjson.dumps({**template, "type": "discharge", "event_id": f"leak-d{i}", "discharge_destination": "19",
                          "into_reablement": False, "admission_id": numbers[2]}),
            f'{{"type": "admission", "event_id": "broken-{i}", "nhs_number": "{numbers[3]}", '.encode(),  # not JSON
            orjson.dumps({**template, "event_id": f"leak-n{i}", "nhs_number": numbers[4] + "0"}),  # 11 digits
        ]
    log.write_bytes(b"".join([*lines[:200], *(line + b"\n" for line in extra), *lines[200:]]))
    return log, hidden


def _assert_no_number(text: str, hidden: list[str], where: str) -> None:
    digits = re.sub(r"[\s.\-]", "", text)
    found = [number for number in hidden if number in digits or number[:9] in digits]
    assert not found, f"{where} leaks {found[:3]}"


def test_replay_worker_monitor_notify_over_sasl_ssl_leak_nothing(secure_broker, tmp_path, monkeypatch):
    log, hidden = _leaky_log(tmp_path)
    plan_path = tmp_path / "plan.csv"
    write_sample_plan(plan_path, scale=0.003)

    _as(monkeypatch, secure_broker, "replay")
    report = replay(log, secure_broker.bootstrap, topics, Pseudonymiser(load_key()), PARTITIONS)
    reasons = " ".join(reason for _, reason in report.rejected)
    assert report.rejected_by_reason["invalid_value"] >= 3 * len(NHS_FORMS)
    assert "looks like an NHS number" in reasons
    _assert_no_number(reasons, hidden, "replay's rejection reasons")

    _as(monkeypatch, secure_broker, "worker")
    metrics_port = free_port()
    config = WorkerConfig(bootstrap=secure_broker.bootstrap, topic_prefix=PREFIX, partitions=PARTITIONS,
                          datadir=tmp_path / "worker", web_port=free_port(), metrics_port=metrics_port)
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        snapshots = wait_until_caught_up(config, 600)
        live = from_state(day_counts(snapshots))
        oracle = oracle_counts(log, 14 * 86_400)
        pd.testing.assert_frame_equal(live.reset_index(drop=True), oracle.reset_index(drop=True))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        for page in ("/router/", "/table/"):  # Faust's built-in pages are off
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"http://127.0.0.1:{config.web_port}{page}", timeout=10)
    finally:
        worker.stop()

    _as(monkeypatch, secure_broker, "monitor")
    monitor = Monitor(config, load_plan(plan_path), date(2015, 4, 1))
    alerts = monitor.evaluate()
    assert BIRMINGHAM in {event.board for event in alerts}

    _as(monkeypatch, secure_broker, "notifier")
    receiver = WebhookReceiver(WEBHOOK_SECRET, free_port()).start()
    notifier = Notifier(secure_broker.bootstrap, topics, [Subscriber("ops", None, None, "webhook", url=receiver.url,
                                                                     secret=WEBHOOK_SECRET, questions=None)])
    try:
        wait_for(lambda: notifier.poll(timeout_ms=500) is not None and len(receiver.accepted) >= len(alerts), 120,
                 "every alert to reach the webhook over the secured path")
    finally:
        notifier.close()
        receiver.stop()
    assert receiver.bad_signatures == 0

    # The leak scan: every topic (read as the admin), the worker's log and metrics, the alerts, the report.
    admin = secure_broker.client_security("admin")
    for name, _, _ in prefix_topics(PREFIX, PARTITIONS):
        for value in _read_all(secure_broker, admin, name, timeout=120):
            _assert_no_number(value.decode("utf-8", errors="replace"), hidden, f"topic {name}")
    dead_letters = [orjson.loads(v) for v in _read_all(secure_broker, admin, topics.dead_letter)
                    if v != b"probe"]  # (the ACL test's probe)
    assert any("looks like an NHS number" in d["reason"] for d in dead_letters)
    _assert_no_number((tmp_path / "worker.log").read_text(errors="replace"), hidden, "the worker's log")
    _assert_no_number(metrics, hidden, "the worker's metrics")
    _assert_no_number(b"\n".join(alert.to_wire() for alert in alerts).decode(), hidden, "the alerts")
    _assert_no_number(orjson.dumps([payload for _, payload in receiver.accepted]).decode(), hidden, "the webhooks")
    result = backtest(log, load_plan(plan_path), date(2015, 4, 1))
    outputs = [*write_outputs(result, tmp_path / "out"), *write_side_outputs(result, tmp_path / "out"),
               write_report(result, load_plan(plan_path), date(2015, 4, 1), tmp_path / "report.html")]
    for path in outputs:
        _assert_no_number(Path(path).read_text(errors="replace"), hidden, f"the report file {Path(path).name}")


def test_every_service_has_a_principal(secure_broker):
    for service in SERVICES:
        assert secure_broker.password_file(service).exists()
    assert secure_broker.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_webhook_redirects_are_not_followed():
    from aiohttp import web

    from bcfwatch.demo.webhook_receiver import LoopbackServer
    from monitors.alerting.delivery import DeliveryFailed, send_webhook

    class Redirecting(LoopbackServer):
        def __init__(self, port: int) -> None:
            super().__init__(port)
            self.posts = 0

        async def handle(self, request: web.Request) -> web.Response:
            self.posts += 1
            raise web.HTTPTemporaryRedirect(location=f"http://127.0.0.1:{self.port}/elsewhere")

    server = Redirecting(free_port()).start()
    try:
        subscriber = Subscriber("ops", None, None, "webhook", url=f"http://127.0.0.1:{server.port}/hook",
                                secret=WEBHOOK_SECRET)
        with pytest.raises(DeliveryFailed, match="HTTP 307"):
            send_webhook(subscriber, SAMPLE_ALERT)
        assert server.posts == 1  # the redirect target was never posted to
    finally:
        server.stop()
