"""A real single-node Apache Kafka broker (KRaft, combined broker + controller).

The jars come from Maven Central through ``mvn dependency:copy-dependencies``
into the user's cache directory; nothing is committed and no tarball is
downloaded. Kafka 3.9.2 is pinned: it is the newest line that still speaks every
old protocol version, which faust-streaming's aiokafka and kafka-python both
rely on (4.x drops them and needs aiokafka >= 0.13 at least); both clients are
exercised against it in tests/broker/infra/test_broker.py.

``secure=True`` (``bcfwatch kafka start --secure``) runs the same broker with one SASL_SSL listener
(TLS with a certificate made locally by the JDK's keytool; SCRAM-SHA-512 users created at format time,
KIP-900), the StandardAuthorizer and per-service ACLs (``bcfwatch/infra/kafka.py``). Passwords and
keystores are generated into ``<cache>/broker-PORT/secrets`` (mode 0700, files 0600). The controller
listener stays on loopback, authenticated with SASL/PLAIN (its principal is a super user, as the
broker's and the admin's are). See docs/security.md.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bcfwatch.core.settings import cache_dir
from bcfwatch.infra.errors import BrokerError
from bcfwatch.infra.kafka_security import KafkaSecurity

KAFKA_VERSION = "3.9.2"
SCRAM_MECHANISM = "SCRAM-SHA-512"
# Service principals (each with its own SCRAM user and ACLs) and the super users.
SERVICES = ("replay", "worker", "monitor", "notifier")
SUPER_USERS = ("broker", "admin")
CONTROLLER_USER = "controller"  # SASL/PLAIN on the loopback controller listener only
CERT_VALIDITY_DAYS = 825




@dataclass(frozen=True)
class Broker:
    """One local broker, identified by its port; its files live under the cache dir."""

    port: int = 9092
    controller_port: int | None = None
    host: str = "127.0.0.1"
    secure: bool = False
    # A node of a local cluster (``bcfwatch/infra/cluster.py``): its id, every controller voter as
    # (node id, controller port), and the folder of the secrets all nodes share. The defaults: one node.
    node_id: int = 1
    voters: tuple[tuple[int, int], ...] = ()
    shared_secrets: Path | None = None
    heap: str = "1g"

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

    # -- secrets (secure mode) --------------------------------------------
    @property
    def secrets_dir(self) -> Path:
        return self.shared_secrets or self.home / "secrets"

    @property
    def controller(self) -> int:
        return self.controller_port or self.port + 1000

    @property
    def replicas(self) -> int:
        """How many brokers the cluster this node belongs to has (its voters; 1 alone)."""
        return max(1, len(self.voters))

    @property
    def ca_file(self) -> Path:
        """PEM certificate of the local CA that signed the broker's certificate (clients trust it)."""
        return self.secrets_dir / "ca.pem"

    def password_file(self, user: str) -> Path:
        return self.secrets_dir / f"{user}.password"

    def client_security(self, user: str = "admin") -> KafkaSecurity:
        """The client settings (:class:`bcfwatch.infra.kafka_security.KafkaSecurity`) for one principal."""
        if not self.secure:
            return KafkaSecurity()
        if user not in (*SERVICES, *SUPER_USERS):
            raise BrokerError(f"no Kafka principal {user!r}: choose one of {', '.join((*SERVICES, 'admin'))}")
        if not self.ca_file.exists() or not self.password_file(user).exists():
            raise BrokerError(f"no secured broker has been set up on port {self.port}: "
                              f"run `bcfwatch kafka start --secure --port {self.port}` first")
        return KafkaSecurity(protocol="SASL_SSL", mechanism=SCRAM_MECHANISM, username=user,
                             password_file=self.password_file(user), ca_file=self.ca_file)

    def _secret(self, name: str) -> str:
        """A generated secret kept in ``secrets/NAME.password`` (0600), made once."""
        path = self.secrets_dir / f"{name}.password"
        if not path.exists():
            self.secrets_dir.mkdir(parents=True, exist_ok=True)
            self.secrets_dir.chmod(0o700)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def _make_certificates(self) -> None:
        """A local CA and a broker certificate for 127.0.0.1/localhost signed by it (keytool, PKCS12)."""
        if self.ca_file.exists() and (self.secrets_dir / "broker.p12").exists():
            return
        if shutil.which("keytool") is None:
            raise BrokerError("keytool is not installed; it comes with the JDK "
                              "(apt-get install openjdk-17-jdk-headless)")
        folder = self.secrets_dir
        store_password = self._secret("keystore")
        env = {**os.environ, "BCFWATCH_STOREPASS": store_password}
        names = f"SAN=ip:{self.host},ip:127.0.0.1,dns:localhost"
        ca_store, broker_store = folder / "ca.p12", folder / "broker.p12"
        for path in (ca_store, broker_store, folder / "truststore.p12"):
            path.unlink(missing_ok=True)
        common = ["-storetype", "PKCS12", "-storepass:env", "BCFWATCH_STOREPASS"]
        steps = [
            ["-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "3072", "-dname", "CN=bcfwatch local CA",
             "-ext", "bc:c", "-validity", str(CERT_VALIDITY_DAYS), "-keystore", str(ca_store), *common],
            ["-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), "-file", str(self.ca_file), *common],
            ["-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "3072", "-dname", "CN=localhost",
             "-ext", names, "-validity", str(CERT_VALIDITY_DAYS), "-keystore", str(broker_store), *common],
            ["-certreq", "-alias", "broker", "-keystore", str(broker_store), "-file", str(folder / "broker.csr"),
             *common],
            ["-gencert", "-alias", "ca", "-keystore", str(ca_store), "-infile", str(folder / "broker.csr"),
             "-outfile", str(folder / "broker.pem"), "-rfc", "-validity", str(CERT_VALIDITY_DAYS), "-ext", names,
             "-ext", "KU=digitalSignature,keyEncipherment", "-ext", "EKU=serverAuth,clientAuth", *common],
            ["-importcert", "-noprompt", "-alias", "ca", "-file", str(self.ca_file), "-keystore", str(broker_store),
             *common],
            ["-importcert", "-noprompt", "-alias", "broker", "-file", str(folder / "broker.pem"), "-keystore",
             str(broker_store), *common],
            ["-importcert", "-noprompt", "-alias", "ca", "-file", str(self.ca_file), "-keystore",
             str(folder / "truststore.p12"), *common],
        ]
        for step in steps:
            result = subprocess.run(["keytool", *step], capture_output=True, text=True, env=env)
            if result.returncode != 0:
                raise BrokerError(f"keytool {step[0]} failed:\n{result.stdout}{result.stderr}")
        for path in folder.iterdir():
            path.chmod(0o600)

    def _scram_users(self) -> list[str]:
        """``--add-scram`` arguments creating every principal's SCRAM user at format time (KIP-900)."""
        arguments = []
        for user in (*SUPER_USERS, *SERVICES):
            arguments += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={self._secret(user)}]"]
        return arguments

    def _secure_props(self, controller_port: int) -> dict[str, str]:
        broker_password = self._secret("broker")
        controller_password = self._secret(CONTROLLER_USER)
        store_password = self._secret("keystore")
        return {
            "listeners": f"SASL_SSL://{self.host}:{self.port},CONTROLLER://{self.host}:{controller_port}",
            "advertised.listeners": f"SASL_SSL://{self.host}:{self.port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="broker" password="{broker_password}";',
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{CONTROLLER_USER}" password="{controller_password}" '
                f'user_{CONTROLLER_USER}="{controller_password}";',
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.secrets_dir / "broker.p12"),
            "ssl.keystore.password": store_password,
            "ssl.key.password": store_password,
            "ssl.truststore.type": "PKCS12",
            "ssl.truststore.location": str(self.secrets_dir / "truststore.p12"),
            "ssl.truststore.password": store_password,
            "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
            "ssl.client.auth": "none",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": ";".join(f"User:{user}" for user in (*SUPER_USERS, CONTROLLER_USER)),
            "allow.everyone.if.no.acl.found": "false",
        }

    @property
    def _mode_file(self) -> Path:
        return self.home / "security-mode"

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
        pom = resources.files("bcfwatch.infra").joinpath("kafka_pom.xml").read_text()
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
        # The JDK caches one temporary direct buffer per thread as large as the largest socket or file write it
        # has done; with multi-MB snapshot records that cache filled the 1 GiB of direct memory at national
        # scale (OutOfMemoryError: Cannot reserve ... bytes of direct buffer memory). Kafka's own advice: cap
        # the cached size, and give direct memory its own limit.
        return ["java", "-Xms256m", f"-Xmx{self.heap}", f"-XX:MaxDirectMemorySize={self.heap}",
                "-Djdk.nio.maxCachedBufferSize=262144",
                f"-Dlog4j.configuration=file:{log4j}", "-cp", classpath, main, *args]

    # -- configuration ----------------------------------------------------
    def _write_config(self) -> Path:
        controller_port = self.controller
        self.home.mkdir(parents=True, exist_ok=True)
        voters = self.voters or ((self.node_id, controller_port),)
        # The brokers' own topics (consumer offsets, transactions) as replicated as the cluster allows; a write
        # acknowledged by two of three where there are three (the same rule as bcfwatch's topics).
        replicas = str(min(3, self.replicas))
        min_insync = "2" if self.replicas >= 3 else "1"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(f"{node}@{self.host}:{port}" for node, port in voters),
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": "8",
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_insync,
            "default.replication.factor": replicas,
            "min.insync.replicas": min_insync,
            "transaction.state.log.num.partitions": "8",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "-1",
            "log.segment.bytes": str(256 * 1024 * 1024),
        }
        if self.secure:
            props.update(self._secure_props(controller_port))
        config = self.home / "server.properties"
        config.touch(mode=0o600)
        config.chmod(0o600)  # holds the keystore and listener passwords in secure mode
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
        process = self.launch(fresh=fresh)
        self.wait_serving(process, timeout)

    def launch(self, fresh: bool = False, cluster_id: str | None = None) -> subprocess.Popen[bytes]:
        """Format the storage on first use (with ``cluster_id``: every node of a cluster shares one) and start
        the broker's process; return it without waiting (a cluster's nodes must start together to elect)."""
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
        mode = "secure" if self.secure else "plaintext"
        formatted = (self.home / "data" / "meta.properties").exists()
        if formatted and self._mode_file.exists() and self._mode_file.read_text().strip() != mode:
            raise BrokerError(
                f"the broker data in {self.home} was formatted {self._mode_file.read_text().strip()}; "
                f"start it that way again, or pass --fresh to delete its data and start {mode}"
            )
        if self.secure:
            self._make_certificates()
        config = self._write_config()
        if not formatted:
            result = subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster_id or kafka_cluster_id(), "-c",
                           str(config),
                           *(self._scram_users() if self.secure else [])),
                capture_output=True, text=True,
            )
            if result.returncode != 0:
                raise BrokerError(f"formatting KRaft storage failed:\n{result.stdout}{result.stderr}")
            self._mode_file.write_text(mode)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                self._java("kafka.Kafka", str(config)),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        return process

    def wait_serving(self, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
        """Wait until the launched broker answers an admin request; stop it and fail if it does not in time."""
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
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000,
                                     **self.client_security("admin").kafka_python_options())
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


def kafka_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding.

    Never one starting with '-': kafka-storage's argument parser would read it as an option (1 in 64).
    """
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
