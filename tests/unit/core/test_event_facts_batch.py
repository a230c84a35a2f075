"""The worker's batch validation (:func:`bcfwatch.core.events.event_facts_batch`) decides every element exactly as
:func:`bcfwatch.core.events.event_facts` does one at a time: the same facts for a valid element (values and their
types), the same rejection and reason for an invalid one.

Hypothesis starts from valid events of every type and spoils or re-spells their values: valid but not plain
(surrounding space, a lower-case code, a number as text, a flag as "true", a blank discharge method), invalid (wrong
JSON types, unknown codes, impossible ages, timestamps without an offset or outside the window, NHS numbers in the
free-text identifiers, a pseudonym with a trailing newline), missing fields, extra fields, and elements that are not
objects at all; then it checks whole batches of them, in any mix.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bcfwatch.core.events import EventFacts, InvalidEvent, Reason, Window, event_facts, event_facts_batch

WINDOW = Window.at(datetime(2016, 4, 1, tzinfo=UTC))
PATIENT = "ab" * 32
NHS_NUMBER = "9434765919"  # a valid one (check digit 9)

BASE: dict[str, dict[str, Any]] = {
    "admission": {"admission_method": "21", "provider": "RX1"},
    "discharge": {"discharge_destination": "19", "discharge_method": "1", "delayed_days": 3,
                  "delay_attributable_to": "nhs", "into_reablement": True, "admission_id": "adm-1"},
    "care_home_placement": {"setting": "nursing", "permanent": True},
}

# Per field, values to put in its place: plain, valid but not plain, and invalid.
RESPELLINGS: dict[str, list[Any]] = {
    "type": ["admission", "discharge", "care_home_placement", "Admission", "nothing", 3, None],
    "board": ["E08000025", "E09000012", " E08000025", "E99999999", "", 8000025, None, ["E08000025"]],
    "key_id": ["k1", "key.2024-01", "", "bad key", "x" * 40, 5, None],
    "patient": [PATIENT, PATIENT.upper(), PATIENT + "\n", f" {PATIENT} ", PATIENT[:-1], "", 12, None],
    "age": [0, 65, 120, 121, -1, "70", " 70 ", 70.0, 70.5, True, None, "seventy", "7" * 5_000],
    "event_id": ["e1", " e1 ", "   ", "", f"id-{NHS_NUMBER}", "943 476 5919", "943-476-5919x", "9434765918", 17,
                 True, None, "a|943"],
    "occurred_at": ["2015-06-01T12:00:00+00:00", "2015-06-01T12:00:00+01:00", "2015-06-01T12:00:00",
                    "2015-06-01T12:00:00Z", "2015-06-01", "2013-06-01T12:00:00+00:00", "2030-01-01T00:00:00+00:00",
                    "2016-04-02T00:00:00+00:00", "2016-04-02T00:00:01+00:00", "yesterday", 1433160000, None,
                    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"],  # (out of range in UTC)
    "admission_method": ["21", "2A", "2a", " 21", "11", "99", 21, None, ""],
    "provider": ["RX1", " RX1 ", "", f"P{NHS_NUMBER}", "943.476.5919", 5, None],
    "discharge_destination": ["19", " 19", "54", "00", 19, None],
    "discharge_method": ["1", "4", None, "", "  ", " 1", "9", 1],
    "delayed_days": [0, 3, 366, 367, -1, "3", 3.0, None, "", True],
    "delay_attributable_to": ["nhs", "social_care", "both", " nhs", "NHS", "council", None, "", 1],
    "into_reablement": [True, False, "true", "0", 1, 0, 2, None],
    "admission_id": ["adm-1", " adm-1", "", "   ", None, NHS_NUMBER, 5, False],
    "setting": ["nursing", "residential", " nursing", "Nursing", None, 1],
    "permanent": [True, False, "false", "1", 0, 2, None],
}


@st.composite
def elements(draw: st.DrawFn) -> Any:
    """One decoded element: usually an event of some type with a few of its values re-spelt or dropped."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from([[1, 2], "text", None, 5, {}]))
    event_type = draw(st.sampled_from(list(BASE)))
    moment = datetime(2015, 6, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 400_000)))
    element: dict[str, Any] = {"type": event_type, "event_id": f"e{draw(st.integers(0, 99))}", "board": "E08000025",
                               "occurred_at": moment.isoformat(), "patient": PATIENT, "age": 70, **BASE[event_type]}
    if draw(st.booleans()):
        element["key_id"] = "k1"
    for name in draw(st.lists(st.sampled_from(list(RESPELLINGS)), max_size=3)):
        if draw(st.integers(0, 5)) == 0:
            element.pop(name, None)
        else:
            element[name] = draw(st.sampled_from(RESPELLINGS[name]))
    if draw(st.integers(0, 9)) == 0:
        element["unexpected"] = "kept out"
    return element


