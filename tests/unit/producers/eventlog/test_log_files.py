"""Log files as they arrive: framing, encodings, CSV headers, odd typing, junk. Every line is accounted for,
the fast path equals the line-by-line path (events and rejected lines), and replay decides alike."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import orjson
import pytest

from bcfwatch.core.events import InvalidEvent, Reason
from producers.eventlog.logformat import (
    LOG_COLUMNS,
    LogFormatError,
    LogFormatWarning,
    check_line,
    count_lines,
    read_log,
    row_to_event,
)
from producers.eventlog.reader import read_log_events, rejected_by_reason, write_rejected
from producers.pseudonym import Pseudonymiser
from tests.unit.producers.eventlog.test_reader import (
    VALID_ADMISSION,
    VALID_DISCHARGE,
    VALID_PLACEMENT,
    assert_same_read,
    lines_read_one_at_a_time,
    variant,
)


def admission(n: int, **changes) -> dict:
    return {**VALID_ADMISSION, "event_id": f"a-{n}", **changes}


def jsonl(rows: list[dict]) -> list[bytes]:
    return [json.dumps(row).encode() for row in rows]


def csv_lines(rows: list[dict], columns: tuple[str, ...] = LOG_COLUMNS) -> list[bytes]:
    def field(value) -> str:
        return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    return [",".join(columns).encode()] + [",".join(field(row.get(c)) for c in columns).encode() for row in rows]


def write(path: Path, lines: list[bytes], ending: bytes = b"\n", final: bool = True) -> Path:
    path.write_bytes(ending.join(lines) + (ending if final else b""))
    return path


def reasons(read) -> list[tuple[int, str]]:
    return [(row["line"], row["reason_code"]) for row in read.rejected.select(["line", "reason_code"]).to_pylist()]


# --- framing -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_missing_final_newline_keeps_the_last_line(tmp_path, suffix):
    rows = [admission(i) for i in range(100)]
    lines = jsonl(rows) if suffix == ".jsonl" else csv_lines(rows)
    path = write(tmp_path / f"log{suffix}", lines, final=False)
    read = assert_same_read(path, processes=1)
    assert len(read.events) == 100 and read.rejected.num_rows == 0
    assert count_lines(path) == 100


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_byte_order_mark_opening_the_file_is_not_part_of_the_first_line(tmp_path, suffix):
    rows = [admission(i) for i in range(60)]
    lines = jsonl(rows) if suffix == ".jsonl" else csv_lines(rows)
    path = write(tmp_path / f"log{suffix}", [b"\xef\xbb\xbf" + lines[0], *lines[1:]])
    read = assert_same_read(path, processes=1)
    assert len(read.events) == 60 and read.rejected.num_rows == 0


def test_byte_order_mark_inside_the_file_rejects_that_line(tmp_path):
    lines = jsonl([admission(i) for i in range(60)])
    lines[30] = b"\xef\xbb\xbf" + lines[30]
    read = assert_same_read(write(tmp_path / "log.jsonl", lines), processes=1)
    assert reasons(read) == [(31, Reason.NOT_JSON)]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_crlf_line_endings(tmp_path, suffix):
    rows = [admission(i) for i in range(80)] + [admission(80, age=130)]
    lines = jsonl(rows) if suffix == ".jsonl" else csv_lines(rows)
    read = assert_same_read(write(tmp_path / f"log{suffix}", lines, ending=b"\r\n"), processes=1)
    assert len(read.events) == 80
    last = 81 if suffix == ".jsonl" else 82
    assert reasons(read) == [(last, Reason.INVALID_VALUE)]
    assert not read.rejected["text"][0].as_py().endswith("\r")


def test_blank_lines_are_neither_events_nor_rejected_and_keep_line_numbers(tmp_path):
    lines = jsonl([admission(i) for i in range(60)])
    lines[10:10] = [b"", b"   ", b"\t\r"]
    lines.append(json.dumps(admission(99, board="E99999999")).encode())
    read = assert_same_read(write(tmp_path / "log.jsonl", lines), processes=1)
    assert len(read.events) == 60
    assert reasons(read) == [(64, Reason.UNKNOWN_BOARD)]


def test_invalid_utf8_is_rejected_not_replaced(tmp_path):
    lines = jsonl([admission(i) for i in range(60)])
    lines[5] = lines[5].replace(b'"RQX"', b'"R\xffX"')  # in a field the contract reads
    lines[6] = lines[6][:-1] + b', "note": "\xc0\xaf"}'  # in a field nobody reads
    read = assert_same_read(write(tmp_path / "log.jsonl", lines), processes=1)
    assert reasons(read) == [(6, Reason.NOT_JSON), (7, Reason.NOT_JSON)]
    assert "UTF-8" in read.rejected["reason"][0].as_py()
    assert "\ufffd" in read.rejected["text"][0].as_py()


def test_nested_values_and_null_lines_are_judged_by_the_contract_parser(tmp_path):
    lines = jsonl([admission(i) for i in range(80)])
    lines[3] = b"null"
    lines[4] = json.dumps(admission(4, extra={"deep": [[[[1]]]]})).encode()
    lines[5] = b'{"type": "admission", "x": ' + b"[" * 1100 + b"]" * 1100 + b"}"  # deeper than orjson reads
    lines[6] = b"[1, 2]"
    lines[7] = json.dumps(admission(7)).encode() + json.dumps(admission(8)).encode()
    read = assert_same_read(write(tmp_path / "log.jsonl", lines), processes=1)
    assert reasons(read) == [(4, Reason.NOT_JSON), (6, Reason.NOT_JSON), (7, Reason.NOT_JSON), (8, Reason.NOT_JSON)]
    assert len(read.events) == 76


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_huge_field_is_judged_never_a_crash(tmp_path, suffix):
    rows = [admission(i) for i in range(50)]
    rows[20]["provider"] = "P" * 200_000
    lines = jsonl(rows) if suffix == ".jsonl" else csv_lines(rows)
    read = assert_same_read(write(tmp_path / f"log{suffix}", lines), processes=1)
    if suffix == ".jsonl":  # the contract sets no length limit
        assert len(read.events) == 50
    else:  # longer than Python's csv field limit
        assert reasons(read) == [(22, Reason.MALFORMED_ROW)] and len(read.events) == 49
        assert len(read.rejected["text"][0].as_py()) < 5_000  # kept text is capped


# --- CSV headers and rows --------------------------------------------------------------------------------

def test_csv_header_missing_a_required_column_is_refused_before_any_line(tmp_path):
    columns = tuple(c for c in LOG_COLUMNS if c != "nhs_number")
    path = write(tmp_path / "log.csv", csv_lines([admission(1)], columns))
    with pytest.raises(LogFormatError, match="nhs_number"):
        read_log(path)  # at the call, not at the first line
    with pytest.raises(LogFormatError, match="nhs_number"):
        read_log_events(path)


def test_csv_header_with_a_misspelt_column_says_which_and_the_fix(tmp_path):
    columns = tuple("dischage_destination" if c == "discharge_destination" else c for c in LOG_COLUMNS)
    path = write(tmp_path / "log.csv", csv_lines([admission(1)], columns))
    with pytest.raises(LogFormatError, match=r"'dischage_destination'.*did you mean 'discharge_destination'"):
        read_log_events(path)


def test_csv_without_a_header_is_refused(tmp_path):
    path = write(tmp_path / "log.csv", csv_lines([admission(1), admission(2)])[1:])
    with pytest.raises(LogFormatError, match="looks like an event"):
        read_log_events(path)
    with pytest.raises(LogFormatError, match="empty"):
        read_log_events(write(tmp_path / "empty.csv", [], final=False))


def test_csv_unknown_extra_columns_are_ignored_and_named(tmp_path):
    rows = [admission(i, ward=f"W{i}") for i in range(40)]
    path = write(tmp_path / "log.csv", csv_lines(rows, (*LOG_COLUMNS, "ward")))
    read = assert_same_read(path)
    assert len(read.events) == 40 and read.ignored_columns == ("ward",)
    with pytest.warns(LogFormatWarning, match="ward"):
        list(read_log(path))


def test_csv_columns_in_any_order(tmp_path):
    columns = tuple(reversed(LOG_COLUMNS))
    read = assert_same_read(write(tmp_path / "log.csv", csv_lines([admission(i) for i in range(30)], columns)))
    assert len(read.events) == 30


def test_csv_short_and_long_rows_are_rejected_with_their_line(tmp_path):
    lines = csv_lines([admission(i) for i in range(30)])
    lines[5] = lines[5] + b",extra"
    lines[9] = lines[9].rsplit(b",", 3)[0]
    lines[12] = b'"unterminated,' + lines[12]
    read = assert_same_read(write(tmp_path / "log.csv", lines))
    assert reasons(read) == [(6, Reason.MALFORMED_ROW), (10, Reason.MALFORMED_ROW), (13, Reason.MALFORMED_ROW)]
    assert "fields, header has" in read.rejected["reason"][0].as_py()


# --- how values are written -----------------------------------------------------------------------------

def test_numbers_and_flags_written_as_strings_are_accepted_everywhere(tmp_path, monkeypatch):
    rows = []
    for i in range(3000):
        base = (VALID_ADMISSION, VALID_DISCHARGE, VALID_PLACEMENT)[i % 3]
        changes = [{}, {"age": "65"}, {"delayed_days": "2"}, {"into_reablement": "false"}, {"permanent": "1"},
                   {"nhs_number": 9434765919}, {"event_id": 10_000 + i}, {"admission_method": 21},
                   {"age": "70", "permanent": 0, "discharge_destination": 19}, {"age": " 65"}, {"age": "6.5"},
                   {"into_reablement": "yes"}][i % 12]
        rows.append(json.loads(variant(base, i, **changes)))
    path = write(tmp_path / "log.jsonl", jsonl(rows))
    read = assert_same_read(path, processes=1)
    assert len(read.events) > 2000 and read.rejected.num_rows > 100
    slow = lines_read_one_at_a_time(monkeypatch)
    read_log_events(path, processes=1)
    # Only values the column checks do not decode (" 65", "6.5", "yes") go line by line: 3 lines in 12.
    assert len(slow) <= len(rows) // 4 + 32


def test_lines_that_are_json_but_not_events_are_rejected_cheaply_and_as_the_contract_says(tmp_path, monkeypatch):
    lines = [b"{}"] * 50_000 + [b'{"type": "transfer"}'] * 1000 + [b'{"type": "admission"}'] * 1000
    lines += [b'{"type": "discharge", "board": "E09000012"}'] * 1000 + [b'{"note": "9434765919"}'] * 100
    path = write(tmp_path / "junk.jsonl", lines)
    read = assert_same_read(path, processes=1)
    slow = lines_read_one_at_a_time(monkeypatch)
    read_log_events(path, processes=1)
    assert not slow  # every one classified a column at a time
    assert rejected_by_reason(read.rejected) == {"unknown_type": 51_100, "invalid_nhs_number": 2000}
    assert "[redacted]" in read.rejected["text"][-1].as_py()


# --- one decision for replay and backtest ------------------------------------------------------------------

def test_replay_and_backtest_accept_and_reject_the_same_lines(tmp_path):
    from tests.unit.producers.eventlog.test_reader import edge_lines

    lines = edge_lines() + jsonl([admission(i) for i in range(40)])
    path = write(tmp_path / "log.jsonl", lines)
    pseudonymiser = Pseudonymiser(b"k" * 32)
    from bcfwatch.core.boards import load_boards

    boards = load_boards()
    replay_rejected = []
    for line in read_log(path):  # what producers/replay.py does with each line
        reason = (line.reason, line.error) if line.error is not None else None
        if reason is None:
            try:
                row_to_event(line.row, pseudonymiser, boards)
            except InvalidEvent as error:
                reason = (error.reason, str(error))
        if reason is None:
            check_line(line, boards)  # the shared decision agrees it is an event
        replay_rejected.append(None if reason is None else (line.number, *reason))
    backtest = read_log_events(path, processes=1)
    rows = backtest.rejected.select(["line", "reason_code", "reason"]).to_pylist()
    assert [r for r in replay_rejected if r] == [(r["line"], r["reason_code"], r["reason"]) for r in rows]
    assert len(backtest.events) == replay_rejected.count(None)


def test_rejected_lines_never_keep_an_nhs_number_and_are_written_as_json_lines(tmp_path):
    lines = jsonl([admission(i) for i in range(40)] + [admission(40, board="E99999999"),
                                                       admission(41, nhs_number="943 476 5919", age=-3)])
    lines.append(b'{"type": "admission", "nhs_number": "9434765919",')
    path = write(tmp_path / "log.jsonl", lines)
    read = assert_same_read(path, processes=1)
    out = tmp_path / "rejected.jsonl"
    write_rejected(read.rejected, out)
    written = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(w["line"], w["reason_code"]) for w in written] == [
        (41, "unknown_board"), (42, "invalid_value"), (43, "not_json")]
    assert set(written[0]) == {"line", "reason_code", "reason", "text"}
    assert "9434765919" not in out.read_text() and "943 476 5919" not in out.read_text()


def test_line_numbers_hold_across_blocks_and_processes(tmp_path):
    rows = [admission(i, age=130 if i % 97 == 0 else 70) for i in range(6000)]
    lines = jsonl(rows)
    lines[4000] = b""
    read = assert_same_read(write(tmp_path / "log.jsonl", lines), processes=2, block_bytes=64 * 1024)
    expected = [(i + 1, Reason.INVALID_VALUE) for i in range(6000) if i % 97 == 0 and i != 4000]
    assert reasons(read) == expected


def test_warnings_are_not_raised_for_plain_logs(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_log_events(write(tmp_path / "log.csv", csv_lines([admission(1)])))
