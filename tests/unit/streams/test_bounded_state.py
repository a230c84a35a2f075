"""The worker's bounded state: sealed event ids (streams/seen_events.py) stay duplicates, and forgotten
reablement state (``board_state.forget_settled_reablement``) changes no count."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import orjson
import pytest

from bcfwatch.core.events import parse_event
from streams.board_state import Outcome, apply_event, forget_settled_reablement
from streams.partition_state import PartitionState, empty_tables
from streams.seen_events import SeenEvents, check_segment, digest, parse_segment_key, segment_key
from tests.unit.streams.test_board_state import (
    BOARD,
    START,
    _settle,
    admission,
    count,
    discharge,
    placement,
    warmed_tables,
)

LATENESS = 14 * 86_400


def test_sealed_ids_stay_seen_and_others_do_not():
    seen = SeenEvents({f"admission|e{i}": 1 for i in range(1000)})
    segment = seen.seal()
    assert len(segment) == 1000 * 16 and not seen.recent and seen.sealed == 1000
    seen["admission|new"] = 2
    assert all(f"admission|e{i}" in seen for i in range(1000))
    assert "admission|new" in seen and len(seen) == 1001
    assert "admission|e1000" not in seen and "discharge|e1" not in seen and 5 not in seen


def test_segments_rebuild_the_same_set_in_any_number_of_runs():
    seen = SeenEvents()
    segments = []
    for run in range(3):
        for i in range(run * 50, run * 50 + 50):
            seen[f"admission|e{i}"] = 0
        segments.append(seen.seal())
    seen["admission|recent"] = 0
    rebuilt = SeenEvents({"admission|recent": 0}, segments)
    assert rebuilt == seen
    assert SeenEvents({"admission|recent": 0}, segments[:2]) != seen


def test_a_shared_high_half_still_tells_ids_apart():
    seen = SeenEvents({"admission|a": 0})
    seen.seal()
    _high, low = digest("admission|a")
    seen._high = seen._high.repeat(2)  # a second id with the same high 64 bits, a different low half
    seen._low = np.array([low ^ 1, low], dtype=np.uint64)
    assert "admission|a" in seen
    seen._low = np.array([low ^ 1, low ^ 2], dtype=np.uint64)
    assert "admission|a" not in seen


def test_an_event_sealed_away_is_still_a_duplicate_not_late():
    tables = warmed_tables()
    first = admission("old", START)
    assert [a.outcome for a in apply_event(tables, first, LATENESS)] == [Outcome.COUNTED]
    tables.seen_events.seal()
    assert not tables.seen_events.recent
    apply_event(tables, admission("later", START + timedelta(days=20)), LATENESS)
    assert [a.outcome for a in apply_event(tables, first, LATENESS)] == [Outcome.DUPLICATE]


def test_snapshot_counts_its_segments_and_needs_them_back():
    state = PartitionState(2, empty_tables())
    for i in range(10):
        state.tables.seen_events[f"admission|e{i}"] = 0
    state.bound_state(LATENESS, seal_after=5)
    assert len(state.unsent_segments) == 1
    state.tables.seen_events["admission|after"] = 0
    snapshot = state.to_snapshot()
    assert orjson.loads(snapshot)["seen_segments"] == 1
    assert orjson.loads(snapshot)["seen_events"] == {"admission|after": 0}
    restored = PartitionState.from_snapshot(2, snapshot, state.unsent_segments)
    assert restored.tables.seen_events == state.tables.seen_events and restored.seen_segments == 1
    with pytest.raises(ValueError, match="counts 1 seen-event segments, 0 given"):
        PartitionState.from_snapshot(2, snapshot, [])


def test_segment_keys_and_values():
    assert parse_segment_key(segment_key(3, 17)) == (3, 17)
    assert parse_segment_key(b"3") is None and parse_segment_key(None) is None
    assert check_segment(b"x" * 32) == b"x" * 32
    with pytest.raises(ValueError):
        check_segment(b"x" * 17)


@pytest.fixture(scope="module")
def two_years(tmp_path_factory):
    from datetime import date

    from producers.generate import GeneratorSpec, generate_frame, write_log

    spec = GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=0.003, seed=21, late_share=0.05,
                         duplicate_share=0.02)
    log = tmp_path_factory.mktemp("bounded") / "events.jsonl"
    write_log(generate_frame(spec), log)
    return log


def test_bounding_the_state_changes_no_count_on_a_generated_log(two_years):
    from tests.unit.streams.test_event_time_properties import streamed

    unbounded, unbounded_outcomes = streamed(two_years)
    bounded, bounded_outcomes = streamed(two_years, bound_every=2_000)
    pd_testing = pytest.importorskip("pandas").testing
    pd_testing.assert_frame_equal(bounded.reset_index(drop=True), unbounded.reset_index(drop=True))
    assert bounded_outcomes == unbounded_outcomes
    assert unbounded["at_home_91d"].sum() > 50 and bounded_outcomes["duplicate"] > 100


def test_forgetting_keeps_only_the_reablement_horizon(two_years):
    """Two years of events leave a few months of patients, not every 65+ patient ever admitted."""
    from bcfwatch.core.boards import load_boards
    from producers.eventlog.logformat import read_log, row_to_event
    from producers.pseudonym import Pseudonymiser
    from streams.board_state import forget_settled_reablement

    tables, pseudonymiser, boards = empty_tables(), Pseudonymiser(b"k" * 32), load_boards()
    for line in read_log(two_years):
        if line.row is not None:
            try:
                apply_event(tables, row_to_event(line.row, pseudonymiser, boards), LATENESS)
            except Exception:  # malformed lines: the contract's business, not this test's
                continue
    before = len(tables.reablement_patients)
    forgotten = forget_settled_reablement(tables, LATENESS)
    assert forgotten > 0.7 * before
    assert forget_settled_reablement(tables, LATENESS) == 0  # nothing more to forget at the same clocks


def _advance(tables, event_type: str, to) -> None:
    """Move a stream's clock to ``to`` in 20-day steps, with events of another patient aged 40."""
    at = START
    while at < to:
        at = min(at + timedelta(days=20), to)
        fields = {"type": event_type, "event_id": f"clock-{event_type}-{at.isoformat()}", "board": BOARD,
                  "occurred_at": at.isoformat(), "patient": "f" * 64, "age": 40}
        fields |= ({"admission_method": "11", "provider": "R1"} if event_type == "admission"
                   else {"setting": "nursing", "permanent": False})
        apply_event(tables, parse_event(fields), LATENESS)


