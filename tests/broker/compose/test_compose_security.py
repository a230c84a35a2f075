"""Static checks of the compose stack's Kafka cluster and its security (three brokers, SASL_SSL, SCRAM-SHA-512,
ACLs, secrets), and a run of compose/make-secrets.sh into a temporary directory.

Docker is not available where bcfwatch is developed: the compose file is parsed with yaml. Each broker's settings
are checked as the server.properties the apache/kafka image writes from its KAFKA_* environment.
"""

import base64
import hashlib
import importlib.util
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import REPO

COMPOSE = REPO / "compose"
REPO = COMPOSE.parent
WRAPPER = COMPOSE / "kafka/format-and-start.sh"
MAKE_SECRETS = COMPOSE / "make-secrets.sh"

# The three Kafka nodes (combined broker and controller) and their node ids.
BROKERS = {"kafka-1": 1, "kafka-2": 2, "kafka-3": 3}
# The names the brokers' certificate must be valid for: each broker's, "kafka" and localhost.
CERTIFICATE_NAMES = (*BROKERS, "kafka", "localhost")
# Every bcfwatch service that talks to Kafka and the principal it connects as (docs/security.md).
SERVICE_PRINCIPALS = {"replay": "replay", "worker-1": "worker", "worker-2": "worker", "monitor": "monitor",
                      "notifier": "notifier", "kafka-setup": "admin"}
SCRAM_PRINCIPALS = {"broker", "admin", "replay", "worker", "monitor", "notifier"}
# The client settings of bcfwatch/infra/kafka_security.py.
PROTOCOL_ENV, MECHANISM_ENV = "BCFWATCH_KAFKA_SECURITY_PROTOCOL", "BCFWATCH_KAFKA_SASL_MECHANISM"
USERNAME_ENV, PASSWORD_FILE_ENV, CA_FILE_ENV = ("BCFWATCH_KAFKA_USERNAME", "BCFWATCH_KAFKA_PASSWORD_FILE",
                                                "BCFWATCH_KAFKA_CA_FILE")
# Users the containers run as: compose/Dockerfile's bcfwatch user, apache/kafka's appuser, grafana's.
KAFKA_UID, GRAFANA_UID = 1000, 472
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def compose_file() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def bcfwatch_uid() -> int:
    return int(re.search(r"--uid (\d+)", (COMPOSE / "Dockerfile").read_text()).group(1))


def is_bcfwatch(service: dict) -> bool:
    return "bcfwatch:local" in service.get("image", "") or "build" in service


def secret_names(service: dict) -> list[str]:
    return [entry if isinstance(entry, str) else entry["source"] for entry in service.get("secrets", [])]


def secret_targets(compose: dict, service: dict) -> dict[str, str]:
    """Container path -> host file (relative to compose/) of every secret mounted into ``service``."""
    targets = {}
    for entry in service.get("secrets", []):
        name = entry if isinstance(entry, str) else entry["source"]
        target = f"/run/secrets/{name}" if isinstance(entry, str) else entry.get("target", f"/run/secrets/{name}")
        targets[target] = str(Path(compose["secrets"][name]["file"]))
    return targets


def property_name(env: str) -> str:
    """The server.properties key the apache/kafka image makes of a KAFKA_* variable (KafkaDockerWrapper)."""
    return env.replace("KAFKA_", "").lower().replace("_", ".").replace("...", "-").replace("..", "_")


NOT_PROPERTIES = {"KAFKA_VERSION", "KAFKA_HEAP_OPTS", "KAFKA_LOG4J_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS",
                  "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_LOG4J_ROOT_LOGLEVEL",
                  "KAFKA_LOG4J_LOGGERS", "KAFKA_TOOLS_LOG4J_LOGLEVEL", "KAFKA_JMX_HOSTNAME"}


def broker_properties(compose: dict, broker: str) -> dict[str, str]:
    environment = compose["services"][broker]["environment"]
    return {property_name(name): str(value) for name, value in environment.items()
            if name.startswith("KAFKA_") and name not in NOT_PROPERTIES}


def listeners(value: str) -> dict[str, tuple[str, str]]:
    """NAME -> (host, port) of a listeners value like ``CLIENT://:9092,CONTROLLER://127.0.0.1:9093``."""
    result = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, port)
    return result


def wrapper_exports() -> set[str]:
    return set(re.findall(r"^export (KAFKA_\w+)=", WRAPPER.read_text(), re.MULTILINE))


