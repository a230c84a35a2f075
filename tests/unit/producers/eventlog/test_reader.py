"""The column-at-a-time log reader gives exactly what the contract gives line by line."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from producers.eventlog import reader
from producers.eventlog.reader import (
    LogEvents,
    PatientKeys,
    read_events,
    read_log_events,
    read_log_events_line_by_line,
    text_hashes,
)
from producers.generate import GeneratorSpec, generate_frame, write_log
from streams.oracle import daily_counts

LATENESS = 14 * 86_400
VALID_ADMISSION = {
    "type": "admission", "event_id": "a-1", "board": "E09000012", "occurred_at": "2015-06-01T09:30:00+01:00",
    "nhs_number": "9434765919", "age": 70, "admission_method": "21", "provider": "RQX",
}
VALID_DISCHARGE = {
    "type": "discharge", "event_id": "d-1", "board": "E09000012", "occurred_at": "2015-06-03T10:00:00Z",
    "nhs_number": "9434765919", "age": 70, "discharge_destination": "19", "discharge_method": "1",
    "delayed_days": 2, "delay_attributable_to": "nhs", "into_reablement": True,
}
VALID_PLACEMENT = {
    "type": "care_home_placement", "event_id": "c-1", "board": "E06000053", "occurred_at": "2015-06-04T00:00:00Z",
    "nhs_number": "9434765919", "age": 81, "setting": "nursing", "permanent": True,
}


def variant(base: dict, n: int, **changes) -> bytes:
    row = {**base, "event_id": f"{base['event_id']}-{n}", **changes}
    return json.dumps({k: v for k, v in row.items() if v is not ...}).encode()


def edge_lines() -> list[bytes]:
    """Lines the column checks must not get wrong: unusual but valid, invalid in unusual ways, odd framing."""
    a, d, c = VALID_ADMISSION, VALID_DISCHARGE, VALID_PLACEMENT
    changes = [
        {}, {"age": "70"}, {"age": 70.0}, {"age": True}, {"age": 121}, {"age": -1}, {"age": None}, {"age": ...},
        {"nhs_number": "943 476 5919"}, {"nhs_number": "943-476-5919"}, {"nhs_number": 9434765919},
        {"nhs_number": "\t9434765919 "}, {"nhs_number": "9434765918"}, {"nhs_number": "943476591"},
        {"nhs_number": "--9434765919"}, {"nhs_number": "９４３４７６５９１９"},
        {"board": " E09000012 "}, {"board": "e09000012"}, {"board": "\u00a0E09000012"}, {"board": "E99999999"},
        {"event_id": " spaced "}, {"event_id": 12345}, {"event_id": ""}, {"event_id": "   "}, {"event_id": "x" * 300},
        {"event_id": "é-ü"}, {"event_id": "tab\tinside"},
        {"admission_method": "2a"}, {"admission_method": " 21"}, {"admission_method": "11"}, {"admission_method": "99"},
        {"admission_method": 21}, {"provider": ""}, {"provider": " P "},
        {"occurred_at": "2015-06-01T09:30:00.123+01:00"}, {"occurred_at": "2015-06-01T09:30:00.123456Z"},
        {"occurred_at": "2015-06-01T09:30:00.5Z"}, {"occurred_at": "2015-06-01 09:30:00+01:00"},
        {"occurred_at": "2015-06-01T09:30:00+0100"}, {"occurred_at": "2015-06-01T09:30:00"},
        {"occurred_at": "2016-02-29T12:00:00Z"}, {"occurred_at": "2015-02-29T12:00:00Z"},
        {"occurred_at": "2015-06-01T24:00:00Z"}, {"occurred_at": "2015-06-01T09:30:00+24:00"},
        {"occurred_at": "2015-06-01T09:30:00-00:00"}, {"occurred_at": "2015-06-01T23:30:00-05:30"},
        {"occurred_at": "1999-12-31T23:59:59Z"}, {"occurred_at": "2099-01-01T00:00:00Z"},
        {"occurred_at": "2015-13-01T00:00:00Z"}, {"occurred_at": 1433151000},
        {"type": "transfer"}, {"type": "Admission"}, {"type": None},
        {"extra": {"nested": [1, 2]}}, {"patient": "not-a-pseudonym"},
        # A valid NHS number (943 476 5919) split by Unicode white space Python's \s matches and RE2's does not.
        {"event_id": "x-943\u2003476\u20035919"}, {"event_id": "943\u00a0476\u00a05919"},
        {"provider": "943\x85476\x855919"}, {"event_id": "9\x0b4\x0b3\x0b4765919"},
        {"admission_id": "943\u3000476\u30005919"}, {"event_id": "943\u2028476\u20295919"},
        # key_id is checked by the contract though it is not a log column (the replay writes its own)
        {"key_id": "bad key!"}, {"key_id": 5}, {"key_id": "k-1"}, {"key_id": None},
    ]
    lines = [variant(a, i, **change) for i, change in enumerate(changes)]
    discharge_changes = [
        {}, {"delayed_days": "3"}, {"delayed_days": ""}, {"delayed_days": None, "delay_attributable_to": None},
        {"delayed_days": 0, "delay_attributable_to": None}, {"delayed_days": 0, "delay_attributable_to": ""},
        {"delayed_days": 2, "delay_attributable_to": None}, {"delayed_days": 367}, {"delayed_days": 2.0},
        {"delay_attributable_to": "council"}, {"delay_attributable_to": " nhs"}, {"into_reablement": "true"},
        {"into_reablement": 0}, {"into_reablement": None}, {"into_reablement": ...}, {"discharge_method": ""},
        {"discharge_method": None}, {"discharge_method": "7"}, {"discharge_destination": "20"},
        {"discharge_destination": 19}, {"admission_id": 7}, {"admission_id": " spell "},
        {"admission_id": "   "}, {"admission_id": ""}, {"admission_id": "\t"}, {"admission_id": None},
    ]
    lines += [variant(d, i, **change) for i, change in enumerate(discharge_changes)]
    placement_changes = [{}, {"setting": "Nursing"}, {"permanent": "1"}, {"permanent": None}, {"setting": None},
                         {"board": "E06000052"}]
    lines += [variant(c, i, **change) for i, change in enumerate(placement_changes)]
    lines += [
        b"", b"   ", b"\t", b"null", b"42", b"[1, 2]", b'"text"', b"{", variant(a, 900)[:-5],
        b"  " + variant(a, 901), variant(a, 902) + b"   ", variant(a, 903) + b"\r",
        variant(a, 904) + b"\r" + variant(a, 905), b"\xef\xbb\xbf" + variant(a, 906),
        variant(a, 907) + b" " + variant(a, 908), variant(a, 909).replace(b'"RQX"', b'"R\xffX"'),
        variant(a, 910).replace(b'"age": 70', b'"age": 70, "age": 71'), variant(a, 911).replace(b"a-1", b"a\\u002d1"),
        variant(a, 912) + b"\x0c", variant(a, 913).replace(b'"RQX"', b'"R\\ud800X"'),
        variant(a, 914).replace(b'"provider"', b'"key\\u005fid": "bad key!", "provider"'),  # an escaped key_id
    ]
    return lines


def rejected_rows(read: LogEvents) -> list[dict]:
    return read.rejected.select(["line", "reason_code", "reason", "text"]).to_pylist()


def assert_same_read(path: Path, **options) -> LogEvents:
    """The fast path gives the line-by-line path's events and rejected lines (line, reason code, message, text)."""
    keys = PatientKeys.fresh()
    fast = read_log_events(path, patients=keys, **options)
    reference = read_log_events_line_by_line(path, patients=keys)
    pd.testing.assert_frame_equal(fast.events, reference.events)
    assert rejected_rows(fast) == rejected_rows(reference)
    pd.testing.assert_frame_equal(read_events(path, patients=keys, **options), fast.events)
    return fast


