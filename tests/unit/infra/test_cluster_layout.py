"""The local cluster's layout, without starting it: ports, controller quorum, shared secrets, broker settings."""

from __future__ import annotations

import pytest

from bcfwatch.infra.broker import Broker
from bcfwatch.infra.cluster import Cluster
from bcfwatch.infra.errors import BrokerError


def test_node_n_listens_on_port_plus_n_minus_1_and_every_node_knows_the_whole_quorum(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cluster = Cluster(port=29092, brokers=3)
    assert cluster.bootstrap == "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094"
    assert [(n.node_id, n.port, n.controller) for n in cluster.nodes] == [(1, 29092, 30092), (2, 29093, 30093),
                                                                         (3, 29094, 30094)]
    assert {n.voters for n in cluster.nodes} == {((1, 30092), (2, 30093), (3, 30094))}
    assert {n.secrets_dir for n in cluster.nodes} == {cluster.home / "secrets"}
    assert len({n.home for n in cluster.nodes}) == 3
    with pytest.raises(BrokerError, match="nodes are 1 to 3"):
        cluster.node(4)


def test_each_node_writes_its_id_the_quorum_and_the_replication_of_the_brokers_own_topics(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    second = Cluster(port=29092, brokers=3).node(2)
    props = dict(line.split("=", 1) for line in second._write_config().read_text().splitlines())
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:30092,2@127.0.0.1:30093,3@127.0.0.1:30094"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29093,CONTROLLER://127.0.0.1:30093"
    assert (props["offsets.topic.replication.factor"], props["transaction.state.log.min.isr"],
            props["min.insync.replicas"]) == ("3", "2", "2")
    alone = dict(line.split("=", 1) for line in Broker(port=29192)._write_config().read_text().splitlines())
    assert (alone["node.id"], alone["controller.quorum.voters"], alone["offsets.topic.replication.factor"],
            alone["min.insync.replicas"]) == ("1", "1@127.0.0.1:30192", "1", "1")  # one node: as before
