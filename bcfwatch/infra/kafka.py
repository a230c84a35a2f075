"""Kafka helpers in one module: topics (creation with one partition count everywhere, retention, ACLs) and
reading (a topic or part of one to its end, how far behind a reader is).

Event topics (the three event types and the topics that carry events or rejected lines: dead letter,
late, held) keep data for ``BCFWATCH_EVENT_RETENTION_DAYS`` (default 30) days; state topics are
compacted by their creators. On the secured broker the admin principal creates every topic of a prefix
and grants each service principal only what it needs (:func:`service_acls`, docs/security.md).

Every service that reads a topic through to its current end (the state reader, the monitor's live counts,
the notifier's ledger, the alert history) does it here: assign the partitions, seek, and poll until the
consumer's position reaches the end offsets taken at the start, within a deadline. Lag is counted the same
way everywhere: messages from a position (the next offset to read) to the end offset, never below zero.
The worker reads with aiokafka inside Faust and counts its lag with :func:`messages_behind`.
"""


from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from bcfwatch.core.settings import current
from bcfwatch.core.topics import EVENT_TYPES, Topics
from bcfwatch.infra.errors import BrokerError
from bcfwatch.infra.kafka_security import KafkaSecurity, kafka_python_options
from bcfwatch.infra.lifecycle import broker_reachable

log = logging.getLogger(__name__)

T = TypeVar("T")
CLUSTER_CHANGE_SECONDS = 60.0  # how long a read may keep failing while a cluster elects new leaders


def across_cluster_changes(read: Callable[..., T]) -> Callable[..., T]:
    """Retry a whole read of the cluster (a new client each time) while it fails with a Kafka or connection
    error, for up to ``CLUSTER_CHANGE_SECONDS``: a client that asked a broker just lost (or a leader just moved)
    fails its request, and the next one asks a live broker. Reads only: they are safe to repeat."""
    return retry(retry=retry_if_exception_type((KafkaError, OSError)), stop=stop_after_delay(CLUSTER_CHANGE_SECONDS),
                 wait=wait_exponential(multiplier=0.2, max=5), reraise=True)(read)

# Topic name suffixes (after "PREFIX.") whose messages are patient-level events or rejected lines.
EVENT_TOPIC_SUFFIXES = (*EVENT_TYPES, "dead_letter", "late_events", "held_events")


def require_broker(bootstrap: str, timeout: float = 3.0) -> None:
    """Fail fast, with what to do, when no bootstrap server accepts a connection."""
    if broker_reachable(bootstrap, timeout):
        return
    raise BrokerError(
        f"cannot reach Kafka at {bootstrap}: start the local broker with `bcfwatch kafka start` "
        "or point --bootstrap / BCFWATCH_BOOTSTRAP at a running one"
    )


def event_retention_ms() -> int:
    """How long event topics keep messages (``BCFWATCH_EVENT_RETENTION_DAYS``, default 30 days: ``Settings``)."""
    return int(current().event_retention_days * 86_400_000)


def is_event_topic(name: str) -> bool:
    return "." in name and name.rsplit(".", 1)[1] in EVENT_TOPIC_SUFFIXES


def default_topic_configs(name: str) -> dict[str, str]:
    """Retention for event topics (patient-level data); nothing for the others."""
    if is_event_topic(name):
        return {"cleanup.policy": "delete", "retention.ms": str(event_retention_ms())}
    return {}


def admin_client(bootstrap: str, security: KafkaSecurity | None = None) -> KafkaAdminClient:
    security = security or KafkaSecurity.from_env()
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bcfwatch-admin",
                            **security.kafka_python_options())


@dataclass(frozen=True)
class Replication:
    """How many brokers keep a copy of each partition (``factor``), and how many must have a write before a
    producer with acks=all is answered (``min_insync``: ``min.insync.replicas``)."""

    factor: int
    min_insync: int

    def topic_configs(self) -> dict[str, str]:
        return {"min.insync.replicas": str(self.min_insync)}


