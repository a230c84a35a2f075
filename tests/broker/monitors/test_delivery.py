"""Alerts reach subscribers: signed webhooks through an outage, exactly once and in order; e-mail over SMTP."""

from __future__ import annotations

import base64
import email
import threading

import orjson
import pytest
from kafka import KafkaProducer

from bcfwatch.core.topics import Topics
from bcfwatch.demo.webhook_receiver import WebhookReceiver
from bcfwatch.infra.kafka import ensure_topics
from monitors.alerting.delivery import DeliveryFailed, Notifier, send_webhook
from monitors.alerting.subscriptions import Subscriber
from monitors.alerting.topic_schemas import parse_alert
from tests.support import free_port, read_topic, wait_for
from tests.support.receivers import smtp_server

pytestmark = pytest.mark.kafka
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()


def alert(board: str, sequence: int, state: str = "raised") -> dict:
    alert_id = f"{board.lower()}-a1"
    return {"event_id": f"{alert_id}-{sequence}", "alert_id": alert_id, "sequence": sequence, "state": state,
            "severity": "critical", "board": board, "metric": "emergency_admissions",
            "question": "plan_number", "as_of": "2015-06-28",
            "actual": 11_000.0, "planned": 10_000.0, "variance_pct": 10.0, "z": 10.0, "spc_rules": ["shift"],
            "spc_variation": "special cause: concern", "assurance": "consistently missed",
            "projected_year_end": 44_000.0, "planned_year_end": 40_000.0, "money_at_risk_gbp": 6_200_000.0}


def publish(bootstrap: str, topics: Topics, alerts: list[dict]) -> None:
    ensure_topics(bootstrap, [topics.alerts], 1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for event in alerts:
        producer.send(topics.alerts, key=event["board"].encode(), value=orjson.dumps(event))
    producer.close()


def run_until(notifier: Notifier, done: threading.Event) -> threading.Thread:
    def loop():
        while not done.is_set():
            notifier.poll(timeout_ms=200)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_webhooks_survive_an_outage_and_arrive_once_in_order(broker, topic_prefix):
    topics = Topics(topic_prefix)
    alerts = [alert("E08000025", 1), alert("E09000012", 1), alert("E08000025", 2, "updated"),
              alert("E09000012", 2, "resolved"), alert("E10000016", 1)]
    publish(broker.bootstrap, topics, alerts)
    receiver = WebhookReceiver(SECRET, free_port()).start()
    receiver.down = True
    subscriber = Subscriber("ops", None, None, "webhook", url=receiver.url, secret=SECRET)
    notifier = Notifier(broker.bootstrap, topics, [subscriber], initial_backoff=0.05, max_backoff=0.5)
    done = threading.Event()
    thread = run_until(notifier, done)
    try:
        wait_for(lambda: receiver.refused >= 4, 60, "the notifier to retry against the down receiver")
        receiver.down = False
        wait_for(lambda: len(receiver.accepted) >= len(alerts), 60, "every alert to arrive")
    finally:
        done.set()
        thread.join(30)
        notifier.close()
    assert [payload["event_id"] for _, payload in receiver.accepted] == [a["event_id"] for a in alerts]
    assert [payload for _, payload in receiver.accepted] == alerts  # the body is the alert as on the topic
    assert [webhook_id for webhook_id, _ in receiver.accepted] == [f"ops:{a['event_id']}" for a in alerts]
    assert receiver.bad_signatures == 0

    # A restarted notifier knows what it delivered: nothing is sent twice, and a new alert still goes out.
    publish(broker.bootstrap, topics, [alert("E10000016", 2, "resolved")])
    restarted = Notifier(broker.bootstrap, topics, [subscriber], initial_backoff=0.05, max_backoff=0.5)
    try:
        wait_for(lambda: restarted.poll(timeout_ms=500) or len(receiver.accepted) > len(alerts), 60,
                 "the restarted notifier to deliver the new alert")
        for _ in range(3):
            restarted.poll(timeout_ms=300)
    finally:
        restarted.close()
        receiver.stop()
    ids = [payload["event_id"] for _, payload in receiver.accepted]
    assert ids == [a["event_id"] for a in alerts] + ["e10000016-a1-2"]
    deliveries = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, f"{topic_prefix}.deliveries")]
    assert [d["outcome"] for d in deliveries] == ["delivered"] * 6
    assert deliveries[0]["attempts"] >= 2


def test_exhausted_retries_are_dead_lettered_without_the_secret(broker, topic_prefix):
    topics = Topics(topic_prefix)
    publish(broker.bootstrap, topics, [alert("E08000025", 1)])
    receiver = WebhookReceiver(SECRET, free_port()).start()
    wrong_secret = "whsec_" + base64.b64encode(b"w" * 32).decode()
    subscriber = Subscriber("wrong-key", None, None, "webhook", url=receiver.url, secret=wrong_secret)
    notifier = Notifier(broker.bootstrap, topics, [subscriber], max_attempts=3, initial_backoff=0.01,
                        max_backoff=0.05)
    try:
        wait_for(lambda: notifier.poll(timeout_ms=500), 60, "the alert to be handled")
    finally:
        notifier.close()
        receiver.stop()
    assert receiver.bad_signatures == 3 and not receiver.accepted
    dead = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, f"{topic_prefix}.delivery_dead_letter")]
    assert len(dead) == 1 and dead[0]["attempts"] == 3 and "HTTP 401" in dead[0]["reason"]
    assert dead[0]["alert"] == alert("E08000025", 1) and dead[0]["event_id"] == "e08000025-a1-1"
    assert wrong_secret not in orjson.dumps(dead).decode()


def test_unreachable_webhook_is_a_clear_failure():
    subscriber = Subscriber("nobody", None, None, "webhook", url="http://127.0.0.1:9/hook", secret=SECRET)
    with pytest.raises(DeliveryFailed, match="unreachable"):
        send_webhook(subscriber, parse_alert(orjson.dumps(alert("E08000025", 1))), timeout=2)


def test_email_subscribers_get_one_message_per_alert_for_their_boards(broker, topic_prefix):
    topics = Topics(topic_prefix)
    publish(broker.bootstrap, topics, [alert("E08000025", 1), alert("E09000012", 1), alert("E08000025", 2)])
    smtp_port = free_port()
    controller, sink = smtp_server(smtp_port)
    subscriber = Subscriber("birmingham", frozenset({"E08000025"}), None, "email", to=("lead@example.nhs.uk",),
                            smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_tls="none")
    notifier = Notifier(broker.bootstrap, topics, [subscriber])
    try:
        wait_for(lambda: notifier.poll(timeout_ms=500) and len(sink.messages) >= 2, 60, "two e-mails")
        for _ in range(2):
            notifier.poll(timeout_ms=300)
    finally:
        notifier.close()
        controller.stop()
    assert len(sink.messages) == 2
    messages = [email.message_from_bytes(m.content) for m in sink.messages]
    assert all("E08000025" in m["Subject"] and "+10.0%" in m["Subject"] for m in messages)
    assert [m["Message-ID"] for m in messages] == ["<birmingham.e08000025-a1-1@bcfwatch>",
                                                   "<birmingham.e08000025-a1-2@bcfwatch>"]
    assert "money at risk £6,200,000" in messages[0].get_payload()
