"""Poison messages on every topic a service reads: no crash, nothing invalid delivered, each dead-lettered
with its reason, and the valid messages around them still processed (real broker, real services)."""

from __future__ import annotations

import base64
import threading
from datetime import date

import orjson
import pytest
from kafka import KafkaProducer

from bcfwatch.core.messages import InvalidMessage, SchemaReason
from bcfwatch.core.plans import load_plan
from bcfwatch.core.topics import STATE_TOPIC_CONFIG, Topics
from bcfwatch.demo.webhook_receiver import WebhookReceiver
from bcfwatch.infra.kafka import ensure_topics
from monitors.alerting.delivery import Notifier
from monitors.alerting.subscriptions import Subscriber
from monitors.alerting.topic_schemas import parse_alert
from monitors.service.monitor import Monitor
from producers.sample_plan import sample_plan_path
from streams.app import WorkerConfig
from streams.partition_state import PartitionState
from streams.published import parse_board_day
from streams.state_reader import latest_snapshots
from tests.broker.monitors.test_delivery import alert
from tests.support import free_port, read_topic, wait_for

pytestmark = pytest.mark.kafka
SECRET = "whsec_" + base64.b64encode(b"p" * 32).decode()
NHS_NUMBER = "9434765919"  # a valid-looking NHS number smuggled into a bad message: redacted when dead-lettered
COUNTS = [5, 1, 0, 0, 0, 0, 0, 0, 0]

BAD_BOARD_DAYS = [  # (key, value, reason_code)
    (b"E08000025|", orjson.dumps({"counts": COUNTS}), SchemaReason.INVALID_VALUE),  # the date.fromisoformat('') crash
    (None, orjson.dumps({"counts": COUNTS}), SchemaReason.INVALID_KEY),
    (b"\xff\xfe", orjson.dumps({"counts": COUNTS}), SchemaReason.INVALID_KEY),
    (b"E99999999|2015-05-01", orjson.dumps({"counts": COUNTS}), SchemaReason.UNKNOWN_BOARD),
    (b"E08000025|2015-02-30", orjson.dumps({"counts": COUNTS}), SchemaReason.INVALID_VALUE),
    (b"E08000025|2015-05-02", b"{not json " + NHS_NUMBER.encode(), SchemaReason.NOT_JSON),
    (b"E08000025|2015-05-03", None, SchemaReason.MISSING_FIELD),
    (b"E08000025|2015-05-04", orjson.dumps({"counts": [1, 2]}), SchemaReason.WRONG_TYPE),
    (b"E08000025|2015-05-05", orjson.dumps({"counts": ["7", *COUNTS[1:]]}), SchemaReason.WRONG_TYPE),
    (b"E08000025|2015-05-06", orjson.dumps({"total": 3}), SchemaReason.MISSING_FIELD),
    (b"E08000025|clock|admission", orjson.dumps({"stream_time": "soon"}), SchemaReason.WRONG_TYPE),
    (b"E08000025|clock|teleport", orjson.dumps({"stream_time": 1.0}), SchemaReason.INVALID_VALUE),
    (b"E08000025|a|b|c", orjson.dumps({"counts": COUNTS}), SchemaReason.INVALID_KEY),
]


def bad_alerts() -> list[tuple[bytes, SchemaReason]]:
    unknown_board = alert("E08000025", 1) | {"board": "X99999999"}
    wrong_types = alert("E09000012", 1) | {"actual": "lots", "sequence": "1"}
    incomplete = {k: v for k, v in alert("E09000012", 1).items() if k != "planned"}
    mismatched = alert("E09000012", 1) | {"event_id": "someone-else-9"}
    extra = alert("E09000012", 1) | {"callback_url": "http://attacker.example/"}
    return [(b"not json at all " + NHS_NUMBER.encode(), SchemaReason.NOT_JSON),
            (b"[1, 2, 3]", SchemaReason.WRONG_TYPE),
            (orjson.dumps(incomplete), SchemaReason.MISSING_FIELD),
            (orjson.dumps(unknown_board), SchemaReason.UNKNOWN_BOARD),
            (orjson.dumps(wrong_types), SchemaReason.WRONG_TYPE),
            (orjson.dumps(mismatched), SchemaReason.INVALID_VALUE),
            (orjson.dumps(extra), SchemaReason.UNKNOWN_FIELD)]


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]],
            partition: int | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for key, value in messages:
        producer.send(topic, key=key, value=value, partition=partition)
    producer.close()