def replication_for(brokers: int, factor: int = 0, min_insync: int = 0) -> Replication:
    """The replication of the topics bcfwatch creates on a cluster of ``brokers``: ``factor`` and ``min_insync``
    as set (``BCFWATCH_REPLICATION_FACTOR``, ``BCFWATCH_MIN_INSYNC_REPLICAS``), 0 meaning the default:
    min(3, brokers) copies, of which 2 must have each write where there are 3 or more copies, else 1. A factor
    above the cluster's size, or a minimum above the factor, is refused with what to set instead."""
    factor = factor or min(3, brokers)
    if factor > brokers:
        raise BrokerError(f"BCFWATCH_REPLICATION_FACTOR={factor}, but the cluster has {brokers} broker"
                          f"{'s' if brokers != 1 else ''}: set it to at most {brokers} (or 0 for the default)")
    min_insync = min_insync or (2 if factor >= 3 else 1)
    if min_insync > factor:
        raise BrokerError(f"BCFWATCH_MIN_INSYNC_REPLICAS={min_insync} is more than the replication factor "
                          f"{factor}: no write could ever be acknowledged; set it to at most {factor}")
    return Replication(factor, min_insync)


def cluster_replication(admin: KafkaAdminClient) -> Replication:
    """The configured replication (:func:`replication_for`) for the cluster ``admin`` is connected to."""
    settings = current()
    brokers = len(admin.describe_cluster()["brokers"])
    return replication_for(brokers, settings.replication_factor, settings.min_insync_replicas)


def under_replicated(admin: KafkaAdminClient, names: Iterable[str], replication: Replication) -> dict[str, int]:
    """Topics among ``names`` (that exist) with fewer copies than ``replication`` asks: name -> their copies."""
    found: dict[str, int] = {}
    names = list(names)
    if not names:  # an empty list would describe every topic
        return found
    for topic in admin.describe_topics(names):
        if topic.get("error_code", 0) != 0 or not topic.get("partitions"):
            continue
        copies = min(len(partition["replica_nodes"]) for partition in topic["partitions"])
        if copies < replication.factor:
            found[topic["name"]] = copies
    return found


def report_under_replicated(found: Mapping[str, int], replication: Replication) -> None:
    """Say loudly, once per topic, that an existing topic keeps fewer copies than configured (it is used, as
    it is all there is, but losing one broker may lose its data)."""
    for name, copies in sorted(found.items()):
        log.error("topic %s keeps %d cop%s of each partition, fewer than the %d configured "
                  "(BCFWATCH_REPLICATION_FACTOR): losing a broker may lose its data; raise it with "
                  "kafka-reassign-partitions (docs/operations.md, 'Pointing bcfwatch at a cluster')",
                  name, copies, "y" if copies == 1 else "ies", replication.factor)


def ensure_topics(bootstrap: str, names: list[str] | tuple[str, ...], partitions: int,
                  configs: dict[str, str] | None = None, security: KafkaSecurity | None = None) -> Replication:
    """Create any missing topics with ``partitions`` partitions and the configured replication
    (:func:`cluster_replication`); report existing ones that have fewer copies. Returns the replication."""
    require_broker(bootstrap)
    admin = admin_client(bootstrap, security)
    try:
        replication = cluster_replication(admin)
        existing = set(admin.list_topics())
        report_under_replicated(under_replicated(admin, [name for name in names if name in existing], replication),
                                replication)
        missing = [NewTopic(name, partitions, replication.factor,
                            topic_configs={**default_topic_configs(name), **replication.topic_configs(),
                                           **(configs or {})})
                   for name in names if name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                # Some existed after all: the broker that listed topics had not yet heard of them, or another
                # client created them meanwhile. Those are existing topics, so their copies are checked too.
                raced = [topic.name for topic in missing]
                _become_visible(admin, raced)
                report_under_replicated(under_replicated(admin, raced, replication), replication)
            except TopicAuthorizationFailedError:
                if _become_visible(admin, [topic.name for topic in missing]):
                    return replication
                raise BrokerError(
                    f"topic{'s' if len(missing) > 1 else ''} {', '.join(t.name for t in missing)} "
                    "do not exist or are not visible to this Kafka principal, which may not create them: "
                    "the admin creates a prefix's topics (`bcfwatch kafka start --secure --topic-prefix PREFIX`)"
                ) from None
    finally:
        admin.close()
    return replication


ACL_PROPAGATION_SECONDS = 10.0


def _become_visible(admin: KafkaAdminClient, names: list[str]) -> bool:
    """Whether topics this principal could not see become visible within ``ACL_PROPAGATION_SECONDS``: on a
    cluster, ACLs just granted through one broker reach the others a moment later."""
    deadline = time.monotonic() + ACL_PROPAGATION_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.5)  # a back-off between metadata requests, not synchronisation
        if set(names) <= set(admin.list_topics()):
            return True
    return False


