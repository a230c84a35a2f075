from __future__ import annotations

import os
import uuid

import pytest

from bcfwatch.broker import Broker

TEST_PORT = int(os.environ.get("BCFWATCH_TEST_KAFKA_PORT", "19092"))
# The whole session (and the workers it starts) pseudonymises with one test key.
os.environ["BCFWATCH_PSEUDONYM_KEY"] = "test-key-" + "k" * 32


@pytest.fixture(scope="session")
def broker() -> Broker:
    """A real single-node KRaft broker for the whole test session, on its own port and data dir."""
    kafka = Broker(port=TEST_PORT)
    kafka.stop()
    kafka.start(fresh=True)
    yield kafka
    kafka.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic prefix so tests sharing the broker never see each other's events."""
    return f"t{uuid.uuid4().hex[:10]}"

