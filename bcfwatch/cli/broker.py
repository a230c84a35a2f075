"""`bcfwatch kafka ...`: the local single-node Kafka broker."""

from __future__ import annotations

import sys

import click

from bcfwatch.cli.common import console, friendly_errors, from_settings, port_option


@click.group()
def kafka() -> None:
    """Run the local single-node Kafka broker (KRaft) fetched from Maven Central."""


secure_option = click.option("--secure", is_flag=True,
                              help="SASL_SSL (TLS + SCRAM-SHA-512) with ACLs per service (docs/security.md).")


@kafka.command("start")
@port_option
@click.option("--fresh", is_flag=True, help="Delete the broker's data first.")
@secure_option
@click.option("--topic-prefix", **from_settings("topic_prefix"),
              help="With --secure: create this prefix's topics and grant each service its ACLs on them.")
@click.option("--partitions", **from_settings("partitions"), type=click.IntRange(1, 1024),
              help="With --secure: partitions of the event and state topics created for the prefix.")
@friendly_errors
def kafka_start(port: int, fresh: bool, secure: bool, topic_prefix: str, partitions: int) -> None:
    """Fetch (once), format (once) and start the broker; wait until it serves."""
    from bcfwatch.infra.broker import KAFKA_VERSION, Broker

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
    if secure:
        from bcfwatch.infra.kafka import authorise_prefix

        acls = authorise_prefix(broker.bootstrap, topic_prefix, partitions, broker.client_security("admin"))
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

    broker = Broker(port=port, secure=secure)
    security = broker.client_security(service)
    for name, value in {"BCFWATCH_BOOTSTRAP": broker.bootstrap, **security.env()}.items():
        click.echo(f"export {name}={shlex.quote(value)}")


@kafka.command("stop")
@port_option
@friendly_errors
def kafka_stop(port: int) -> None:
    """Stop the broker started by `bcfwatch kafka start`."""
    from bcfwatch.infra.broker import Broker

    stopped = Broker(port=port).stop()
    console.print("Kafka stopped" if stopped else f"no bcfwatch broker was running on port {port}")


@kafka.command("status")
@port_option
def kafka_status(port: int) -> None:
    """Say whether the broker is running; exit 1 when it is not."""
    from bcfwatch.infra.broker import Broker

    broker = Broker(port=port)
    pid = broker.pid()
    if pid is not None and broker.accepts_connections():
        console.print(f"running at {broker.bootstrap} (pid {pid})")
        return
    console.print(f"not running on port {port}")
    sys.exit(1)


@kafka.command("fetch")
@friendly_errors
def kafka_fetch() -> None:
    """Download the broker jars from Maven Central into the cache (done by start too)."""
    from bcfwatch.infra.broker import Broker

    with console.status("fetching Kafka from Maven Central"):
        libs = Broker().fetch()
    console.print(f"Kafka jars in {libs}")


COMMANDS = (kafka,)