def assert_same_events(path: Path, **options) -> pd.DataFrame:
    return assert_same_read(path, **options).events


def test_edge_lines_give_what_the_contract_gives(tmp_path):
    path = tmp_path / "edges.jsonl"
    lines = edge_lines()
    # Each odd line among 40 plain ones, so Arrow reads the pieces around it and the column checks see
    # every odd line Arrow can read.
    plain = 40
    log = [variant(VALID_ADMISSION, 10_000 + i) for i in range(plain * (len(lines) + 1))]
    for i, line in enumerate(lines):
        log[plain * (i + 1)] = line
    path.write_bytes(b"\n".join(log) + b"\n")
    events = assert_same_events(path, processes=1)
    odd_ones_valid = len(events) - (len(log) - len(lines))
    assert 10 < odd_ones_valid < len(lines) - 10  # many odd lines are valid, many are not


FRAMINGS = {
    # Each would let Arrow's rows slip against the lines if the framing guards were missing.
    "blank line and two objects on a line": lambda a: [b"", a(1) + b" " + a(2)],
    "indented line and two objects on a line": lambda a: [b"  " + a(1), a(2) + a(3)],
    "lone carriage return and a blank line": lambda a: [a(1) + b"\r" + a(2), b"   "],
    "byte-order mark on the first line": lambda a: [b"\xef\xbb\xbf" + a(1)],
    "invalid UTF-8 in a text field": lambda a: [a(1).replace(b'"RQX"', b'"R\xffX"')],
    "UTF-8 encoded surrogate in an event id": lambda a: [a(1).replace(b'"a-1-1"', b'"a-\xed\xa0\x80"')],
    "overlong UTF-8 in an event id": lambda a: [a(1).replace(b'"a-1-1"', b'"a-\xc0\xaf"')],
    "carriage return line endings": lambda a: [a(1) + b"\r", a(2) + b"\r"],
}


