"""The compose stack run for real (issue 28): images built from Debian packages, PyPI and Maven Central with
podman, the stack started with one command, a generated two-year log with drifts replayed through it, and
everything checked from outside the containers against the offline backtest of the same log.

Needs root, podman, runc and debootstrap (`bash scripts/setup.sh` installs them, as CI does); skipped, saying
how to run it, where they are missing. The first run builds the images from nothing (a few minutes); later
runs reuse podman's layer cache and rebuild only the code layer."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support import REPO, free_port, wait_for

COMPOSE = REPO / "compose"
SCALE = "0.01"
DRIFTS = ("E08000025:+30%", "E10000016:+30%")  # Birmingham and Kent, far enough off plan to alert
MISSING = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING) or os.geteuid() != 0,
    reason=(f"{', '.join(MISSING)} not installed" if MISSING else "needs root") + ": the compose stack test "
    "runs podman; install them with `sudo bash scripts/setup.sh` (apt-get install podman runc debootstrap) and "
    "run `sudo .venv/bin/pytest tests/containers`")


def bcfwatch(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "bcfwatch.cli", *args], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def podman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CONTAINERS_CONF": str(COMPOSE / "podman/containers.conf")})


class Stack:
    """One project of the stack, in a copy of compose/ with its own secrets, plan, log and ports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.project = f"bcfw-test-{uuid.uuid4().hex[:6]}"
        self.ports = {"BCF_PROMETHEUS_PORT": free_port(), "BCF_ALERTMANAGER_PORT": free_port(),
                      "BCF_RECEIVER_PORT": free_port()}
        self.receiver_ca = ssl.create_default_context(cafile=str(folder / "secrets/receiver_ca.pem"))

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        files = ["--file", str(self.folder / "docker-compose.yml"), "--file", str(self.folder / "check.yml")]
        return subprocess.run([sys.executable, str(self.folder / "stack.py"), "--project", self.project, *files,
                               *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **{name: str(port) for name, port in self.ports.items()}})

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def get(self, port: str, path: str, https: bool = False) -> object:
        scheme = "https" if https else "http"
        url = f"{scheme}://127.0.0.1:{self.ports[port]}{path}"
        with urllib.request.urlopen(url, timeout=10, context=self.receiver_ca if https else None) as response:
            return json.loads(response.read())

    def deliveries(self) -> dict:
        return self.get("BCF_RECEIVER_PORT", "/deliveries", https=True)  # type: ignore[return-value]

    def leftovers(self) -> list[str]:
        label = f"label=io.podman.compose.project={self.project}"
        containers = podman("ps", "-a", "-q", "--filter", label).stdout.split()
        volumes = [v for v in podman("volume", "ls", "-q").stdout.split() if v.startswith(self.project)]
        networks = [n for n in podman("network", "ls", "-q", "--format", "{{.Name}}").stdout.split()
                    if n.startswith(self.project)]
        return containers + volumes + networks


@pytest.fixture(scope="module")
def images() -> None:
    built = subprocess.run(["bash", str(COMPOSE / "images/build.sh")], capture_output=True, text=True, timeout=1800,
                           cwd=REPO)
    assert built.returncode == 0, built.stderr[-4000:]