def dead_letters(bootstrap: str, topic: str, source: str) -> list[dict]:
    return [d for d in (orjson.loads(r.value) for r in read_topic(bootstrap, topic)) if d.get("source") == source]


def test_schemas_reject_with_their_reason():
    for key, value, reason in BAD_BOARD_DAYS:
        with pytest.raises(InvalidMessage) as raised:
            parse_board_day(key, value)
        assert raised.value.reason_code == reason, (key, str(raised.value))
    for value, reason in bad_alerts():
        with pytest.raises(InvalidMessage) as raised:
            parse_alert(value)
        assert raised.value.reason_code == reason, str(raised.value)
    assert parse_alert(orjson.dumps(alert("E08000025", 2))).sequence == 2
    # one Alert type: read back, it serialises to the very message it was read from
    assert parse_alert(orjson.dumps(alert("E08000025", 2))).to_wire() == orjson.dumps(alert("E08000025", 2))


def test_monitor_survives_poison_on_board_days_and_alerts(broker, topic_prefix):
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topic_prefix, partitions=2)
    topics = config.topics
    ensure_topics(broker.bootstrap, [topics.board_days], config.partitions)
    good_before = [(b"E08000025|2015-05-01", orjson.dumps({"counts": COUNTS})),
                   (b"E08000025|clock|admission", orjson.dumps({"stream_time": 1_431_000_000.0}))]
    good_after = [(b"E09000012|2015-05-01", orjson.dumps({"counts": [9, *COUNTS[1:]]}))]
    produce(broker.bootstrap, topics.board_days,
            good_before + [(key, value) for key, value, _ in BAD_BOARD_DAYS] + good_after, partition=0)
    # The alerts topic the monitor restores its open alerts from: valid alerts around poison.
    ensure_topics(broker.bootstrap, [topics.alerts], 1)
    produce(broker.bootstrap, topics.alerts, [(None, orjson.dumps(alert("E08000025", 1)))]
            + [(None, value) for value, _ in bad_alerts()] + [(None, orjson.dumps(alert("E09000012", 1)))])

    monitor = Monitor(config, load_plan(sample_plan_path()), date(2015, 4, 1))  # restores without crashing
    try:
        assert monitor.boards_alerted() == {"E08000025", "E09000012"}
        monitor.evaluate()  # reads the poisoned board_days without crashing
        assert monitor.live.day_counts == {"E08000025|2015-05-01": COUNTS,
                                           "E09000012|2015-05-01": [9, *COUNTS[1:]]}
        assert monitor.live.stream_times == {"E08000025|admission": 1_431_000_000.0}
    finally:
        monitor.close()

    dead = sorted(dead_letters(broker.bootstrap, topics.dead_letter, "monitor"), key=lambda d: d["offset"])
    assert [d["reason_code"] for d in dead] == [str(reason) for _, _, reason in BAD_BOARD_DAYS]
    assert all(d["topic"] == topics.board_days and d["reason"] for d in dead)
    assert list(dead[0]) == ["source", "reason", "reason_code", "topic", "partition", "offset", "key", "raw",
                             "dead_lettered_at"]  # the one dead-letter shape (bcfwatch.core.messages)
    assert [d["offset"] for d in dead] == list(range(len(good_before), len(good_before) + len(BAD_BOARD_DAYS)))
    restored = dead_letters(broker.bootstrap, topics.delivery_dead_letter, "monitor")
    assert [d["reason_code"] for d in restored] == [str(reason) for _, reason in bad_alerts()]
    assert NHS_NUMBER not in orjson.dumps(dead + restored).decode()


