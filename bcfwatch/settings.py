"""Runtime settings shared by producers, streams and monitors (environment-driven)."""

from __future__ import annotations

import os
from dataclasses import dataclass

EVENT_TYPES = ("admission", "discharge", "care_home_placement")


@dataclass(frozen=True)
class Topics:
    """Kafka topic names under one prefix; one topic per event type."""

    prefix: str = "bcf"

    def event(self, event_type: str) -> str:
        return f"{self.prefix}.{event_type}"

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(self.event(t) for t in EVENT_TYPES)

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.dead_letter"

    @property
    def late_events(self) -> str:
        return f"{self.prefix}.late_events"

    @property
    def held_events(self) -> str:
        """Events held far ahead of their board's clock (a mistyped date?) until another event corroborates them."""
        return f"{self.prefix}.held_events"

    @property
    def board_days(self) -> str:
        """Compacted changelog of the live counts: ``board|YYYY-MM-DD`` -> counters, ``board|clock|type`` -> time."""
        return f"{self.prefix}.board_days"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def deliveries(self) -> str:
        return f"{self.prefix}.deliveries"

    @property
    def delivery_dead_letter(self) -> str:
        return f"{self.prefix}.delivery_dead_letter"


def bootstrap_servers() -> str:
    return os.environ.get("BCFWATCH_BOOTSTRAP", "127.0.0.1:9092")


def topic_prefix() -> str:
    return os.environ.get("BCFWATCH_TOPIC_PREFIX", "bcf")


def partitions() -> int:
    return int(os.environ.get("BCFWATCH_PARTITIONS", "8"))


def lateness_days() -> int:
    """How late (event time behind the board's stream time) an event may be and still count."""
    return int(os.environ.get("BCFWATCH_LATENESS_DAYS", "14"))


def max_ahead_days() -> int:
    """How far (days) an event may be ahead of its board's clock before it is held for corroboration."""
    return int(os.environ.get("BCFWATCH_MAX_AHEAD_DAYS", "31"))
