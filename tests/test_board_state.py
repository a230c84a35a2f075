"""The event-time rules, table-driven, on plain dicts (no Kafka)."""

from datetime import UTC, date, datetime, timedelta

import pytest

from streams.board_state import COUNTER_INDEX, Outcome, apply_event, day_key, epoch_day
from streams.partition_state import PartitionState, empty_tables
from streams.records import parse_event
from streams.views import financial_quarter_start, financial_year_start, windows

BOARD = "E09000012"
PATIENT = "b" * 64
LATENESS = 14 * 86_400
START = datetime(2015, 6, 1, 12, tzinfo=UTC)


def admission(event_id: str, at: datetime, method: str = "21", age: int = 80, patient: str = PATIENT):
    return parse_event({"type": "admission", "event_id": event_id, "board": BOARD, "occurred_at": at.isoformat(),
                        "patient": patient, "age": age, "admission_method": method, "provider": "R1"})


def discharge(event_id: str, at: datetime, reablement: bool = False, age: int = 80, delayed: int = 0,
              attribution: str | None = None):
    return parse_event({"type": "discharge", "event_id": event_id, "board": BOARD, "occurred_at": at.isoformat(),
                        "patient": PATIENT, "age": age, "discharge_destination": "19", "delayed_days": delayed,
                        "delay_attributable_to": attribution, "into_reablement": reablement})


def placement(event_id: str, at: datetime, permanent: bool = True, age: int = 80):
    return parse_event({"type": "care_home_placement", "event_id": event_id, "board": BOARD,
                        "occurred_at": at.isoformat(), "patient": PATIENT, "age": age, "setting": "nursing",
                        "permanent": permanent})


def count(tables, name: str, at: datetime) -> int:
    row = tables.day_counts.get(day_key(BOARD, epoch_day(at.timestamp())))
    return row[COUNTER_INDEX[name]] if row else 0


@pytest.mark.parametrize(
    ("behind", "outcome"),
    [
        (timedelta(days=14), Outcome.COUNTED),  # exactly at the lateness bound: still on time
        (timedelta(days=14, seconds=1), Outcome.LATE),  # one second past it: late
        (timedelta(days=13, hours=23), Outcome.COUNTED),
        (timedelta(days=40), Outcome.LATE),
    ],
)
def test_lateness_boundary(behind, outcome):
    tables = empty_tables()
    assert apply_event(tables, admission("a1", START), LATENESS) is Outcome.COUNTED
    late_at = START - behind
    assert apply_event(tables, admission("a2", late_at), LATENESS) is outcome
    assert count(tables, "emergency_admissions", late_at) == (outcome is Outcome.COUNTED)
    assert count(tables, "late_events", late_at) == (outcome is Outcome.LATE)


def test_stream_time_is_per_type():
    tables = empty_tables()
    apply_event(tables, admission("a1", START), LATENESS)
    # A discharge a month older than the admission clock is on time: discharges have their own clock.
    assert apply_event(tables, discharge("d1", START - timedelta(days=30)), LATENESS) is Outcome.COUNTED


def test_duplicates_count_once_and_groups_are_separate():
    tables = empty_tables()
    assert apply_event(tables, admission("a1", START), LATENESS) is Outcome.COUNTED
    assert apply_event(tables, admission("a1", START), LATENESS) is Outcome.DUPLICATE
    apply_event(tables, admission("m1", START, method="31"), LATENESS)
    apply_event(tables, admission("e1", START, method="11"), LATENESS)
    assert count(tables, "emergency_admissions", START) == 1
    assert count(tables, "other_admissions", START) == 1  # maternity yes, elective no


def test_delayed_days_by_attribution_and_care_homes_65_plus():
    tables = empty_tables()
    apply_event(tables, discharge("d1", START, delayed=4, attribution="social_care"), LATENESS)
    apply_event(tables, discharge("d2", START, delayed=2, attribution="both"), LATENESS)
    apply_event(tables, placement("c1", START), LATENESS)
    apply_event(tables, placement("c2", START, age=64), LATENESS)
    apply_event(tables, placement("c3", START, permanent=False), LATENESS)
    assert count(tables, "delayed_days_social_care", START) == 4
    assert count(tables, "delayed_days_both", START) == 2
    assert count(tables, "care_home_admissions_65", START) == 1


