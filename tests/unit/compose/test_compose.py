"""Static checks of the observability config: rules, routing, dashboards and the compose file."""

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import yaml

from bcfwatch import dashboards
from tests.support import REPO

COMPOSE = REPO / "compose"


def run(*command: str, cwd: Path = COMPOSE) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_rule_unit_tests_pass():
    assert shutil.which("promtool"), "scripts/setup.sh installs Debian's prometheus package"
    checked = run("promtool", "check", "rules", "prometheus/rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run("promtool", "test", "rules", "rules_test.yml", cwd=COMPOSE / "prometheus")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every alerting rule has a test that fires it.
    rules = yaml.safe_load((COMPOSE / "prometheus/rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((COMPOSE / "prometheus/rules_test.yml").read_text())
    fired = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    assert alerts == fired


def test_alertmanager_config_and_routes():
    assert shutil.which("amtool"), "scripts/setup.sh installs Debian's prometheus-alertmanager package"
    config = "--config.file=alertmanager/alertmanager.yml"
    assert run("amtool", "check-config", "alertmanager/alertmanager.yml").returncode == 0
    board = run("amtool", "config", "routes", "test", config, "team=board-leads", "alertname=BoardDriftingOffPlan")
    pipeline = run("amtool", "config", "routes", "test", config, "team=operations", "alertname=WorkerDown")
    assert board.stdout.strip() == "board-leads" and pipeline.stdout.strip() == "operations"


def test_dashboards_are_generated_from_code():
    for name in dashboards.DASHBOARDS:
        assert (COMPOSE / "grafana/dashboards" / f"{name}.json").read_text() == dashboards.render(name), \
            "run `python -m bcfwatch.dashboards` and commit the result"
    board = json.loads(dashboards.render("board-drilldown"))
    assert board["templating"]["list"][0]["name"] == "board"
    assert all("$board" in expr for _, expr in dashboards.panel_queries(board))


LOOPBACK = {"127.0.0.1", "localhost", "::1"}
BCFWATCH_SERVICES = ("worker-1", "worker-2", "monitor", "notifier", "replay")
KAFKA_BROKERS = ("kafka-1", "kafka-2", "kafka-3")
REPO = COMPOSE.parent


def compose_file() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def default_image(image: str) -> str:
    """The image a service runs when its ${VARIABLE:-default} is not set."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", image)


def option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def mounted_files(compose: dict) -> dict[str, set[str]]:
    """Every host file or folder the stack mounts (relative to compose/) -> the services (or top-level keys)
    that mount it: bind volumes (short and long syntax), env_files, and the files of configs and secrets."""
    mounted: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                mounted.setdefault(source, set()).add(name)
        for env_file in service.get("env_file", []):
            mounted.setdefault(env_file, set()).add(name)
    for kind in ("configs", "secrets"):
        for name, entry in (compose.get(kind) or {}).items():
            mounted.setdefault(entry["file"], set()).add(f"{kind}.{name}")
    return {str(Path(source)): users for source, users in mounted.items()}


def mount_targets(compose: dict, service: dict) -> dict[str, str]:
    """Container path -> host source (or config/secret name) of everything mounted into ``service``."""
    targets = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        targets[target] = source
    for entry in service.get("configs", []):
        name, target = (entry, f"/{entry}") if isinstance(entry, str) else (entry["source"], entry["target"])
        targets[target] = compose["configs"][name]["file"]
    for entry in service.get("secrets", []):
        name = entry if isinstance(entry, str) else entry["source"]
        target = f"/run/secrets/{name}" if isinstance(entry, str) else entry.get("target", f"/run/secrets/{name}")
        targets[target] = compose["secrets"][name]["file"]
    return targets


def test_compose_services_images_and_builds():
    compose = compose_file()
    services = compose["services"]
    assert {*KAFKA_BROKERS, *BCFWATCH_SERVICES, "prometheus", "alertmanager", "grafana"} <= set(services)
    assert "kafka" not in services  # three brokers, no single one
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert (COMPOSE / build["context"] / build["dockerfile"]).exists()
        if image := service.get("image"):
            image = default_image(image)
            assert re.fullmatch(r"[\w./-]+:(v?\d[\w.-]*|local|bookworm)", image), \
                f"{name}: image {image} is not pinned to a version"
        elif not build:
            raise AssertionError(f"{name} has neither an image nor a build")
    kafka_services = {name for name, service in services.items() if "kafka:" in service.get("image", "")}
    assert kafka_services == set(KAFKA_BROKERS)
    # The images `make images` builds are the defaults; each named is built by compose/images/build.sh.
    built = set(re.findall(r"^build (\S+)", (COMPOSE / "images/build.sh").read_text(), re.MULTILINE))
    built = {tag.replace("$KAFKA_VERSION", "3.9.2").strip('"') for tag in built}
    local = {default_image(s["image"]) for s in services.values() if default_image(s.get("image", "")).startswith(
        "localhost/")}
    assert local == built, (local, built)
    # Grafana cannot be built here: it is only in the grafana profile, so the stack runs without it.
    assert services["grafana"]["profiles"] == ["grafana"]
    text = (COMPOSE / "docker-compose.yml").read_text()
    for upstream in ("BCF_KAFKA_IMAGE=apache/kafka:3.9.2", "BCF_PROMETHEUS_IMAGE=prom/prometheus:",
                     "BCF_ALERTMANAGER_IMAGE=prom/alertmanager:"):  # documented for operators who pull them
        assert upstream in text
    for name in KAFKA_BROKERS:
        assert default_image(services[name]["image"]) == "localhost/bcfwatch-kafka:3.9.2", name
        # Each broker keeps its data in a volume of its own (the image's default log dir is under /tmp).
        assert services[name]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data", name
        data = [volume for volume in services[name]["volumes"] if volume.endswith(":/var/lib/kafka/data")]
        assert data == [f"{name}-data:/var/lib/kafka/data"], name
        assert f"{name}-data" in compose["volumes"], name
    assert "kafka-data" not in compose["volumes"]


def test_bcfwatch_services_bootstrap_from_every_broker_and_replicate_3_with_2_in_sync():
    from bcfwatch.core.settings import Settings
    from bcfwatch.infra.kafka import Replication, replication_for

    compose = compose_file()
    services = compose["services"]
    environment = {name: str(value) for name, value in compose["x-bcfwatch-environment"].items()}
    assert environment["BCFWATCH_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert [server.split(":")[0] for server in environment["BCFWATCH_BOOTSTRAP"].split(",")] == list(KAFKA_BROKERS)
    # The settings bcfwatch reads: 3 copies of its topics, 2 in sync, which the three brokers allow.
    settings = Settings.from_env(environment)
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)
    assert replication_for(len(KAFKA_BROKERS), settings.replication_factor,
                           settings.min_insync_replicas) == Replication(3, 2)
    # Every service that talks to Kafka (the bcfwatch ones and the kafka-setup job) has them.
    for name in (*BCFWATCH_SERVICES, "kafka-setup"):
        service_environment = services[name]["environment"]
        for variable in ("BCFWATCH_BOOTSTRAP", "BCFWATCH_REPLICATION_FACTOR", "BCFWATCH_MIN_INSYNC_REPLICAS"):
            assert str(service_environment[variable]) == environment[variable], f"{name}: {variable}"


def test_every_compose_command_uses_options_the_cli_has():
    from bcfwatch.cli import main

    services = compose_file()["services"]
    for name in BCFWATCH_SERVICES:
        command = services[name]["command"]
        click_command = main.commands[command[0]]
        known = {opt for param in click_command.params for opt in (*param.opts, *param.secondary_opts)}
        used = {token for token in command[1:] if token.startswith("--")}
        assert used <= known, f"{name}: {sorted(used - known)} are not options of `bcfwatch {command[0]}`"


def test_every_service_has_a_health_check():
    services = compose_file()["services"]
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check["test"][0] in ("CMD", "CMD-SHELL"), \
            f"{name} has no health check"
    # The bcfwatch services' checks ask their own /healthz, on the port they serve it on.
    for name in ("worker-1", "worker-2", "monitor", "notifier"):
        port = option(services[name]["command"], "--metrics-port")
        assert f"http://127.0.0.1:{port}/healthz" in " ".join(services[name]["healthcheck"]["test"]), name
    # Each broker's check asks that broker, by the name it advertises (kafka-N:9092), not another one.
    for name in KAFKA_BROKERS:
        check = " ".join(services[name]["healthcheck"]["test"])
        assert re.findall(r"--bootstrap-server (\S+)", check) == [f"{name}:9092"], name
    # Whatever depends on another service waits for it to be healthy, not just started; on a one-shot job
    # (restart "no", e.g. kafka-setup), for it to have succeeded.
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            one_shot = services[dependency].get("restart") == "no"
            expected = "service_completed_successfully" if one_shot else "service_healthy"
            assert condition == {"condition": expected}, f"{name} -> {dependency}"
            assert "healthcheck" in services[dependency]
    # What waits for Kafka waits for all three brokers, never for some of them.
    for name, service in services.items():
        brokers = set(service.get("depends_on") or {}) & {*KAFKA_BROKERS, "kafka"}
        assert brokers in (set(), set(KAFKA_BROKERS)), f"{name} waits for {sorted(brokers)}"
    for name in (*BCFWATCH_SERVICES, "kafka-setup"):
        assert set(KAFKA_BROKERS) <= set(services[name]["depends_on"]), name


def test_prometheus_scrapes_ports_the_services_serve_on_a_non_loopback_address():
    services = compose_file()["services"]
    prometheus = yaml.safe_load((COMPOSE / "prometheus/prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert {target.split(":")[0] for target in targets} >= {"worker-1", "worker-2", "monitor", "notifier"}
    for target in targets:
        host, port = target.split(":")
        assert host in services, f"scrape target {target} is not a compose service"
        service = services[host]
        command = service["command"]
        assert option(command, "--metrics-port") == port, f"{host} does not serve metrics on {port}"
        bind = option(command, "--bind-address") or service.get("environment", {}).get("BCFWATCH_BIND_ADDRESS")
        assert bind is not None, f"{host} listens on loopback (the default): set BCFWATCH_BIND_ADDRESS"
        assert bind not in LOOPBACK, f"{host} listens on {bind}: Prometheus in its own container cannot scrape it"
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert "--web.listen-address" not in " ".join(services["alertmanager"]["command"])  # default :9093, all addresses
    # Outside a container the default stays loopback.
    from bcfwatch.core.settings import DEFAULTS

    assert DEFAULTS.bind_address in LOOPBACK


def test_every_mounted_file_is_in_the_repository_or_documented_as_operator_provided():
    compose = compose_file()
    operator_provided = {str(Path(path)) for path in compose["x-operator-provided"]}
    mounted = mounted_files(compose)
    for source, users in mounted.items():
        if source in operator_provided:
            continue
        assert (COMPOSE / source).exists(), f"{', '.join(sorted(users))}: {source} is neither in the repository " \
                                            "nor listed in x-operator-provided"
    assert operator_provided <= set(mounted), "x-operator-provided lists files nothing mounts"
    operations = (REPO / "docs/operations.md").read_text()
    for path in operator_provided:
        assert f"compose/{path}" in operations, f"docs/operations.md does not say how to provide compose/{path}"
    # Secrets come from files mounted as compose secrets, never from an env file in the repository.
    assert not any(service.get("env_file") for service in compose["services"].values())
    assert all(str(Path(entry["file"])) in operator_provided for entry in compose["secrets"].values())


def test_plan_subscriptions_and_secrets_are_mounted_explicitly():
    compose = compose_file()
    services = compose["services"]
    # The monitor judges the operator's plan, mounted where --plan says; never the sample plan silently.
    monitor = services["monitor"]
    assert "--sample-plan" not in monitor["command"]
    assert mount_targets(compose, monitor)[option(monitor["command"], "--plan")] == "./config/plan.csv"
    # The notifier reads the mounted subscriptions, whose webhook secret is a secret mounted into it.
    notifier = services["notifier"]
    assert mount_targets(compose, notifier)[option(notifier["command"], "--subscriptions")] \
        == "./config/subscriptions.toml"
    example = tomllib.loads((COMPOSE / "subscriptions.example.toml").read_text())
    for subscriber in example["subscriber"]:
        assert "secret_env" not in subscriber
        assert mount_targets(compose, notifier)[subscriber["secret_file"]] == "./secrets/webhook_secret"
    # The replay pseudonymises with the key mounted as a secret, and keeps its checkpoints in a volume so
    # `--resume` continues after a crash.
    replay = services["replay"]
    key_file = replay["environment"]["BCFWATCH_PSEUDONYM_KEY_FILE"]
    assert mount_targets(compose, replay)[key_file] == "./secrets/pseudonym_key"
    assert "--resume" in replay["command"]
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    cache = re.search(r"XDG_CACHE_HOME=(\S+)", dockerfile).group(1)
    assert mount_targets(compose, replay)[cache] == "replay-state"
    assert "\nUSER bcfwatch" in dockerfile


def test_grafana_is_provisioned_from_the_mounted_folders():
    services = compose_file()["services"]
    datasource = yaml.safe_load((COMPOSE / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert datasource["datasources"][0]["uid"] == dashboards.DATASOURCE["uid"]
    provider = yaml.safe_load((COMPOSE / "grafana/provisioning/dashboards/bcfwatch.yml").read_text())
    mounts = dict(v.split(":")[:2][::-1] for v in services["grafana"]["volumes"])
    assert mounts[provider["providers"][0]["options"]["path"]] == "./grafana/dashboards"
