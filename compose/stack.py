"""Run the compose stack with podman: up in dependency order, health, down.

    python compose/stack.py [--project bcfwatch] [--file FILE ...] up [--profile replay]
    python compose/stack.py [--project bcfwatch] [--file FILE ...] health
    python compose/stack.py [--project bcfwatch] [--file FILE ...] down [--volumes]

(`make stack-up`, `make stack-health` and `make stack-down` run these with the project's venv.)

podman-compose (pinned in pyproject.toml) creates the network, volumes and containers from
docker-compose.yml. It cannot honour `depends_on: condition: service_healthy` on podman < 4.6, and podman
runs periodic health checks only through systemd timers, which a container host without systemd lacks. So
this driver starts the services stage by stage, in the order their `depends_on` gives, and between stages
runs each awaited service's own health check (`podman healthcheck run`) until it passes, or waits for a
one-shot job (`service_completed_successfully`) to exit 0. A service that fails is reported with the tail
of its log, and the exit code is non-zero. With Docker none of this is needed: `docker compose up -d`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

COMPOSE_DIR = Path(__file__).resolve().parent
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
CONTAINERS_CONF = COMPOSE_DIR / "podman" / "containers.conf"
PROJECT = "bcfwatch"
HEALTH_POLL_SECONDS = 2.0  # between two runs of a health check that has not passed yet


class StackError(Exception):
    """What went wrong and what to do; printed without a traceback, exit code 1."""


@dataclass(frozen=True)
class Service:
    name: str
    depends_on: dict[str, str]  # service -> condition
    healthcheck: dict
    one_shot: bool  # restart "no": a job that runs once (kafka-setup, replay)


def _seconds(duration: str | int | float | None, default: float) -> float:
    """A compose duration ("1m30s", "10s", "500ms") in seconds."""
    if duration is None:
        return default
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    if not parts:
        raise StackError(f"cannot read the duration {duration!r} in the compose file")
    return sum(float(value) * units[unit] for value, unit in parts)


def read_compose(files: list[Path]) -> dict[str, dict]:
    """Every service's definition, the files merged as compose merges them (a later file's keys win)."""
    merged: dict[str, dict] = {}
    for file in files:
        for name, spec in (yaml.safe_load(file.read_text()).get("services") or {}).items():
            merged.setdefault(name, {}).update(spec)
    return merged


def read_services(files: list[Path], profiles: list[str]) -> dict[str, Service]:
    """The services enabled by ``profiles`` (those without a profile always are)."""
    services = {}
    for name, spec in read_compose(files).items():
        if spec.get("profiles") and not set(spec["profiles"]) & set(profiles):
            continue
        depends = spec.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {dependency: {"condition": "service_started"} for dependency in depends}
        services[name] = Service(name, {dependency: (how or {}).get("condition", "service_started")
                                        for dependency, how in depends.items()},
                                 spec.get("healthcheck") or {}, str(spec.get("restart", "no")) == "no")
    for service in services.values():
        missing = set(service.depends_on) - set(services)
        if missing:
            raise StackError(f"{service.name} depends on {', '.join(sorted(missing))}, not enabled by the profiles "
                             f"{profiles or '(none)'}")
    return services


def stages(services: dict[str, Service]) -> list[list[str]]:
    """Services grouped so that each depends only on services of earlier groups."""
    level: dict[str, int] = {}

    def depth(name: str, path: tuple[str, ...] = ()) -> int:
        if name in path:
            raise StackError(f"depends_on has a cycle: {' -> '.join((*path, name))}")
        if name not in level:
            level[name] = 1 + max((depth(d, (*path, name)) for d in services[name].depends_on), default=-1)
        return level[name]

    for name in services:
        depth(name)
    return [sorted(n for n in services if level[n] == k) for k in range(max(level.values(), default=-1) + 1)]


class Podman:
    """podman and podman-compose for one project, with the stack's containers.conf."""

    def __init__(self, project: str, files: list[Path], profiles: list[str]) -> None:
        self.project, self.files, self.profiles = project, files, profiles
        self.env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}
        for tool in ("podman", "runc"):
            if shutil.which(tool) is None:
                raise StackError(f"{tool} is not installed: run `sudo bash scripts/setup.sh` "
                                 "(apt-get install podman runc debootstrap)")
        compose = Path(sys.executable).with_name("podman-compose")
        self.compose_command = [str(compose)] if compose.exists() else [shutil.which("podman-compose") or ""]
        if not self.compose_command[0]:
            raise StackError("podman-compose is not installed: run `bash scripts/setup.sh` (it is pinned in "
                             "pyproject.toml's dev extra)")

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run(["podman", *args], capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise StackError(f"podman {' '.join(args[:3])} failed: {(result.stderr or result.stdout).strip()}")
        return result

    def compose(self, *args: str, timeout: float = 900) -> None:
        profiles = [arg for profile in self.profiles for arg in ("--profile", profile)]
        files = [arg for file in self.files for arg in ("-f", str(file))]
        result = subprocess.run([*self.compose_command, "--in-pod", "false", "-p", self.project, *files,
                                 *profiles, *args],
                                capture_output=True, text=True, env=self.env, timeout=timeout,
                                cwd=self.files[0].parent)
        if result.returncode != 0:
            raise StackError(f"podman-compose {' '.join(args)} failed:\n{(result.stderr or result.stdout).strip()}")

    def containers(self) -> dict[str, dict]:
        """service -> its container (podman ps --format json), for this project."""
        listed = json.loads(self.run("ps", "-a", "--format", "json", "--filter",
                                     f"label=io.podman.compose.project={self.project}").stdout or "[]")
        return {c["Labels"]["com.docker.compose.service"]: c for c in listed}

    def state(self, container: str) -> tuple[str, int, int]:
        """(status, exit code, restarts) of a container."""
        found = json.loads(self.run("inspect", container, "--format", "json").stdout)[0]
        return found["State"]["Status"], found["State"]["ExitCode"], found.get("RestartCount", 0)

    def healthy(self, container: str, timeout: float) -> bool:
        return self.run("healthcheck", "run", container, check=False, timeout=timeout).returncode == 0

    def log_tail(self, container: str, lines: int = 30) -> str:
        result = self.run("logs", "--tail", str(lines), container, check=False)
        return (result.stdout + result.stderr).strip()


def wait_healthy(podman: Podman, service: Service, container: str) -> float:
    """Run the service's health check until it passes; the seconds it took."""
    check = service.healthcheck
    if not check.get("test"):
        raise StackError(f"{service.name} is awaited as healthy but has no health check")
    budget = (_seconds(check.get("start_period"), 0) + _seconds(check.get("interval"), 30)
              * int(check.get("retries", 3)) + 60)
    began = time.monotonic()
    while time.monotonic() - began < budget:
        status, code, restarts = podman.state(container)
        if status not in ("running", "created", "configured", "initialized") or restarts:
            raise StackError(f"{service.name} stopped ({status}, exit code {code}, restarted {restarts} times) "
                             f"before it was healthy:\n{podman.log_tail(container)}")
        if podman.healthy(container, _seconds(check.get("timeout"), 30) + 30):
            return time.monotonic() - began
        time.sleep(HEALTH_POLL_SECONDS)  # a back-off between two runs of the health check, not synchronisation
    raise StackError(f"{service.name} was not healthy within {budget:.0f} s (its health check's start period, "
                     f"interval and retries):\n{podman.log_tail(container)}")


def wait_completed(podman: Podman, service: Service, container: str) -> float:
    began = time.monotonic()
    podman.run("wait", container, timeout=900)
    _, code, _ = podman.state(container)
    if code != 0:
        raise StackError(f"{service.name} failed (exit code {code}):\n{podman.log_tail(container)}")
    return time.monotonic() - began


def up(project: str, files: list[Path], profiles: list[str]) -> int:
    services = read_services(files, profiles)
    podman = Podman(project, files, profiles)
    check_images(podman, files)
    say(f"creating the {project} stack's network, volumes and containers (podman-compose)")
    podman.compose("up", "--no-start", "--no-deps")  # no --requires: this driver orders the start
    check_name_resolution(podman)
    containers = podman.containers()
    awaited = {dependency: condition for service in services.values()
               for dependency, condition in service.depends_on.items()}
    for stage in stages(services):
        for name in stage:
            podman.run("start", containers[name]["Names"][0])
        say(f"started {', '.join(stage)}")
        for name in stage:
            container, condition = containers[name]["Names"][0], awaited.get(name)
            if condition == "service_healthy":
                say(f"  {name} healthy after {wait_healthy(podman, services[name], container):.0f} s")
            elif condition == "service_completed_successfully":
                say(f"  {name} completed after {wait_completed(podman, services[name], container):.0f} s")
    for name, service in services.items():  # every other service with a health check, to report it healthy
        container = containers[name]["Names"][0]
        if name not in awaited and service.healthcheck.get("test") and not service.one_shot:
            say(f"  {name} healthy after {wait_healthy(podman, service, container):.0f} s")
    print_health(podman, services, run_checks=False)
    return 0


def check_images(podman: Podman, files: list[Path]) -> None:
    images = {re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m.group(1), m.group(2)), spec["image"])
              for spec in read_compose(files).values() if "image" in spec}
    missing = sorted(image for image in images if image.startswith("localhost/")
                     and podman.run("image", "exists", image, check=False).returncode != 0)
    if missing:
        raise StackError(f"image{'s' if len(missing) > 1 else ''} {', '.join(missing)} not built: run `make images` "
                         "(compose/images/build.sh)")


