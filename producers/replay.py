"""Replay a historic event log into Kafka with kafka-python.

Idempotent producer, acks=all, keyed by board so a board's events stay in order
on one partition. Lines that break the contract go to the dead-letter topic with
their line number and reason (NHS numbers redacted); nothing is dropped silently.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from kafka import KafkaProducer

from bcfwatch.boards import load_boards
from bcfwatch.kafka_admin import ensure_topics
from bcfwatch.settings import Topics
from producers.logformat import line_to_event, read_log, redacted_line
from producers.pseudonym import Pseudonymiser
from streams.records import InvalidEvent


@dataclass
class ReplayReport:
    lines: int = 0
    produced: Counter = field(default_factory=Counter)  # by event type
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    rejected_by_reason: Counter = field(default_factory=Counter)  # reason code -> lines
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


def dead_letter_record(source: str, reason: str, raw: str, **where: object) -> bytes:
    """The JSON shape every dead-letter message has, from the replay or the worker."""
    return orjson.dumps(
        {"source": source, "reason": reason, **where, "raw": raw,
         "dead_lettered_at": datetime.now(UTC).isoformat()}
    )


def make_producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="bcfwatch-replay",
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        batch_size=512 * 1024,
        max_in_flight_requests_per_connection=5,
    )


def replay(
    path: Path,
    bootstrap: str,
    topics: Topics,
    pseudonymiser: Pseudonymiser,
    partitions: int,
    events_per_second: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_produced: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Produce every line of ``path``; returns what was produced and rejected.

    ``on_produced(line_number)`` is called as each event is handed to the producer (benchmarks time it).
    """
    boards = load_boards()
    ensure_topics(bootstrap, [*topics.events, topics.dead_letter, topics.late_events], partitions)
    producer = make_producer(bootstrap)
    report = ReplayReport()
    started = time.monotonic()
    try:
        for line in read_log(path):
            report.lines += 1
            try:
                event = line_to_event(line, pseudonymiser, boards)
            except InvalidEvent as error:
                reason, code = str(error), str(error.reason)
                report.rejected.append((line.number, reason))
                report.rejected_by_reason[code] += 1
                producer.send(
                    topics.dead_letter,
                    value=dead_letter_record("replay", reason, redacted_line(line, pseudonymiser),
                                             reason_code=code, file=path.name, line=line.number),
                )
            else:
                producer.send(topics.event(event.type), key=event.board.encode(), value=event.to_wire())
                report.produced[event.type] += 1
                if on_produced is not None:
                    on_produced(line.number)
            if on_progress is not None and report.lines % 1000 == 0:
                on_progress(1000)
            if events_per_second:
                ahead = report.lines / events_per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)  # pacing a live-rate replay, not synchronisation
        producer.flush()
        if on_progress is not None:
            on_progress(report.lines % 1000)
    finally:
        producer.close()
    report.seconds = time.monotonic() - started
    return report
