from datetime import UTC

import pytest

from bcfwatch.core.events import Admission, CareHomePlacement, Discharge, InvalidEvent, parse_event, parse_wire

PATIENT = "a" * 64


def admission(**changes):
    event = {"type": "admission", "event_id": "e1", "board": "E09000012", "occurred_at": "2015-06-01T09:30:00+01:00",
             "patient": PATIENT, "age": 80, "admission_method": "21", "provider": "RQX"}
    event.update(changes)
    return event


def test_valid_admission_normalised_to_utc():
    event = parse_event(admission())
    assert isinstance(event, Admission)
    assert event.occurred_at.tzinfo == UTC and event.occurred_at.hour == 8
    assert parse_wire(event.to_wire()) == event


def test_isles_of_scilly_counted_under_joint_plan_board():
    assert parse_event(admission(board="E06000053")).board == "E06000052"


def test_discharge_and_placement():
    discharge = parse_event({"type": "discharge", "event_id": "d", "board": "E08000025",
                             "occurred_at": "2015-06-01T10:00:00Z", "patient": PATIENT, "age": 70,
                             "discharge_destination": "19", "discharge_method": "1", "delayed_days": 3,
                             "delay_attributable_to": "social_care", "into_reablement": "true"})
    assert isinstance(discharge, Discharge) and discharge.into_reablement and discharge.delayed_days == 3
    placement = parse_event({"type": "care_home_placement", "event_id": "c", "board": "E10000016",
                             "occurred_at": "2015-06-01T10:00:00+00:00", "patient": PATIENT, "age": 90,
                             "setting": "nursing", "permanent": True})
    assert isinstance(placement, CareHomePlacement) and placement.permanent


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"type": "transfer"}, "unknown event type"),
        ({"board": "E99999999"}, "unknown board"),
        ({"board": None}, "missing field board"),
        ({"age": 121}, "age 121 is impossible"),
        ({"age": -1}, "impossible"),
        ({"age": "old"}, "whole number"),
        ({"age": True}, "whole number"),
        ({"occurred_at": "2015-02-30T10:00:00+00:00"}, "not a valid ISO 8601"),
        ({"occurred_at": "2015-06-01T10:00:00"}, "no timezone"),
        ({"occurred_at": "2014-03-31T23:59:59+00:00"}, "before the earliest date 2014-04-01"),
        ({"occurred_at": "2099-01-01T00:00:00+00:00"}, "after tomorrow"),
        ({"occurred_at": 20150601}, "ISO 8601"),
        ({"admission_method": "99"}, "not a HES admission method"),
        ({"patient": "9434765919"}, "not a pseudonym"),
        ({"event_id": ""}, "missing field event_id"),
    ],
)
def test_contract_violations_have_reasons(changes, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(admission(**changes))


@pytest.mark.parametrize("method", ["21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28", "2a"])
def test_emergency_methods_accepted(method):
    assert parse_event(admission(admission_method=method)).admission_method == method.upper()


def test_not_json():
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        parse_wire(b"{nope")


def test_the_earliest_date_is_a_setting(monkeypatch):
    event = admission(occurred_at="2010-06-01T10:00:00+00:00")
    with pytest.raises(InvalidEvent, match="before the earliest date") as caught:
        parse_event(event)
    assert caught.value.reason == "before_earliest_date"
    monkeypatch.setenv("BCFWATCH_EARLIEST_DATE", "2010-01-01")
    assert parse_event(event).occurred_at.year == 2010