def check_name_resolution(podman: Podman) -> None:
    """The services find each other by name (kafka-1, kafka-2, ...): every network of the project must have
    podman's DNS. With the CNI backend that takes the dnsname plugin, which apt-get installs only as podman's
    recommendation; without it the brokers cannot resolve the quorum's names and stop after a minute."""
    listed = podman.run("network", "ls", "--format", "{{.Name}}", "--filter",
                        f"label=io.podman.compose.project={podman.project}").stdout.split()
    for network in listed:
        if not json.loads(podman.run("network", "inspect", network).stdout)[0].get("dns_enabled", False):
            raise StackError(f"podman network {network} has no DNS, so the services cannot find each other by "
                             "name: install podman's DNS plugin (with the CNI backend "
                             "golang-github-containernetworking-plugin-dnsname, which `sudo bash scripts/setup.sh` "
                             "installs; with netavark aardvark-dns), then `python compose/stack.py down` and up again")


def print_health(podman: Podman, services: dict[str, Service], run_checks: bool) -> int:
    """A table of every service's state and health; the number of services not as they should be."""
    containers = podman.containers()
    rows, bad = [], 0
    for name in sorted(set(services) | set(containers)):
        if name not in containers:
            rows.append((name, "not created", "-"))
            bad += 1
            continue
        container = containers[name]["Names"][0]
        status, code, _ = podman.state(container)
        health = "-"
        if name in services and services[name].healthcheck.get("test") and status == "running":
            if run_checks:
                health = "healthy" if podman.healthy(container, 60) else "unhealthy"
            else:
                inspected = json.loads(podman.run("inspect", container, "--format", "json").stdout)[0]["State"]
                health = (inspected.get("Health") or inspected.get("Healthcheck") or {}).get("Status") or "-"
        state = f"exited ({code})" if status == "exited" else status
        one_shot = name in services and services[name].one_shot  # running, or done with exit code 0
        as_it_should_be = status == "running" or (one_shot and status == "exited" and code == 0)
        if not as_it_should_be or health == "unhealthy":
            bad += 1
        rows.append((name, state, health))
    width = max(len(row[0]) for row in rows) if rows else 7
    print(f"{'service':<{width}}  {'state':<12}  health")
    for name, state, health in rows:
        print(f"{name:<{width}}  {state:<12}  {health}")
    return bad


