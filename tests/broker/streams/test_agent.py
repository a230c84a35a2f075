"""The agent itself under Faust's test_context(): decoding, lateness and day-91 rules, dead letters.

The partition state service behind it talks to the real test broker (its
snapshot producer also carries the dead-letter and late-event side outputs).
"""

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from bcfwatch.core.calendar import epoch_day
from bcfwatch.core.events import parse_event
from streams.app import WorkerConfig, create_app, ensure_worker_topics
from streams.board_state import day_key
from streams.published import COUNTER_INDEX
from tests.support import free_port, read_topic, wait_for

pytestmark = pytest.mark.kafka
BOARD = "E08000025"
PATIENT = "c" * 64
START = datetime(2015, 6, 1, 12, tzinfo=UTC)


def wire(event_type: str, event_id: str, at: datetime, **fields) -> bytes:
    base = {"type": event_type, "event_id": event_id, "board": BOARD, "occurred_at": at.isoformat(),
            "patient": PATIENT, "age": 80}
    if event_type == "admission":
        base.update(admission_method="21", provider="R1")
    if event_type == "discharge":
        base.update(discharge_destination="19", into_reablement=False)
    base.update(fields)
    return parse_event(base).to_wire() if "raw" not in fields else fields["raw"]


def run_agent(broker, topic_prefix, tmp_path, messages: list[bytes]):
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topic_prefix, partitions=1,
                          datadir=tmp_path, web_port=free_port())
    ensure_worker_topics(config)
    app = create_app(config)
    app.finalize()
    states = app.partition_states

    async def scenario():
        await states.start()
        try:
            async with app.agents["count_events"].test_context() as agent:
                for message in messages:
                    await agent.put(message)
            return {p: s.tables for p, s in states.owned.items()}
        finally:
            await states.stop()

    return config, next(iter(asyncio.run(scenario()).values()))


def day_count(tables, name: str, at: datetime) -> int:
    row = tables.day_counts.get(day_key(BOARD, epoch_day(at.timestamp())))
    return row[COUNTER_INDEX[name]] if row else 0


def test_agent_applies_lateness_boundary(broker, topic_prefix, tmp_path):
    on_bound = START - timedelta(days=14)
    past_bound = START - timedelta(days=14, seconds=1)
    config, tables = run_agent(broker, topic_prefix, tmp_path, [
        wire("admission", "a1", START),
        wire("admission", "a2", on_bound),
        wire("admission", "a3", past_bound),
        wire("admission", "a1", START),  # duplicate
    ])
    assert day_count(tables, "emergency_admissions", START) == 1
    # on_bound (12:00:00) and past_bound (11:59:59) fall on the same day: one counted, one late.
    assert day_count(tables, "emergency_admissions", on_bound) == 1
    assert day_count(tables, "late_events", past_bound) == 1
    late = wait_for(lambda: read_topic(broker.bootstrap, config.topics.late_events), 30, "the late event")
    assert [orjson.loads(r.value)["event_id"] for r in late] == ["a3"]


def test_agent_settles_reablement_on_day_91_boundary(broker, topic_prefix, tmp_path):
    other = "d" * 64
    settle = START.replace(hour=0) + timedelta(days=92 + 14)
    _, tables = run_agent(broker, topic_prefix, tmp_path, [
        wire("discharge", "r1", START, into_reablement=True),
        wire("discharge", "r2", START, into_reablement=True, patient=other),
        wire("admission", "a1", START + timedelta(days=91)),  # PATIENT readmitted on day 91: not at home
        wire("admission", "a2", START + timedelta(days=92), patient=other),  # day 92: still counts as home
        wire("discharge", "clock", settle, patient="e" * 64),
        # 106 days past the discharge clock, a lone event is held (a mistyped date?) until a second corroborates it
        wire("discharge", "clock2", settle, patient="e" * 64),
    ])
    assert day_count(tables, "reablement_discharges_65", START) == 2
    assert day_count(tables, "at_home_91d", START) == 1


def test_agent_dead_letters_bad_messages_and_keeps_going(broker, topic_prefix, tmp_path):
    config, tables = run_agent(broker, topic_prefix, tmp_path, [
        b"not json at all 9434765919",
        orjson.dumps({"type": "admission", "board": BOARD}),
        wire("admission", "a1", START),
        wire("admission", "a2", START),  # a stream's first event waits for a second to corroborate it
    ])
    assert day_count(tables, "emergency_admissions", START) == 2
    dead = wait_for(lambda: read_topic(broker.bootstrap, config.topics.dead_letter), 30, "two dead letters")
    reasons = [orjson.loads(r.value)["reason"] for r in dead]
    assert len(reasons) == 2 and "not valid JSON" in reasons[0] and "missing field" in reasons[1]
    assert all(b"9434765919" not in r.value for r in dead)