def test_an_at_home_outcome_a_lagging_topic_can_still_flip_is_kept():
    tables = warmed_tables()
    apply_event(tables, discharge("r1", START, reablement=True), LATENESS)
    _settle(tables, START)
    assert count(tables, "at_home_91d", START) == 1
    for event_type in ("admission", "care_home_placement"):
        _advance(tables, event_type, START + timedelta(days=100))  # on-time events from day 86 on
    forget_settled_reablement(tables, LATENESS)
    apply_event(tables, placement("c1", START + timedelta(days=88)), LATENESS)  # inside (day, day + 91]
    assert count(tables, "at_home_91d", START) == 0


def test_an_at_home_outcome_past_every_horizon_is_forgotten():
    tables = warmed_tables()
    apply_event(tables, discharge("r1", START, reablement=True), LATENESS)
    _settle(tables, START)
    for event_type in ("admission", "care_home_placement"):
        _advance(tables, event_type, START + timedelta(days=107))  # on-time events from day 93 on
    forget_settled_reablement(tables, LATENESS)
    assert not [key for key in tables.reablement_patients if key.endswith("b" * 64)]
    assert count(tables, "at_home_91d", START) == 1


def test_an_adverse_day_a_future_discharge_can_reach_is_kept():
    tables = warmed_tables()
    apply_event(tables, admission("a1", START + timedelta(days=10)), LATENESS)
    forget_settled_reablement(tables, LATENESS)
    apply_event(tables, discharge("r1", START, reablement=True), LATENESS)
    _settle(tables, START)
    assert count(tables, "at_home_91d", START) == 0
