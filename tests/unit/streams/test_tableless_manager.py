"""The worker's table manager: it subscribes without Faust's one-second wait for tables declared late, since a
worker declares none; with a table declared it starts as Faust's does, wait included. (Its channel update needs a
started consumer, so it is recorded here; the broker tests start every worker with this manager, and a worker
whose tables were never marked registered would never subscribe and fail them all.)"""

from __future__ import annotations

import asyncio
from typing import Any

from streams.app import TablelessManager, counting_app
from streams.config import WorkerConfig


class Steps:
    """What the manager's start did, in order (its sleeps, its channel update, the recovery's start)."""

    def __init__(self, manager: TablelessManager) -> None:
        self.taken: list[Any] = []
        manager.sleep = self.sleep  # type: ignore[method-assign]
        manager._update_channels = self.update_channels  # type: ignore[method-assign]
        manager._recovery = self  # type: ignore[assignment]

    async def sleep(self, seconds: float) -> None:
        self.taken.append(("sleep", seconds))

    async def update_channels(self) -> None:
        self.taken.append("update channels")

    async def start(self) -> None:
        self.taken.append("start recovery")


def manager_of(prefix: str) -> TablelessManager:
    app = counting_app(WorkerConfig(bootstrap="127.0.0.1:9", topic_prefix=prefix, partitions=1))
    manager = app.tables
    assert isinstance(manager, TablelessManager)
    return manager


def test_a_worker_with_no_table_starts_recovery_without_waiting():
    manager = manager_of("tableless")
    steps = Steps(manager)
    asyncio.run(manager.on_start())
    assert steps.taken == ["update channels", "start recovery"]


def test_with_a_table_declared_the_start_is_fausts_own_wait_included():
    manager = manager_of("with-table")
    manager.app.Table("declared", default=int)
    steps = Steps(manager)
    asyncio.run(manager.on_start())
    assert steps.taken == [("sleep", 1.0), "update channels", "start recovery"]
