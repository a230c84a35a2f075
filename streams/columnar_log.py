"""An event log read column by column: the batch side's fast way to the same events and rejections.

The decision about one line is :func:`producers.logformat.check_line` (the line's framing, then the
contract :func:`bcfwatch.core.events.validated_fields`), the same function ``bcfwatch replay`` uses.
Checking a national year (12M lines) that way takes minutes, so the batch side (the oracle,
``bcfwatch backtest`` and ``report``) reads JSON Lines with Arrow's JSON reader and checks whole
columns at once: blocks of the log in worker processes, each block a chunk (``CHUNK_BYTES``) at a time,
so memory follows the chunk whatever the lines are.

Arrow is given only lines it reads exactly as the contract's JSON parser does: a line that is one flat
object (starts with ``{``, ends with ``}``, no other ``{`` or ``[``), no stray carriage return, valid
UTF-8. Lines whose numbers or flags are written as strings (``"age": "65"``), or whose text fields are
written as numbers, are grouped by how each field is written and each group is read with its own
column types, so such logs stay fast. Everything else (blank lines, bad JSON, nested values, a
byte-order mark inside the file, pieces Arrow refuses) goes through ``check_line`` one line at a time;
a piece Arrow refuses is cut smaller (no recursion), so one bad line costs a few dozen lines of slow
reading at most.

The column checks walk the contract's order (type, NHS number, board, age, event id, timestamp, then
the type's own fields). At each step a row whose value is *plainly* valid (codes spelt exactly, text
with no surrounding space, NHS numbers of digits, spaces and hyphens, timestamps shaped
``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]`` with ``Z`` or ``+HH:MM``) goes on; for the others the contract
itself is asked, once per distinct value, and its rejection (reason code and message) is the row's,
so ``{}`` a million times costs one call. A row the contract would pass but that is not plainly valid
goes line by line. The result is therefore the contract's, line for line, events and rejections;
``tests/test_columnar_log`` and ``tests/test_log_files`` prove it.

Rejected lines are kept compactly in Arrow: line number, reason code and message (dictionary encoded)
and the line's text with NHS numbers redacted (:func:`producers.logformat.rejected_text`).

Patients are kept as 64-bit keys: the NHS number's ten digits mixed by a random odd multiplier and mask
made for the run (a bijection, so two events share a key exactly when they share an NHS number). Keys
never leave the process that made them into any output; raw NHS numbers are not kept.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import re
import secrets
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from bcfwatch.core import codes
from bcfwatch.core.boards import load_boards
from bcfwatch.core.events import MAX_AGE, RECORDS, Event, InvalidEvent, Reason, earliest_moment
from producers.logformat import (
    BOM,
    LOG_COLUMNS,
    MAX_REJECTED_TEXT,
    LogFormatWarning,
    check_line,
    check_row,
    is_csv,
    parse_json_line,
    read_csv_header,
    read_log,
    rejected_text,
)

EVENT_TYPES = tuple(RECORDS)
ADMISSION_METHODS = tuple(sorted(codes.ADMISSION_METHODS))
DELAY_ATTRIBUTIONS = codes.DELAY_ATTRIBUTIONS
EVENT_COLUMNS = ("type", "event_id", "event_id_hash", "board", "ts", "patient", "age", "admission_method",
                 "delayed_days", "delay_attributable_to", "into_reablement", "permanent")
BLOCK_BYTES = 32 << 20  # a worker process's share of the log at a time
CHUNK_BYTES = 1 << 20  # what a worker reads at once: bounds memory whatever the lines are
LINE_BY_LINE_BELOW = 32  # lines: a piece Arrow cannot read is cut into PIECES until it is this small
PIECES = 32
ROWS_PER_TABLE = 1 << 16  # line-by-line results are put into Arrow this many at a time
_INTEGER_COLUMNS = ("age", "delayed_days")
_FLAG_COLUMNS = ("into_reablement", "permanent")
_NUMBER_AS_TEXT = ("event_id", "nhs_number", "board", "admission_method", "provider", "discharge_destination",
                   "discharge_method", "delay_attributable_to", "admission_id", "setting")
# How a column may be written, in order: the first is assumed unless the line says otherwise.
_WRITTEN_AS: dict[str, tuple[pa.DataType, ...]] = {
    **{name: (pa.string(),) for name in LOG_COLUMNS},
    **{name: (pa.string(), pa.int64()) for name in _NUMBER_AS_TEXT},
    **{name: (pa.int64(), pa.string()) for name in _INTEGER_COLUMNS},
    **{name: (pa.bool_(), pa.string(), pa.int64()) for name in _FLAG_COLUMNS},
}
_WRITTEN_AS_STRING = r'"{}"[ \t]*:[ \t]*"'
_WRITTEN_AS_NUMBER = r'"{}"[ \t]*:[ \t]*-?[0-9]'
_TYPELESS = pa.schema([("type", pa.string())])
_ODD = ":odd"  # canonical column: the value was written as a string the column checks do not decode
_CANONICAL_SCHEMA = pa.schema(
    [(name, pa.int64() if name in _INTEGER_COLUMNS else pa.bool_() if name in _FLAG_COLUMNS else pa.string())
     for name in LOG_COLUMNS]
    + [(name + _ODD, pa.bool_()) for name in (*_INTEGER_COLUMNS, *_FLAG_COLUMNS)])
_COMPACT_SCHEMA = pa.schema([
    ("line", pa.int64()), ("type", pa.int8()), ("event_id", pa.string()), ("event_id_hash", pa.uint64()),
    ("board", pa.int16()),
    ("ts", pa.float64()), ("patient", pa.uint64()), ("age", pa.int16()), ("admission_method", pa.int8()),
    ("delayed_days", pa.int16()), ("delay_attributable_to", pa.int8()), ("into_reablement", pa.bool_()),
    ("permanent", pa.bool_()),
])
REJECTED_SCHEMA = pa.schema([
    ("line", pa.int64()), ("reason_code", pa.dictionary(pa.int32(), pa.string())),
    ("reason", pa.dictionary(pa.int32(), pa.string())), ("text", pa.string()),
])
_REASONS = tuple(Reason)
_TYPE_INDEX = {record: i for i, record in enumerate(RECORDS.values())}
_PLAIN_TEXT = r"(?s)^[!-~](.*[!-~])?$"  # starts and ends with visible ASCII: str.strip() leaves it alone
# might hold an NHS number (producers/pseudonym.contains_nhs_number decides, through the contract)
_TEN_DIGITS = r"[0-9]{3}[\s.\-]*[0-9]{3}[\s.\-]*[0-9]{4}|[0-9](?:[\s.]{0,3}[0-9]){9}"
_TIMESTAMP = (r"^(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
              r":(?P<second>[0-9]{2})(?P<fraction>\.[0-9]{3}|\.[0-9]{6})?(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})$")
_NHS_WEIGHTS = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2], dtype=np.int64)
_POWERS_OF_TEN = 10 ** np.arange(9, -1, -1, dtype=np.int64)
_MICROS = 1_000_000


@dataclass(frozen=True)
class LogEvents:
    """A log read: its valid events (the oracle's frame, in log order) and every rejected line.

    ``rejected`` has ``line`` (1-based physical line, CSV header = 1), ``reason_code`` (a
    :class:`bcfwatch.core.events.Reason` value), ``reason`` (the message) and ``text`` (the line, NHS numbers
    redacted), in line order. ``ignored_columns`` are CSV columns that are not log columns.
    """

    events: pd.DataFrame
    rejected: pa.Table
    ignored_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class PatientKeys:
    """A bijection of NHS numbers onto 64-bit keys, made afresh for each run."""

    multiplier: int
    mask: int

    @classmethod
    def fresh(cls) -> PatientKeys:
        return cls(secrets.randbits(64) | 1, secrets.randbits(64))

    def of(self, nhs_numbers: np.ndarray) -> np.ndarray:
        numbers = nhs_numbers.astype(np.uint64)
        with np.errstate(over="ignore"):
            return (numbers * np.uint64(self.multiplier)) ^ np.uint64(self.mask)


@dataclass(frozen=True)
class _Reading:
    """What every block needs to know: the clock for 'tomorrow' and the patient keys."""

    latest_micros: int
    patients: PatientKeys


@cache
def _boards() -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """Plan board codes, council codes, and each council's plan board as an index into the first."""
    boards = load_boards()
    plan_codes = tuple(boards.codes)
    councils = tuple(boards.plan_board_of)
    plan_index = {code: i for i, code in enumerate(plan_codes)}
    return plan_codes, councils, np.array([plan_index[boards.plan_board_of[c]] for c in councils], dtype=np.int16)



# --- rejected lines, kept compactly ----------------------------------------------------------------

class _Rejects:
    """Rejected lines of one reading: messages numbered once, texts in Arrow."""

    def __init__(self) -> None:
        self._ids: dict[tuple[Reason, str], int] = {}
        self._reasons: list[int] = []  # per message id: index into _REASONS
        self._messages: list[str] = []
        self._lines: list[np.ndarray] = []
        self._message_ids: list[np.ndarray] = []
        self._texts: list[pa.Array] = []
        self._pending: list[tuple[int, int, str]] = []
        self._unsettled: list[tuple[np.ndarray, np.ndarray, pa.Array]] = []

    def message_id(self, reason: Reason, message: str) -> int:
        key = (reason, message)
        if key not in self._ids:
            self._ids[key] = len(self._messages)
            self._reasons.append(_REASONS.index(reason))
            self._messages.append(message)
        return self._ids[key]

    def add(self, lines: np.ndarray, message_ids: np.ndarray, texts: pa.Array) -> None:
        """Rejected lines of the chunk being read (any order within it; :meth:`settle` orders them)."""
        if len(lines):
            self._unsettled.append((lines.astype(np.int64), message_ids.astype(np.int32), texts))

    def add_line(self, line: int, reason: Reason, message: str, text: str) -> None:
        self._pending.append((line, self.message_id(reason, message), text))
        if len(self._pending) >= ROWS_PER_TABLE:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            lines, ids, texts = zip(*self._pending, strict=True)
            self._pending = []
            self.add(np.array(lines, dtype=np.int64), np.array(ids, dtype=np.int32), pa.array(texts, pa.string()))

    def settle(self) -> None:
        """Put the chunk's rejected lines in line order after those of earlier chunks."""
        self._flush()
        if not self._unsettled:
            return
        lines = np.concatenate([piece[0] for piece in self._unsettled])
        ids = np.concatenate([piece[1] for piece in self._unsettled])
        texts = pa.concat_arrays([piece[2] for piece in self._unsettled])
        self._unsettled = []
        if len(lines) > 1 and (np.diff(lines) < 0).any():
            order = np.argsort(lines, kind="stable")
            lines, ids, texts = lines[order], ids[order], texts.take(pa.array(order))
        self._lines.append(lines)
        self._message_ids.append(ids)
        self._texts.append(texts)

    def table(self) -> pa.Table:
        self.settle()
        if not self._lines:
            return REJECTED_SCHEMA.empty_table()
        ids = np.concatenate(self._message_ids)
        return pa.Table.from_arrays([
            pa.array(np.concatenate(self._lines)),
            pa.DictionaryArray.from_arrays(pa.array(np.array(self._reasons, dtype=np.int32)[ids]),
                                           pa.array([reason.value for reason in _REASONS], pa.string())),
            pa.DictionaryArray.from_arrays(pa.array(ids), pa.array(self._messages, pa.string())),
            pa.chunked_array(self._texts, pa.string()),
        ], schema=REJECTED_SCHEMA)


def rejected_by_reason(rejected: pa.Table) -> dict[str, int]:
    """How many lines were rejected for each reason code, most first."""
    if rejected.num_rows == 0:
        return {}
    counts = pc.value_counts(pc.cast(rejected["reason_code"], pa.string())).to_pylist()
    return {count["values"]: count["counts"] for count in sorted(counts, key=lambda c: (-c["counts"], c["values"]))}


def write_rejected(rejected: pa.Table, path: Path) -> None:
    """The rejected lines as JSON Lines: ``line``, ``reason_code``, ``reason``, ``text``."""
    columns = ["line", "reason_code", "reason", "text"]
    with open(path, "wb") as handle:
        for batch in rejected.select(columns).to_batches(max_chunksize=ROWS_PER_TABLE):
            handle.writelines(orjson.dumps(row) + b"\n" for row in batch.to_pylist())


# --- the contract, one line at a time -------------------------------------------------------------

def _compact(record: type[Event], fields: dict[str, Any], digits: str) -> tuple:
    """The compact columns of an event the contract accepted (patient as its ten digits)."""
    method = fields.get("admission_method")
    attribution = fields.get("delay_attributable_to")
    return (_TYPE_INDEX[record], fields["event_id"], _boards()[0].index(fields["board"]),
            fields["occurred_at"].timestamp(), int(digits), fields["age"],
            -1 if method is None else ADMISSION_METHODS.index(method), fields.get("delayed_days", 0),
            -1 if attribution is None else DELAY_ATTRIBUTIONS.index(attribution),
            fields.get("into_reablement", False), fields.get("permanent", False))


def _contract_table(rows: list[tuple[int, tuple]], reading: _Reading) -> pa.Table:
    """Compact table of (line, contract row) pairs."""
    if not rows:
        return _COMPACT_SCHEMA.empty_table()
    lines = [line for line, _ in rows]
    columns = list(zip(*(row for _, row in rows), strict=True))
    columns[4] = reading.patients.of(np.array(columns[4], dtype=np.int64))
    columns.insert(2, text_hashes(pa.array(columns[1], pa.string())))
    arrays = [pa.array(lines, pa.int64())] + [pa.array(values, field.type)
                                             for values, field in zip(columns, list(_COMPACT_SCHEMA)[1:], strict=True)]
    return pa.Table.from_arrays(arrays, schema=_COMPACT_SCHEMA)


def _line_by_line(lines: Iterable[Any], reading: _Reading, rejects: _Rejects) -> list[pa.Table]:
    """Events (compact, with their line) of parsed log lines through :func:`check_line`; rejections to ``rejects``."""
    boards = load_boards()
    tables, rows = [], []
    for line in lines:
        try:
            event = _compact(*check_line(line, boards))
        except InvalidEvent as error:
            rejects.add_line(line.number, error.reason, str(error), rejected_text(line.raw))
            continue
        rows.append((line.number, event))
        if len(rows) >= ROWS_PER_TABLE:
            tables.append(_contract_table(rows, reading))
            rows = []
    tables.append(_contract_table(rows, reading))
    return tables


_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


@cache
def _hash_powers(length: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.cumprod(np.full(length, _HASH_MULTIPLIER, dtype=np.uint64), dtype=np.uint64)


def text_hashes(text: pa.Array) -> np.ndarray:
    """A 64-bit polynomial hash of each string's UTF-8 bytes (null as empty).

    Used to find repeated event ids cheaply; equal hashes are then compared as text, so a collision
    never merges two events.
    """
    text = pc.fill_null(text, "")
    if len(text) == 0:
        return np.zeros(0, dtype=np.uint64)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset:text.offset + len(text) + 1]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].astype(np.uint64)
    lengths = np.diff(offsets)
    position = np.arange(len(data)) - np.repeat(offsets[:-1] - offsets[0], lengths)
    with np.errstate(over="ignore"):
        weighted = (data + np.uint64(1)) * _hash_powers(int(lengths.max(initial=0)) + 1)[position]
        # A zero sentinel lets every start index be valid as it is: clipping the starts of trailing empty
        # strings to the last byte cut the string before them short (a wrong hash, so a missed duplicate).
        weighted = np.append(weighted, np.uint64(0))
        hashes = np.add.reduceat(weighted, offsets[:-1] - offsets[0])
    return np.where(lengths > 0, hashes, np.uint64(0)).astype(np.uint64) ^ lengths.astype(np.uint64)


