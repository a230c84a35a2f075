"""Kafka topics: names under one prefix, one per event type, and the configs of the state topics."""

from __future__ import annotations

from dataclasses import dataclass

EVENT_TYPES = ("admission", "discharge", "care_home_placement")


def _topic(suffix: str, doc: str | None = None) -> property:
    """A topic of :class:`Topics`: ``<prefix>.<suffix>``."""
    return property(lambda topics: topics.named(suffix), doc=doc)


@dataclass(frozen=True)
class Topics:
    """Kafka topic names under one prefix; one topic per event type."""

    prefix: str = "bcf"

    def named(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    def event(self, event_type: str) -> str:
        return self.named(event_type)

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(self.event(t) for t in EVENT_TYPES)

    dead_letter = _topic("dead_letter")
    late_events = _topic("late_events")
    held_events = _topic("held_events", "Events held far ahead of their board's clock (a mistyped date?) until "
                                        "another event corroborates them.")
    board_days = _topic("board_days", "Compacted changelog of the live counts: ``board|YYYY-MM-DD`` -> counters, "
                                      "``board|clock|type`` -> time.")
    alerts = _topic("alerts")
    deliveries = _topic("deliveries")
    delivery_dead_letter = _topic("delivery_dead_letter")


SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024  # one partition's snapshot, at most (the state topics' max.message.bytes)

STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "max.message.bytes": str(SNAPSHOT_MAX_BYTES),
    "segment.bytes": str(64 * 1024 * 1024),
    "segment.ms": "600000",
    "min.cleanable.dirty.ratio": "0.1",
}


BOARD_DAYS_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1"}
