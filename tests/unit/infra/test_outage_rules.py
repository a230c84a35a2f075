"""The rules a service follows when Kafka is unreachable or smaller than asked, without a broker: the replication
of new topics from the cluster's size and the settings, readiness with a blocker, and a log that stays readable
during an outage (one line per broker per interval, with a count)."""

from __future__ import annotations

import logging
import threading

import pytest

from bcfwatch.infra.errors import BrokerError
from bcfwatch.infra.kafka import Replication, replication_for
from bcfwatch.infra.lifecycle import Health, RepeatedLineFilter


@pytest.mark.parametrize(("brokers", "expected"), [
    (1, Replication(1, 1)), (2, Replication(2, 1)), (3, Replication(3, 2)), (5, Replication(3, 2)),
])
def test_the_default_replication_follows_the_cluster(brokers, expected):
    assert replication_for(brokers) == expected
    assert expected.topic_configs() == {"min.insync.replicas": str(expected.min_insync)}


def test_set_replication_is_used_and_impossible_ones_are_refused_with_what_to_set():
    assert replication_for(5, factor=5, min_insync=3) == Replication(5, 3)
    assert replication_for(3, factor=2) == Replication(2, 1)
    with pytest.raises(BrokerError, match=r"REPLICATION_FACTOR=3, but the cluster has 1 broker: set it to at most 1"):
        replication_for(1, factor=3)
    with pytest.raises(BrokerError, match=r"MIN_INSYNC_REPLICAS=3 is more than the replication factor 2"):
        replication_for(3, factor=2, min_insync=3)


def record(message: str, *args: object, level: int = logging.ERROR, name: str = "aiokafka.conn") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def test_an_outage_logs_one_line_per_broker_per_interval_with_a_count():
    now = [0.0]
    line_filter = RepeatedLineFilter(interval=30.0, clock=lambda: now[0])
    passed = []
    for second in range(100):  # ten attempts a second on each of two brokers for 100 s
        now[0] = float(second)
        for _ in range(10):
            for node in (1, 2):
                line = record("Unable connect to node with id %s: %s", node, "refused")
                if line_filter.filter(line):
                    passed.append(line)
    per_node = {node: [line for line in passed if line.args[0] == node] for node in (1, 2)}
    assert [len(lines) for lines in per_node.values()] == [4, 4]  # at 0, 30, 60 and 90 s
    assert "[" not in per_node[1][0].getMessage()
    assert per_node[1][1].getMessage().endswith("[299 more like this in the last 30 s]")
    assert per_node[2][3].getMessage().startswith("Unable connect to node with id 2: refused")


def test_information_and_other_kinds_of_lines_are_never_held_back():
    line_filter = RepeatedLineFilter(interval=30.0, clock=lambda: 5.0)
    assert all(line_filter.filter(record("applied %s", n, level=logging.INFO)) for n in range(5))
    assert line_filter.filter(record("partition %d: failing", 1)) and line_filter.filter(record("other %s", 1))
    assert not line_filter.filter(record("partition %d: failing", 1))


def test_a_blocker_makes_a_running_service_not_ready_and_is_named():
    blocked: dict[str, str] = {}
    health = Health("worker", None, threading.Event(), blockers=lambda: dict(blocked))
    health.beat()
    assert health.ready() and health.report()["not_ready_because"] == {}
    blocked["partition 2 snapshots"] = "KafkaTimeoutError (failing for 31 s, 2 attempts)"
    assert not health.ready() and health.live()
    assert health.report()["not_ready_because"] == {"partition 2 snapshots":
                                                    "KafkaTimeoutError (failing for 31 s, 2 attempts)"}
    blocked.clear()
    assert health.ready()
