"""A real local Kafka cluster: ``brokers`` combined broker + controller nodes (KRaft) on loopback, a controller
quorum of all of them, for the tests and fault drills that are about more than one broker.

Node ``n`` (1-based) of the cluster whose first port is ``port`` listens on ``port + n - 1``, its controller on
``port + 1000 + n - 1``, and keeps its data and log in its own ``<cache>/broker-PORT`` (as a one-node
:class:`~bcfwatch.infra.broker.Broker` would). All nodes share one cluster id, written at format time, and, in
secure mode, one set of secrets (CA, keystore, SCRAM passwords) in ``<cache>/cluster-PORT/secrets``, so a client
of one node is a client of all. The brokers' own topics are replicated min(3, brokers) times, with two in-sync
copies required where there are three; bcfwatch's topics follow ``BCFWATCH_REPLICATION_FACTOR``
(``bcfwatch/infra/kafka.py``).

Each JVM gets a 512 MiB heap (and as much direct memory): three fit beside the workers on a 2-core, 24 GiB
machine, and the one-node broker keeps its 1 GiB.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bcfwatch.core.settings import cache_dir
from bcfwatch.infra.broker import Broker, kafka_cluster_id
from bcfwatch.infra.errors import BrokerError

NODE_HEAP = "512m"


@dataclass(frozen=True)
class Cluster:
    """A local cluster of ``brokers`` nodes, identified by its first node's port."""

    port: int = 9092
    brokers: int = 3
    secure: bool = False
    host: str = "127.0.0.1"

    @property
    def home(self) -> Path:
        """Where the cluster's shared files live (its id, the node count, the shared secrets)."""
        return cache_dir() / f"cluster-{self.port}"

    @property
    def nodes(self) -> list[Broker]:
        voters = tuple((n, self.port + 1000 + n - 1) for n in range(1, self.brokers + 1))
        return [Broker(port=self.port + n - 1, controller_port=controller, host=self.host, secure=self.secure,
                       node_id=n, voters=voters, shared_secrets=self.home / "secrets", heap=NODE_HEAP)
                for n, controller in voters]

    def node(self, number: int) -> Broker:
        if not 1 <= number <= self.brokers:
            raise BrokerError(f"there is no node {number}: the cluster's nodes are 1 to {self.brokers}")
        return self.nodes[number - 1]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def _cluster_id_file(self) -> Path:
        return self.home / "cluster.id"

    def _cluster_id(self) -> str:
        """The id every node is formatted with (made once)."""
        if not self._cluster_id_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            self._cluster_id_file.write_text(kafka_cluster_id())
            (self.home / "brokers").write_text(str(self.brokers))
        return self._cluster_id_file.read_text().strip()

    def start(self, timeout: float = 120.0, fresh: bool = False) -> None:
        """Start every node that is not running (all together: a quorum needs a majority to elect), and wait
        until each serves."""
        if fresh:
            self.stop()
            for node in self.nodes:
                shutil.rmtree(node.home, ignore_errors=True)
            shutil.rmtree(self.home, ignore_errors=True)
        cluster_id = self._cluster_id()
        launched = [(node, node.launch(cluster_id=cluster_id)) for node in self.nodes if node.pid() is None]
        for node, process in launched:
            node.wait_serving(process, timeout)
        self.wait_registered(timeout)

    def registered(self) -> int:
        """The fewest brokers any node's metadata lists now (0 if one cannot be asked)."""
        return min(self._registered(node) for node in self.nodes)

    def _registered(self, node: Broker) -> int:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=3000,
                                     **self.nodes[0].client_security("admin").kafka_python_options())
        except (KafkaError, OSError, ValueError):
            return 0
        try:
            return len(admin.describe_cluster()["brokers"])
        except (KafkaError, OSError):
            return 0
        finally:
            admin.close()

    def wait_registered(self, timeout: float = 120.0) -> None:
        """Wait until every node is in every node's metadata, so that what is created next is replicated as
        the whole cluster allows (a node serving is not yet a node every broker knows)."""
        deadline = time.monotonic() + timeout
        while self.registered() < self.brokers:
            if time.monotonic() > deadline:
                raise BrokerError(f"only {self.registered()} of the {self.brokers} brokers joined the cluster "
                                  f"within {timeout:.0f} s; see {', '.join(str(n.log_file) for n in self.nodes)}")
            time.sleep(0.2)

    def out_of_sync(self) -> int:
        """Partitions (of every topic) with a replica not in sync, or -1 if the cluster cannot be asked."""
        from kafka.errors import KafkaError

        from bcfwatch.infra.kafka import admin_client

        try:
            admin = admin_client(self.bootstrap, self.nodes[0].client_security("admin"))
        except (KafkaError, OSError, ValueError):
            return -1
        try:
            return sum(len(partition["isr_nodes"]) < len(partition["replica_nodes"])
                       for topic in admin.describe_topics() for partition in topic.get("partitions", []))
        except (KafkaError, OSError):
            return -1
        finally:
            admin.close()

    def wait_in_sync(self, timeout: float = 120.0) -> None:
        """Wait until every replica of every partition is in sync again: in a rolling restart, the next broker
        may go only then (with 3 copies and 2 required, two behind at once would stop writes)."""
        deadline = time.monotonic() + timeout
        while (behind := self.out_of_sync()) != 0:
            if time.monotonic() > deadline:
                raise BrokerError(f"{behind} partitions still had replicas out of sync after {timeout:.0f} s")
            time.sleep(0.5)

    def start_node(self, number: int, timeout: float = 120.0) -> None:
        """Start one node again (a fault drill); the others must be running for it to serve."""
        node = self.node(number)
        if node.pid() is None:
            node.wait_serving(node.launch(cluster_id=self._cluster_id()), timeout)
            self.wait_registered(timeout)

    def stop_node(self, number: int) -> bool:
        """Stop one node cleanly (SIGTERM). True if it was running."""
        return self.node(number).stop()

    def stop(self) -> int:
        """Stop every node; the number that were running."""
        return sum(node.stop() for node in self.nodes)

    def running(self) -> list[int]:
        """The numbers of the nodes whose process is alive."""
        return [n for n, node in enumerate(self.nodes, start=1) if node.pid() is not None]

    @classmethod
    def found(cls, port: int, secure: bool = False) -> Cluster | None:
        """The cluster ``bcfwatch kafka start --brokers N --port PORT`` made, if there is one."""
        count = cache_dir() / f"cluster-{port}" / "brokers"
        if not count.exists():
            return None
        return cls(port=port, brokers=int(count.read_text().strip()), secure=secure)
