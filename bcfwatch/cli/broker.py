"""`bcfwatch kafka ...`: the local Kafka broker, one node or a cluster of several (``--brokers 3``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from bcfwatch.cli.common import console, friendly_errors, from_settings, port_option

if TYPE_CHECKING:
    from bcfwatch.infra.broker import Broker


@click.group()
def kafka() -> None:
    """Run a local Kafka broker (KRaft; one node, or a cluster) fetched from Maven Central."""


node_option = click.option("--node", type=click.IntRange(1, 9), default=None,
                           help="Only this node of the cluster started with --brokers (fault drills).")
secure_option = click.option("--secure", is_flag=True,
                              help="SASL_SSL (TLS + SCRAM-SHA-512) with ACLs per service (docs/security.md).")


@kafka.command("start")
@port_option
@click.option("--brokers", type=click.IntRange(1, 9), default=1, show_default=True,
              help="Nodes: 1, or a cluster (3: a quorum of three) on PORT, PORT+1, ... (controllers PORT+1000, ...).")
@node_option
@click.option("--fresh", is_flag=True, help="Delete the broker's data first.")
@secure_option
@click.option("--topic-prefix", **from_settings("topic_prefix"),
              help="With --secure: create this prefix's topics and grant each service its ACLs on them.")
@click.option("--partitions", **from_settings("partitions"), type=click.IntRange(1, 1024),
              help="With --secure: partitions of the event and state topics created for the prefix.")
@friendly_errors
def kafka_start(port: int, brokers: int, node: int | None, fresh: bool, secure: bool, topic_prefix: str,
                partitions: int) -> None:
    """Fetch (once), format (once) and start the broker or cluster; wait until it serves."""
    from bcfwatch.infra.broker import KAFKA_VERSION, Broker
    from bcfwatch.infra.cluster import Cluster

    found = Cluster.found(port, secure)
    if node is not None:
        if found is None:
            raise click.UsageError(f"--node needs a cluster on port {port}: start one with --brokers 3 first")
        with console.status(f"starting node {node} of the cluster"):
            found.start_node(node)
        console.print(f"node {node} is up at {found.node(node).bootstrap} (pid {found.node(node).pid()})")
        return
    if brokers > 1 or found is not None:
        cluster = Cluster(port=port, brokers=brokers if brokers > 1 else found.brokers if found else 1,
                          secure=secure)
        with console.status(f"starting a {cluster.brokers}-node Kafka {KAFKA_VERSION} cluster"):
            cluster.start(fresh=fresh)
        mode = "SASL_SSL, SCRAM-SHA-512, ACLs" if secure else "plaintext"
        console.print(f"Kafka {KAFKA_VERSION} cluster of {cluster.brokers} is up at {cluster.bootstrap} ({mode}; "
                      f"data {', '.join(str(n.home) for n in cluster.nodes)})")
        bootstrap, admin = cluster.bootstrap, cluster.nodes[0]
    else:
        broker = Broker(port=port, secure=secure)
        if broker.pid() is not None and not secure:
            console.print(f"Kafka {KAFKA_VERSION} is already running at {broker.bootstrap} (pid {broker.pid()})")
            return
        if broker.pid() is None:
            with console.status(f"starting Kafka {KAFKA_VERSION} on {broker.bootstrap}"):
                broker.start(fresh=fresh)
        mode = "SASL_SSL, SCRAM-SHA-512, ACLs" if secure else "plaintext"
        console.print(f"Kafka {KAFKA_VERSION} is up at {broker.bootstrap} ({mode}; pid {broker.pid()}, "
                      f"data {broker.home})")
        bootstrap, admin = broker.bootstrap, broker
    if secure:
        from bcfwatch.infra.kafka import authorise_prefix

        acls = authorise_prefix(bootstrap, topic_prefix, partitions, admin.client_security("admin"))
        console.print(f"topics for prefix {topic_prefix!r} created; {acls} ACLs for "
                      "replay, worker, monitor and notifier. Client settings: "
                      "`bcfwatch kafka env --secure --service NAME`")


@kafka.command("env")
@port_option
@secure_option
@click.option("--service", type=click.Choice(["replay", "worker", "monitor", "notifier", "admin"]),
              default="admin", show_default=True, help="The principal whose settings to print.")
@friendly_errors
def kafka_env(port: int, secure: bool, service: str) -> None:
    """Print a service's client settings as shell `export` lines (eval "$(bcfwatch kafka env ...)")."""
    import shlex

    from bcfwatch.infra.broker import Broker
    from bcfwatch.infra.cluster import Cluster

    broker = Broker(port=port, secure=secure)
    cluster = Cluster.found(port, secure)
    bootstrap = cluster.bootstrap if cluster is not None else broker.bootstrap
    security = (cluster.nodes[0] if cluster is not None else broker).client_security(service)
    for name, value in {"BCFWATCH_BOOTSTRAP": bootstrap, **security.env()}.items():
        click.echo(f"export {name}={shlex.quote(value)}")


