"""A real single-node Apache Kafka broker (KRaft, combined broker + controller).

The jars come from Maven Central through ``mvn dependency:copy-dependencies``
into the user's cache directory; nothing is committed and no tarball is
downloaded. Kafka 3.9.2 is pinned: it is the newest line that still speaks every
old protocol version, which faust-streaming's aiokafka and kafka-python both
rely on (4.x drops them and needs aiokafka >= 0.13 at least); both clients are
exercised against it in tests/test_broker.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

KAFKA_VERSION = "3.9.2"


class BrokerError(RuntimeError):
    """A broker operation failed; the message says what to do about it."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bcfwatch"


@dataclass(frozen=True)
class Broker:
    """One local broker, identified by its port; its files live under the cache dir."""

    port: int = 9092
    controller_port: int | None = None
    host: str = "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def home(self) -> Path:
        return cache_dir() / f"broker-{self.port}"

    @property
    def libs(self) -> Path:
        return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    # -- fetching ---------------------------------------------------------
    def fetch(self) -> Path:
        """Download the broker jars from Maven Central once; return the libs dir."""
        marker = self.libs / ".complete"
        if marker.exists():
            return self.libs
        if shutil.which("mvn") is None:
            raise BrokerError("Maven (mvn) is not installed; install it (apt-get install maven) and retry.")
        work = self.libs.parent
        work.mkdir(parents=True, exist_ok=True)
        pom = resources.files("bcfwatch").joinpath("kafka_pom.xml").read_text()
        (work / "pom.xml").write_text(pom.replace("@KAFKA_VERSION@", KAFKA_VERSION))
        result = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
             f"-DoutputDirectory={self.libs}", "-DincludeScope=runtime"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise BrokerError(
                f"could not fetch Kafka {KAFKA_VERSION} from Maven Central:\n"
                f"{(result.stdout + result.stderr)[-2000:]}"
            )
        marker.write_text(KAFKA_VERSION)
        return self.libs

    def _java(self, main: str, *args: str, **popen: object) -> list[str]:
        classpath = os.pathsep.join(str(p) for p in sorted(self.libs.glob("*.jar")))
        log4j = self.home / "log4j.properties"
        return ["java", "-Xms256m", "-Xmx1g", f"-Dlog4j.configuration=file:{log4j}",
                "-cp", classpath, main, *args]

    # -- configuration ----------------------------------------------------
    def _write_config(self) -> Path:
        controller_port = self.controller_port or self.port + 1000
        self.home.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": "8",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "8",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "-1",
            "log.segment.bytes": str(256 * 1024 * 1024),
        }
        config = self.home / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.home / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, file\n"
            "log4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={self.home / 'server.log'}\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=INFO\n"
        )
        return config

    # -- lifecycle --------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def accepts_connections(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self, timeout: float = 90.0, fresh: bool = False) -> None:
        """Start the broker (formatting storage on first use) and wait until it serves."""
        if self.pid() is not None:
            return
        if self.accepts_connections():
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use by another process; "
                "stop it or choose another port with --port."
            )
        if shutil.which("java") is None:
            raise BrokerError("Java is not installed; install a JDK 17 (apt-get install openjdk-17-jre-headless).")
        self.fetch()
        if fresh and self.home.exists():
            shutil.rmtree(self.home)
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = _kafka_cluster_id()
            result = subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)),
                capture_output=True, text=True,
            )
            if result.returncode != 0:
                raise BrokerError(f"formatting KRaft storage failed:\n{result.stdout}{result.stderr}")
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                self._java("kafka.Kafka", str(config)),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BrokerError(f"the broker exited with code {process.returncode}; see {self.log_file}")
            if self._ready():
                return
            time.sleep(0.2)
        self.stop()
        raise BrokerError(f"the broker did not accept connections within {timeout:.0f} s; see {self.log_file}")

    def _ready(self) -> bool:
        if not self.accepts_connections():
            return False
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        except (KafkaError, OSError, ValueError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker cleanly (SIGTERM, then SIGKILL after timeout). True if one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            _reap(pid)
            time.sleep(0.2)
        else:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _kafka_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding.

    Never one starting with '-': kafka-storage's argument parser would read it as an option (1 in 64).
    """
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
