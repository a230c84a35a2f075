"""The compose stack's one-shot `kafka-setup` job, run as the Kafka `admin` principal.

Creates every topic of ``BCFWATCH_TOPIC_PREFIX`` (with the retention and compaction bcfwatch gives them, and the
replication ``BCFWATCH_REPLICATION_FACTOR`` and ``BCFWATCH_MIN_INSYNC_REPLICAS`` ask: on the compose stack's three
brokers 3 copies, 2 in sync; a factor above the cluster's size fails the job) and grants each service principal
(replay, worker, monitor, notifier) its ACLs, with the same code as ``bcfwatch kafka start --secure``
(docs/security.md, "Principals and ACLs"). Both are idempotent: the job runs at every ``docker compose up`` and the
bcfwatch services start once it has succeeded. The brokers deny whatever no ACL allows, so a service that started
before this would be refused.
"""

from __future__ import annotations

import os
import sys

from kafka.errors import KafkaError

from bcfwatch.infra.errors import BrokerError
from bcfwatch.infra.kafka import authorise_prefix
from bcfwatch.infra.kafka_security import KafkaSecurity


def main() -> int:
    # The compose file sets all three (x-bcfwatch-environment), and the replication settings that bcfwatch's
    # topic creation reads itself; the defaults are the compose stack's brokers and bcfwatch's.
    bootstrap = os.environ.get("BCFWATCH_BOOTSTRAP", "kafka-1:9092,kafka-2:9092,kafka-3:9092")
    prefix = os.environ.get("BCFWATCH_TOPIC_PREFIX", "bcf")
    partitions = int(os.environ.get("BCFWATCH_PARTITIONS", "8"))
    try:
        security = KafkaSecurity.from_env()
        if security.protocol != "SASL_SSL" or security.username != "admin":
            raise BrokerError("needs BCFWATCH_KAFKA_SECURITY_PROTOCOL=SASL_SSL and BCFWATCH_KAFKA_USERNAME=admin")
        acls = authorise_prefix(bootstrap, prefix, partitions, security)
    except (BrokerError, KafkaError) as error:
        print(f"kafka-setup: {error}", file=sys.stderr)
        return 1
    print(f"kafka-setup: topics of prefix {prefix!r} present; {acls} ACLs for replay, worker, monitor and notifier")
    return 0


if __name__ == "__main__":
    sys.exit(main())
