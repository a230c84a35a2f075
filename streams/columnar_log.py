"""An event log read column by column: the batch side's fast way to the same valid events.

The contract is :func:`streams.records.validated_fields`, one event at a time.
Checking a national year (12M lines) that way takes minutes, so the batch side
(the oracle, ``bcfwatch backtest`` and ``report``) reads JSON Lines with Arrow's
JSON reader in blocks, one block per worker process at a time, and checks whole
columns at once.

The column checks are *conservative*: a row is accepted only when it is plainly
valid (codes spelt exactly, text with no surrounding space, NHS numbers of
digits, spaces and hyphens, timestamps shaped ``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]``
with ``Z`` or ``+HH:MM``). Anything else goes back through the contract, one
line at a time, exactly as ``bcfwatch replay`` reads it (``producers/logformat``):
rows the column checks refuse, pieces Arrow cannot read (bad JSON, a number where
text belongs, duplicate keys), and pieces where Arrow's rows might not match
the lines one to one (blank or indented lines, a byte-order mark, stray carriage
returns, invalid UTF-8). Arrow names the line it stumbled on, or pieces it cannot read are cut
smaller, so one bad line costs a few dozen lines of slow reading at most.
The result is therefore the contract's, line for line; ``tests/test_columnar_log``
proves it on every malformed kind and on hand-written edge cases.

Patients are kept as 64-bit keys: the NHS number's ten digits mixed by a random
odd multiplier and mask made for the run (a bijection, so two events share a key
exactly when they share an NHS number). Keys never leave the process that made
them into any output; raw NHS numbers are not kept.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import multiprocessing
import os
import re
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
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

from bcfwatch.boards import load_boards
from producers.logformat import LOG_COLUMNS, read_log
from producers.pseudonym import normalise_nhs_number
from streams import codes
from streams.records import MAX_AGE, RECORDS, InvalidEvent, earliest_moment, validated_fields

EVENT_TYPES = tuple(RECORDS)
ADMISSION_METHODS = tuple(sorted(codes.ADMISSION_METHODS))
DELAY_ATTRIBUTIONS = codes.DELAY_ATTRIBUTIONS
EVENT_COLUMNS = ("type", "event_id", "event_id_hash", "board", "ts", "patient", "age", "admission_method",
                 "delayed_days", "delay_attributable_to", "into_reablement", "permanent")
BLOCK_BYTES = 32 << 20
LINE_BY_LINE_BELOW = 32  # lines: a piece Arrow cannot read is cut into PIECES until it is this small
PIECES = 32
PIECE_LINES = 2048
_INTEGER_COLUMNS = {"age", "delayed_days"}
_FLAG_COLUMNS = {"into_reablement", "permanent"}
LOG_SCHEMA = pa.schema([
    (name, pa.int64() if name in _INTEGER_COLUMNS else pa.bool_() if name in _FLAG_COLUMNS else pa.string())
    for name in LOG_COLUMNS
])
_COMPACT_SCHEMA = pa.schema([
    ("line", pa.int64()), ("type", pa.int8()), ("event_id", pa.string()), ("event_id_hash", pa.uint64()),
    ("board", pa.int16()),
    ("ts", pa.float64()), ("patient", pa.uint64()), ("age", pa.int16()), ("admission_method", pa.int8()),
    ("delayed_days", pa.int16()), ("delay_attributable_to", pa.int8()), ("into_reablement", pa.bool_()),
    ("permanent", pa.bool_()),
])
_PARSE_OPTIONS = pj.ParseOptions(explicit_schema=LOG_SCHEMA, unexpected_field_behavior="ignore")
_PLACEHOLDER_PSEUDONYM = "0" * 64  # the contract checks the shape of a pseudonym; the key is kept apart
_ROW_IN_ERROR = re.compile(r" in row (\d+)")
_PLAIN_TEXT = r"(?s)^[!-~](.*[!-~])?$"  # starts and ends with visible ASCII: str.strip() leaves it alone
_TIMESTAMP = (r"^(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
              r":(?P<second>[0-9]{2})(?P<fraction>\.[0-9]{3}|\.[0-9]{6})?(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})$")
_NHS_WEIGHTS = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2], dtype=np.int64)
_POWERS_OF_TEN = 10 ** np.arange(9, -1, -1, dtype=np.int64)
_MICROS = 1_000_000


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


# --- the contract, one line at a time -------------------------------------------------------------

def _contract_row(row: dict[str, Any]) -> tuple | None:
    """The compact columns of a log row the contract accepts (patient as its ten digits); None if refused."""
    payload = {k: v for k, v in row.items() if k != "nhs_number"}
    payload["patient"] = _PLACEHOLDER_PSEUDONYM
    try:
        digits = int(normalise_nhs_number(row.get("nhs_number")))
        _, fields = validated_fields(payload, load_boards())
    except (InvalidEvent, ValueError):
        return None
    method = fields.get("admission_method")
    attribution = fields.get("delay_attributable_to")
    return (EVENT_TYPES.index(payload["type"]), fields["event_id"], _boards()[0].index(fields["board"]),
            fields["occurred_at"].timestamp(), digits, fields["age"],
            -1 if method is None else ADMISSION_METHODS.index(method), fields.get("delayed_days", 0),
            -1 if attribution is None else DELAY_ATTRIBUTIONS.index(attribution),
            fields.get("into_reablement", False), fields.get("permanent", False))


def _contract_table(rows: list[tuple[int, tuple]], reading: _Reading) -> pa.Table:
    """Compact table of (line ordinal, contract row) pairs."""
    if not rows:
        return _COMPACT_SCHEMA.empty_table()
    lines = [line for line, _ in rows]
    columns = list(zip(*(row for _, row in rows), strict=True))
    columns[4] = reading.patients.of(np.array(columns[4], dtype=np.int64))
    columns.insert(2, text_hashes(pa.array(columns[1], pa.string())))
    arrays = [pa.array(lines, pa.int64())] + [pa.array(values, field.type)
                                             for values, field in zip(columns, list(_COMPACT_SCHEMA)[1:], strict=True)]
    return pa.Table.from_arrays(arrays, schema=_COMPACT_SCHEMA)


def _lines_as_replay_reads_them(segment: bytes) -> Iterator[str]:
    """The lines of one newline-free segment, decoded as ``read_log`` does (UTF-8 with replacement,
    universal newlines, so a lone carriage return also ends a line)."""
    yield from io.StringIO(segment.decode("utf-8", errors="replace"), newline=None)


def _line_by_line(segments: list[tuple[int, bytes]], reading: _Reading) -> pa.Table:
    rows = []
    for ordinal, segment in segments:
        for text in _lines_as_replay_reads_them(segment):
            if not text.strip():
                continue
            try:
                row = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if isinstance(row, dict) and (event := _contract_row(row)) is not None:
                rows.append((ordinal, event))
    return _contract_table(rows, reading)


# --- the same checks, a column at a time ------------------------------------------------------------

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
        hashes = np.add.reduceat(weighted, np.minimum(offsets[:-1] - offsets[0], max(len(data) - 1, 0))) \
            if len(data) else np.zeros(len(text), dtype=np.uint64)
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


def _plainly_valid(rows: pa.Table, reading: _Reading) -> tuple[pa.Table, np.ndarray]:
    """The compact columns of every row, and which rows are plainly valid (the rest go line by line)."""
    _, councils, plan_board_of = _boards()
    event_type = _index_in(rows["type"], EVENT_TYPES)
    council = _index_in(rows["board"], councils)
    patient, valid_patient = _nhs_numbers(rows["nhs_number"])
    age, has_age = _integers(rows["age"])
    stamp, valid_stamp = _timestamps(rows["occurred_at"], reading.latest_micros)
    valid = ((event_type >= 0) & (council >= 0) & valid_patient & has_age & (age >= 0) & (age <= MAX_AGE)
             & valid_stamp & _matches(rows["event_id"], _PLAIN_TEXT))

    method = _index_in(pc.ascii_upper(rows["admission_method"]), ADMISSION_METHODS)
    admission = (method >= 0) & _matches(rows["provider"], _PLAIN_TEXT)

    delayed, _ = _integers(rows["delayed_days"])  # missing is 0 days, as in the contract
    attribution = _index_in(rows["delay_attributable_to"], DELAY_ATTRIBUTIONS)
    into_reablement, has_reablement = _flags(rows["into_reablement"])
    discharge = (_index_in(rows["discharge_destination"], tuple(codes.DISCHARGE_DESTINATIONS)) >= 0)
    discharge &= _blank(rows["discharge_method"]) | (
        _index_in(rows["discharge_method"], tuple(codes.DISCHARGE_METHODS)) >= 0)
    discharge &= (delayed >= 0) & (delayed <= 366) & has_reablement
    discharge &= (attribution >= 0) | (_blank(rows["delay_attributable_to"]) & (delayed == 0))

    permanent, has_permanent = _flags(rows["permanent"])
    placement = (_index_in(rows["setting"], codes.CARE_HOME_SETTINGS) >= 0) & has_permanent

    is_admission, is_discharge, is_placement = event_type == 0, event_type == 1, event_type == 2
    valid &= np.where(is_admission, admission, np.where(is_discharge, discharge, placement))
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
    return compact, valid


# --- pieces of the log: Arrow where it is safe, line by line where it is not --------------------------

def _segments(piece: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of the newline-separated segments of a piece (no empty tail segment)."""
    newlines = np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == 10)
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(piece)]])
    if starts[-1] == len(piece):
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


