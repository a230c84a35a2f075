"""Topic creation shared by producers and workers (same partition count everywhere)."""

from __future__ import annotations

import socket

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from bcfwatch.broker import BrokerError


def require_broker(bootstrap: str, timeout: float = 3.0) -> None:
    """Fail fast, with what to do, when no bootstrap server accepts a connection."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                return
        except (OSError, ValueError):
            continue
    raise BrokerError(
        f"cannot reach Kafka at {bootstrap}: start the local broker with `bcfwatch kafka start` "
        "or point --bootstrap / BCFWATCH_BOOTSTRAP at a running one"
    )


def ensure_topics(bootstrap: str, names: list[str] | tuple[str, ...], partitions: int,
                  configs: dict[str, str] | None = None) -> None:
    """Create any missing topics with ``partitions`` partitions (replication 1, one broker)."""
    require_broker(bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bcfwatch-admin")
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, partitions, 1, topic_configs=configs or {}) for name in names if name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