def _settle(tables, discharged: datetime) -> None:
    """Advance the discharge clock far enough to settle day 91 of ``discharged``."""
    settle_at = discharged + timedelta(days=92 + 14)
    apply_event(tables, discharge("clock", settle_at.replace(hour=0, minute=0, second=0)), LATENESS)


@pytest.mark.parametrize(
    ("adverse_after_days", "at_home"),
    [
        (None, 1),
        (0, 1),  # the same day as the discharge is not 'after'
        (1, 0),
        (91, 0),  # day 91 is inside the window
        (92, 1),  # day 92 is outside it
    ],
)
def test_reablement_day_91_boundary(adverse_after_days, at_home):
    tables = empty_tables()
    apply_event(tables, discharge("r1", START, reablement=True), LATENESS)
    if adverse_after_days is not None:
        apply_event(tables, admission("a1", START + timedelta(days=adverse_after_days)), LATENESS)
    _settle(tables, START)
    assert count(tables, "reablement_discharges_65", START) == 1
    assert count(tables, "at_home_91d", START) == at_home


def test_settlement_waits_for_day_92_plus_lateness():
    tables = empty_tables()
    apply_event(tables, discharge("r1", START, reablement=True), LATENESS)
    day = START.replace(hour=0, minute=0, second=0)
    apply_event(tables, discharge("c1", day + timedelta(days=92 + 14) - timedelta(seconds=1)), LATENESS)
    assert count(tables, "at_home_91d", START) == 0  # not settled yet
    apply_event(tables, discharge("c2", day + timedelta(days=92 + 14)), LATENESS)
    assert count(tables, "at_home_91d", START) == 1


def test_adverse_event_arriving_after_settlement_corrects_it():
    tables = empty_tables()
    apply_event(tables, discharge("r1", START, reablement=True), LATENESS)
    _settle(tables, START)
    assert count(tables, "at_home_91d", START) == 1
    # The care-home topic lags: a placement on day 30 arrives now, on time for its own clock.
    apply_event(tables, placement("c1", START + timedelta(days=30)), LATENESS)
    assert count(tables, "at_home_91d", START) == 0


def test_adverse_event_before_the_discharge_arrives_is_remembered():
    tables = empty_tables()
    apply_event(tables, admission("a1", START + timedelta(days=10)), LATENESS)
    apply_event(tables, discharge("r1", START, reablement=True), LATENESS)
    _settle(tables, START)
    assert count(tables, "at_home_91d", START) == 0


def test_under_65_or_not_reablement_is_not_followed():
    tables = empty_tables()
    apply_event(tables, discharge("r1", START, reablement=True, age=64), LATENESS)
    apply_event(tables, discharge("r2", START, reablement=False), LATENESS)
    _settle(tables, START)
    assert count(tables, "reablement_discharges_65", START) == 0
    assert count(tables, "at_home_91d", START) == 0


def test_snapshot_round_trip_keeps_state_and_offsets():
    state = PartitionState(3)
    apply_event(state.tables, discharge("r1", START, reablement=True), LATENESS)
    state.applied_event("t.discharge", 41, object())
    restored = PartitionState.from_snapshot(3, state.to_snapshot())
    assert restored.tables == state.tables and restored.applied == {"t.discharge": 41}
    assert restored.already_applied("t.discharge", 41) and not restored.already_applied("t.discharge", 42)


@pytest.mark.parametrize(
    ("day", "quarter", "year"),
    [
        (date(2015, 4, 1), date(2015, 4, 1), date(2015, 4, 1)),
        (date(2015, 6, 30), date(2015, 4, 1), date(2015, 4, 1)),
        (date(2015, 7, 1), date(2015, 7, 1), date(2015, 4, 1)),
        (date(2015, 12, 31), date(2015, 10, 1), date(2015, 4, 1)),
        (date(2016, 1, 15), date(2016, 1, 1), date(2015, 4, 1)),
        (date(2016, 3, 31), date(2016, 1, 1), date(2015, 4, 1)),
    ],
)
def test_financial_quarters_and_years(day, quarter, year):
    assert financial_quarter_start(day) == quarter
    assert financial_year_start(day) == year
    assert windows(day)["rolling_28_days"] == (day - timedelta(days=27), day)
