"""What a stream worker is configured with, and so what its readers (state reader, monitor, demo) need to know.

Kept apart from ``streams/app.py`` so that reading the workers' output never loads the Faust app. The
defaults of the environment settings come from :func:`bcfwatch.core.settings.current` (declared once in
:class:`bcfwatch.core.settings.Settings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bcfwatch.core.settings import cache_dir, current
from bcfwatch.core.topics import Topics

DEFAULT_WEB_PORT = 6066
DEFAULT_SNAPSHOT_SECONDS = 1.0


def _from_settings(name: str) -> Any:
    return field(default_factory=lambda: getattr(current(), name))


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap: str = _from_settings("bootstrap")
    topic_prefix: str = _from_settings("topic_prefix")
    partitions: int = _from_settings("partitions")
    lateness_days: int = _from_settings("lateness_days")
    max_ahead_days: int = _from_settings("max_ahead_days")
    datadir: Path = field(default_factory=lambda: Path(".bcfwatch-worker"))
    web_port: int = DEFAULT_WEB_PORT
    web_host: str = _from_settings("bind_address")
    snapshot_seconds: float = DEFAULT_SNAPSHOT_SECONDS
    seen_seal_after: int = _from_settings("seen_seal_after")
    metrics_port: int | None = None  # Prometheus /metrics, /healthz, /readyz on web_host (None: not served)

    @classmethod
    def for_worker(cls, datadir: Path | None = None, **values: Any) -> WorkerConfig:
        """A `bcfwatch worker`'s config: without a datadir, its own folder in the cache dir per topic prefix and
        web port (two workers on one machine never share their RocksDB tables)."""
        config = cls(**values)
        return replace(config, datadir=datadir or default_datadir(config.topic_prefix, config.web_port))

    @property
    def app_id(self) -> str:
        return f"bcfwatch-{self.topic_prefix}"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def state_topic(self) -> str:
        return f"{self.app_id}-state"

    @property
    def seen_topic(self) -> str:
        """The sealed event-id segments of each partition (``streams/seen_events.py``)."""
        return f"{self.app_id}-seen"


def default_datadir(topic_prefix: str, web_port: int) -> Path:
    """Where a worker keeps its RocksDB tables when not told: the cache dir, per prefix and web port."""
    return cache_dir() / f"worker-{topic_prefix}-{web_port}"