def decision(outcome: EventFacts | InvalidEvent) -> tuple[Any, ...]:
    """What a decision is made of, comparable: every attribute of the facts (each field's value with its type), or
    the rejection's message and reason."""
    if isinstance(outcome, InvalidEvent):
        return ("rejected", str(outcome), outcome.reason)
    return ("accepted", outcome.record, outcome.type, outcome.event_id, outcome.board, outcome.occurred_at,
            outcome.occurred_seconds, outcome.patient, outcome.age, outcome.key_id,
            sorted((name, type(value).__name__, value) for name, value in outcome.fields.items()))


def one_at_a_time(element: Any) -> EventFacts | InvalidEvent:
    try:
        return event_facts(element, window=WINDOW)
    except InvalidEvent as error:
        return error


@given(batch=st.lists(elements(), min_size=1, max_size=40))
@settings(max_examples=400, deadline=None)
def test_a_batch_is_decided_as_its_elements_one_at_a_time(batch: list[Any]) -> None:
    assert [decision(outcome) for outcome in event_facts_batch(batch, window=WINDOW)] == \
        [decision(one_at_a_time(element)) for element in batch]


def test_plain_events_of_every_type_are_accepted_and_an_nhs_number_in_one_identifier_rejects_only_its_event():
    plain = [{"type": event_type, "event_id": f"e{n}", "board": "E08000025", "occurred_at": "2015-06-01T12:00:00+00:00",
              "patient": PATIENT, "age": 70, **BASE[event_type]} for n, event_type in enumerate(BASE)]
    spoilt = {**plain[1], "admission_id": f"ref {NHS_NUMBER[:3]} {NHS_NUMBER[3:6]} {NHS_NUMBER[6:]}"}
    outcomes = event_facts_batch([*plain, spoilt], window=WINDOW)
    assert [type(outcome) for outcome in outcomes] == [EventFacts, EventFacts, EventFacts, InvalidEvent]
    assert [outcome.type for outcome in outcomes[:3]] == list(BASE)  # type: ignore[union-attr]
    assert "NHS number" in str(outcomes[3]) and NHS_NUMBER not in str(outcomes[3])


def test_a_timestamp_out_of_range_in_utc_and_an_endless_number_are_rejected_with_their_reasons():
    """(They used to raise OverflowError and a plain ValueError: the worker retried their record for ever.)"""
    event = {"type": "care_home_placement", "event_id": "e1", "board": "E08000025", "patient": PATIENT, "age": 70,
             **BASE["care_home_placement"]}
    early, endless = ({**event, "occurred_at": "0001-01-01T00:00:00+01:00"},
                      {**event, "occurred_at": "2015-06-01T12:00:00+00:00", "age": "7" * 5_000})
    outcomes = event_facts_batch([early, endless], window=WINDOW)
    assert [(type(outcome), getattr(outcome, "reason", None)) for outcome in outcomes] == [
        (InvalidEvent, Reason.INVALID_TIMESTAMP), (InvalidEvent, Reason.INVALID_VALUE)]
