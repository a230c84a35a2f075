"""The event-time rules, table-driven, on plain dicts (no Kafka)."""

from datetime import UTC, date, datetime, timedelta

import pytest

from bcfwatch.core.calendar import epoch_day, financial_quarter_start, financial_year_start
from bcfwatch.core.events import parse_event
from streams.board_state import Applied, Outcome, apply_event, day_key
from streams.partition_state import PartitionState, empty_tables
from streams.published import COUNTER_INDEX
from streams.views import windows

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


def apply(tables, event) -> Outcome:
    """The outcome of ``event`` itself (held events it released come first in the list)."""
    return apply_event(tables, event, LATENESS)[-1].outcome


def corroborated(tables, event) -> None:
    """Apply ``event``; if it is held far ahead of its clock, a second event at the same time releases it."""
    if apply(tables, event) is Outcome.HELD:
        companion = {"type": event.type, "event_id": f"companion-{event.event_id}", "board": BOARD,
                     "occurred_at": event.occurred_at.isoformat(), "patient": "e" * 64, "age": 40,
                     "admission_method": "11", "provider": "R1", "discharge_destination": "19",
                     "delayed_days": 0, "into_reablement": False, "setting": "nursing", "permanent": False}
        apply(tables, parse_event(companion))


def warmed_tables():
    """Tables whose three clocks stand at START - 2 days (two events each: a stream's first event is held)."""
    tables = empty_tables()
    warm = START - timedelta(days=2)
    other = "c" * 64
    for n in (1, 2):
        apply(tables, admission(f"warm-a{n}", warm, method="11", patient=other))
        apply(tables, parse_event({"type": "discharge", "event_id": f"warm-d{n}", "board": BOARD,
                                   "occurred_at": warm.isoformat(), "patient": other, "age": 40,
                                   "discharge_destination": "19", "delayed_days": 0, "into_reablement": False}))
        apply(tables, parse_event({"type": "care_home_placement", "event_id": f"warm-c{n}", "board": BOARD,
                                   "occurred_at": warm.isoformat(), "patient": other, "age": 40,
                                   "setting": "nursing", "permanent": False}))
    return tables


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
    tables = warmed_tables()
    assert apply(tables, admission("a1", START)) is Outcome.COUNTED
    late_at = START - behind
    assert apply(tables, admission("a2", late_at)) is outcome
    assert count(tables, "emergency_admissions", late_at) == (outcome is Outcome.COUNTED)
    assert count(tables, "late_events", late_at) == (outcome is Outcome.LATE)


def test_stream_time_is_per_type():
    tables = empty_tables()
    apply(tables, admission("a0", START))
    apply(tables, admission("a1", START))
    # Discharges a month older than the admission clock are on time: discharges have their own clock.
    assert apply(tables, discharge("d0", START - timedelta(days=30))) is Outcome.HELD  # no discharge clock yet
    assert apply(tables, discharge("d1", START - timedelta(days=30))) is Outcome.COUNTED
    assert tables.stream_times[f"{BOARD}|discharge"] == (START - timedelta(days=30)).timestamp()


def test_duplicates_count_once_and_groups_are_separate():
    tables = warmed_tables()
    assert apply(tables, admission("a1", START)) is Outcome.COUNTED
    assert apply(tables, admission("a1", START)) is Outcome.DUPLICATE
    apply(tables, admission("m1", START, method="31"))
    apply(tables, admission("e1", START, method="11"))
    assert count(tables, "emergency_admissions", START) == 1
    assert count(tables, "other_admissions", START) == 1  # maternity yes, elective no


def test_delayed_days_by_attribution_and_care_homes_65_plus():
    tables = warmed_tables()
    apply(tables, discharge("d1", START, delayed=4, attribution="social_care"))
    apply(tables, discharge("d2", START, delayed=2, attribution="both"))
    apply(tables, placement("c1", START))
    apply(tables, placement("c2", START, age=64))
    apply(tables, placement("c3", START, permanent=False))
    assert count(tables, "delayed_days_social_care", START) == 4
    assert count(tables, "delayed_days_both", START) == 2
    assert count(tables, "care_home_admissions_65", START) == 1


def _advance_discharge_clock(tables, to: datetime) -> None:
    """Move the discharge clock to ``to`` in steps well inside max_ahead (events with another patient)."""
    clock = max(v for k, v in tables.stream_times.items() if k == f"{BOARD}|discharge")
    at = datetime.fromtimestamp(clock, UTC)
    while at < to:
        at = min(at + timedelta(days=20), to)
        apply(tables, parse_event({"type": "discharge", "event_id": f"clock-{at.isoformat()}", "board": BOARD,
                                   "occurred_at": at.isoformat(), "patient": "d" * 64, "age": 40,
                                   "discharge_destination": "19", "delayed_days": 0, "into_reablement": False}))


def _settle(tables, discharged: datetime) -> None:
    """Advance the discharge clock far enough to settle day 91 of ``discharged``."""
    settle_at = discharged + timedelta(days=92 + 14)
    _advance_discharge_clock(tables, settle_at.replace(hour=0, minute=0, second=0))


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
    tables = warmed_tables()
    apply(tables, discharge("r1", START, reablement=True))
    if adverse_after_days is not None:
        corroborated(tables, admission("a1", START + timedelta(days=adverse_after_days)))
    _settle(tables, START)
    assert count(tables, "reablement_discharges_65", START) == 1
    assert count(tables, "at_home_91d", START) == at_home


