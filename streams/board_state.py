"""Per-board event-time state: the rules the worker applies to each event.

Pure logic over plain mappings, so it runs unchanged on Faust tables (in the
worker) and on dicts (in unit tests). The rules, which the pandas oracle in
``streams/oracle.py`` recomputes independently:

* **Duplicates first**: an event whose (type, event_id) was seen before (counted,
  late or held) is a duplicate and changes nothing, whatever its age, so replaying
  a log twice, or part of it, changes no count (``late_events`` included).
* **Stream time** (the board's event-time *clock*) is kept per board *and event
  type*: one partition of one topic has a fixed order, so every replay, at any
  speed, with any number of workers, sees the same clocks. (Across topics the
  interleaving is not fixed, which is why a single per-board clock would not be
  reproducible.)
* **One outlier cannot move the clock** (the corroborated clock). An event more
  than ``max_ahead`` (default 31 days) ahead of its stream's clock, or any event
  while the stream has no clock yet, is *held*: not counted, not moving the
  clock, reported (``Outcome.HELD``, the ``held_events`` topic and metric). A held
  event is released when a later distinct event on the same stream corroborates
  it, i.e. is no more than ``max_ahead`` before it (``t_later >= t_held - max_ahead``);
  it is then applied before the corroborating event, in arrival order. So a
  mistyped year (``2025`` for ``2015``) stays held for ever and changes no other
  count, while a real gap in a sparse stream costs only the wait for its next
  event. A stream's first event is held until its second arrives.
* **Lateness**: an applied event more than ``lateness`` older than its clock is
  late. Late events are not counted in their window; they add one to the
  ``late_events`` tally of their board and day and go to the late-events topic.
* **Counts** go to the event's own UTC day: emergency admissions (HES 2x),
  other non-elective admissions (3x, 8x; elective 1x are valid but not counted),
  delayed days by attribution, permanent care-home admissions aged 65+,
  discharges of people 65+ into reablement.
* **Reablement at 91 days**: a reablement discharge of a person 65+ on day d is
  settled when the board's discharge stream time, less the lateness, reaches
  day d + 92: it counts as at home unless the same patient (same board) has an
  *adverse* event (an emergency admission, or a permanent care-home placement,
  at 65+) on a day in (d, d + 91]. An adverse event that arrives on time after
  settlement (its own topic's clock may lag) corrects the count, so the final
  result is the same whatever the interleaving of topics.
* **Bounded reablement state** (:func:`forget_settled_reablement`): what no on-time event can change any more
  is forgotten: adverse days no pending or future discharge can reach, outcomes no future adverse event can
  flip, patients with nothing left. Forgetting changes no count; it keeps a national year's state to the
  reablement horizon rather than every 65+ patient ever admitted.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple, Protocol

from bcfwatch.core import codes
from bcfwatch.core.calendar import SECONDS_PER_DAY, day_text, epoch_day
from bcfwatch.core.events import Admission, CareHomePlacement, Discharge, Event, EventFacts, decoded, event_facts
from bcfwatch.core.settings import DEFAULTS
from streams.published import COUNTER_INDEX, COUNTERS

REABLEMENT_WINDOW_DAYS = 91

# Reablement discharge outcome while it is followed
PENDING, AT_HOME, NOT_AT_HOME = 0, 1, 2


DEFAULT_MAX_AHEAD_DAYS = DEFAULTS.max_ahead_days  # BCFWATCH_MAX_AHEAD_DAYS's default (bcfwatch/core/settings.py)


class Outcome(Enum):
    COUNTED = "counted"
    DUPLICATE = "duplicate"
    LATE = "late"
    HELD = "held"


def day_key(board: str, day: int) -> str:
    """Key of a board's day in the counts table: ``E09000012|2015-06-01`` (sorts by day)."""
    return f"{board}|{day_text(day)}"


def last_settled_reablement_day(discharge_stream_time_seconds: float, lateness_seconds: float) -> int:
    """The last reablement discharge day (epoch day) whose 91-day window no on-time event can still reach.
    (Not the monitor's last settled admission day: ``monitors.alerting.timeline``.)"""
    return epoch_day(discharge_stream_time_seconds - lateness_seconds) - (REABLEMENT_WINDOW_DAYS + 1)


_DELAYED_DAYS_COUNTER = {attribution: COUNTER_INDEX[f"delayed_days_{attribution}"]
                         for attribution in codes.DELAY_ATTRIBUTIONS}


