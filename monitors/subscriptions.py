"""Who hears about which alerts: the subscriptions file (TOML, docs/subscriptions.md).

    [[subscriber]]
    name = "birmingham-lead"
    boards = ["E08000025"]          # or "all"
    metrics = "all"                 # or a list, e.g. ["emergency_admissions"]
    channel = "webhook"
    url = "https://example.nhs.uk/bcf-hook"
    secret_env = "BIRMINGHAM_HOOK_SECRET"   # a Standard Webhooks secret (whsec_...), from the environment

    [[subscriber]]
    name = "commissioners"
    boards = "all"
    channel = "email"
    to = ["bcf-ops@example.nhs.uk"]
    smtp_host = "127.0.0.1"
    smtp_port = 25

Secrets are read from the environment (``secret_env``) or a file
(``secret_file``), never from the subscriptions file itself, and never logged.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class SubscriptionError(ValueError):
    """A subscriptions file that cannot be used; the message says which entry and why."""


@dataclass(frozen=True)
class Subscriber:
    name: str
    boards: frozenset[str] | None  # None: all boards
    metrics: frozenset[str] | None  # None: all metrics
    channel: str  # webhook | email
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    to: tuple[str, ...] = ()
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    sender: str = "bcfwatch@localhost"

    def wants(self, alert: dict) -> bool:
        return (self.boards is None or alert["board"] in self.boards) and \
            (self.metrics is None or alert["metric"] in self.metrics)


def _selection(entry: dict, key: str, where: str) -> frozenset[str] | None:
    value = entry.get(key, "all")
    if value == "all":
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise SubscriptionError(f"{where}: {key} must be \"all\" or a list of codes")


def _secret(entry: dict, where: str) -> str:
    if "secret_env" in entry:
        secret = os.environ.get(entry["secret_env"], "")
        if not secret:
            raise SubscriptionError(f"{where}: the environment variable {entry['secret_env']} is not set")
        return secret
    if "secret_file" in entry:
        try:
            return Path(entry["secret_file"]).read_text().strip()
        except OSError as error:
            raise SubscriptionError(f"{where}: cannot read secret_file: {error.strerror}") from None
    raise SubscriptionError(f"{where}: a webhook needs secret_env or secret_file")


def load_subscriptions(path: Path) -> list[Subscriber]:
    try:
        document = tomllib.loads(path.read_text())
    except OSError as error:
        raise SubscriptionError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SubscriptionError(f"{path} is not valid TOML: {error}") from None
    subscribers = []
    for number, entry in enumerate(document.get("subscriber", []), start=1):
        where = f"{path} subscriber {number}"
        name = entry.get("name")
        if not name:
            raise SubscriptionError(f"{where}: name is missing")
        channel = entry.get("channel")
        common = dict(name=name, boards=_selection(entry, "boards", where),
                      metrics=_selection(entry, "metrics", where), channel=channel)
        if channel == "webhook":
            if not entry.get("url"):
                raise SubscriptionError(f"{where}: a webhook needs a url")
            subscribers.append(Subscriber(**common, url=entry["url"], secret=_secret(entry, where)))
        elif channel == "email":
            if not entry.get("to"):
                raise SubscriptionError(f"{where}: an email subscriber needs to = [addresses]")
            subscribers.append(Subscriber(**common, to=tuple(entry["to"]),
                                          smtp_host=entry.get("smtp_host", "127.0.0.1"),
                                          smtp_port=int(entry.get("smtp_port", 25)),
                                          sender=entry.get("from", "bcfwatch@localhost")))
        else:
            raise SubscriptionError(f"{where}: channel must be webhook or email, not {channel!r}")
    if len({s.name for s in subscribers}) != len(subscribers):
        raise SubscriptionError(f"{path}: subscriber names must be unique")
    return subscribers
