"""compose/stack.py's checks that need no container: a project network without podman's DNS is refused, naming
the package that gives it (the brokers otherwise cannot resolve kafka-1, kafka-2, kafka-3 and stop after a minute)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.support import REPO

spec = importlib.util.spec_from_file_location("compose_stack", REPO / "compose/stack.py")
assert spec is not None and spec.loader is not None
stack = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = stack  # its dataclasses look their module up
spec.loader.exec_module(stack)


class RecordedPodman(stack.Podman):
    """The driver's podman with its answers given: network name -> dns_enabled."""

    def __init__(self, networks: dict[str, bool]) -> None:  # no tool lookup: nothing is run
        self.project, self.networks, self.calls = "bcfw-unit", networks, []

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        self.calls.append(args)
        if args[:2] == ("network", "ls"):
            assert f"label=io.podman.compose.project={self.project}" in args
            return subprocess.CompletedProcess(args, 0, "\n".join(self.networks) + "\n", "")
        if args[:2] == ("network", "inspect"):
            answer = [{"name": args[2], "dns_enabled": self.networks[args[2]]}]
            return subprocess.CompletedProcess(args, 0, json.dumps(answer), "")
        raise AssertionError(f"unexpected podman {args}")


def test_a_network_with_dns_passes():
    podman = RecordedPodman({"bcfw-unit_default": True})
    stack.check_name_resolution(podman)
    assert ("network", "inspect", "bcfw-unit_default") in podman.calls


def test_a_network_without_dns_is_refused_naming_the_plugin():
    podman = RecordedPodman({"bcfw-unit_default": False})
    with pytest.raises(stack.StackError) as refused:
        stack.check_name_resolution(podman)
    message = str(refused.value)
    assert "bcfw-unit_default has no DNS" in message
    assert "golang-github-containernetworking-plugin-dnsname" in message and "scripts/setup.sh" in message