# -- the brokers -----------------------------------------------------------------------------------------------
def test_three_brokers_form_one_cluster_with_the_same_settings_but_their_own_id_name_and_volume():
    compose = compose_file()
    services = compose["services"]
    assert {name for name, service in services.items() if "bcfwatch-kafka:" in service.get("image", "")} \
        == set(BROKERS)
    shared = None
    for broker, node_id in BROKERS.items():
        props = broker_properties(compose, broker)
        assert props["node.id"] == str(node_id), broker
        assert props["process.roles"] == "broker,controller", broker
        assert listeners(props["advertised.listeners"]) == {"CLIENT": (broker, "9092")}, broker
        # Everything else is the same on the three (one YAML anchor), their secrets and entry point too.
        rest = {key: value for key, value in props.items() if key not in {"node.id", "advertised.listeners"}}
        own = (rest, secret_names(services[broker]), services[broker]["command"],
               sorted(volume for volume in services[broker]["volumes"] if not volume.endswith(":/var/lib/kafka/data")))
        assert shared is None or own == shared, f"{broker} differs from kafka-1"
        shared = own
        # Nothing of a broker is published to the host: clients and brokers meet on the compose network.
        assert "ports" not in services[broker] and "network_mode" not in services[broker], broker
    # The quorum is the three, each at its controller listener under its compose name.
    props = broker_properties(compose, "kafka-1")
    controller_port = listeners(props["listeners"])[props["controller.listener.names"]][1]
    assert props["controller.quorum.voters"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    assert props["controller.quorum.voters"] == ",".join(f"{node}@{broker}:{controller_port}"
                                                         for broker, node in BROKERS.items())
    # One cluster id, from one secret file, for all three: the wrapper formats with it and makes none itself.
    assert all("kafka_cluster_id" in secret_names(services[broker]) for broker in BROKERS)
    assert compose["secrets"]["kafka_cluster_id"] == {"file": "./secrets/kafka_cluster_id"}
    text = WRAPPER.read_text()
    assert 'CLUSTER_ID=$(read_cluster_id "$secrets/kafka_cluster_id")' in text
    assert '--cluster-id="$CLUSTER_ID"' in text and 'kafka-storage.sh" random-uuid' not in text


def test_the_brokers_replicate_their_own_topics_3_times_with_2_in_sync():
    compose = compose_file()
    for broker in BROKERS:
        props = broker_properties(compose, broker)
        assert props["offsets.topic.replication.factor"] == "3", broker
        assert props["transaction.state.log.replication.factor"] == "3", broker
        assert props["transaction.state.log.min.isr"] == "2", broker
        assert props["default.replication.factor"] == "3", broker
        assert props["min.insync.replicas"] == "2", broker
        assert props["auto.create.topics.enable"] == "false", broker
        # As many copies as brokers, and one broker may be down with writes still acknowledged.
        assert int(props["offsets.topic.replication.factor"]) == len(BROKERS)
        assert int(props["min.insync.replicas"]) == len(BROKERS) - 1
    environment = compose["x-bcfwatch-environment"]
    assert str(environment["BCFWATCH_REPLICATION_FACTOR"]) == "3"
    assert str(environment["BCFWATCH_MIN_INSYNC_REPLICAS"]) == "2"


def test_the_brokers_offer_only_sasl_ssl_with_scram_and_deny_what_no_acl_allows():
    compose = compose_file()
    # Clients bootstrap from every broker, by the names the brokers advertise.
    assert compose["x-bcfwatch-environment"]["BCFWATCH_BOOTSTRAP"] == ",".join(f"{broker}:9092" for broker in BROKERS)
    for broker in BROKERS:
        props = broker_properties(compose, broker)
        protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
        bound = listeners(props["listeners"])
        advertised = listeners(props["advertised.listeners"])
        controller = props["controller.listener.names"]
        assert set(bound) == {"CLIENT", controller} == set(protocols), broker
        # The client listener (every advertised one) is SASL_SSL, on kafka-N:9092 where BCFWATCH_BOOTSTRAP points.
        assert advertised == {"CLIENT": (broker, "9092")} and bound["CLIENT"] == ("", "9092"), broker
        # Any listener reachable from outside the container is SASL_SSL. The controller listener no longer can be
        # loopback only (the other nodes' brokers and controllers reach it), so it is SASL_SSL too, PLAIN inside
        # TLS, and never advertised to clients.
        for name, (host, _) in bound.items():
            assert protocols[name] == "SASL_SSL" or host in LOOPBACK, f"{broker}: {name} is {protocols[name]} " \
                                                                        f"on {host!r}"
        assert bound[controller] == ("", "9093") and protocols[controller] == "SASL_SSL", broker
        assert controller not in advertised, broker
        assert props["sasl.mechanism.controller.protocol"] == "PLAIN", broker
        assert props[f"listener.name.{controller.lower()}.sasl.enabled.mechanisms"] == "PLAIN", broker
        assert not {"PLAINTEXT", "SASL_PLAINTEXT", "SSL"} & set(protocols.values())  # no unauthenticated or clear
        assert props["inter.broker.listener.name"] == "CLIENT", broker
        # SCRAM-SHA-512 only, TLS 1.2+ from a PKCS12 keystore mounted as a secret.
        assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512", broker
        assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512", broker
        assert set(props["ssl.enabled.protocols"].split(",")) <= {"TLSv1.3", "TLSv1.2"}, broker
        assert props["ssl.keystore.type"] == "PKCS12", broker
        # Hostname verification between brokers and from clients stays on (the default).
        assert "ssl.endpoint.identification.algorithm" not in props, broker
        targets = secret_targets(compose, compose["services"][broker])
        assert targets[props["ssl.keystore.location"]] == "secrets/kafka_keystore.p12", broker
        assert targets[props["ssl.truststore.location"]] == "secrets/kafka_ca.pem", broker
        # The authorizer denies whatever no ACL allows; only the broker, admin and controller are super users.
        assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer", broker
        assert props["allow.everyone.if.no.acl.found"] == "false", broker
        assert set(props["super.users"].split(";")) == {"User:broker", "User:admin", "User:controller"}, broker


@pytest.mark.parametrize("broker", BROKERS)
def test_the_broker_reads_its_secrets_from_files_through_its_entry_point(broker):
    compose = compose_file()
    kafka = compose["services"][broker]
    props = broker_properties(compose, broker)
    # The entry point is the mounted wrapper, which formats with the SCRAM credentials and runs the image's.
    script = Path(kafka["command"][-1])
    assert f"./kafka:{script.parent}:ro" in kafka["volumes"] and (COMPOSE / "kafka" / script.name).exists()
    text = WRAPPER.read_text()
    assert '--add-scram "$line"' in text and "$secrets/kafka_scram_credentials" in text
    assert "kafka-storage.sh\" format" in text and text.rstrip().endswith("exec /etc/kafka/docker/run")
    # What holds a secret is exported by the wrapper from a secret file, never set in the compose file: the
    # keystore password and each listener's JAAS config (names as the image turns them into properties).
    client, controller = "CLIENT", props["controller.listener.names"]
    exported = {property_name(name) for name in wrapper_exports()}
    assert exported == {"ssl.keystore.password", "ssl.key.password",
                        f"listener.name.{client.lower()}.scram-sha-512.sasl.jaas.config",
                        f"listener.name.{controller.lower()}.plain.sasl.jaas.config"}
    assert not exported & set(props)
    for name in ("kafka_broker_password", "kafka_controller_password", "kafka_keystore_password"):
        assert f"secret {name})" in text and name in secret_names(kafka)
    assert {"kafka_keystore", "kafka_scram_credentials", "kafka_ca", "kafka_cluster_id"} <= set(secret_names(kafka))
    # The broker never gets a service's password: only salted credentials.
    assert not {f"kafka_{user}_password" for user in SERVICE_PRINCIPALS.values()} & set(secret_names(kafka))
    # Its health check connects to itself, as the broker principal over TLS with the settings the wrapper writes.
    health = " ".join(kafka["healthcheck"]["test"])
    assert re.findall(r"--bootstrap-server (\S+)", health) == [f"{broker}:9092"]
    assert "--command-config /opt/kafka/config/healthcheck.properties" in health
    assert "security.protocol=SASL_SSL" in text and "ssl.truststore.location=$secrets/kafka_ca" in text


@pytest.mark.parametrize("broker", BROKERS)
def test_the_wrapper_formats_with_the_properties_the_image_writes(broker):
    """format-and-start.sh (and the bcfwatch-kafka image's entry point) render server.properties by the image's
    rule, with env-to-properties.sh beside the wrapper."""
    environment = {name: str(value) for name, value in compose_file()["services"][broker]["environment"].items()}
    assert '"$(dirname "${BASH_SOURCE[0]}")/env-to-properties.sh" >"$config"' in WRAPPER.read_text()
    result = subprocess.run(["bash", str(WRAPPER.with_name("env-to-properties.sh"))], capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"], "KAFKA_OPTS": "-Dx=1", **environment}, timeout=30)
    assert result.returncode == 0, result.stderr
    rendered = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert rendered == {property_name(name): value for name, value in environment.items()
                        if name not in NOT_PROPERTIES}
    assert "KAFKA_HEAP_OPTS" in environment and "heap.opts" not in rendered
    assert rendered["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    assert rendered["node.id"] == str(BROKERS[broker])
    assert rendered["controller.quorum.voters"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"


def read_cluster_id(file: Path) -> subprocess.CompletedProcess:
    """The wrapper's read_cluster_id (and fail) run on ``file``."""
    text = WRAPPER.read_text()
    functions = [re.search(rf"^{name}\(\) \{{.*?^\}}", text, re.MULTILINE | re.DOTALL).group(0)
                 for name in ("fail", "read_cluster_id")]
    return subprocess.run(["bash", "-c", "\n".join([*functions, 'read_cluster_id "$1"']), "bash", str(file)],
                          capture_output=True, text=True, timeout=30)


def test_the_wrapper_reads_the_cluster_id_and_fails_naming_the_file(tmp_path):
    file = tmp_path / "kafka_cluster_id"
    missing = read_cluster_id(file)
    assert missing.returncode != 0 and f"cannot read {file}" in missing.stderr and "make-secrets.sh" in missing.stderr
    for bad in ("", "not a cluster id\n", "MkU3OEVBNTcwNTJENDM2Qk\nMkU3OEVBNTcwNTJENDM2Qk\n", "-kU3OEVBNTcwNTJENDM2Qg",
                "MkU3OEVBNTcwNTJENDM2Qk", "MkU3OEVBNTcwNTJENDM2Qg=="):
        file.write_text(bad)
        refused = read_cluster_id(file)
        assert refused.returncode != 0 and f"{file} must hold one Kafka cluster id" in refused.stderr, repr(bad)
    file.write_text("MkU3OEVBNTcwNTJENDM2Qg\n")  # the example id of Kafka's documentation
    read = read_cluster_id(file)
    assert read.returncode == 0 and read.stdout == "MkU3OEVBNTcwNTJENDM2Qg", read.stderr


# -- the bcfwatch services ---------------------------------------------------------------------------------------
def test_every_bcfwatch_service_connects_with_its_own_principal_password_file_and_the_ca():
    compose = compose_file()
    services = compose["services"]
    assert {name for name, service in services.items() if is_bcfwatch(service)} == set(SERVICE_PRINCIPALS)
    for name, principal in SERVICE_PRINCIPALS.items():
        service = services[name]
        environment = service["environment"]
        targets = secret_targets(compose, service)
        assert environment[PROTOCOL_ENV] == "SASL_SSL", name
        assert environment[MECHANISM_ENV] == "SCRAM-SHA-512", name
        assert environment[USERNAME_ENV] == principal, name
        password_file = environment[PASSWORD_FILE_ENV]
        assert password_file.startswith("/run/secrets/"), name
        assert targets[password_file] == f"secrets/kafka_{principal}_password", name
        assert targets[environment[CA_FILE_ENV]] == "secrets/kafka_ca.pem", name
        assert "BCFWATCH_KAFKA_PASSWORD" not in environment, name
        # No other principal's password is mounted into it.
        passwords = {secret for secret in secret_names(service) if re.fullmatch(r"kafka_\w+_password", secret)}
        assert passwords == {f"kafka_{principal}_password"}, name
    # The settings are those bcfwatch reads.
    from bcfwatch.infra import kafka_security

    assert set(kafka_security.SETTINGS_ENV) == {PROTOCOL_ENV, MECHANISM_ENV, USERNAME_ENV, PASSWORD_FILE_ENV,
                                                CA_FILE_ENV}


def test_topics_and_acls_are_set_up_by_the_admin_before_any_service_starts():
    services = compose_file()["services"]
    setup = services["kafka-setup"]
    assert setup["restart"] == "no"
    assert setup["depends_on"] == {broker: {"condition": "service_healthy"} for broker in BROKERS}
    script = setup["entrypoint"][-1]
    assert f"./kafka/authorise.py:{script}:ro" in setup["volumes"]
    for name in SERVICE_PRINCIPALS.keys() - {"kafka-setup"}:
        assert services[name]["depends_on"]["kafka-setup"] == {"condition": "service_completed_successfully"}, name
        for broker in BROKERS:
            assert services[name]["depends_on"][broker] == {"condition": "service_healthy"}, name
    # The job's imports resolve: it grants the ACLs with bcfwatch's own code (docs/security.md).
    spec = importlib.util.spec_from_file_location("compose_authorise", COMPOSE / "kafka/authorise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.main) and callable(module.authorise_prefix)


# -- the secret files ---------------------------------------------------------------------------------------------
def test_every_secret_is_a_git_ignored_file_under_compose_secrets():
    compose = compose_file()
    secrets = compose["secrets"]
    used = {name for service in compose["services"].values() for name in secret_names(service)}
    assert used == set(secrets), "every declared secret is mounted somewhere and every mounted one declared"
    operator_provided = {str(Path(path)) for path in compose["x-operator-provided"]}
    for name, entry in secrets.items():
        assert set(entry) == {"file"}, f"{name}: a secret comes from a file, nothing else"
        path = Path(entry["file"])
        assert path.parent == Path("secrets"), name
        assert str(path) in operator_provided, name
        ignored = subprocess.run(["git", "check-ignore", "-q", f"compose/{path}"], cwd=REPO, timeout=30)
        assert ignored.returncode == 0, f"compose/{path} is not git-ignored (or is tracked)"
    # The folder's README is what the repository keeps there.
    kept = subprocess.run(["git", "check-ignore", "-q", "compose/secrets/README.md"], cwd=REPO, timeout=30)
    assert kept.returncode == 1


def test_no_secret_value_is_in_the_compose_file():
    compose = compose_file()
    text = (COMPOSE / "docker-compose.yml").read_text()
    # Settings that name a secret hold a path under /run/secrets, never a value.
    sensitive = re.compile(r"PASSWORD|SECRET|JAAS|CREDENTIAL|_KEY($|_)")
    for name, service in compose["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if sensitive.search(variable):
                assert str(value).startswith("/run/secrets/"), f"{name}: {variable} holds a value, not a file"
    # Generated secrets are long runs of hex or base64 with digits in them; nothing in the file looks like one.
    assert not [token for token in re.findall(r"[A-Za-z0-9+/=]{32,}", text) if re.search(r"\d", token)]
    for pattern in (r"whsec_[A-Za-z0-9+/]{8,}", r"-----BEGIN", r"(?i)password\s*=\s*\"?\w", r"saltedpassword",
                    r"user_\w+="):
        assert not re.search(pattern, text), f"the compose file has something like a secret: {pattern}"
    # Nor any value of the operator's secrets, where there are some.
    for path in (COMPOSE / "secrets").iterdir():
        if path.name.startswith("README") or not os.access(path, os.R_OK):
            continue
        for line in path.read_text(errors="replace").splitlines():
            assert len(line.strip()) < 16 or line.strip() not in text, f"a line of {path.name} is in the compose file"


# -- compose/make-secrets.sh ------------------------------------------------------------------------------------
def make_secrets(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(MAKE_SECRETS), str(folder)], capture_output=True, text=True, timeout=300)


def expected_owner(compose: dict, secret: str) -> set[int]:
    """The uids of the containers that mount ``secret``."""
    uids = set()
    for name, service in compose["services"].items():
        if secret in secret_names(service):
            uids.add(bcfwatch_uid() if is_bcfwatch(service) else KAFKA_UID if name in BROKERS
                     else {"grafana": GRAFANA_UID}[name])
    return uids


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("compose") / "secrets"
    result = make_secrets(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


def test_make_secrets_makes_every_declared_secret_owner_only(made):
    compose = compose_file()
    files = {Path(entry["file"]).name: name for name, entry in compose["secrets"].items()}
    assert {path.name for path in made.iterdir()} == set(files)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    for filename, secret in files.items():
        path = made / filename
        mode = stat.S_IMODE(path.stat().st_mode)
        readers = expected_owner(compose, secret)
        if len(readers) > 1:
            # Read by containers running as different users: only a public certificate may be.
            assert filename == "kafka_ca.pem" and mode == 0o644, filename
            assert path.read_text().startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE" not in path.read_text()
            continue
        assert mode == 0o600, f"{filename} has mode {mode:04o}"
        if os.geteuid() == 0:
            assert {path.stat().st_uid} == readers, f"{filename} is not owned by the container user that reads it"
    # bcfwatch accepts the service password files (it refuses any its group or others may read).
    from bcfwatch.infra.kafka_security import check_secret_file

    for principal in set(SERVICE_PRINCIPALS.values()):
        check_secret_file(made / f"kafka_{principal}_password", "Kafka password file")


def test_make_secrets_passwords_are_random_and_fit_the_broker(made):
    passwords = [(made / f"kafka_{user}_password").read_text().strip()
                 for user in (*SCRAM_PRINCIPALS, "controller", "keystore")]
    assert len(set(passwords)) == len(passwords)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32,}", password) for password in passwords)  # the wrapper's rule
    assert re.fullmatch(r"[0-9a-f]{64}", (made / "pseudonym_key").read_text().strip())
    webhook = (made / "webhook_secret").read_text().strip()
    assert webhook.startswith("whsec_") and len(base64.b64decode(webhook.removeprefix("whsec_"))) >= 24


def test_make_secrets_scram_credentials_match_the_passwords(made):
    """Each line is an --add-scram argument whose salted password is the principal's (RFC 5802 Hi())."""
    line_format = re.compile(r'SCRAM-SHA-512=\[name=([a-z]+),iterations=(\d+),salt="([A-Za-z0-9+/=]+)",'
                             r'saltedpassword="([A-Za-z0-9+/=]+)"\]')
    seen = set()
    for line in (made / "kafka_scram_credentials").read_text().splitlines():
        match = line_format.fullmatch(line)
        assert match, line[:40]
        name, iterations, salt, salted = match.group(1), int(match.group(2)), match.group(3), match.group(4)
        assert iterations >= 4096  # Kafka's minimum for SCRAM-SHA-512
        password = (made / f"kafka_{name}_password").read_text().strip().encode()
        assert hashlib.pbkdf2_hmac("sha512", password, base64.b64decode(salt), iterations) == base64.b64decode(salted)
        assert password.decode() not in line
        seen.add(name)
    assert seen == SCRAM_PRINCIPALS


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_make_secrets_keystore_holds_the_broker_certificate_signed_by_the_ca(made, tmp_path):
    keystore, password = made / "kafka_keystore.p12", made / "kafka_keystore_password"
    certificate = tmp_path / "broker.pem"
    extracted = openssl("pkcs12", "-in", str(keystore), "-passin", f"file:{password}", "-nokeys", "-clcerts",
                        "-out", str(certificate), cwd=tmp_path)
    assert extracted.returncode == 0, extracted.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    assert openssl("pkcs12", "-in", str(keystore), "-passin", f"file:{wrong}", "-nokeys", "-out",
                   str(tmp_path / "x.pem"), cwd=tmp_path).returncode != 0
    key = openssl("pkcs12", "-in", str(keystore), "-passin", f"file:{password}", "-nocerts", "-nodes", cwd=tmp_path)
    assert key.returncode == 0 and "PRIVATE KEY" in key.stdout
    # The CA verifies the brokers' (one, shared) certificate for the names clients and the other brokers connect
    # to (every broker's, as advertised and in the quorum voters), and for no other.
    ca = str(made / "kafka_ca.pem")
    compose = compose_file()
    advertised = {listeners(broker_properties(compose, broker)["advertised.listeners"])["CLIENT"][0]
                  for broker in BROKERS}
    voters = {voter.split("@")[1].rsplit(":", 1)[0]
              for voter in broker_properties(compose, "kafka-1")["controller.quorum.voters"].split(",")}
    assert advertised == voters == set(BROKERS)
    for host in CERTIFICATE_NAMES:
        verified = openssl("verify", "-CAfile", ca, "-verify_hostname", host, str(certificate), cwd=tmp_path)
        assert verified.returncode == 0, host + verified.stdout + verified.stderr
    for host in ("example.org", "kafka-4", "kafka-"):
        assert openssl("verify", "-CAfile", ca, "-verify_hostname", host, str(certificate),
                       cwd=tmp_path).returncode != 0, host
    names = openssl("x509", "-in", str(certificate), "-noout", "-ext", "subjectAltName", cwd=tmp_path).stdout
    assert sorted(re.findall(r"DNS:([\w.-]+)", names)) == sorted(CERTIFICATE_NAMES)
    # Java (the brokers) reads the keystore with its password, and sees the same names.
    assert shutil.which("keytool"), "scripts/setup.sh installs Java (openjdk-17-jre-headless), with keytool"
    listed = subprocess.run(["keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", str(keystore),
                             "-storepass:file", str(password)], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "PrivateKeyEntry" in listed.stdout, listed.stdout + listed.stderr
    assert listed.stdout.count("Entry type: PrivateKeyEntry") == 1  # one key, shared by the three brokers
    assert sorted(re.findall(r"DNSName: ([\w.-]+)", listed.stdout)) == sorted(CERTIFICATE_NAMES)


def test_make_secrets_makes_one_cluster_id_in_kafkas_format(made):
    cluster_id = (made / "kafka_cluster_id").read_text()
    assert cluster_id.endswith("\n") and cluster_id.count("\n") == 1
    cluster_id = cluster_id.strip()
    # A Kafka Uuid as kafka-storage.sh random-uuid prints it: 16 bytes, base64url without padding.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id) and not cluster_id.startswith("-")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    # The wrapper accepts it as it is.
    read = read_cluster_id(made / "kafka_cluster_id")
    assert read.returncode == 0 and read.stdout == cluster_id, read.stderr


def test_make_secrets_keeps_what_is_there_and_remakes_what_is_missing(made, tmp_path):
    made = shutil.copytree(made, tmp_path / "secrets")  # modes kept; the other tests' files untouched
    before = {path.name: path.read_bytes() for path in made.iterdir()}
    again = make_secrets(made)
    assert again.returncode == 0 and "nothing made" in again.stdout, again.stdout + again.stderr
    assert {path.name: path.read_bytes() for path in made.iterdir()} == before
    # A deleted password is made anew, and the SCRAM credentials follow it.
    (made / "kafka_replay_password").unlink()
    remade = make_secrets(made)
    assert remade.returncode == 0, remade.stdout + remade.stderr
    assert "kafka_replay_password" in remade.stdout and "kafka_scram_credentials" in remade.stdout
    assert (made / "kafka_replay_password").read_bytes() != before["kafka_replay_password"]
    assert (made / "kafka_scram_credentials").read_bytes() != before["kafka_scram_credentials"]
    assert (made / "pseudonym_key").read_bytes() == before["pseudonym_key"]
    assert (made / "kafka_keystore.p12").read_bytes() == before["kafka_keystore.p12"]
    assert (made / "kafka_cluster_id").read_bytes() == before["kafka_cluster_id"]  # the brokers' storage has it
    test_make_secrets_scram_credentials_match_the_passwords(made)


def test_make_secrets_remakes_a_keystore_without_every_broker_name(made, tmp_path):
    """A keystore made for the one-broker stack (names kafka and localhost) is made anew, with a new CA."""
    made = shutil.copytree(made, tmp_path / "secrets")
    before = {path.name: path.read_bytes() for path in made.iterdir()}
    made_key = openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kafka", "-days", "1",
                       "-addext", "subjectAltName=DNS:kafka,DNS:localhost", "-keyout", "old.key", "-out", "old.pem",
                       cwd=tmp_path)
    assert made_key.returncode == 0, made_key.stderr
    exported = openssl("pkcs12", "-export", "-in", "old.pem", "-inkey", "old.key", "-passout",
                       f"file:{made / 'kafka_keystore_password'}", "-out", str(made / "kafka_keystore.p12"),
                       cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    again = make_secrets(made)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "not valid for kafka-1 kafka-2 kafka-3" in again.stdout
    assert "kafka_keystore.p12" in again.stdout and "kafka_ca.pem" in again.stdout
    assert (made / "kafka_ca.pem").read_bytes() != before["kafka_ca.pem"]
    assert stat.S_IMODE((made / "kafka_ca.pem").stat().st_mode) == 0o644
    assert stat.S_IMODE((made / "kafka_keystore.p12").stat().st_mode) == 0o600
    test_make_secrets_keystore_holds_the_broker_certificate_signed_by_the_ca(made, tmp_path)
    # Nothing else is touched.
    for name, content in before.items():
        if name not in {"kafka_ca.pem", "kafka_keystore.p12"}:
            assert (made / name).read_bytes() == content, name