def test_settlement_waits_for_day_92_plus_lateness():
    tables = warmed_tables()
    apply(tables, discharge("r1", START, reablement=True))
    day = START.replace(hour=0, minute=0, second=0)
    _advance_discharge_clock(tables, day + timedelta(days=92 + 14) - timedelta(seconds=1))
    assert count(tables, "at_home_91d", START) == 0  # not settled yet
    apply(tables, discharge("c2", day + timedelta(days=92 + 14)))
    assert count(tables, "at_home_91d", START) == 1


def test_adverse_event_arriving_after_settlement_corrects_it():
    tables = warmed_tables()
    apply(tables, discharge("r1", START, reablement=True))
    _settle(tables, START)
    assert count(tables, "at_home_91d", START) == 1
    # The care-home topic lags: a placement on day 30 arrives now, on time for its own clock.
    corroborated(tables, placement("c1", START + timedelta(days=30)))
    assert count(tables, "at_home_91d", START) == 0


def test_adverse_event_before_the_discharge_arrives_is_remembered():
    tables = warmed_tables()
    apply(tables, admission("a1", START + timedelta(days=10)))
    apply(tables, discharge("r1", START, reablement=True))
    _settle(tables, START)
    assert count(tables, "at_home_91d", START) == 0


def test_under_65_or_not_reablement_is_not_followed():
    tables = warmed_tables()
    apply(tables, discharge("r1", START, reablement=True, age=64))
    apply(tables, discharge("r2", START, reablement=False))
    _settle(tables, START)
    assert count(tables, "reablement_discharges_65", START) == 0
    assert count(tables, "at_home_91d", START) == 0


def test_snapshot_round_trip_keeps_state_and_offsets():
    state = PartitionState(3, warmed_tables())
    apply(state.tables, discharge("r1", START, reablement=True))
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


# --- the corroborated clock: one mistyped date cannot move it ---------------------------------------------------

def test_a_far_future_date_is_held_and_changes_no_other_count():
    tables = warmed_tables()
    typo = admission("typo", START.replace(year=2025))
    assert apply(tables, typo) is Outcome.HELD
    for n in range(30):
        assert apply(tables, admission(f"a{n}", START + timedelta(days=n))) is Outcome.COUNTED
    assert sum(count(tables, "emergency_admissions", START + timedelta(days=n)) for n in range(30)) == 30
    assert count(tables, "emergency_admissions", typo.occurred_at) == 0
    assert tables.stream_times[f"{BOARD}|admission"] == (START + timedelta(days=29)).timestamp()
    assert [entry[0] for entry in tables.held_events[f"{BOARD}|admission"]] == [typo.occurred_at.timestamp()]


def test_a_far_future_first_event_does_not_become_the_clock():
    tables = empty_tables()
    assert apply(tables, admission("typo", START.replace(year=2025))) is Outcome.HELD
    assert apply(tables, admission("a0", START)) is Outcome.HELD  # no clock yet, and it does not corroborate
    assert apply(tables, admission("a1", START + timedelta(days=1))) is Outcome.COUNTED  # releases a0
    assert count(tables, "emergency_admissions", START) == 1
    assert len(tables.held_events[f"{BOARD}|admission"]) == 1


def test_a_real_jump_in_a_sparse_stream_is_released_by_the_next_event():
    tables = warmed_tables()
    later = START + timedelta(days=90)
    assert apply(tables, placement("c1", later)) is Outcome.HELD
    applied = apply_event(tables, placement("c2", later + timedelta(days=70)), LATENESS)
    assert applied[0] == Applied(applied[0].event, Outcome.COUNTED) and applied[0].event.event_id == "c1"
    assert applied[-1].outcome is Outcome.HELD  # itself 70 days past the new clock: held in its turn
    assert count(tables, "care_home_admissions_65", later) == 1


def test_a_corroborated_event_is_applied_before_the_event_that_corroborates_it():
    tables = warmed_tables()
    assert apply(tables, admission("early", START + timedelta(days=40))) is Outcome.HELD
    applied = apply_event(tables, admission("next", START + timedelta(days=35)), LATENESS)
    assert [(a.event.event_id, a.outcome) for a in applied] == [("early", Outcome.COUNTED), ("next", Outcome.COUNTED)]
    assert count(tables, "emergency_admissions", START + timedelta(days=40)) == 1
    assert f"{BOARD}|admission" not in tables.held_events
    assert tables.stream_times[f"{BOARD}|admission"] == (START + timedelta(days=40)).timestamp()


def test_a_resent_event_is_a_duplicate_whatever_its_age():
    tables = warmed_tables()
    apply(tables, admission("a1", START))
    for n in range(1, 4):
        apply(tables, admission(f"step{n}", START + timedelta(days=20 * n)))
    assert apply(tables, admission("a1", START)) is Outcome.DUPLICATE  # 60 days behind the clock now
    assert count(tables, "late_events", START) == 0
    assert count(tables, "emergency_admissions", START) == 1


def test_a_duplicate_of_a_held_event_does_not_corroborate_it():
    tables = warmed_tables()
    typo = START.replace(year=2025)
    apply(tables, admission("typo", typo))
    assert apply(tables, admission("typo", typo)) is Outcome.DUPLICATE
    assert len(tables.held_events[f"{BOARD}|admission"]) == 1