def increments(event: EventFacts) -> dict[int, int]:
    """Counter increments (by counter index) an on-time, first-seen event adds to its day."""
    fields = event.fields
    if event.record is Admission:
        group = codes.admission_group(fields["admission_method"])
        if group == "emergency":
            return {0: 1}
        if group in ("maternity", "other"):
            return {1: 1}
        return {}
    if event.record is Discharge:
        counts: dict[int, int] = {}
        if fields["delayed_days"]:
            counts[_DELAYED_DAYS_COUNTER[fields["delay_attributable_to"]]] = fields["delayed_days"]
        if is_reablement_discharge(event):
            counts[COUNTER_INDEX["reablement_discharges_65"]] = 1
        return counts
    if event.record is CareHomePlacement and fields["permanent"] and event.age >= 65:
        return {COUNTER_INDEX["care_home_admissions_65"]: 1}
    return {}


def is_reablement_discharge(event: EventFacts) -> bool:
    return event.record is Discharge and event.fields["into_reablement"] and event.age >= 65


def at_home(discharge_day: int, adverse_days: list[int]) -> bool:
    return not any(discharge_day < e <= discharge_day + REABLEMENT_WINDOW_DAYS for e in adverse_days)


class SeenKeys(Protocol):
    """What the duplicate rule asks of the seen event ids: a dict, or the worker's
    :class:`streams.seen_events.SeenEvents`."""

    def __contains__(self, key: object, /) -> bool: ...

    def __setitem__(self, key: str, day: int, /) -> None: ...

    def __len__(self) -> int: ...


@dataclass
class BoardTables:
    """The worker's state; Faust tables in the worker, dicts in unit tests.

    * ``day_counts``: ``board|YYYY-MM-DD`` -> list of the COUNTERS
    * ``stream_times``: ``board|type`` -> latest occurred_at (seconds since the epoch);
      ``board|settled`` -> last settled reablement discharge day (an epoch day: :func:`last_settled_reablement_day`)
    * ``seen_events``: ``type|event_id`` -> epoch day (dedup)
    * ``reablement_patients``: ``board|patient`` -> {"discharges": [[day, outcome]], "adverse": [days]}
    * ``reablement_due``: ``board|day`` -> patients discharged into reablement that day, awaiting day 91
    * ``held_events``: ``board|type`` -> events held far ahead of the clock, ``[occurred_at seconds, wire JSON]`` in
      arrival order
    """

    day_counts: MutableMapping[str, list[int]]
    stream_times: MutableMapping[str, float]
    seen_events: SeenKeys
    reablement_patients: MutableMapping[str, dict[str, Any]]
    reablement_due: MutableMapping[str, list[str]]
    held_events: MutableMapping[str, list[list[Any]]] = field(default_factory=dict)
    # per stream, the earliest occurred_at held (not saved: found again from held_events when first asked)
    _earliest_held: dict[str, float] = field(default_factory=dict, repr=False, compare=False)

    def earliest_held(self, clock_key: str) -> float | None:
        """The earliest event time held on a stream (None: nothing held), without scanning the held events for
        every event of the stream (a stream with one far-off event held for ever would)."""
        earliest = self._earliest_held.get(clock_key)
        if earliest is None:
            held = self.held_events.get(clock_key)
            if not held:
                return None
            earliest = self._earliest_held[clock_key] = min(entry[0] for entry in held)
        return earliest

    def hold(self, clock_key: str, entries: list[list[Any]]) -> None:
        """Set a stream's held events (``[]``: none left)."""
        self._earliest_held.pop(clock_key, None)
        if entries:
            self.held_events[clock_key] = entries
        else:
            del self.held_events[clock_key]

    def add(self, board: str, day: int, counts: dict[int, int]) -> None:
        key = day_key(board, day)
        row = list(self.day_counts.get(key) or [0] * len(COUNTERS))
        for index, amount in counts.items():
            row[index] += amount
        self.day_counts[key] = row


class Applied(NamedTuple):
    """What became of one event: the triggering event, or a held event it released. (A named tuple: one is made
    per event, and a frozen dataclass took three times as long to make.)"""

    event: EventFacts
    outcome: Outcome