@pytest.fixture
def stack(tmp_path, images) -> Stack:
    """compose/ copied with what an operator provides: secrets (make-secrets.sh, the receiver's certificates),
    a plan, a generated two-year log with drifts and subscriptions pointing at the receiver."""
    folder = tmp_path / "compose"
    shutil.copytree(COMPOSE, folder, ignore=shutil.ignore_patterns("secrets", "logs", "config", "__pycache__"))
    for step in (["bash", str(folder / "make-secrets.sh"), str(folder / "secrets")],
                 ["bash", str(folder / "receiver/make-certs.sh"), str(folder / "secrets")]):
        made = subprocess.run(step, capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr
    (folder / "config").mkdir()
    (folder / "logs").mkdir()
    bcfwatch("plan", "sample", "--out", str(folder / "config/plan.csv"), "--scale", SCALE)
    bcfwatch("generate", "--out", str(folder / "logs/events.jsonl"), "--from", "2014-04-01", "--to", "2016-03-31",
             "--scale", SCALE, "--seed", "7", *[arg for drift in DRIFTS for arg in ("--drift", drift)])
    (folder / "config/subscriptions.toml").write_text(
        '[[subscriber]]\nname = "receiver"\nboards = "all"\nmetrics = "all"\nquestions = "all"\n'
        'channel = "webhook"\nurl = "https://webhook-receiver:8443/hook"\n'
        'secret_file = "/run/secrets/webhook_secret"\nca_file = "/run/secrets/receiver_ca"\n')
    stack = Stack(folder)
    yield stack
    for service in ("kafka-setup", "replay", "worker-1", "worker-2", "monitor", "notifier", "webhook-receiver"):
        logs = podman("logs", "--tail", "40", stack.container(service))  # shown by pytest when the test failed
        print(f"--- {service} ---\n{logs.stdout}{logs.stderr}")
    down = stack.run("down", "--volumes")
    assert down.returncode == 0, down.stdout + down.stderr
    assert stack.leftovers() == [], "the tear-down left these behind"


@pytest.mark.timeout(2400)  # a safety net over the images built from nothing, the stack's start and its checks
def test_the_stack_runs_end_to_end_as_the_offline_backtest(stack, tmp_path):
    offline = tmp_path / "backtest"
    bcfwatch("backtest", str(stack.folder / "logs/events.jsonl"), "--plan", str(stack.folder / "config/plan.csv"),
             "--out", str(offline))
    expected = [json.loads(line) for line in (offline / "alerts.jsonl").read_text().splitlines()]
    assert {alert["board"] for alert in expected if alert["state"] == "raised"} >= {"E08000025", "E10000016"}

    # One command brings it up; every service's health check turns healthy (kafka-setup ran once, exit 0).
    up = stack.run("up", "--profile", "replay")
    assert up.returncode == 0, up.stdout + up.stderr
    table = {line.split()[0]: line.split()[1:] for line in up.stdout.splitlines()[1:] if line and
             not line.startswith("stack:")}
    for service in ("kafka-1", "kafka-2", "kafka-3", "worker-1", "worker-2", "monitor", "notifier", "prometheus",
                    "alertmanager", "webhook-receiver"):
        assert table[service] == ["running", "healthy"], (service, up.stdout)
    assert table["kafka-setup"] == ["exited", "(0)", "-"], up.stdout

    # The replay container sends the whole log, then the workers' counts equal the backtest's byte for byte.
    replayed = podman("wait", stack.container("replay"), timeout=900)
    assert replayed.stdout.strip() == "0", podman("logs", stack.container("replay")).stderr[-3000:]
    exported = podman("exec", stack.container("worker-1"), "bcfwatch", "counts", "export", "--out",
                      "/data/counts.csv", "--timeout", "300")
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert podman("cp", f"{stack.container('worker-1')}:/data/counts.csv", str(tmp_path / "counts.csv")).returncode == 0
    assert (tmp_path / "counts.csv").read_text() == (offline / "counts.csv").read_text()

    # The monitor raises what the backtest raised; the notifier delivers each, signed, once, over verified TLS.
    def key(alert: dict) -> tuple:
        return alert["as_of"], alert["board"], alert["event_id"]

    def all_delivered() -> dict | None:
        deliveries = stack.deliveries()
        return deliveries if len(deliveries["accepted"]) >= len(expected) else None

    received = wait_for(all_delivered, 300, "every expected alert delivered to the receiver container")
    assert sorted((item["payload"] for item in received["accepted"]), key=key) == sorted(expected, key=key)
    assert received["bad_signatures"] == 0

    # Prometheus scrapes every target; Alertmanager receives BoardDriftingOffPlan for each board left off plan.
    def targets_up() -> dict | None:
        result = stack.get("BCF_PROMETHEUS_PORT", "/api/v1/query?query=up")["data"]["result"]  # type: ignore[index]
        return {r["metric"]["instance"]: r["value"][1] for r in result} or None

    up_targets = wait_for(lambda: (t := targets_up()) and all(v == "1" for v in t.values()) and t, 120,
                          "every Prometheus target up")
    assert set(up_targets) == {"worker-1:9464", "worker-2:9464", "monitor:9465", "notifier:9467"}
    last: dict[tuple, str] = {}
    for alert in expected:
        if alert["metric"] == "emergency_admissions":
            last[alert["board"], alert["question"]] = alert["state"]
    still_open = {board for (board, _), state in last.items() if state != "resolved"}

    def drifting() -> set[str]:
        alerts = stack.get("BCF_ALERTMANAGER_PORT", "/api/v2/alerts")
        return {a["labels"]["board"] for a in alerts if a["labels"].get("alertname") == "BoardDriftingOffPlan"}  # type: ignore[union-attr]

    assert wait_for(lambda: drifting() == still_open, 180, f"BoardDriftingOffPlan in Alertmanager for {still_open}")

    # Still each alert once, and every service still healthy by its own health check.
    assert len(stack.deliveries()["accepted"]) == len(expected)
    health = stack.run("health", "--profile", "replay")
    assert health.returncode == 0, health.stdout + health.stderr