# -- the secured broker: every topic of a prefix, and each service's ACLs ----------------------------
def app_id(prefix: str) -> str:
    """The worker's Faust app id (also its consumer group and its internal topics' prefix)."""
    return f"bcfwatch-{prefix}"


def prefix_topics(prefix: str, partitions: int) -> list[tuple[str, int, dict[str, str]]]:
    """(name, partitions, configs) of every topic the pipeline uses under ``prefix``."""
    from bcfwatch.core.topics import BOARD_DAYS_TOPIC_CONFIG, STATE_TOPIC_CONFIG

    topics = Topics(prefix)
    plain = [*topics.events, topics.dead_letter, topics.late_events, topics.held_events]
    return [
        *((name, partitions, {}) for name in plain),
        (topics.board_days, partitions, BOARD_DAYS_TOPIC_CONFIG),
        (f"{app_id(prefix)}-state", partitions, STATE_TOPIC_CONFIG),
        (f"{app_id(prefix)}-seen", partitions, STATE_TOPIC_CONFIG),  # sealed event-id segments
        (topics.alerts, 1, {}),  # one partition: one order for the notifier
        (topics.deliveries, 1, {}),
        (topics.delivery_dead_letter, 1, {}),
    ]


def create_prefix_topics(bootstrap: str, prefix: str, partitions: int, security: KafkaSecurity) -> None:
    for name, count, configs in prefix_topics(prefix, partitions):
        ensure_topics(bootstrap, [name], count, configs, security)


@dataclass(frozen=True)
class Grant:
    """One ALLOW rule: ``operation`` on a resource (``TOPIC``/``GROUP``), literal name or name prefix."""

    resource: str
    name: str
    operation: str
    prefixed: bool = False


def service_acls(prefix: str) -> dict[str, list[Grant]]:
    """What each service principal may do under ``prefix``; anything else is denied."""
    topics = Topics(prefix)
    app = app_id(prefix)

    def topic(names: list[str] | tuple[str, ...], *operations: str) -> list[Grant]:
        return [Grant("TOPIC", name, operation) for name in names for operation in operations]

    return {
        # replay: writes events and its rejected lines; sees (never reads) the late-events topic it checks for.
        "replay": [*topic(topics.events, "WRITE"), *topic([topics.dead_letter], "WRITE"),
                   *topic([topics.late_events], "DESCRIBE")],
        "worker": [
            *topic(topics.events, "READ"),
            *topic([topics.dead_letter, topics.late_events, topics.held_events, topics.board_days], "WRITE"),
            Grant("GROUP", app, "READ"),
            # its state topic and Faust's own topics (e.g. the assignor's leader topic) are named "APP-..."
            *(Grant("TOPIC", f"{app}-", operation, prefixed=True)
              for operation in ("READ", "WRITE", "DESCRIBE", "CREATE")),
        ],
        # monitor: poison board_days records go to the dead letter, poison alerts to the delivery dead letter
        "monitor": [*topic([topics.board_days], "READ"), *topic([topics.alerts], "READ", "WRITE"),
                    *topic([topics.dead_letter, topics.delivery_dead_letter], "WRITE"),
                    Grant("GROUP", f"{app}-monitor", "READ", prefixed=True)],
        "notifier": [*topic([topics.alerts], "READ"), *topic([topics.deliveries], "READ", "WRITE"),
                     *topic([topics.delivery_dead_letter], "WRITE"),
                     Grant("GROUP", f"{app}-notifier", "READ", prefixed=True)],
    }