@pytest.mark.parametrize("framing", FRAMINGS)
def test_line_framing_as_replay_reads_it(tmp_path, framing):
    def admission(n: int) -> bytes:
        return variant(VALID_ADMISSION, n)

    odd = FRAMINGS[framing](admission)
    lines = odd[:1] + [admission(100 + i) for i in range(50)] + odd[1:] + [admission(200 + i) for i in range(50)]
    if framing.startswith("byte-order"):
        lines = odd + [admission(100 + i) for i in range(50)]
    path = tmp_path / "framing.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert_same_events(path, processes=1)


def test_generated_log_with_every_malformed_kind(tmp_path):
    path = tmp_path / "log.jsonl"
    spec = GeneratorSpec(date(2015, 4, 1), date(2015, 6, 30), scale=0.01, seed=4, late_share=0.05,
                         duplicate_share=0.02, malformed_share=0.03)
    write_log(generate_frame(spec), path)
    events = assert_same_events(path, processes=2, block_bytes=256 * 1024)
    assert len(events) > 10_000


def lines_read_one_at_a_time(monkeypatch) -> list:
    """From now on, every line the columnar reader hands to the line-by-line contract is collected here."""
    slow: list = []
    line_by_line = reader.line_by_line

    def counting(lines, reading, rejects):
        lines = list(lines)
        slow.extend(lines)
        return line_by_line(lines, reading, rejects)

    monkeypatch.setattr(reader, "line_by_line", counting)
    return slow


def test_most_lines_are_read_by_arrow_not_line_by_line(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    spec = GeneratorSpec(date(2015, 4, 1), date(2015, 5, 31), scale=0.01, seed=5, malformed_share=0.01)
    lines = write_log(generate_frame(spec), path)
    slow_lines = lines_read_one_at_a_time(monkeypatch)
    read_events(path, processes=1, block_bytes=1 << 20)
    assert 0 < len(slow_lines) < 0.05 * lines  # the malformed ones and a few neighbours, not the log


def test_csv_logs_read_as_the_contract_reads_them(tmp_path):
    path = tmp_path / "log.csv"
    write_log(generate_frame(GeneratorSpec(date(2015, 4, 1), date(2015, 4, 30), scale=0.005, seed=6,
                                           malformed_share=0.02)), path)
    assert len(assert_same_events(path)) > 1_000


def test_hash_collisions_never_merge_events(tmp_path):
    path = tmp_path / "log.jsonl"
    write_log(generate_frame(GeneratorSpec(date(2015, 4, 1), date(2015, 7, 31), scale=0.01, seed=7,
                                           duplicate_share=0.05)), path)
    events = read_events(path)
    honest = daily_counts(events, LATENESS)
    colliding = daily_counts(events.assign(event_id_hash=np.uint64(7)), LATENESS)  # every id collides
    pd.testing.assert_frame_equal(honest, colliding)
    assert honest["emergency_admissions"].sum() > 0


@pytest.mark.parametrize("texts", [["abc", "abc", "abd", "", None, "é"], ["x" * 1000, "x" * 999 + "y"]])
def test_text_hashes_are_equal_for_equal_text(texts):
    hashes = text_hashes(pa.array(texts, pa.string()))
    for i, one in enumerate(texts):
        for j, other in enumerate(texts):
            if (one or "") == (other or ""):
                assert hashes[i] == hashes[j]
    assert len(set(hashes.tolist())) == len({t or "" for t in texts})


def test_patient_keys_are_one_to_one():
    numbers = np.arange(9_000_000_000, 9_000_100_000, dtype=np.int64)
    keys = PatientKeys.fresh().of(numbers)
    assert len(np.unique(keys)) == len(numbers)
    assert not np.isin(keys, numbers.astype(np.uint64)).all()


def test_an_event_id_hashes_alike_wherever_it_stands():
    """A string followed by empty ones (rows refused for other reasons) was hashed short, so a duplicate in the
    last rows of a block was missed (found by the property tests)."""
    alone = text_hashes(pa.array(["e33"]))[0]
    for around in (["e33", None], ["e33", "", ""], ["x", "e33", None, None], [None, "e33"]):
        hashes = text_hashes(pa.array(around, pa.string()))
        assert hashes[around.index("e33")] == alone
