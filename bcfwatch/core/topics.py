"""Kafka topics: names under one prefix, one per event type, and the configs of the state topics."""

from __future__ import annotations

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


SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024  # one partition's snapshot, at most (the state topics' max.message.bytes)

STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "max.message.bytes": str(SNAPSHOT_MAX_BYTES),
    "segment.bytes": str(64 * 1024 * 1024),
    "segment.ms": "600000",
    "min.cleanable.dirty.ratio": "0.1",
}


BOARD_DAYS_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1"}