def grant_service_acls(bootstrap: str, prefix: str, security: KafkaSecurity) -> int:
    """Create every service's ACLs for ``prefix`` with the admin API (idempotent); returns how many."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    acls = [
        ACL(principal=f"User:{service}", host="*", operation=ACLOperation[grant.operation],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[grant.resource], grant.name,
                ACLResourcePatternType.PREFIXED if grant.prefixed else ACLResourcePatternType.LITERAL))
        for service, grants in service_acls(prefix).items() for grant in grants
    ]
    admin = admin_client(bootstrap, security)
    try:
        result = admin.create_acls(acls)
    except KafkaError as error:
        raise BrokerError(f"could not create the ACLs for prefix {prefix}: {error}") from None
    finally:
        admin.close()
    if result["failed"]:
        raise BrokerError(f"could not create {len(result['failed'])} ACLs for prefix {prefix}: "
                          f"{result['failed'][0]}")
    return len(acls)


def authorise_prefix(bootstrap: str, prefix: str, partitions: int, security: KafkaSecurity) -> int:
    """As the admin: create every topic of ``prefix`` and grant the services their ACLs."""
    create_prefix_topics(bootstrap, prefix, partitions, security)
    return grant_service_acls(bootstrap, prefix, security)


# -- reading a topic to its end, and lag -----------------------------------------------------------------
def reader(bootstrap: str, client_id: str, **options: Any) -> KafkaConsumer:
    """A consumer with no group and no auto-commit (it only reads), with the broker's security options."""
    return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id=client_id,
                         **kafka_python_options(), **options)


def topic_partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, in order (none if the topic does not exist yet)."""
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def messages_behind(end: int | None, position: int) -> int:
    """Messages from ``position`` (the next offset to read) to ``end`` (the end offset or high watermark;
    None, not known yet, counts as none)."""
    return 0 if end is None else max(0, end - position)


def consumer_lag(consumer: KafkaConsumer, ends: Mapping[TopicPartition, int | None]) -> int:
    """Messages between the consumer's position and ``ends``, summed over the partitions of ``ends``."""
    return sum(messages_behind(end, consumer.position(tp)) for tp, end in ends.items())


def poll_to_end(consumer: KafkaConsumer, ends: Mapping[TopicPartition, int], what: str, timeout: float = 60.0,
                poll_ms: int = 500, stop: Callable[[], bool] | None = None) -> Iterator[Any]:
    """Poll the (already assigned and positioned) consumer until its position reaches ``ends`` on every
    partition; yield the records in the order polled. ``stop``: checked before each poll; when it says so,
    the records end there. Raises :class:`TimeoutError` (naming ``what``) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(consumer.position(tp) < end for tp, end in ends.items()):
        if stop is not None and stop():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not read {what} to its end within {timeout:.0f} s")
        for records in consumer.poll(timeout_ms=poll_ms).values():
            yield from records


def read_partitions_to_end(consumer: KafkaConsumer, partitions: Iterable[TopicPartition], what: str,
                           timeout: float = 60.0) -> list[Any]:
    """Every record of ``partitions`` from the beginning to their current end, partition by partition, in
    offset order."""
    partitions = list(partitions)
    if not partitions:
        return []
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    found: dict[TopicPartition, list] = {tp: [] for tp in partitions}
    for record in poll_to_end(consumer, consumer.end_offsets(partitions), what, timeout):
        found[TopicPartition(record.topic, record.partition)].append(record)
    return [record for tp in partitions for record in found[tp]]


def read_topic_records(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Any]:
    """Every message on ``topic`` (kafka-python ConsumerRecords: topic, partition, offset, key, value),
    partition by partition, in offset order."""
    consumer = reader(bootstrap, "bcfwatch-reader")
    try:
        return read_partitions_to_end(consumer, topic_partitions(consumer, topic), topic, timeout)
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topics: Iterable[str], client_id: str = "bcfwatch-lag") -> dict[TopicPartition, int]:
    """The end offset of every partition of ``topics``."""
    consumer = reader(bootstrap, client_id)
    try:
        return consumer.end_offsets([tp for topic in topics for tp in topic_partitions(consumer, topic)])
    finally:
        consumer.close()
