"""Pipeline-health metrics of a worker (prometheus-client), served on a loopback port.

Names follow the client_python conventions: base units (seconds), counters end
in ``_total`` (added by the client), labels of low cardinality only (event
type, outcome, reason kind, partition), never a patient or an event id. Every
series exists from start-up.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from bcfwatch.core.events import Reason
from bcfwatch.core.topics import EVENT_TYPES

OUTCOMES = ("counted", "duplicate", "late", "held")
DEAD_LETTER_KINDS = tuple(Reason)

EVENTS_PROCESSED = Counter("bcf_events_processed", "Events applied by the worker, by type and outcome",
                           ["type", "outcome"])
DEAD_LETTERED = Counter("bcf_dead_letter_events", "Messages the worker sent to the dead-letter topic, by reason",
                        ["reason"])
PROCESSING_LATENCY = Histogram("bcf_processing_latency_seconds",
                               "From the message's Kafka timestamp to its event being applied",
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
CONSUMER_LAG = Gauge("bcf_consumer_lag_events", "Events on the topics not yet applied, per partition",
                     ["partition"])
HELD_EVENTS = Gauge("bcf_held_events", "Events held far ahead of their board's clock, awaiting corroboration",
                    ["type"])
LAST_EVENT_TIME = Gauge("bcf_last_event_timestamp_seconds", "Latest event time (occurred_at) applied, by type",
                        ["type"])


_latest_event_time: dict[str, float] = {}


def observe_event(event_type: str, outcome: str, occurred_at: float, kafka_timestamp: float | None) -> None:
    EVENTS_PROCESSED.labels(event_type, outcome).inc()
    if occurred_at > _latest_event_time.get(event_type, float("-inf")):
        _latest_event_time[event_type] = occurred_at
        LAST_EVENT_TIME.labels(event_type).set(occurred_at)
    if kafka_timestamp:
        PROCESSING_LATENCY.observe(max(0.0, time.time() - kafka_timestamp))


def initialise(partitions: int) -> None:
    for event_type in EVENT_TYPES:
        LAST_EVENT_TIME.labels(event_type)
        HELD_EVENTS.labels(event_type).set(0)
        for outcome in OUTCOMES:
            EVENTS_PROCESSED.labels(event_type, outcome)
    for kind in DEAD_LETTER_KINDS:
        DEAD_LETTERED.labels(kind)
    for partition in range(partitions):
        CONSUMER_LAG.labels(str(partition)).set(0)


def observe_events(outcomes: dict[tuple[str, str], int], latest: dict[str, float],
                   kafka_timestamp: float | None) -> None:
    """:func:`observe_event` for all the events of one packed record at once: ``outcomes`` counts them by
    (type, outcome), ``latest`` is the latest event time by type; each event observes the same latency."""
    for (event_type, outcome), number in outcomes.items():
        EVENTS_PROCESSED.labels(event_type, outcome).inc(number)
    for event_type, occurred_at in latest.items():
        if occurred_at > _latest_event_time.get(event_type, float("-inf")):
            _latest_event_time[event_type] = occurred_at
            LAST_EVENT_TIME.labels(event_type).set(occurred_at)
    if kafka_timestamp:
        latency = max(0.0, time.time() - kafka_timestamp)
        for _ in range(sum(outcomes.values())):
            PROCESSING_LATENCY.observe(latency)
