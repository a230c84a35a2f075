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

Every alert is checked against the alerts schema (``monitors/alerting/topic_schemas.py``: a plan board, the known
fields with their types) before anything is sent; one that fails, or a message that is not JSON, goes to
``PREFIX.delivery_dead_letter`` with its reason and is committed past, never delivered. A ledger line
that fails its schema is dead-lettered the same way at start-up. Once :attr:`Notifier.stop` is set (a
SIGTERM) the notifier finishes the alert in hand, or, if it is still being retried, leaves it uncommitted
for the next start, and stops.
"""

from __future__ import annotations

import functools
import logging
import smtplib
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from standardwebhooks.webhooks import Webhook
from tenacity import RetryError, Retrying, stop_after_attempt, stop_after_delay, stop_any, wait_exponential_jitter

from bcfwatch.core.messages import DeadLetters, InvalidMessage
from bcfwatch.core.topics import Topics
from bcfwatch.infra.kafka import consumer_lag, ensure_topics, read_topic_records
from bcfwatch.infra.kafka_security import kafka_python_options
from monitors.alerting.alerts import Alert
from monitors.alerting.subscriptions import Subscriber
from monitors.alerting.topic_schemas import parse_alert, parse_delivery
from monitors.rules.drift import Question

log = logging.getLogger(__name__)


class DeliveryFailed(RuntimeError):
    pass


class DeliveryInterrupted(RuntimeError):
    """A stop was asked for while an alert was still being retried: it is delivered after the restart."""


def idempotency_key(subscriber: Subscriber, alert: Alert) -> str:
    return f"{subscriber.name}:{alert.event_id}"


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook answering 3xx has not received the alert: the redirect is not followed (nor the body re-sent)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@functools.cache
def _webhook_opener(ca_file: str | None) -> urllib.request.OpenerDirector:
    """The opener for a subscriber (one per CA file): the system's CAs, or only the subscriber's own
    ``ca_file``; redirects are refused either way."""
    if ca_file is None:
        return urllib.request.build_opener(_RefuseRedirects)
    context = ssl.create_default_context(cafile=ca_file)
    return urllib.request.build_opener(_RefuseRedirects, urllib.request.HTTPSHandler(context=context))


def send_webhook(subscriber: Subscriber, alert: Alert, timeout: float = 10.0) -> None:
    body = alert.to_wire().decode()
    message_id = idempotency_key(subscriber, alert)
    now = datetime.now(UTC)
    assert subscriber.url is not None and subscriber.secret is not None  # a webhook subscriber has both (load)
    signature = Webhook(subscriber.secret).sign(message_id, now, body)
    request = urllib.request.Request(subscriber.url, data=body.encode(), method="POST", headers={
        "content-type": "application/json", "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature,
    })
    try:
        with _webhook_opener(subscriber.ca_file).open(request, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise DeliveryFailed(f"webhook answered HTTP {response.status}")
    except urllib.error.HTTPError as error:
        raise DeliveryFailed(f"webhook answered HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DeliveryFailed(f"webhook unreachable: {getattr(error, 'reason', error)}") from None


QUESTION_WORDING = {Question.PLAN_NUMBER: "expected to miss its plan number",
                    Question.UNDERLYING_RATE: "underlying rate moved from what the plan assumed"}


def alert_subject(alert: Alert) -> str:
    return (f"[bcfwatch] {alert.state.value.upper()} {alert.severity.value}: {alert.board} {alert.metric} "
            f"{QUESTION_WORDING[alert.question]}, {alert.variance_pct:+.1f}% against plan")


def send_email(subscriber: Subscriber, alert: Alert, timeout: float = 10.0) -> None:
    message = EmailMessage()
    message["Subject"] = alert_subject(alert)
    message["From"] = subscriber.sender
    message["To"] = ", ".join(subscriber.to)
    message["Message-ID"] = f"<{idempotency_key(subscriber, alert).replace(':', '.')}@bcfwatch>"
    message.set_content(
        f"Board {alert.board}, {alert.metric}, week ending {alert.as_of.isoformat()}: {alert.state.value}.\n"
        f"Question: {QUESTION_WORDING[alert.question]} ({alert.question.value}).\n"
        f"Year to date: actual {alert.actual:,.0f}, planned {alert.planned:,.0f} "
        f"({alert.variance_pct:+.1f}%).\n"
        f"Projected year end {alert.projected_year_end:,.0f} against a plan number of {alert.planned_year_end:,.0f};\n"
        f"money at risk £{alert.money_at_risk_gbp:,.0f}.\n"
        f"SPC: {alert.spc_variation.value} ({', '.join(alert.spc_rules) or 'no rule on the latest week'}); "
        f"assurance: {alert.assurance.value}.\n"
        f"Alert id {alert.alert_id}.\n"
    )
    try:
        with smtp_session(subscriber, timeout) as smtp:
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryFailed(f"SMTP delivery failed: {error}") from None


def smtp_session(subscriber: Subscriber, timeout: float) -> smtplib.SMTP:
    """An SMTP connection as the subscriber asks: implicit TLS, STARTTLS (refused if the server cannot), or
    plaintext (loopback only, checked at load); then AUTH when credentials are configured."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if subscriber.smtp_tls == "implicit":
        smtp = smtplib.SMTP_SSL(subscriber.smtp_host, subscriber.smtp_port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(subscriber.smtp_host, subscriber.smtp_port, timeout=timeout)
        if subscriber.smtp_tls == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                smtp.close()
                raise smtplib.SMTPNotSupportedError(
                    f"{subscriber.smtp_host} does not offer STARTTLS; refusing to send in plaintext")
            smtp.starttls(context=context)
            smtp.ehlo()
    if subscriber.smtp_username is not None:
        smtp.login(subscriber.smtp_username, subscriber.smtp_password or "")
    return smtp


CHANNELS: dict[str, Callable[[Subscriber, Alert], None]] = {"webhook": send_webhook, "email": send_email}


class Notifier:
    def __init__(self, bootstrap: str, topics: Topics, subscribers: list[Subscriber], max_attempts: int = 12,
                 max_seconds: float = 300.0, initial_backoff: float = 0.2, max_backoff: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.subscribers = subscribers
        self.stop = threading.Event()  # set (by a SIGTERM handler): finish the alert in hand, then stop
        backoff = wait_exponential_jitter(multiplier=initial_backoff, max=max_backoff, jitter=initial_backoff)
        # stop_any is typed for stop_base only, but calls any stop condition (tenacity's StopBaseT): the lambda
        # reads self.stop when called, as the service replaces it (monitors/service/processes.py)
        self.retry: dict[str, Any] = dict(
            stop=stop_any(stop_after_attempt(max_attempts), stop_after_delay(max_seconds),
                          lambda _state: self.stop.is_set()),  # type: ignore[arg-type]
            wait=backoff, sleep=lambda seconds: self.stop.wait(seconds), reraise=False)
        ensure_topics(bootstrap, [topics.alerts], 1)
        ensure_topics(bootstrap, [self.topics.deliveries, self.topics.delivery_dead_letter], 1)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                      client_id="bcfwatch-notifier", **kafka_python_options())
        # Alerts and ledger lines that fail their schema (monitors/alerting/topic_schemas.py) are dead-lettered,
        # never used.
        self.dead_letters = DeadLetters(self.producer, self.topics.delivery_dead_letter, "notifier")
        self.done = set()
        for record in read_topic_records(bootstrap, self.topics.deliveries):
            try:
                self.done.add(parse_delivery(record.value).key)
            except InvalidMessage as error:
                self.dead_letters.send(error, record)
        self.producer.flush()
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"bcfwatch-{topics.prefix}-notifier",
                                      enable_auto_commit=False, auto_offset_reset="earliest",
                                      client_id="bcfwatch-notifier", **kafka_python_options())
        self.consumer.assign([TopicPartition(topics.alerts, 0)])

    def deliver(self, alert: Alert) -> list[tuple[str, str]]:
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
                if self.stop.is_set():  # stopping: not an outcome; this subscriber gets it after the restart
                    raise DeliveryInterrupted(key) from None
                outcome = "dead_lettered"
                reason = str(error.last_attempt.exception())
                log.warning("giving up on %s after %d attempts: %s", key, attempts, reason)
                self.producer.send(self.topics.delivery_dead_letter, value=orjson.dumps({
                    "key": key, "subscriber": subscriber.name, "channel": subscriber.channel,
                    "event_id": alert.event_id, "reason": reason, "attempts": attempts,
                    "alert": alert.to_document()}))
            self.producer.send(self.topics.deliveries, value=orjson.dumps({
                "key": key, "outcome": outcome, "attempts": attempts, "at": datetime.now(UTC).isoformat()}))
            self.producer.flush()
            self.done.add(key)
            outcomes.append((subscriber.name, outcome))
        return outcomes

    def poll(self, timeout_ms: int = 1000, on_delivery: Callable[[Alert, list], None] | None = None) -> int:
        """Deliver every alert event that has arrived; commit after each. Returns how many were handled."""
        handled = 0
        for records in self.consumer.poll(timeout_ms=timeout_ms).values():
            for record in records:
                tp = TopicPartition(record.topic, record.partition)
                if self.stop.is_set():  # stopping: leave the rest for the next start
                    self.consumer.seek(tp, record.offset)
                    return handled
                try:
                    alert = parse_alert(record.value)
                except InvalidMessage as error:  # never delivered: dead-lettered with the reason, then skipped
                    self.dead_letters.send(error, record)
                    self.producer.flush()
                    self.consumer.commit({tp: _offset_and_metadata(record.offset + 1)})
                    handled += 1
                    continue
                try:
                    outcomes = self.deliver(alert)
                except DeliveryInterrupted:
                    self.consumer.seek(tp, record.offset)
                    return handled
                self.consumer.commit({tp: _offset_and_metadata(record.offset + 1)})
                handled += 1
                if on_delivery is not None:
                    on_delivery(alert, outcomes)
        return handled

    def lag(self) -> int | None:
        """Alerts on the topic not yet handled (None until the first fetch)."""
        tp = TopicPartition(self.topics.alerts, 0)
        highwater = self.consumer.highwater(tp)
        return None if highwater is None else consumer_lag(self.consumer, {tp: highwater})

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()


def _offset_and_metadata(offset: int):
    from kafka.structs import OffsetAndMetadata

    return OffsetAndMetadata(offset, "", -1)
