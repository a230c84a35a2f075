"""Runtime settings shared by producers, streams, monitors and the CLI, from the environment.

Every ``BCFWATCH_*`` setting that has a default is a field of :class:`Settings`, and its documented
default is declared once, as the field's default here. Everything else takes its default from this
class: the CLI's option defaults (``default=`` reads :func:`current`, ``show_default`` shows
:data:`DEFAULTS`), ``streams.config.WorkerConfig`` and the infra and core helpers.

:meth:`Settings.from_env` reads and validates the environment at once; a bad value raises
:class:`SettingsError` naming the variable (the CLI prints it as one line, never a traceback).
:func:`current` is the cached accessor: the settings are read once and read again only if one of the
``BCFWATCH_*`` variables changed (a test's ``monkeypatch.setenv`` takes effect; a running service reads
the environment once).

Settings that have no default are not here: the pseudonymisation key (``producers/pseudonym.py``) and
the Kafka client security settings, which are validated together as one client identity
(``bcfwatch/infra/kafka_security.py``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

BCF_BASELINE_START = date(2014, 4, 1)  # the first day of the BCF plans' baseline year (2014-15)
TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]+$")  # the characters Kafka allows in a topic name


class SettingsError(Exception):
    """A ``BCFWATCH_*`` environment variable has a value that cannot be used; the message names it."""


def _setting(env: str, default: Any, doc: str, minimum: float | None = None, maximum: float | None = None,
             positive: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc, "minimum": minimum, "maximum": maximum,
                                            "positive": positive})


@dataclass(frozen=True)
class Settings:
    """The environment settings and their documented defaults (declared once, here)."""

    bootstrap: str = _setting("BCFWATCH_BOOTSTRAP", "127.0.0.1:9092", "Kafka bootstrap servers")
    topic_prefix: str = _setting("BCFWATCH_TOPIC_PREFIX", "bcf", "prefix of every topic name")
    partitions: int = _setting("BCFWATCH_PARTITIONS", 8, "partitions of the event and state topics", 1, 1024)
    lateness_days: int = _setting("BCFWATCH_LATENESS_DAYS", 14,
                                  "how far behind its board's stream time an event may be and still count", 0, 365)
    max_ahead_days: int = _setting("BCFWATCH_MAX_AHEAD_DAYS", 31,
                                   "how far ahead of its board's clock an event may be before it is held", 1, 3660)
    earliest_date: date = _setting(  # noqa: RUF009 (a dataclasses.field with an immutable default)
        "BCFWATCH_EARLIEST_DATE", BCF_BASELINE_START, "events before this day are rejected")
    stop_seconds: float = _setting("BCFWATCH_STOP_SECONDS", 10.0,
                                   "seconds a service may take to stop gracefully before it is ended", 0.5)
    bind_address: str = _setting("BCFWATCH_BIND_ADDRESS", "127.0.0.1",
                                 "address the metrics and health endpoints listen on")
    event_retention_days: float = _setting("BCFWATCH_EVENT_RETENTION_DAYS", 30.0,
                                           "days event topics keep messages", positive=True)
    seen_seal_after: int = _setting("BCFWATCH_SEEN_SEAL_AFTER", 50_000,
                                    "event ids a worker partition keeps as keys before sealing them into a "
                                    "segment of digests (streams/seen_events.py)", 1, 10_000_000)
    replication_factor: int = _setting("BCFWATCH_REPLICATION_FACTOR", 0,
                                       "copies of every topic bcfwatch creates; 0: min(3, the cluster's brokers)",
                                       0, 16)
    bed_day_cost_gbp: float = _setting("BCFWATCH_BED_DAY_COST_GBP", 300.0,
                                       "pounds per delayed bed day over plan: the money at risk of a delayed-days "
                                       "alert (an excess bed day's cost, approximately)", positive=True)
    replay_chunk_bytes: int = _setting("BCFWATCH_REPLAY_CHUNK_BYTES", 16 << 20,
                                       "bytes of a JSON Lines log `replay --packed` packs at a time, column by "
                                       "column (each packing process holds a few chunks)", 1024, 1 << 30)
    min_insync_replicas: int = _setting("BCFWATCH_MIN_INSYNC_REPLICAS", 0,
                                        "copies a write must reach before it is acknowledged (acks=all); "
                                        "0: 2 where the replication factor is 3 or more, else 1", 0, 16)

    def __post_init__(self) -> None:
        for setting in fields(self):
            value, meta = getattr(self, setting.name), setting.metadata
            where = f"{meta['env']}={value!r}"
            if isinstance(setting.default, str):
                if not isinstance(value, str) or not value.strip():
                    raise SettingsError(f"{where}: must not be empty (default {shown(setting.default)})")
            elif meta["positive"] and value <= 0:
                raise SettingsError(f"{where}: must be a positive number (default {shown(setting.default)})")
            elif meta["minimum"] is not None and value < meta["minimum"]:
                raise SettingsError(f"{where}: must be at least {shown(meta['minimum'])} "
                                    f"(default {shown(setting.default)})")
            elif meta["maximum"] is not None and value > meta["maximum"]:
                raise SettingsError(f"{where}: must be at most {shown(meta['maximum'])} "
                                    f"(default {shown(setting.default)})")
        if not TOPIC_PREFIX.match(self.topic_prefix):
            raise SettingsError(f"BCFWATCH_TOPIC_PREFIX={self.topic_prefix!r}: only letters, digits, '.', '_' "
                                "and '-' may be used in a topic name")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read every setting from ``environ`` (unset or blank: the default) and validate them."""
        values = {}
        for setting in fields(cls):
            env = setting.metadata["env"]
            text = (environ.get(env) or "").strip()
            if text:
                values[setting.name] = _parse(env, text, setting.default)
        return cls(**values)

    @classmethod
    def environment_variables(cls) -> dict[str, str]:
        """Field name -> its environment variable."""
        return {setting.name: setting.metadata["env"] for setting in fields(cls)}


