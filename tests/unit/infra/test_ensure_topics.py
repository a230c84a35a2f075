"""ensure_topics when the broker it asks has stale metadata: a topic it did not list turns out to exist."""

from __future__ import annotations

import logging

from kafka.errors import TopicAlreadyExistsError

from bcfwatch.infra import kafka as kafka_infra


class StaleAdmin:
    """An admin whose first topic listing misses a topic that exists with one copy (a broker that has not heard
    of it yet); the create then finds it, and later listings see it."""

    def __init__(self) -> None:
        self.listings = 0
        self.created: list[str] = []

    def describe_cluster(self) -> dict:
        return {"brokers": [{"node_id": n} for n in (1, 2, 3)]}

    def list_topics(self) -> list[str]:
        self.listings += 1
        return [] if self.listings == 1 else ["thin.admission", *self.created]

    def create_topics(self, topics: list) -> None:
        self.created += [t.name for t in topics if t.name != "thin.admission"]
        raise TopicAlreadyExistsError("thin.admission")

    def describe_topics(self, names: list[str]) -> list[dict]:
        copies = {"thin.admission": 1}
        return [{"name": name, "error_code": 0,
                 "partitions": [{"replica_nodes": list(range(copies.get(name, 3)))}]} for name in names]

    def close(self) -> None:
        pass


def test_a_topic_that_existed_unseen_is_still_reported_under_replicated(monkeypatch, caplog):
    admin = StaleAdmin()
    monkeypatch.setattr(kafka_infra, "require_broker", lambda bootstrap: None)
    monkeypatch.setattr(kafka_infra, "admin_client", lambda bootstrap, security=None: admin)
    with caplog.at_level(logging.ERROR, logger="bcfwatch.infra.kafka"):
        kafka_infra.ensure_topics("localhost:1", ["thin.admission", "thin.discharge"], 1)
    messages = [record.getMessage() for record in caplog.records]
    assert any("thin.admission keeps 1 copy of each partition, fewer than the 3 configured" in m for m in messages)
    assert not any("thin.discharge" in m for m in messages)
    assert admin.created == ["thin.discharge"]