def _numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False) if isinstance(array, pa.Array) else np.asarray(array)


def _index_in(column: pa.ChunkedArray, values: tuple[str, ...]) -> np.ndarray:
    """Position of each value in ``values``, -1 when absent or null."""
    return _numpy(pc.fill_null(pc.index_in(column, value_set=pa.array(values)), -1)).astype(np.int64)


def _matches(column: pa.ChunkedArray, pattern: str) -> np.ndarray:
    return _numpy(pc.fill_null(pc.match_substring_regex(column, pattern), False)).astype(bool)


def _integers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(value with nulls as 0, present)."""
    return _numpy(pc.fill_null(column, 0)).astype(np.int64), _numpy(pc.is_valid(column)).astype(bool)


def _flags(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(true, present)."""
    return _numpy(pc.fill_null(column, False)).astype(bool), _numpy(pc.is_valid(column)).astype(bool)


def _blank(column: pa.ChunkedArray) -> np.ndarray:
    """Null or the empty string (the contract's 'missing')."""
    return _numpy(pc.fill_null(pc.equal(column, ""), True)).astype(bool)


def _nhs_numbers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(ten digits as an integer, valid) for NHS numbers written with digits, spaces and hyphens only."""
    shaped = _matches(column, r"^[0-9 -]*$")
    digits = pc.replace_substring(pc.replace_substring(column, " ", ""), "-", "")
    shaped &= _matches(digits, r"^[0-9]{10}$")
    numbers = _numpy(pc.cast(pc.if_else(pa.array(shaped), digits, "0"), pa.int64())).astype(np.int64)
    each_digit = (numbers[:, None] // _POWERS_OF_TEN) % 10
    remainder = (each_digit[:, :9] @ _NHS_WEIGHTS) % 11
    check = np.where(remainder == 0, 0, 11 - remainder)
    return numbers, shaped & (check == each_digit[:, 9])  # a check digit of 10 never matches


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    year = year - (month <= 2)
    era = np.floor_divide(year, 400)
    year_of_era = year - era * 400
    day_of_year = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _timestamps(column: pa.ChunkedArray, latest_micros: int) -> tuple[np.ndarray, np.ndarray]:
    """(UTC microseconds since the epoch, valid) for timestamps in the common ISO 8601 shape."""
    shaped = _matches(column, _TIMESTAMP)
    text = pc.if_else(pa.array(shaped), column, "2000-01-01T00:00:00+00:00")

    def number(text: pa.Array, start: int, stop: int) -> np.ndarray:
        digits = pc.utf8_rpad(pc.utf8_slice_codeunits(text, start, stop), stop - start, "0")
        return _numpy(pc.cast(digits, pa.int64())).astype(np.int64)

    year, month, day = number(text, 0, 4), number(text, 5, 7), number(text, 8, 10)
    hour, minute, second = number(text, 11, 13), number(text, 14, 16), number(text, 17, 19)
    zone = pc.if_else(pc.ends_with(text, "Z"), "+00:00", pc.utf8_slice_codeunits(text, -6))
    zone_hours, zone_minutes = number(zone, 1, 3), number(zone, 4, 6)
    sign = np.where(_numpy(pc.starts_with(zone, "-")).astype(bool), -1, 1)
    micros = np.zeros(len(year), dtype=np.int64)
    with_fraction = np.flatnonzero(~np.isin(_numpy(pc.utf8_length(text)), (20, 25)))
    if len(with_fraction):  # '.fff' or '.ffffff' after the seconds
        fraction = pc.struct_field(pc.extract_regex(text.take(pa.array(with_fraction)), _TIMESTAMP), "fraction")
        micros[with_fraction] = number(fraction, 1, 7)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
    last_day = month_days[np.clip(month, 1, 12) - 1] + ((month == 2) & leap)
    shaped &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= last_day)
    shaped &= (hour <= 23) & (minute <= 59) & (second <= 59) & (zone_hours <= 23) & (zone_minutes <= 59)
    seconds = (_days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
               - sign * (zone_hours * 3_600 + zone_minutes * 60))
    stamp = seconds * _MICROS + micros
    earliest = int(earliest_moment().timestamp()) * _MICROS
    return stamp, shaped & (stamp >= earliest) & (stamp <= latest_micros)



# --- the contract's order, a column at a time -------------------------------------------------------

@cache
def _base_rows() -> dict[str, dict[str, Any]]:
    """A valid row of each type: one field of it replaced shows what the contract says of that value."""
    common = {"event_id": "e", "board": _boards()[1][0], "occurred_at": earliest_moment().isoformat(),
              "nhs_number": "9434765919", "age": 70}
    return {
        "admission": {**common, "type": "admission", "admission_method": "21", "provider": "P"},
        "discharge": {**common, "type": "discharge", "discharge_destination": "19", "discharge_method": "1",
                      "delayed_days": 1, "delay_attributable_to": "nhs", "into_reablement": False},
        "care_home_placement": {**common, "type": "care_home_placement", "setting": "nursing", "permanent": False},
    }


class _Cascade:
    """Each row's fate as the contract's checks are walked in order: open, rejected (message id) or slow."""

    def __init__(self, rows: int, rejects: _Rejects) -> None:
        self.open = np.ones(rows, dtype=bool)
        self.plain = np.ones(rows, dtype=bool)  # every check so far plainly passed
        self.slow = np.zeros(rows, dtype=bool)
        self.rejected = np.full(rows, -1, dtype=np.int32)
        self.rejects = rejects
        self._said: dict[tuple[str, str, Any], int] = {}

    def _contract_says(self, event_type: str, name: str, value: Any) -> int:
        """Message id of the contract's rejection of ``value`` in field ``name``, -1 if it passes."""
        key = (event_type, name, value)
        if key not in self._said:
            row = {**_base_rows()[event_type], name: value}
            try:
                check_row(row, load_boards())
            except InvalidEvent as error:
                self._said[key] = self.rejects.message_id(error.reason, str(error))
            else:
                self._said[key] = -1
        return self._said[key]

    def typeless(self) -> int:
        """Message id of the contract's rejection of an object without a type."""
        return self._contract_says("admission", "type", None)

    def check(self, column: pa.Array, plainly: np.ndarray, name: str, event_type: str = "admission",
              applies: np.ndarray | None = None, odd: np.ndarray | None = None, ask: bool = True) -> None:
        """One check: open rows ``plainly`` passing go on; the contract decides the others (once per value),
        or, when ``ask`` is false or the value is ``odd``, they go line by line."""
        others = self.open & ~plainly if applies is None else self.open & applies & ~plainly
        undecided = others & odd if odd is not None else np.zeros_like(others)
        if not ask:
            undecided = others
        self.slow |= undecided
        self.open &= ~undecided
        others &= ~undecided
        index = np.flatnonzero(others)
        if not len(index):
            return
        values = column.take(pa.array(index))
        distinct = pc.unique(values)
        said = np.array([self._contract_says(event_type, name, value) for value in distinct.to_pylist()],
                        dtype=np.int32)
        ids = said[_numpy(pc.index_in(values, value_set=distinct, skip_nulls=False)).astype(np.int64)]
        failed = ids >= 0
        self.rejected[index[failed]] = ids[failed]
        self.open[index[failed]] = False
        self.plain[index[~failed]] = False

    def finish(self) -> np.ndarray:
        """Rows accepted as plainly valid; open rows that are not go line by line."""
        self.slow |= self.open & ~self.plain
        return self.open & self.plain