def _parse(env: str, text: str, default: Any) -> Any:
    kind = type(default)
    try:
        if kind is int:
            return int(text)
        if kind is float:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            return number
        if kind is date:
            return date.fromisoformat(text)
    except ValueError:
        what = {int: "a whole number", float: "a number", date: "a date like 2014-04-01"}[kind]
        raise SettingsError(f"{env}={text!r} is not {what} (default {shown(default)})") from None
    return text


def shown(value: Any) -> str:
    """A setting's value as the CLI's help shows it: 10.0 as "10", a date as YYYY-MM-DD."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


DEFAULTS = Settings()  # the documented defaults
ENV_NAMES = tuple(Settings.environment_variables().values())

_cached: tuple[tuple[str | bytes | None, ...], Settings] | None = None
_encoded: tuple[str | bytes, ...] | None = None  # os.environ._data keys: bytes on POSIX, str on Windows


def _fingerprint() -> tuple[str | bytes | None, ...]:
    """The values of the ``BCFWATCH_*`` variables :class:`Settings` reads; cheap, as the event contract asks
    for the earliest date once per event."""
    global _encoded
    environ = os.environ
    data = getattr(environ, "_data", None)
    if isinstance(data, dict):  # CPython's os.environ: one dict lookup per name, no encoding
        if _encoded is None:
            _encoded = tuple(map(environ.encodekey, ENV_NAMES))
        return tuple(map(data.get, _encoded))
    return tuple(map(environ.get, ENV_NAMES))


def current() -> Settings:
    """The settings of this process's environment (read and validated once; again only if it changed)."""
    global _cached
    key = _fingerprint()
    cached = _cached
    if cached is None or cached[0] != key:
        cached = (key, Settings.from_env(os.environ))
        _cached = cached
    return cached[1]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bcfwatch"
