"""Property-based: any mix of valid, malformed, duplicated, late and far-off-date lines.

For logs hypothesis makes up, the batch path (``producers/eventlog/reader`` + ``streams/oracle``, what
``bcfwatch backtest`` runs) and the streaming rules (``streams/board_state.apply_event`` one event at a
time, what the worker runs, after the same line contract ``bcfwatch replay`` applies) give exactly the
same per-board daily counts, and every line is accounted for exactly once: counted, a duplicate, late,
held far ahead of its board's clock, or rejected with a reason.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcfwatch.core.boards import load_boards
from bcfwatch.core.events import InvalidEvent
from producers.eventlog.logformat import read_log, row_to_event
from producers.eventlog.reader import read_events
from producers.pseudonym import Pseudonymiser
from streams.board_state import Outcome, apply_event, forget_settled_reablement
from streams.daily_table import from_state
from streams.oracle import daily_counts, event_time_decisions
from streams.partition_state import empty_tables

LATENESS = 14 * 86_400
MAX_AHEAD = 31 * 86_400
START = datetime(2015, 6, 1, tzinfo=UTC)
BOARDS = ("E09000012", "E08000025", "E06000053")  # Scilly counts under Cornwall's joint plan


def nhs_number(seed: int) -> str:
    """A valid NHS number (Modulus 11) made from a seed."""
    while True:
        digits = [int(c) for c in f"{(seed * 7919) % 10**9:09d}"]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return "".join(map(str, digits)) + str(check)
        seed += 1


@st.composite
def event_lines(draw) -> list[str]:
    """A log: mostly ordinary events a few hours apart, with late arrivals, typos, repeats and junk."""
    lines: list[str] = []
    clock = START
    for n in range(draw(st.integers(1, 60))):
        clock += timedelta(hours=draw(st.integers(0, 30)))
        kind = draw(st.sampled_from(["ordinary"] * 6 + ["late", "far_future", "far_past", "gap", "repeat",
                                                        "junk", "before_earliest"]))
        if kind == "repeat" and lines:
            lines.append(draw(st.sampled_from(lines)))
            continue
        if kind == "junk":
            lines.append(draw(st.sampled_from(["{}", "not json", '{"type": "admission"}', "[1, 2]",
                                               '{"type": "admission", "age": "x"}'])))
            continue
        at = {"ordinary": clock, "repeat": clock, "late": clock - timedelta(days=draw(st.integers(1, 40))),
              "far_future": clock + timedelta(days=3653),
              "far_past": clock - timedelta(days=draw(st.integers(40, 300))),
              "gap": clock + timedelta(days=draw(st.integers(32, 120))),
              "before_earliest": clock - timedelta(days=1100)}[kind]
        if kind == "gap":
            clock = at
        event_type = draw(st.sampled_from(["admission", "admission", "discharge", "care_home_placement"]))
        row = {"type": event_type, "event_id": f"e{n}", "board": draw(st.sampled_from(BOARDS)),
               "occurred_at": at.isoformat(), "nhs_number": nhs_number(draw(st.integers(1, 6))),
               "age": draw(st.sampled_from([40, 70, 90]))}
        if event_type == "admission":
            row |= {"admission_method": draw(st.sampled_from(["21", "2A", "11", "31"])), "provider": "RQX"}
        elif event_type == "discharge":
            delayed = draw(st.sampled_from([0, 0, 3]))
            row |= {"discharge_destination": "19", "delayed_days": delayed,
                    "delay_attributable_to": "nhs" if delayed else None,
                    "into_reablement": draw(st.booleans())}
        else:
            row |= {"setting": "nursing", "permanent": draw(st.booleans())}
        lines.append(json.dumps(row))
    return lines


def streamed(path: Path, bound_every: int | None = None) -> tuple[pd.DataFrame, Counter]:
    """The worker's rules, one event at a time, after the replay's line contract; every ``bound_every`` lines
    the worker's state bounding (sealed event ids, forgotten reablement state), which must change no count."""
    tables, outcomes = empty_tables(), Counter()
    pseudonymiser, boards = Pseudonymiser(b"k" * 32), load_boards()
    held_at_end = 0
    for number, line in enumerate(read_log(path)):
        if bound_every and number % bound_every == 0:
            tables.seen_events.seal()
            forget_settled_reablement(tables, LATENESS)
        if line.row is None:
            outcomes["rejected"] += 1
            continue
        try:
            event = row_to_event(line.row, pseudonymiser, boards)
        except InvalidEvent:
            outcomes["rejected"] += 1
            continue
        *released, itself = apply_event(tables, event, LATENESS, MAX_AHEAD)  # the event comes last
        for applied in released:  # held events it released: each was tallied 'held' before
            outcomes[applied.outcome.value] += 1
            outcomes[Outcome.HELD.value] -= 1
        outcomes[itself.outcome.value] += 1
    held_at_end = sum(len(entries) for entries in tables.held_events.values())
    assert held_at_end == outcomes[Outcome.HELD.value]
    return from_state(dict(tables.day_counts)), outcomes


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=event_lines(), bound_every=st.sampled_from([None, 1, 3, 10]))
def test_batch_equals_streaming_and_every_line_is_accounted_for(tmp_path_factory, lines, bound_every):
    path = tmp_path_factory.mktemp("log") / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")

    live, outcomes = streamed(path, bound_every)
    events = read_events(path, processes=1)
    decisions = event_time_decisions(events, LATENESS, MAX_AHEAD)
    batch = daily_counts(events, LATENESS, decisions=decisions)
    pd.testing.assert_frame_equal(batch.reset_index(drop=True), live.reset_index(drop=True), check_dtype=False)

    # every line once: counted + duplicate + late + held + rejected == lines
    assert sum(outcomes.values()) == len(lines)
    assert outcomes["rejected"] == len(lines) - len(events)
    assert outcomes["late"] == len(decisions.late)
    assert outcomes["held"] == len(decisions.held)
    assert outcomes["counted"] == len(decisions.counted)
    assert int(batch["late_events"].sum()) == outcomes["late"]


def test_a_mistyped_year_changes_no_other_count(tmp_path):
    """Issue 11, case 1: 30 days for 10 boards plus one Birmingham admission typed 2025 near the top."""
    boards = [*load_boards().codes[:9], "E08000025"]
    rows = []
    for day in range(30):
        for b, board in enumerate(boards):
            for k in range(3):
                at = START + timedelta(days=day, hours=8 + k * 3 + b % 3)
                rows.append({"type": "admission", "event_id": f"{board}-{day}-{k}", "board": board,
                             "occurred_at": at.isoformat(), "nhs_number": nhs_number(day * 100 + b * 10 + k),
                             "age": 70, "admission_method": "21", "provider": "RQX"})
    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(json.dumps(r) + "\n" for r in rows))
    typo = {**rows[40], "event_id": "typo", "occurred_at": (START + timedelta(days=1)).replace(year=2025).isoformat()}
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text("".join(json.dumps(r) + "\n" for r in [*rows[:5], typo, *rows[5:]]))

    expected = daily_counts(read_events(clean), LATENESS)
    for counts in (daily_counts(read_events(dirty), LATENESS), streamed(dirty)[0]):
        pd.testing.assert_frame_equal(counts.reset_index(drop=True), expected.reset_index(drop=True),
                                      check_dtype=False)
    birmingham = expected[expected["board"] == "E08000025"]
    assert (birmingham["emergency_admissions"] == 3).all() and len(birmingham) == 30
    held = event_time_decisions(read_events(dirty), LATENESS, MAX_AHEAD).held
    assert list(read_events(dirty).iloc[held]["event_id"]) == ["typo"]