def _classify(rows: pa.Table, reading: _Reading, rejects: _Rejects) -> tuple[pa.Table, _Cascade, np.ndarray]:
    """The compact columns of the rows with a known type, every row's fate, and which rows are valid events
    (the compact table's ``line`` column is the row's position in ``rows``)."""
    cascade = _Cascade(rows.num_rows, rejects)
    event_type = _index_in(rows["type"], EVENT_TYPES)
    cascade.check(rows["type"], event_type >= 0, "type")
    known = np.flatnonzero(cascade.open)  # the other checks only for these: rejecting junk stays cheap
    compact, rest, valid = _classify_known(rows.take(pa.array(known)), event_type[known], reading, rejects)
    cascade.rejected[known] = rest.rejected
    cascade.slow[known] = rest.slow
    cascade.open[known] = rest.open
    return compact.set_column(0, "line", pa.array(known)), cascade, valid


def _classify_known(rows: pa.Table, event_type: np.ndarray, reading: _Reading,
                    rejects: _Rejects) -> tuple[pa.Table, _Cascade, np.ndarray]:
    _, councils, plan_board_of = _boards()
    cascade = _Cascade(rows.num_rows, rejects)

    def odd(name: str) -> np.ndarray:
        return _numpy(rows[name + _ODD]).astype(bool)

    patient, valid_patient = _nhs_numbers(rows["nhs_number"])
    cascade.check(rows["nhs_number"], valid_patient, "nhs_number")
    council = _index_in(rows["board"], councils)
    cascade.check(rows["board"], council >= 0, "board")
    age, has_age = _integers(rows["age"])
    cascade.check(rows["age"], has_age & (age >= 0) & (age <= MAX_AGE), "age", odd=odd("age"))
    cascade.check(rows["event_id"], _matches(rows["event_id"], _PLAIN_TEXT) & ~_matches(rows["event_id"], _TEN_DIGITS),
                  "event_id")
    stamp, valid_stamp = _timestamps(rows["occurred_at"], reading.latest_micros)
    cascade.check(rows["occurred_at"], valid_stamp, "occurred_at")

    is_admission, is_discharge, is_placement = event_type == 0, event_type == 1, event_type == 2
    method = _index_in(pc.ascii_upper(rows["admission_method"]), ADMISSION_METHODS)
    cascade.check(rows["admission_method"], method >= 0, "admission_method", "admission", is_admission)
    cascade.check(rows["provider"], _matches(rows["provider"], _PLAIN_TEXT) & ~_matches(rows["provider"], _TEN_DIGITS),
                  "provider", "admission", is_admission)

    discharge = "discharge"
    destinations = _index_in(rows["discharge_destination"], tuple(codes.DISCHARGE_DESTINATIONS))
    cascade.check(rows["discharge_destination"], destinations >= 0, "discharge_destination", discharge, is_discharge)
    discharge_method = _blank(rows["discharge_method"]) | (
        _index_in(rows["discharge_method"], tuple(codes.DISCHARGE_METHODS)) >= 0)
    cascade.check(rows["discharge_method"], discharge_method, "discharge_method", discharge, is_discharge)
    delayed, _ = _integers(rows["delayed_days"])  # missing is 0 days, as in the contract
    cascade.check(rows["delayed_days"], (delayed >= 0) & (delayed <= 366), "delayed_days", discharge, is_discharge,
                  odd=odd("delayed_days"))
    attribution = _index_in(rows["delay_attributable_to"], DELAY_ATTRIBUTIONS)
    cascade.check(rows["delay_attributable_to"],
                  (attribution >= 0) | (_blank(rows["delay_attributable_to"]) & (delayed == 0)),
                  "delay_attributable_to", discharge, is_discharge, ask=False)  # depends on delayed_days
    into_reablement, has_reablement = _flags(rows["into_reablement"])
    cascade.check(rows["into_reablement"], has_reablement, "into_reablement", discharge, is_discharge,
                  odd=odd("into_reablement"))
    cascade.check(rows["admission_id"], ~_matches(rows["admission_id"], _TEN_DIGITS), "admission_id", discharge,
                  is_discharge)

    placement = "care_home_placement"
    setting = _index_in(rows["setting"], codes.CARE_HOME_SETTINGS)
    cascade.check(rows["setting"], setting >= 0, "setting", placement, is_placement)
    permanent, has_permanent = _flags(rows["permanent"])
    cascade.check(rows["permanent"], has_permanent, "permanent", placement, is_placement, odd=odd("permanent"))
    valid = cascade.finish()

    compact = pa.Table.from_arrays([
        pa.array(np.arange(rows.num_rows, dtype=np.int64)),
        pa.array(event_type.astype(np.int8)),
        event_id := pc.cast(rows["event_id"], pa.string()).combine_chunks(),
        pa.array(text_hashes(event_id)),
        pa.array(plan_board_of[np.where(council >= 0, council, 0)]),
        pa.array(stamp / _MICROS),
        pa.array(reading.patients.of(patient)),
        pa.array(age.astype(np.int16)),
        pa.array(np.where(is_admission, method, -1).astype(np.int8)),
        pa.array(np.where(is_discharge, delayed, 0).astype(np.int16)),
        pa.array(np.where(is_discharge, attribution, -1).astype(np.int8)),
        pa.array(is_discharge & into_reablement),
        pa.array(is_placement & permanent),
    ], schema=_COMPACT_SCHEMA)
    return compact, cascade, valid