@kafka.command("stop")
@port_option
@node_option
@friendly_errors
def kafka_stop(port: int, node: int | None) -> None:
    """Stop the broker (or every node of the cluster, or one with --node) started by `bcfwatch kafka start`."""
    from bcfwatch.infra.broker import Broker
    from bcfwatch.infra.cluster import Cluster

    cluster = Cluster.found(port)
    if node is not None:
        if cluster is None:
            raise click.UsageError(f"--node needs a cluster on port {port}: there is none")
        stopped = cluster.stop_node(node)
        console.print(f"node {node} stopped" if stopped else f"node {node} was not running")
    elif cluster is not None:
        count = cluster.stop()
        console.print(f"Kafka stopped ({count} of {cluster.brokers} nodes were running)" if count
                      else f"no node of the cluster on port {port} was running")
    else:
        stopped = Broker(port=port).stop()
        console.print("Kafka stopped" if stopped else f"no bcfwatch broker was running on port {port}")


@kafka.command("status")
@port_option
@secure_option
@click.option("--topic-prefix", **from_settings("topic_prefix"),
              help="Also check the replication of this prefix's topics.")
@friendly_errors
def kafka_status(port: int, secure: bool, topic_prefix: str) -> None:
    """Say whether the broker (every node of a cluster) is running, which of the prefix's topics keep fewer copies
    than BCFWATCH_REPLICATION_FACTOR asks, and (a cluster) whether every replica is in sync; exit 1 if not."""
    from rich.table import Table

    from bcfwatch.infra.broker import Broker
    from bcfwatch.infra.cluster import Cluster

    cluster = Cluster.found(port, secure)
    nodes = cluster.nodes if cluster is not None else [Broker(port=port, secure=secure)]
    table = Table("node", "address", "state", "pid")
    up = []
    for node in nodes:
        pid = node.pid()
        running = pid is not None and node.accepts_connections()
        up.append(running)
        table.add_row(str(node.node_id), node.bootstrap, "running" if running else "not running", str(pid or ""))
    if cluster is not None:
        console.print(table)
    elif up[0]:
        console.print(f"running at {nodes[0].bootstrap} (pid {nodes[0].pid()})")
    if not any(up):
        console.print(f"not running on port {port}")
        sys.exit(1)
    short = topic_replication_report(",".join(n.bootstrap for n, ok in zip(nodes, up, strict=True) if ok),
                                     topic_prefix, nodes[0])
    behind = cluster.out_of_sync() if cluster is not None else 0
    if cluster is not None:
        console.print("every replica in sync" if behind == 0 else
                      f"[bold red]{behind} partitions have replicas out of sync[/] (wait before the next restart)"
                      if behind > 0 else "could not ask the cluster which replicas are in sync")
    if not all(up) or short or behind:
        sys.exit(1)


def topic_replication_report(bootstrap: str, prefix: str, admin_node: Broker) -> dict[str, int]:
    """Print the prefix's topics that keep fewer copies than configured; return them."""
    from bcfwatch.infra.kafka import admin_client, cluster_replication, prefix_topics, under_replicated

    admin = admin_client(bootstrap, admin_node.client_security("admin"))
    try:
        replication = cluster_replication(admin)
        short = under_replicated(admin, [name for name in (t[0] for t in prefix_topics(prefix, 1))
                                         if name in set(admin.list_topics())], replication)
    finally:
        admin.close()
    for name, copies in sorted(short.items()):
        console.print(f"[bold red]under-replicated[/]: {name} keeps {copies} of the {replication.factor} copies "
                      "configured (BCFWATCH_REPLICATION_FACTOR)")
    if not short:
        console.print(f"topics of prefix {prefix!r}: replication {replication.factor}, "
                      f"min.insync.replicas {replication.min_insync} for new topics; none under-replicated")
    return short


@kafka.command("fetch")
@friendly_errors
def kafka_fetch() -> None:
    """Download the broker jars from Maven Central into the cache (done by start too)."""
    from bcfwatch.infra.broker import Broker

    with console.status("fetching Kafka from Maven Central"):
        libs = Broker().fetch()
    console.print(f"Kafka jars in {libs}")


COMMANDS = (kafka,)
