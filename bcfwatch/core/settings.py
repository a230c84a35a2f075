"""Runtime settings shared by producers, streams and monitors (environment-driven)."""

from __future__ import annotations

import os
from pathlib import Path


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


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bcfwatch"