def apply_event(tables: BoardTables, event: Event | EventFacts, lateness_seconds: float,
                max_ahead_seconds: float = DEFAULT_MAX_AHEAD_DAYS * SECONDS_PER_DAY) -> list[Applied]:
    """Apply one valid event (a record, or its :class:`EventFacts`: the worker's) to its board's state (see the
    module rules).

    Returns what happened, in order: held events this one released (each with its outcome), then this
    event itself (counted, duplicate, late or held).
    """
    if not isinstance(event, EventFacts):
        event = EventFacts.of_event(event)
    seen_key = f"{event.type}|{event.event_id}"
    seen = tables.seen_events
    if seen_key in seen:
        return [Applied(event, Outcome.DUPLICATE)]
    occurred_seconds = event.occurred_seconds
    seen[seen_key] = int(occurred_seconds // SECONDS_PER_DAY)  # its epoch_day (inline: this runs for every event)
    clock_key = f"{event.board}|{event.type}"
    applied = [Applied(released, _apply_on_clock(tables, released, lateness_seconds))
               for released in _corroborated(tables, clock_key, occurred_seconds, max_ahead_seconds)
               ] if clock_key in tables.held_events else []  # (nearly always nothing held on the stream)
    clock_seconds = tables.stream_times.get(clock_key)
    if clock_seconds is None or occurred_seconds > clock_seconds + max_ahead_seconds:
        held = tables.held_events.get(clock_key) or []
        tables.hold(clock_key, [*held, [occurred_seconds, event.to_wire().decode()]])
        applied.append(Applied(event, Outcome.HELD))
    else:
        # (clock_seconds was read after the releases above, so it is the clock as it stands)
        applied.append(Applied(event, _apply_on_clock(tables, event, lateness_seconds, clock_key, clock_seconds)))
    return applied


def _corroborated(tables: BoardTables, clock_key: str, occurred_seconds: float,
                  max_ahead_seconds: float) -> list[EventFacts]:
    """Take out of hold, in arrival order, the held events that an event at ``occurred_seconds`` corroborates."""
    earliest = tables.earliest_held(clock_key)
    if earliest is None or occurred_seconds < earliest - max_ahead_seconds:
        return []  # nothing held, or nothing this event corroborates
    held = tables.held_events[clock_key]
    released = [wire for held_at_seconds, wire in held if occurred_seconds >= held_at_seconds - max_ahead_seconds]
    tables.hold(clock_key, [entry for entry in held if occurred_seconds < entry[0] - max_ahead_seconds])
    return [event_facts(decoded(wire.encode())) for wire in released]


def _apply_on_clock(tables: BoardTables, event: EventFacts, lateness_seconds: float, clock_key: str | None = None,
                    stream_time_seconds: float | None = None) -> Outcome:
    """Count an event the clock accepts (or tally it late); advance the clock. ``clock_key`` and
    ``stream_time_seconds``: the event's stream and its clock now, when the caller has them (else looked up)."""
    occurred_seconds = event.occurred_seconds
    # (epoch_day, and below the late and adverse tests, inline: this runs for nearly every event)
    day = int(occurred_seconds // SECONDS_PER_DAY)
    if clock_key is None:
        clock_key = f"{event.board}|{event.type}"
    if stream_time_seconds is None:
        stream_time_seconds = tables.stream_times.get(clock_key)
    if stream_time_seconds is not None and occurred_seconds < stream_time_seconds - lateness_seconds:  # late:
        tables.add(event.board, day, _LATE)  # more than the lateness older than its clock
        return Outcome.LATE
    if stream_time_seconds is None or occurred_seconds > stream_time_seconds:
        tables.stream_times[clock_key] = occurred_seconds
        stream_time_seconds = occurred_seconds
    counts = increments(event)
    if counts:
        tables.add(event.board, day, counts)
    record, fields = event.record, event.fields
    if record is Discharge:
        if is_reablement_discharge(event):
            _follow_reablement(tables, event, day)
        _settle(tables, event.board, last_settled_reablement_day(stream_time_seconds, lateness_seconds))
    # adverse (it ends 'still at home' for a reablement patient): an emergency readmission or a permanent
    # care-home placement, at 65+
    elif event.age >= 65 and (fields["admission_method"] in codes.EMERGENCY_ADMISSION_METHODS if record is Admission
                              else record is CareHomePlacement and bool(fields["permanent"])):
        _record_adverse(tables, event, day)
    return Outcome.COUNTED


_LATE = {COUNTER_INDEX["late_events"]: 1}  # (read only)


def _follow_reablement(tables: BoardTables, event: EventFacts, day: int) -> None:
    patient_key = f"{event.board}|{event.patient}"
    record = tables.reablement_patients.get(patient_key) or {"discharges": [], "adverse": []}
    record = {"discharges": [*record["discharges"], [day, PENDING]], "adverse": record["adverse"]}
    tables.reablement_patients[patient_key] = record
    due_key = day_key(event.board, day)
    tables.reablement_due[due_key] = [*(tables.reablement_due.get(due_key) or []), event.patient]


def _record_adverse(tables: BoardTables, event: EventFacts, day: int) -> None:
    patient_key = f"{event.board}|{event.patient}"
    record = tables.reablement_patients.get(patient_key) or {"discharges": [], "adverse": []}
    discharges = []
    for discharge_day, outcome in record["discharges"]:
        if outcome == AT_HOME and not at_home(discharge_day, [day]):
            tables.add(event.board, discharge_day, {COUNTER_INDEX["at_home_91d"]: -1})
            outcome = NOT_AT_HOME
        discharges.append([discharge_day, outcome])
    tables.reablement_patients[patient_key] = {"discharges": discharges, "adverse": [*record["adverse"], day]}


def _settle(tables: BoardTables, board: str, through_day: int) -> None:
    """Settle every reablement discharge of ``board`` up to epoch day ``through_day`` not settled yet."""
    settled_key = f"{board}|settled"
    previous = tables.stream_times.get(settled_key)  # an epoch day, kept in the clocks table
    if previous is not None and through_day <= previous:
        return
    tables.stream_times[settled_key] = through_day
    if previous is None:
        return  # the first discharge of this board: nothing can be due yet (every due day is in the future)
    for discharge_day in range(int(previous) + 1, through_day + 1):
        due_key = day_key(board, discharge_day)
        patients = tables.reablement_due.get(due_key)
        if not patients:
            continue
        for patient in dict.fromkeys(patients):
            _settle_patient(tables, board, patient, discharge_day)
        del tables.reablement_due[due_key]


def _settle_patient(tables: BoardTables, board: str, patient: str, discharge_day: int) -> None:
    patient_key = f"{board}|{patient}"
    record = tables.reablement_patients[patient_key]
    discharges = []
    for day, outcome in record["discharges"]:
        if day == discharge_day and outcome == PENDING:
            outcome = AT_HOME if at_home(day, record["adverse"]) else NOT_AT_HOME
            if outcome == AT_HOME:
                tables.add(board, day, {COUNTER_INDEX["at_home_91d"]: 1})
        discharges.append([day, outcome])
    tables.reablement_patients[patient_key] = {"discharges": discharges, "adverse": record["adverse"]}


def _horizon_day(tables: BoardTables, board: str, event_type: str, lateness_seconds: float) -> int | None:
    """The first day an on-time event of ``event_type`` can still fall on for ``board`` (None: no clock yet, so
    any day)."""
    clock_seconds = tables.stream_times.get(f"{board}|{event_type}")
    return None if clock_seconds is None else epoch_day(clock_seconds - lateness_seconds)


def forget_settled_reablement(tables: BoardTables, lateness_seconds: float) -> int:
    """Forget reablement state no on-time event can use again (see the module rules); returns how many
    patients were forgotten. Exact: the counts after any later events are the same as without it.

    * an adverse day ``e`` matters to a pending discharge ``d < e`` and to future on-time discharges, which fall
      on or after the discharge horizon ``D``: it is kept while ``e > D`` or ``e >`` the patient's earliest
      pending discharge;
    * an outcome of 'not at home' is final; 'at home' can be flipped only by an adverse event in
      ``(d, d + 91]``, and future on-time adverse events fall on or after the adverse horizon ``A`` (the earlier
      of the admission and care-home clocks, less the lateness): dropped once ``d + 91 < A``;
    * pending discharges are always kept (they are settled later, by day).
    """
    horizons: dict[str, tuple[int | None, int | None]] = {}
    forgotten = 0
    for patient_key in list(tables.reablement_patients):
        board = patient_key.partition("|")[0]
        if board not in horizons:
            adverse = [_horizon_day(tables, board, kind, lateness_seconds) for kind in ("admission",
                                                                                         "care_home_placement")]
            horizons[board] = (_horizon_day(tables, board, "discharge", lateness_seconds),
                               None if None in adverse else min(day for day in adverse if day is not None))
        discharge_horizon, adverse_horizon = horizons[board]
        record = tables.reablement_patients[patient_key]
        pending = [day for day, outcome in record["discharges"] if outcome == PENDING]
        discharges = [[day, outcome] for day, outcome in record["discharges"]
                      if outcome == PENDING or (outcome == AT_HOME and (
                          adverse_horizon is None or day + REABLEMENT_WINDOW_DAYS >= adverse_horizon))]
        if discharge_horizon is None:
            adverse_days = record["adverse"]
        else:
            reach = min([discharge_horizon, *pending])
            adverse_days = [day for day in record["adverse"] if day > reach]
        if not discharges and not adverse_days:
            del tables.reablement_patients[patient_key]
            forgotten += 1
        elif len(discharges) != len(record["discharges"]) or len(adverse_days) != len(record["adverse"]):
            tables.reablement_patients[patient_key] = {"discharges": discharges, "adverse": adverse_days}
    return forgotten
