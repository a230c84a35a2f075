"""`bcfwatch notify`: deliver alert events to subscribers, each exactly once, in order.

Reads the ``PREFIX.alerts`` topic (one partition, so one order) and, for each
event, every subscriber that wants it: a Standard Webhooks signed POST
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature``; the id is the
idempotency key ``subscriber:event_id``, the same on every retry) or an e-mail
over SMTP. Failures are retried with exponential backoff and jitter (tenacity);
once retries are exhausted a record goes to ``PREFIX.delivery_dead_letter``.
Every outcome is written to ``PREFIX.deliveries`` before the alert's offset is
committed, and read back at start-up, so a restarted notifier neither repeats
nor skips a delivery. Secrets never reach a log line.
"""

from __future__ import annotations

import logging
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from standardwebhooks.webhooks import Webhook
from tenacity import RetryError, Retrying, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from bcfwatch.kafka_admin import ensure_topics
from bcfwatch.kafka_security import kafka_python_options
from bcfwatch.settings import Topics
from monitors.subscriptions import Subscriber
from streams.state_reader import read_topic_values

log = logging.getLogger(__name__)


class DeliveryFailed(RuntimeError):
    pass


def idempotency_key(subscriber: Subscriber, alert: dict) -> str:
    return f"{subscriber.name}:{alert['event_id']}"


def send_webhook(subscriber: Subscriber, alert: dict, timeout: float = 10.0) -> None:
    body = orjson.dumps(alert).decode()
    message_id = idempotency_key(subscriber, alert)
    now = datetime.now(UTC)
    signature = Webhook(subscriber.secret).sign(message_id, now, body)
    request = urllib.request.Request(subscriber.url, data=body.encode(), method="POST", headers={
        "content-type": "application/json", "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature,
    })
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise DeliveryFailed(f"webhook answered HTTP {response.status}")
    except urllib.error.HTTPError as error:
        raise DeliveryFailed(f"webhook answered HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DeliveryFailed(f"webhook unreachable: {getattr(error, 'reason', error)}") from None


def alert_subject(alert: dict) -> str:
    return (f"[bcfwatch] {alert['state'].upper()} {alert['severity']}: {alert['board']} {alert['metric']} "
            f"{alert['variance_pct']:+.1f}% against plan")


def send_email(subscriber: Subscriber, alert: dict, timeout: float = 10.0) -> None:
    message = EmailMessage()
    message["Subject"] = alert_subject(alert)
    message["From"] = subscriber.sender
    message["To"] = ", ".join(subscriber.to)
    message["Message-ID"] = f"<{idempotency_key(subscriber, alert).replace(':', '.')}@bcfwatch>"
    message.set_content(
        f"Board {alert['board']}, {alert['metric']}, week ending {alert['as_of']}: {alert['state']}.\n"
        f"Year to date: actual {alert['actual']:,.0f}, planned {alert['planned']:,.0f} "
        f"({alert['variance_pct']:+.1f}%).\n"
        f"Projected year end {alert['projected_year_end']:,.0f} against {alert['planned_year_end']:,.0f} planned; "
        f"money at risk £{alert['money_at_risk_gbp']:,.0f}.\n"
        f"SPC: {alert['spc_variation']} ({', '.join(alert['spc_rules']) or 'no rule on the latest week'}); "
        f"assurance: {alert['assurance']}.\n"
        f"Alert id {alert['alert_id']}.\n"
    )
    try:
        with smtplib.SMTP(subscriber.smtp_host, subscriber.smtp_port, timeout=timeout) as smtp:
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryFailed(f"SMTP delivery failed: {error}") from None


CHANNELS: dict[str, Callable[[Subscriber, dict], None]] = {"webhook": send_webhook, "email": send_email}


class Notifier:
    def __init__(self, bootstrap: str, topics: Topics, subscribers: list[Subscriber], max_attempts: int = 12,
                 max_seconds: float = 300.0, initial_backoff: float = 0.2, max_backoff: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.subscribers = subscribers
        backoff = wait_exponential_jitter(multiplier=initial_backoff, max=max_backoff, jitter=initial_backoff)
        self.retry = dict(stop=stop_after_attempt(max_attempts) | stop_after_delay(max_seconds), wait=backoff,
                          reraise=False)
        ensure_topics(bootstrap, [topics.alerts], 1)
        ensure_topics(bootstrap, [self.topics.deliveries, self.topics.delivery_dead_letter], 1)
        self.done = {orjson.loads(v)["key"] for v in read_topic_values(bootstrap, self.topics.deliveries)}
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                      client_id="bcfwatch-notifier", **kafka_python_options())
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"bcfwatch-{topics.prefix}-notifier",
                                      enable_auto_commit=False, auto_offset_reset="earliest",
                                      client_id="bcfwatch-notifier", **kafka_python_options())
        self.consumer.assign([TopicPartition(topics.alerts, 0)])

    def deliver(self, alert: dict) -> list[tuple[str, str]]:
        """Deliver one alert event to every subscriber that wants it; (subscriber, outcome) for each."""
        outcomes = []
        for subscriber in self.subscribers:
            key = idempotency_key(subscriber, alert)
            if not subscriber.wants(alert) or key in self.done:
                continue
            attempts = 0
            try:
                for attempt in Retrying(**self.retry):
                    with attempt:
                        attempts = attempt.retry_state.attempt_number
                        CHANNELS[subscriber.channel](subscriber, alert)
                outcome = "delivered"
            except RetryError as error:
                outcome = "dead_lettered"
                reason = str(error.last_attempt.exception())
                log.warning("giving up on %s after %d attempts: %s", key, attempts, reason)
                self.producer.send(self.topics.delivery_dead_letter, value=orjson.dumps({
                    "key": key, "subscriber": subscriber.name, "channel": subscriber.channel,
                    "event_id": alert["event_id"], "reason": reason, "attempts": attempts, "alert": alert}))
            self.producer.send(self.topics.deliveries, value=orjson.dumps({
                "key": key, "outcome": outcome, "attempts": attempts, "at": datetime.now(UTC).isoformat()}))
            self.producer.flush()
            self.done.add(key)
            outcomes.append((subscriber.name, outcome))
        return outcomes

    def poll(self, timeout_ms: int = 1000, on_delivery: Callable[[dict, list], None] | None = None) -> int:
        """Deliver every alert event that has arrived; commit after each. Returns how many were handled."""
        handled = 0
        for records in self.consumer.poll(timeout_ms=timeout_ms).values():
            for record in records:
                alert = orjson.loads(record.value)
                outcomes = self.deliver(alert)
                self.consumer.commit({TopicPartition(record.topic, record.partition):
                                      _offset_and_metadata(record.offset + 1)})
                handled += 1
                if on_delivery is not None:
                    on_delivery(alert, outcomes)
        return handled

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()


def _offset_and_metadata(offset: int):
    from kafka.structs import OffsetAndMetadata

    return OffsetAndMetadata(offset, "", -1)
