"""Helpers for the tests and the benchmarks on the real broker: read a topic back, poll with a deadline, a free
port. Production code never imports this module (import-linter's "forbidden" contract in pyproject.toml)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bcfwatch.infra.kafka import read_partitions_to_end, reader, topic_partitions

T = TypeVar("T")

TESTS = Path(__file__).resolve().parents[1]  # tests/
REPO = TESTS.parent  # the checkout: compose/, docs/


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Any]:
    """Every committed record on ``topic`` (all partitions, from the beginning), partition by partition."""
    consumer = reader(bootstrap, "bcfwatch-test-reader", isolation_level="read_committed")
    try:
        return read_partitions_to_end(consumer, topic_partitions(consumer, topic), topic, timeout)
    finally:
        consumer.close()


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A loopback port nobody is listening on right now (so parallel runs never collide on fixed ports)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_cluster_port(brokers: int = 3) -> int:
    """A first port P such that P .. P+brokers-1 and their controllers P+1000 .. are all free on loopback (the
    layout of :class:`bcfwatch.infra.cluster.Cluster`), and no broker or cluster data is left at those ports from an
    earlier run (a broker's data is kept per port, and a secure start refuses data formatted plaintext)."""
    import random

    from bcfwatch.core.settings import cache_dir

    for _ in range(200):
        first = random.randrange(20_000, 40_000)
        ports = [first + n for n in range(brokers)] + [first + 1000 + n for n in range(brokers)]
        leftovers = [cache_dir() / f"cluster-{first}"] + [cache_dir() / f"broker-{first + n}" for n in range(brokers)]
        if any(path.exists() for path in leftovers):
            continue
        try:
            probes = []
            for port in ports:
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return first
    raise RuntimeError("no block of free loopback ports found")


def discard_cluster(cluster: Any) -> None:
    """Stop a test's cluster and delete its data (each node's and the cluster's shared files), so a later run that
    draws the same ports starts clean."""
    import shutil

    cluster.stop()
    for node in cluster.nodes:
        shutil.rmtree(node.home, ignore_errors=True)
    shutil.rmtree(cluster.home, ignore_errors=True)