def _arrow_maps_lines(piece: bytes, starts: np.ndarray) -> bool:
    """True when Arrow's rows can only be this piece's lines, one row a line, as replay reads them.

    No blank or indented lines (Arrow skips those silently), no byte-order mark (Arrow accepts one, the
    contract does not), no carriage return except before a newline (replay would split the line there).
    Arrow refuses invalid UTF-8 itself (replay would replace it), so such pieces go line by line. With all
    that, a row count equal to the line count means one row a line: a line with two objects would need a
    line with none.
    """
    if (np.frombuffer(piece, dtype=np.uint8)[starts] <= ord(" ")).any():
        return False
    if b"\r" in piece and piece.count(b"\r") != piece.count(b"\r\n"):
        return False
    return piece.isascii() or not (piece.startswith(b"\xef\xbb\xbf") or b"\n\xef\xbb\xbf" in piece)


def _read_with_arrow(piece: pa.Buffer, lines: int) -> tuple[pa.Table | None, int | None]:
    """Arrow's rows for a piece (None if it cannot read them), and the line it stumbled on when it says."""
    try:
        rows = pj.read_json(pa.BufferReader(piece),
                            read_options=pj.ReadOptions(use_threads=False, block_size=piece.size + 1),
                            parse_options=_PARSE_OPTIONS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as error:
        found = _ROW_IN_ERROR.search(str(error))
        return None, int(found.group(1)) if found and int(found.group(1)) < lines else None
    return (rows, None) if rows.num_rows == lines else (None, None)


@dataclass
class _Parsed:
    """A block's lines as Arrow rows where Arrow could read them, and the rest as raw lines."""

    block: bytes
    rows: list[pa.Table] = field(default_factory=list)
    lines: list[np.ndarray] = field(default_factory=list)  # per table: block-relative line ordinal of each row
    starts: list[np.ndarray] = field(default_factory=list)  # per table: each row's line's byte range
    ends: list[np.ndarray] = field(default_factory=list)
    unread: list[tuple[int, bytes]] = field(default_factory=list)  # (line ordinal, raw line) for the contract

    def __post_init__(self) -> None:
        self.buffer = pa.py_buffer(self.block)

    def line(self, ordinal: int, start: int, end: int) -> None:
        self.unread.append((ordinal, self.block[start:end]))


def _parse(parsed: _Parsed, starts: np.ndarray, ends: np.ndarray, first: int, checked: bool = False) -> None:
    """Parse lines ``first`` .. of the block (their byte ranges given) with Arrow where it is safe.

    A piece Arrow refuses is retried in pieces of ``PIECE_LINES``; within one, when Arrow names the row it
    stumbled on, that line goes to the contract and the lines either side are tried again, and when it does
    not, the piece is cut in ``PIECES``, down to ``LINE_BY_LINE_BELOW`` lines, which are read line by line.
    Speed depends on Arrow's messages; the result does not.
    """
    lo, hi = int(starts[0]), int(ends[-1]) + 1
    rows = stumbled = None
    if checked or _arrow_maps_lines(parsed.block[lo:hi], starts - lo):
        checked = True
        rows, stumbled = _read_with_arrow(parsed.buffer.slice(lo, hi - lo), len(starts))
    if rows is not None:
        parsed.rows.append(rows)
        parsed.lines.append(np.arange(first, first + len(starts), dtype=np.int64))
        parsed.starts.append(starts)
        parsed.ends.append(ends)
        return
    if len(starts) <= LINE_BY_LINE_BELOW:
        for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
            parsed.line(first + i, start, end)
        return
    if len(starts) <= PIECE_LINES and stumbled is not None:
        if stumbled > 0:
            _parse(parsed, starts[:stumbled], ends[:stumbled], first, checked)
        parsed.line(first + stumbled, starts[stumbled], ends[stumbled])
        if stumbled + 1 < len(starts):
            _parse(parsed, starts[stumbled + 1:], ends[stumbled + 1:], first + stumbled + 1, checked)
        return
    pieces = -(-len(starts) // PIECE_LINES) if len(starts) > PIECE_LINES else PIECES
    for cut in np.array_split(np.arange(len(starts)), pieces):
        if len(cut):
            _parse(parsed, starts[cut[0]:cut[-1] + 1], ends[cut[0]:cut[-1] + 1], first + int(cut[0]), checked)


def _block_events(path: str, start: int, end: int, reading: _Reading) -> pa.Table:
    """Compact valid events of one block of whole lines, in line order."""
    with open(path, "rb") as handle:
        handle.seek(start)
        parsed = _Parsed(handle.read(end - start))
    starts, ends = _segments(parsed.block)
    if len(starts):
        _parse(parsed, starts, ends, 0)
    tables = []
    if parsed.rows:
        compact, valid = _plainly_valid(pa.concat_tables(parsed.rows), reading)
        lines = np.concatenate(parsed.lines)
        tables.append(compact.set_column(0, "line", pa.array(lines)).filter(pa.array(valid)))
        row_starts, row_ends = np.concatenate(parsed.starts), np.concatenate(parsed.ends)
        for i in np.flatnonzero(~valid):
            parsed.line(int(lines[i]), row_starts[i], row_ends[i])
    tables.append(_line_by_line(sorted(parsed.unread, key=lambda line: line[0]), reading))
    events = pa.concat_tables(tables)
    return events.take(pc.sort_indices(events["line"])).drop_columns(["line"])


def _blocks(path: Path, block_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``block_bytes``, each starting at a line start."""
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as handle:
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


def read_events(path: Path, progress: Callable[[int, int], None] | None = None, processes: int | None = None,
                block_bytes: int = BLOCK_BYTES, patients: PatientKeys | None = None) -> pd.DataFrame:
    """The valid events of a log in log order (the order replay produces them); refused lines are left out.

    ``progress(bytes_read, total_bytes)`` is called as blocks finish. JSON Lines are read in blocks by
    ``processes`` worker processes (one per core by default); CSV goes through the contract line by line.
    """
    total = path.stat().st_size
    if path.suffix.lower() == ".csv":
        events = read_events_line_by_line(path, patients)
        if progress is not None:
            progress(total, total)
        return events
    reading = _reading(patients)
    blocks = _blocks(path, block_bytes)
    processes = max(1, min(processes or os.cpu_count() or 1, len(blocks)))
    done, tables = 0, []
    with (ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) if processes > 1
          else contextlib.nullcontext()) as pool:
        read_block = partial(_block_events, str(path), reading=reading)
        results = pool.map(read_block, *zip(*blocks, strict=True)) if pool else itertools.starmap(read_block, blocks)
        for (start, end), table in zip(blocks, results, strict=True):  # in log order, as blocks finish
            tables.append(table)
            done += end - start
            if progress is not None:
                progress(done, total)
    if not tables:
        return _as_frame(_COMPACT_SCHEMA.empty_table().drop_columns(["line"]))
    return _as_frame(pa.concat_tables(tables))


def read_events_line_by_line(path: Path, patients: PatientKeys | None = None) -> pd.DataFrame:
    """The same events through the contract one line at a time: the reference the fast path is tested against."""
    reading = _reading(patients)
    rows = [(line.number, event) for line in read_log(path) if line.row is not None
            for event in [_contract_row(line.row)] if event is not None]
    return _as_frame(_contract_table(rows, reading).drop_columns(["line"]))