def test_notifier_never_delivers_invalid_alerts_and_dead_letters_them(broker, topic_prefix):
    topics = Topics(topic_prefix)
    ensure_topics(broker.bootstrap, [topics.alerts], 1)
    ensure_topics(broker.bootstrap, [topics.deliveries, topics.delivery_dead_letter], 1)
    # The ledger the notifier reads at start-up: a bad line and an incomplete one before a good one.
    produce(broker.bootstrap, topics.deliveries, [
        (None, b"garbage"), (None, orjson.dumps({"key": "ops:x-1"})),
        (None, orjson.dumps({"key": "ops:old-1", "outcome": "delivered", "attempts": 1, "at": "2015-05-01"}))])
    valid = [alert("E08000025", 1), alert("E09000012", 1)]
    produce(broker.bootstrap, topics.alerts, [(None, orjson.dumps(valid[0]))]
            + [(None, value) for value, _ in bad_alerts()] + [(None, orjson.dumps(valid[1]))])
    receiver = WebhookReceiver(SECRET, free_port()).start()
    subscriber = Subscriber("ops", None, None, "webhook", url=receiver.url, secret=SECRET)
    notifier = Notifier(broker.bootstrap, topics, [subscriber], initial_backoff=0.05, max_backoff=0.2)
    assert "ops:old-1" in notifier.done
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            notifier.poll(timeout_ms=200)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(receiver.accepted) >= 2 or not thread.is_alive(), 60, "both valid alerts")
        assert thread.is_alive(), "the notifier crashed"
    finally:
        done.set()
        thread.join(30)
        notifier.close()

    # A restarted notifier has nothing left to do: every message, bad ones included, was committed.
    restarted = Notifier(broker.bootstrap, topics, [subscriber])
    try:
        assert restarted.poll(timeout_ms=2000) == 0
    finally:
        restarted.close()
        receiver.stop()
    assert [payload for _, payload in receiver.accepted] == valid
    dead = dead_letters(broker.bootstrap, topics.delivery_dead_letter, "notifier")
    ledger = [d for d in dead if d["topic"] == topics.deliveries]
    alerts = [d for d in dead if d["topic"] == topics.alerts]
    assert [d["reason_code"] for d in ledger] == ["not_json", "missing_field"] * 2  # once per start
    assert [d["reason_code"] for d in alerts] == [str(reason) for _, reason in bad_alerts()]
    assert [d["offset"] for d in alerts] == list(range(1, 1 + len(bad_alerts())))
    assert NHS_NUMBER not in orjson.dumps(dead).decode()
    outcomes = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, topics.deliveries)[3:]]
    assert [(d["key"], d["outcome"]) for d in outcomes] == [("ops:e08000025-a1-1", "delivered"),
                                                            ("ops:e09000012-a1-1", "delivered")]


def test_counts_export_skips_an_invalid_snapshot(broker, topic_prefix):
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topic_prefix, partitions=2)
    ensure_topics(broker.bootstrap, [config.state_topic], config.partitions, STATE_TOPIC_CONFIG)
    good = PartitionState(1)
    good.tables.day_counts["E08000025|2015-05-01"] = COUNTS
    good.applied = {config.topics.event("admission"): 41}
    produce(broker.bootstrap, config.state_topic, [
        (b"1", good.to_snapshot()),
        (b"1", orjson.dumps({"partition": 1, "applied": {}, "day_counts": {"E08000025|": [1]}, "stream_times": {},
                             "seen_events": {}, "reablement_patients": {}, "reablement_due": {}})),
        (b"1", b"\x00 truncated snapshot")], partition=1)
    snapshots = latest_snapshots(config)
    assert list(snapshots) == [1] and snapshots[1]["day_counts"] == {"E08000025|2015-05-01": COUNTS}
    assert snapshots[1]["applied"] == good.applied
    dead = dead_letters(broker.bootstrap, config.topics.dead_letter, "state-reader")
    assert sorted((d["offset"], d["reason_code"]) for d in dead) == [(1, "invalid_value"), (2, "not_json")]
    latest_snapshots(config)  # read again: the same bad snapshots are not dead-lettered twice by one process
    assert len(dead_letters(broker.bootstrap, config.topics.dead_letter, "state-reader")) == 2