def down(project: str, files: list[Path], volumes: bool) -> int:
    every_profile = sorted({p for spec in read_compose(files).values() for p in spec.get("profiles", [])})
    podman = Podman(project, files, every_profile)
    podman.compose("down", *(["--volumes"] if volumes else []))
    left = podman.containers()
    if left:
        raise StackError(f"containers left after down: {', '.join(sorted(left))}")
    say(f"the {project} stack is down{' and its volumes removed' if volumes else ''}")
    return 0


def say(message: str) -> None:
    print(f"stack: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compose/stack.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default=PROJECT, help="the compose project name (default: %(default)s)")
    parser.add_argument("--file", type=Path, action="append", dest="files",
                        help=f"a compose file, again for each file added (default: {COMPOSE_FILE})")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the stack in dependency order and wait until it is healthy")
    start.add_argument("--profile", action="append", default=[], help="enable a profile (replay, check, grafana)")
    health = commands.add_parser("health", help="run every service's health check and print a table")
    health.add_argument("--profile", action="append", default=[])
    stop = commands.add_parser("down", help="stop and remove the stack's containers and network")
    stop.add_argument("--volumes", action="store_true", help="remove its named volumes too (all data)")
    args = parser.parse_args(argv)
    files = args.files or [COMPOSE_FILE]
    try:
        for file in files:
            if not file.is_file():
                raise StackError(f"no compose file at {file}")
        if args.command == "up":
            return up(args.project, files, args.profile)
        if args.command == "health":
            services = read_services(files, args.profile)
            return 1 if print_health(Podman(args.project, files, args.profile), services, run_checks=True) else 0
        return down(args.project, files, args.volumes)
    except StackError as error:
        print(f"stack: {error}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as error:
        print(f"stack: {' '.join(map(str, error.cmd[:3]))} did not finish within {error.timeout:.0f} s",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
