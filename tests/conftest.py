from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from bcfwatch.infra.broker import Broker
from producers.generate import GeneratorSpec, generate_frame, write_log
from tests.support import free_port

# The whole session (and the workers it starts) pseudonymises with one random test key (32 bytes, hex):
# placeholder and low-entropy keys are refused (producers/pseudonym.check_key).
os.environ["BCFWATCH_PSEUDONYM_KEY"] = secrets.token_hex(32)


@pytest.fixture(scope="session")
def broker() -> Broker:
    """A real single-node KRaft broker for the whole test session, on its own port and data dir."""
    # A port of its own (and so a data dir of its own), so two test runs on one machine never share a broker.
    port = int(os.environ.get("BCFWATCH_TEST_KAFKA_PORT", "0")) or free_port()
    kafka = Broker(port=port, controller_port=free_port())
    kafka.stop()
    kafka.start(fresh=True)
    yield kafka
    kafka.stop()
    shutil.rmtree(kafka.home, ignore_errors=True)


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic prefix so tests sharing the broker never see each other's events."""
    return f"t{uuid.uuid4().hex[:10]}"



@pytest.fixture(scope="session")
def generated_log(tmp_path_factory) -> Callable[..., Path]:
    """The one factory of generated event logs: ``generated_log(spec, name)`` writes the log of ``spec`` once
    per session (a spec asked for again gets the same file) in a temporary folder named ``name``."""
    made: dict[str, Path] = {}

    def make(spec: GeneratorSpec, name: str = "log") -> Path:
        if repr(spec) not in made:
            log = tmp_path_factory.mktemp(name) / "events.jsonl"
            write_log(generate_frame(spec), log)
            made[repr(spec)] = log
        return made[repr(spec)]

    return make
