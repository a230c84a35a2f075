"""Static checks of the observability config: rules, routing, dashboards and the compose file."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from bcfwatch import dashboards

COMPOSE = Path(__file__).resolve().parent.parent / "compose"


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


def test_compose_file_is_consistent():
    compose = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "worker-1", "worker-2", "monitor", "notifier", "replay", "prometheus", "alertmanager",
            "grafana"} <= set(services)
    for name, service in services.items():
        image = service.get("image")
        if image:
            assert re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", image), f"{name}: image {image} is not pinned to a version"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (COMPOSE / source).exists(), f"{name}: {source} does not exist"
        for env_file in service.get("env_file", []):
            assert (COMPOSE / env_file).exists(), f"{name}: env_file {env_file} does not exist"
        build = service.get("build")
        if build:
            assert (COMPOSE / build["context"] / build["dockerfile"]).exists()
    # Prometheus scrapes the ports the services serve metrics on, by their compose hostnames.
    prometheus = yaml.safe_load((COMPOSE / "prometheus/prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    for target in targets:
        host, port = target.split(":")
        assert host in services, f"scrape target {target} is not a compose service"
        command = services[host]["command"]
        assert command[command.index("--metrics-port") + 1] == port, f"{host} does not serve metrics on {port}"
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    # Grafana's datasource points at the prometheus service, and dashboards are provisioned from the mounted folder.
    datasource = yaml.safe_load((COMPOSE / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert datasource["datasources"][0]["uid"] == dashboards.DATASOURCE["uid"]
    provider = yaml.safe_load((COMPOSE / "grafana/provisioning/dashboards/bcfwatch.yml").read_text())
    mounts = dict(v.split(":")[:2][::-1] for v in services["grafana"]["volumes"])
    assert mounts[provider["providers"][0]["options"]["path"]] == "./grafana/dashboards"
    assert "apache/kafka:3.9.2" == services["kafka"]["image"]