def _canonical(rows: pa.Table) -> pa.Table:
    """Rows read with some columns typed as written, in the column checks' types (``:odd`` marks strings
    in number or flag columns that are not plainly a number or a flag)."""
    columns, odd = [], []
    for name in LOG_COLUMNS:
        column = rows[name].combine_chunks()
        if name in _INTEGER_COLUMNS:
            if pa.types.is_string(column.type):
                plain = pc.fill_null(pc.match_substring_regex(column, r"^-?[0-9]{1,15}$"), False)
                odd.append(pc.and_(pc.is_valid(column), pc.invert(plain)))
                column = pc.cast(pc.if_else(plain, column, pa.scalar(None, pa.string())), pa.int64())
            else:
                odd.append(pa.array(np.zeros(len(column), dtype=bool)))
        elif name in _FLAG_COLUMNS:
            if pa.types.is_boolean(column.type):
                plain = pc.is_valid(column)
                odd.append(pa.array(np.zeros(len(column), dtype=bool)))
            else:
                text = pa.types.is_string(column.type)
                words, true = (("true", "false", "1", "0"), ("true", "1")) if text else ((1, 0), (1,))
                plain = pc.fill_null(pc.is_in(column, value_set=pa.array(words, column.type)), False)
                odd.append(pc.and_(pc.is_valid(column), pc.invert(plain)))
                truth = pc.is_in(column, value_set=pa.array(true, column.type))
                column = pc.if_else(plain, truth, pa.scalar(None, pa.bool_()))
        elif not pa.types.is_string(column.type):
            column = pc.cast(column, pa.string())
        columns.append(column)
    return pa.Table.from_arrays(columns + odd, schema=_CANONICAL_SCHEMA)


