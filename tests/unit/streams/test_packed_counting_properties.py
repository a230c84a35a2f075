"""Property-based: the worker's packed path (each record's elements validated at once into
:class:`bcfwatch.core.events.EventFacts`, their ids looked up in the sealed tier at once) counts exactly as the
board rules applied one event at a time (``streams.board_state.apply_event`` on Faust records).

Hypothesis makes up the events (ordinary, late, far ahead of the clock, duplicated, malformed; two boards, every
delay attribution, with and without ``key_id``), cuts them into single-event and packed records in any way, on one
partition, and seals the seen ids between any two records. (The rules themselves are held to the pandas oracle by
``test_event_time_properties``; this holds the worker's batch path to the rules.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcfwatch.core.events import Event, InvalidEvent, parse_event
from streams.seen_events import SeenEvents
from tests.unit.streams.test_event_counter import START, TOPICS, Worker, fields, one_by_one

MALFORMED = [{"type": "admission"}, {"type": "nothing"}, [1, 2], "text",
             {"type": "admission", "event_id": "x", "board": "E08000025", "occurred_at": "yesterday"}]


@st.composite
def elements(draw: st.DrawFn) -> list[Any]:
    """Decoded events in arrival order: mostly ordinary ones a few hours apart, with late ones, far-off dates,
    repeats and junk."""
    made: list[Any] = []
    clock = START
    for n in range(draw(st.integers(1, 50))):
        clock += timedelta(hours=draw(st.integers(0, 30)))
        kind = draw(st.sampled_from(["ordinary"] * 6 + ["late", "far_ahead", "gap", "repeat", "junk"]))
        if kind == "repeat" and made:
            made.append(draw(st.sampled_from(made)))
            continue
        if kind == "junk":
            made.append(draw(st.sampled_from(MALFORMED)))
            continue
        at = {"ordinary": clock, "repeat": clock, "late": clock - timedelta(days=draw(st.integers(1, 40))),
              "far_ahead": clock + timedelta(days=draw(st.integers(32, 300))),
              "gap": clock + timedelta(days=draw(st.integers(32, 120)))}[kind]
        clock = at if kind == "gap" else clock
        event_type = draw(st.sampled_from(["admission", "admission", "discharge", "care_home_placement"]))
        more: dict[str, Any] = {"age": draw(st.sampled_from([40, 70, 90])),
                                "patient": draw(st.sampled_from(["a", "b", "c"])) * 64,
                                "board": draw(st.sampled_from(["E08000025", "E09000012"]))}
        if draw(st.booleans()):
            more["key_id"] = "k1"
        if event_type == "admission":
            more["admission_method"] = draw(st.sampled_from(["21", "2A", "11", "31"]))
        elif event_type == "discharge":
            delayed = draw(st.sampled_from([0, 0, 3]))
            attribution = draw(st.sampled_from(["nhs", "social_care", "both"]))
            more |= {"delayed_days": delayed, "delay_attributable_to": attribution if delayed else None,
                     "into_reablement": draw(st.booleans())}
        else:
            more |= {"setting": "nursing", "permanent": draw(st.booleans())}
        made.append(fields(event_type, f"e{n}", at, **more))
    return made


def valid_events(made: list[Any]) -> tuple[list[Event], int]:
    """The records the contract makes of the elements, in order, and how many it refuses."""
    events, refused = [], 0
    for element in made:
        try:
            events.append(parse_event(element))
        except InvalidEvent:
            refused += 1
    return events, refused


@given(made=elements(), cuts=st.lists(st.tuples(st.integers(1, 12), st.booleans(), st.booleans()), min_size=1,
                                      max_size=60))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_packed_and_single_records_count_as_the_rules_one_event_at_a_time(made, cuts):
    worker = Worker()
    records, position, cut = [], 0, 0
    seal_after: list[int] = []
    while position < len(made):
        size, packed, seal = cuts[cut % len(cuts)]
        cut += 1
        if packed:
            records.append(worker.packed(*made[position:position + size],
                                         topic=TOPICS.event(_type_of(made[position]))))
            position += size
        else:
            element = made[position]
            records.append(worker.record(TOPICS.event(_type_of(element)), _wire(element)))
            position += 1
        if seal:
            seal_after.append(len(records) - 1)

    async def scenario() -> None:
        for number, record in enumerate(records):
            await worker.counter.count_until_applied(record)
            if number in seal_after:
                seen = worker.states.owned[0].tables.seen_events
                assert isinstance(seen, SeenEvents)
                seen.seal()

    asyncio.run(scenario())
    state = worker.states.owned[0]

    events, refused = valid_events(made)
    expected, outcomes = one_by_one(events)
    assert dict(state.tables.day_counts) == dict(expected.day_counts)
    assert dict(state.tables.stream_times) == dict(expected.stream_times)
    assert dict(state.tables.held_events) == dict(expected.held_events)
    assert dict(state.tables.reablement_patients) == dict(expected.reablement_patients)
    assert dict(state.tables.reablement_due) == dict(expected.reablement_due)
    assert Counter(worker.metrics.outcomes) == outcomes
    assert sum(worker.metrics.dead_letters.values()) == refused
    late_and_held = Counter(outcome for (_, outcome), n in outcomes.items() for _ in range(n)
                            if outcome in ("late", "held"))
    assert len(worker.outbox.on(TOPICS.late_events)) == late_and_held["late"]
    assert len(worker.outbox.on(TOPICS.held_events)) == late_and_held["held"]


def _type_of(element: Any) -> str:
    """The event type whose topic an element goes to (junk to the admissions topic)."""
    kind = element.get("type") if isinstance(element, dict) else None
    return kind if kind in ("admission", "discharge", "care_home_placement") else "admission"


def _wire(element: Any) -> bytes:
    return orjson.dumps(element)