# --- chunks of the log: Arrow where it reads lines as the contract does, line by line where not --------

def _segments(chunk: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of the lines of a chunk, each end before its ``\\n`` or ``\\r\\n``."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(chunk)]])
    if starts[-1] == len(chunk):
        starts, ends = starts[:-1], ends[:-1]
    carriage = (ends > starts) & (data[np.maximum(ends - 1, 0)] == 13) if len(data) else ends > starts
    return starts.astype(np.int64), (ends - carriage).astype(np.int64)


def _count(mask: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many of ``mask`` are set in each [start, end)."""
    where = np.flatnonzero(mask)
    return np.searchsorted(where, ends) - np.searchsorted(where, starts)


def _for_arrow(chunk: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines Arrow reads exactly as the contract's parser does: one flat JSON object (``{`` first,
    ``}`` last, no other ``{`` or ``[``: no nesting orjson would refuse, no ``null`` or two objects),
    no carriage return inside, valid UTF-8 (Arrow lets invalid bytes through in fields it ignores)."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    if not len(data):
        return np.zeros(len(starts), dtype=bool)
    ok = (ends - starts >= 2) & (data[starts.clip(0, len(data) - 1)] == ord("{"))
    ok &= data[(ends - 1).clip(0, len(data) - 1)] == ord("}")
    ok &= _count((data == ord("{")) | (data == ord("[")), starts, ends) == 1
    ok &= _count(data == 13, starts, ends) == 0
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            for i in np.flatnonzero(ok & (_count(data >= 0x80, starts, ends) > 0)):
                try:
                    chunk[starts[i]:ends[i]].decode("utf-8")
                except UnicodeDecodeError:
                    ok[i] = False
    return ok


@cache
def _written_as_patterns() -> tuple[str, list[tuple[str, int, str]]]:
    """A pattern any line writing a column other than its usual way matches, and per (column, way) its own."""
    ways = []
    for name, types in _WRITTEN_AS.items():
        for way, kind in enumerate(types[1:], start=1):
            ways.append((name, way, (_WRITTEN_AS_STRING if kind == pa.string() else _WRITTEN_AS_NUMBER).format(name)))
    return "|".join(f"(?:{pattern})" for _, _, pattern in ways), ways


def _lines_array(chunk: bytes, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The lines (given by offsets, in order) as an Arrow binary array over the chunk's bytes."""
    offsets = np.empty(2 * len(starts), dtype=np.int32)
    offsets[0::2], offsets[1::2] = starts, ends
    every = pa.Array.from_buffers(pa.binary(), max(2 * len(starts) - 1, 0),
                                  [None, pa.py_buffer(offsets), pa.py_buffer(chunk)])
    return every.take(pa.array(np.arange(0, 2 * len(starts), 2)))


def _groups(chunk: bytes, starts: np.ndarray, ends: np.ndarray,
            lines: np.ndarray) -> Iterable[tuple[np.ndarray, pa.Schema]]:
    """``lines`` grouped by how their fields are written, with the schema to read each group."""
    any_way, ways = _written_as_patterns()
    signature = np.zeros(len(lines), dtype=np.int64)
    if len(lines):
        texts = _lines_array(chunk, starts[lines], ends[lines])
        typeless = ~_numpy(pc.match_substring_regex(texts, r'"type"|\\')).astype(bool)
        signature[typeless] = -1
        unusual = np.flatnonzero(_numpy(pc.match_substring_regex(texts, any_way)).astype(bool))
        if len(unusual):
            texts = texts.take(pa.array(unusual))
            seen = np.zeros((len(unusual), len(LOG_COLUMNS)), dtype=np.int64)
            for name, way, pattern in reversed(ways):  # the first matching way wins
                column = LOG_COLUMNS.index(name)
                seen[_numpy(pc.match_substring_regex(texts, pattern)).astype(bool), column] = way
            written = seen @ (3 ** np.arange(len(LOG_COLUMNS), dtype=np.int64))
            signature[unusual] = np.where(signature[unusual] < 0, -1, written)
    for value in np.unique(signature):
        if value < 0:  # no "type" key (nor any escape that could spell one): read only to check the JSON
            yield lines[signature == value], _TYPELESS
            continue
        written = [(value // 3 ** i) % 3 for i in range(len(LOG_COLUMNS))]
        schema = pa.schema([(name, _WRITTEN_AS[name][way]) for name, way in zip(LOG_COLUMNS, written, strict=True)])
        yield lines[signature == value], schema


def _gather(chunk: bytes, starts: np.ndarray, ends: np.ndarray) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The given lines copied one after another, each ended by ``\\n``, and their offsets in the copy."""
    lengths = ends - starts
    new_starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
    new_ends = new_starts + lengths
    copy = np.full(int((lengths + 1).sum()), ord("\n"), dtype=np.uint8)
    target = np.arange(int(lengths.sum()), dtype=np.int64)
    target += np.repeat(new_starts - (np.cumsum(lengths) - lengths), lengths)  # skip the added newlines
    copy[target] = np.frombuffer(chunk, dtype=np.uint8)[target + np.repeat(starts - new_starts, lengths)]
    return copy.tobytes(), new_starts, new_ends


def _read_with_arrow(piece: pa.Buffer, lines: int, schema: pa.Schema) -> tuple[pa.Table | None, int | None]:
    """Arrow's rows for a piece (None if it cannot read them), and the line it stumbled on when it says."""
    try:
        rows = pj.read_json(pa.BufferReader(piece),
                            read_options=pj.ReadOptions(use_threads=False, block_size=piece.size + 1),
                            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as error:
        found = _ROW_IN_ERROR.search(str(error))
        return None, int(found.group(1)) if found and int(found.group(1)) < lines else None
    return (rows, None) if rows.num_rows == lines else (None, None)


_ROW_IN_ERROR = re.compile(r" in row (\d+)")


def _read_group(piece: bytes, starts: np.ndarray, schema: pa.Schema) -> tuple[list[pa.Table], list[np.ndarray],
                                                                              list[int]]:
    """Arrow's tables of a piece of whole lines (with each table's line positions) and the lines left over.

    A part Arrow refuses is retried either side of the line it names, or cut in ``PIECES``; parts under
    ``LINE_BY_LINE_BELOW`` lines are left over. Iterative, and each line is read a bounded number of times.
    """
    buffer = pa.py_buffer(piece)
    tables, positions, left = [], [], []
    work = [(0, len(starts), True)]
    while work:
        lo, hi, trust = work.pop()
        start, stop = int(starts[lo]), int(starts[hi]) if hi < len(starts) else len(piece)
        rows, stumbled = _read_with_arrow(buffer.slice(start, stop - start), hi - lo, schema)
        if rows is not None:
            tables.append(rows)
            positions.append(np.arange(lo, hi, dtype=np.int64))
        elif hi - lo <= LINE_BY_LINE_BELOW:
            left.extend(range(lo, hi))
        elif trust and stumbled is not None:
            left.append(lo + stumbled)
            work += [(lo, lo + stumbled, False)] * (stumbled > 0) + [(lo + stumbled + 1, hi, False)] * (
                lo + stumbled + 1 < hi)
        else:
            for cut in np.array_split(np.arange(lo, hi), PIECES):
                if len(cut):
                    work.append((int(cut[0]), int(cut[-1]) + 1, True))
    return tables, positions, left


def _texts(chunk: bytes, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """:func:`producers.logformat.rejected_text` of the given lines (in order), in Arrow: plain ASCII lines
    with no run of three digits and within the length limit are kept as they are, the rest go through it."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    lines = _lines_array(chunk, starts, ends)
    if not len(starts):
        return pa.array([], pa.string())
    digit = (data >= ord("0")) & (data <= ord("9"))
    three = digit[:-2] & digit[1:-1] & digit[2:]  # three digits from here on: maybe part of an NHS number
    special = ((_count(data >= 0x80, starts, ends) > 0) | (ends - starts > MAX_REJECTED_TEXT)
               | (_count(three, starts, np.maximum(ends - 2, starts)) > 0))
    if special.any():
        index = np.flatnonzero(special)
        kept = [rejected_text(chunk[starts[i]:ends[i]]).encode() for i in index]
        lines = pc.replace_with_mask(lines, pa.array(special), pa.array(kept, pa.binary()))
    return lines.cast(pa.string())


def _chunk_events(chunk: bytes, first: int, reading: _Reading, rejects: _Rejects) -> list[pa.Table]:
    """Compact events (with their line ordinal, counted from ``first``) of one chunk of whole lines."""
    starts, ends = _segments(chunk)
    arrow_lines = np.flatnonzero(_for_arrow(chunk, starts, ends))
    slow = [np.flatnonzero(~np.isin(np.arange(len(starts)), arrow_lines))]
    tables, lines, typeless = [], [], []
    for group, schema in _groups(chunk, starts, ends, arrow_lines):
        piece, piece_starts, _ = _gather(chunk, starts[group], ends[group])
        read, positions, left = _read_group(piece, piece_starts, schema)
        if schema == _TYPELESS:
            typeless += [group[p] for p in positions]
        else:
            tables += [_canonical(rows) for rows in read]
            lines += [group[p] for p in positions]
        slow.append(group[np.array(left, dtype=np.int64)])
    events = []
    if tables:
        compact, cascade, valid = _classify(pa.concat_tables(tables), reading, rejects)
        line = np.concatenate(lines)
        positions = compact["line"].to_numpy()
        events.append(compact.set_column(0, "line", pa.array(line[positions] + first)).filter(pa.array(valid)))
        refused = np.flatnonzero(cascade.rejected >= 0)
        order = np.argsort(line[refused])
        refused_lines = line[refused][order]
        rejects.add(refused_lines + first, cascade.rejected[refused][order],
                    _texts(chunk, starts[refused_lines], ends[refused_lines]))
        slow.append(line[cascade.slow])
    for group in typeless:  # objects without a type: the contract's unknown type, without reading more
        rejects.add(group + first, np.full(len(group), _Cascade(0, rejects).typeless(), dtype=np.int32),
                    _texts(chunk, starts[group], ends[group]))
    slow_lines = np.sort(np.concatenate(slow))
    parsed = (line for i in slow_lines
              if (line := parse_json_line(first + int(i), chunk[starts[i]:ends[i]])) is not None)
    events += _line_by_line(parsed, reading, rejects)
    rejects.settle()
    return events


def _chunks(block: bytes, size: int) -> Iterable[tuple[int, int]]:
    """Byte ranges of about ``size`` of a block, each of whole lines."""
    start = 0
    while start < len(block):
        cut = block.find(b"\n", start + size - 1) if start + size < len(block) else -1
        stop = len(block) if cut < 0 else cut + 1
        yield start, stop
        start = stop


def _block_events(path: str, start: int, end: int, reading: _Reading) -> tuple[pa.Table, pa.Table, int]:
    """Compact valid events and the rejected lines of one block of whole lines, in line order, with line
    ordinals counted from 0 at the block's first line; and the block's number of newlines."""
    with open(path, "rb") as handle:
        handle.seek(start)
        block = handle.read(end - start)
    rejects, tables, first = _Rejects(), [], 0
    for lo, hi in _chunks(block, CHUNK_BYTES):
        chunk = block[lo:hi]
        tables += _chunk_events(chunk, first, reading, rejects)
        first += chunk.count(b"\n")
    events = pa.concat_tables(tables) if tables else _COMPACT_SCHEMA.empty_table()
    return events.take(pc.sort_indices(events["line"])).drop_columns(["line"]), rejects.table(), first


def _blocks(path: Path, block_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``block_bytes``, each starting at a line start (after a byte-order mark)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        cuts = [len(BOM) if handle.read(len(BOM)) == BOM else 0]
        while cuts[-1] + block_bytes < size:
            handle.seek(cuts[-1] + block_bytes)
            handle.readline()
            cuts.append(handle.tell())
    if cuts[-1] < size:
        cuts.append(size)
    return list(itertools.pairwise(cuts))
def _as_frame(events: pa.Table) -> pd.DataFrame:
    """The oracle's event frame: categories for codes, the event id as Arrow-backed text."""
    plan_codes = _boards()[0]

    def codes_of(name: str) -> np.ndarray:
        return events[name].to_numpy()

    return pd.DataFrame({
        "type": pd.Categorical.from_codes(codes_of("type"), EVENT_TYPES),
        "event_id": pd.Series(events["event_id"], dtype=pd.ArrowDtype(pa.string())).array,
        "event_id_hash": codes_of("event_id_hash"),
        "board": pd.Categorical.from_codes(codes_of("board"), plan_codes),
        "ts": codes_of("ts"),
        "patient": codes_of("patient"),
        "age": codes_of("age"),
        "admission_method": pd.Categorical.from_codes(codes_of("admission_method"), ADMISSION_METHODS),
        "delayed_days": codes_of("delayed_days"),
        "delay_attributable_to": pd.Categorical.from_codes(codes_of("delay_attributable_to"), DELAY_ATTRIBUTIONS),
        "into_reablement": codes_of("into_reablement"),
        "permanent": codes_of("permanent"),
    }, columns=list(EVENT_COLUMNS))


def _reading(patients: PatientKeys | None) -> _Reading:
    latest = datetime.now(UTC) + timedelta(days=1)
    return _Reading((latest - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1),
                    patients or PatientKeys.fresh())



def _with_lines_from(rejected: pa.Table, offset: int) -> pa.Table:
    return rejected.set_column(0, "line", pc.add(rejected["line"], pa.scalar(offset, pa.int64())))


def read_log_events(path: Path, progress: Callable[[int, int], None] | None = None, processes: int | None = None,
                    block_bytes: int = BLOCK_BYTES, patients: PatientKeys | None = None) -> LogEvents:
    """The valid events of a log in log order (the order replay produces them) and every rejected line.

    ``progress(bytes_read, total_bytes)`` is called as blocks finish. JSON Lines are read in blocks by
    ``processes`` worker processes (one per core by default); CSV goes through the contract line by line
    (its header is checked first: :class:`producers.logformat.LogFormatError`).
    """
    total = path.stat().st_size
    if is_csv(path):
        read = read_log_events_line_by_line(path, patients)
        if progress is not None:
            progress(total, total)
        return read
    reading = _reading(patients)
    blocks = _blocks(path, block_bytes)
    processes = max(1, min(processes or os.cpu_count() or 1, len(blocks)))
    done, lines_before, tables, rejected = 0, 0, [], []
    with (ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) if processes > 1
          else contextlib.nullcontext()) as pool:
        read_block = partial(_block_events, str(path), reading=reading)
        results = pool.map(read_block, *zip(*blocks, strict=True)) if pool else itertools.starmap(read_block, blocks)
        for (start, end), (events, refused, newlines) in zip(blocks, results, strict=True):  # in log order
            tables.append(events)
            rejected.append(_with_lines_from(refused, lines_before + 1))
            lines_before += newlines
            done += end - start
            if progress is not None:
                progress(done, total)
    events = pa.concat_tables(tables) if tables else _COMPACT_SCHEMA.empty_table().drop_columns(["line"])
    return LogEvents(_as_frame(events), pa.concat_tables(rejected) if rejected else REJECTED_SCHEMA.empty_table())


def read_events(path: Path, progress: Callable[[int, int], None] | None = None, processes: int | None = None,
                block_bytes: int = BLOCK_BYTES, patients: PatientKeys | None = None) -> pd.DataFrame:
    """The valid events of a log in log order; refused lines are left out (:func:`read_log_events` has them)."""
    return read_log_events(path, progress, processes, block_bytes, patients).events


def read_log_events_line_by_line(path: Path, patients: PatientKeys | None = None) -> LogEvents:
    """The same events and rejections through :func:`producers.logformat.check_line` one line at a time:
    the reference the fast path is tested against (and the way CSV logs are read)."""
    reading = _reading(patients)
    ignored = read_csv_header(path).ignored if is_csv(path) else ()
    rejects = _Rejects()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LogFormatWarning)  # reported as ignored_columns
        tables = _line_by_line(read_log(path), reading, rejects)
    events = pa.concat_tables(tables).drop_columns(["line"])
    return LogEvents(_as_frame(events), rejects.table(), ignored)


def read_events_line_by_line(path: Path, patients: PatientKeys | None = None) -> pd.DataFrame:
    """The events of :func:`read_log_events_line_by_line`."""
    return read_log_events_line_by_line(path, patients).events
