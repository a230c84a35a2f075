"""The historic event log: JSON Lines or CSV, one event per line (docs/log-format.md).

Every reader of a log (``bcfwatch replay`` here, ``backtest``/``report`` through
``producers/eventlog/reader``, which finds the same lines with :func:`line_spans`) decides about a line with
the same two steps:
:func:`parse_json_line` / :func:`parse_csv_line` turn a physical line into a row
(or say why it is not one), and :func:`check_line` puts the row through the
contract. Rows carry the raw NHS number; :func:`row_to_event` validates it and
replaces it with the pseudonym, so the records that leave this module are safe
for Kafka.
"""

from __future__ import annotations

import csv
import difflib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bcfwatch.core.boards import BoardList
from bcfwatch.core.events import RECORDS, Event, InvalidEvent, Reason, validated_fields
from bcfwatch.core.nhs_number import normalise_nhs_number, redact
from producers.pseudonym import Pseudonymiser

LOG_COLUMNS = (
    "type",
    "event_id",
    "board",
    "occurred_at",
    "nhs_number",
    "age",
    "admission_method",
    "provider",
    "discharge_destination",
    "discharge_method",
    "delayed_days",
    "delay_attributable_to",
    "into_reablement",
    "setting",
    "permanent",
    "admission_id",
)
REQUIRED_COLUMNS = ("type", "event_id", "board", "occurred_at", "nhs_number", "age")  # every event needs them
BOM = b"\xef\xbb\xbf"
MAX_REJECTED_TEXT = 4096  # characters of a rejected line kept in rejected.jsonl (after redaction)
PLACEHOLDER_PSEUDONYM = "0" * 64  # the contract checks a pseudonym's shape; the NHS number is checked here


class LogFormatError(ValueError):
    """The log as a whole cannot be read (e.g. a CSV header without a required column)."""


class LogFormatWarning(UserWarning):
    """Something about the log as a whole that the reader works around (e.g. CSV columns it ignores)."""


class LogLine:
    """One non-blank physical line: its number (1-based, CSV header = 1), its text, and its row or why not."""

    __slots__ = ("error", "number", "raw", "reason", "row", "text")

    def __init__(self, number: int, raw: bytes, text: str, row: dict[str, Any] | None, error: str | None,
                 reason: Reason | None = None) -> None:
        self.number, self.raw, self.text, self.row, self.error = number, raw, text, row, error
        self.reason = reason if error is None or reason is not None else Reason.MALFORMED_ROW


@dataclass(frozen=True)
class CsvHeader:
    """The columns of a CSV log, in file order, and the unknown ones that are ignored."""

    columns: tuple[str, ...]
    ignored: tuple[str, ...]


def is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def count_lines(path: Path) -> int:
    """Number of physical lines after the CSV header (for progress bars), a last line without newline included."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    count += last != b"\n"
    return max(count - 1, 0) if is_csv(path) else count


def line_content(raw: bytes) -> bytes:
    """A physical line without its ending: ``\\n`` or ``\\r\\n`` (a lone ``\\r`` does not end a line)."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    return raw[:-1] if raw.endswith(b"\r") else raw


def line_spans(chunk: bytes) -> tuple[np.ndarray, np.ndarray]:
    """:func:`line_content` of every line of a chunk of whole lines, as offsets: the start and end of each
    line, each end before its ``\\n`` or ``\\r\\n`` (the column readers' way to the same lines)."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(chunk)]])
    if starts[-1] == len(chunk):
        starts, ends = starts[:-1], ends[:-1]
    carriage = (ends > starts) & (data[np.maximum(ends - 1, 0)] == 13) if len(data) else ends > starts
    return starts.astype(np.int64), (ends - carriage).astype(np.int64)


def is_blank(raw: bytes) -> bool:
    """Empty or only ASCII white space: not an event, not a rejected line."""
    return not raw.strip()


def physical_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, content) of every physical line; a byte-order mark opening the file is dropped."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            yield number, line_content(raw)


def _not_utf8(error: UnicodeDecodeError) -> str:
    return f"line is not valid UTF-8 (byte {error.start + 1}: {error.reason})"


def parse_json_line(number: int, raw: bytes) -> LogLine | None:
    """A JSON Lines line (without its ending) as a row, or why it is not one; None for a blank line."""
    if is_blank(raw):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return LogLine(number, raw, raw.decode("utf-8", errors="replace"), None, _not_utf8(error), Reason.NOT_JSON)
    try:
        row = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        return LogLine(number, raw, text, None, f"line is not valid JSON: {error}", Reason.NOT_JSON)
    if not isinstance(row, dict):
        return LogLine(number, raw, text, None, "line is not a JSON object", Reason.NOT_JSON)
    return LogLine(number, raw, text, row, None)


def parse_csv_line(number: int, raw: bytes, header: CsvHeader) -> LogLine | None:
    """A CSV line (without its ending) as a row of the known columns, or why not; None for a blank line.

    One event per physical line: a quoted field cannot span lines. Empty fields are missing values.
    """
    if is_blank(raw):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return LogLine(number, raw, raw.decode("utf-8", errors="replace"), None, _not_utf8(error))
    try:
        records = list(csv.reader([text], strict=True))
    except csv.Error as error:
        return LogLine(number, raw, text, None, f"line is not a valid CSV row: {error}")
    values = records[0] if len(records) == 1 else []
    if len(values) != len(header.columns):
        return LogLine(number, raw, text, None, f"line has {len(values)} fields, header has {len(header.columns)}")
    row = {name: value for name, value in zip(header.columns, values, strict=True)
           if value != "" and name not in header.ignored}
    return LogLine(number, raw, text, row, None)


def parse_csv_header(raw: bytes | None, path: Path) -> CsvHeader:
    """The header of a CSV log; :class:`LogFormatError` naming the problem and the fix if it is not usable."""
    expected = ",".join(LOG_COLUMNS)
    if raw is None or is_blank(raw):
        raise LogFormatError(f"{path}: the first line is empty; a CSV log starts with a header row naming its "
                             f"columns, e.g. {expected}")
    try:
        names = next(csv.reader([raw.decode("utf-8")], strict=True))
    except (UnicodeDecodeError, csv.Error) as error:
        raise LogFormatError(f"{path}: the header row is not readable CSV in UTF-8 ({error}); "
                             f"it should name the columns, e.g. {expected}") from None
    columns = tuple(name.strip() for name in names)
    unknown = [name for name in columns if name not in LOG_COLUMNS]
    absent = [name for name in LOG_COLUMNS if name not in columns]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    misspelt = {name: close[0] for name in unknown
                for close in [difflib.get_close_matches(name.lower(), absent, n=1, cutoff=0.75)] if close}
    if missing or misspelt:
        problems = []
        if missing:
            problems.append(f"the header has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}")
        if misspelt:
            problems.append("; ".join(f"column {name!r} is not a log column (did you mean {known!r}?)"
                                      for name, known in misspelt.items()))
        if any(name in RECORDS for name in columns):
            problems.append("the first line looks like an event rather than a header")
        raise LogFormatError(f"{path}: {'; '.join(problems)}. Rename the header's columns to the log's column "
                             f"names (docs/log-format.md); the full set is {expected}")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise LogFormatError(f"{path}: the header names {', '.join(repeated)} more than once; "
                             "name each column once")
    return CsvHeader(columns, tuple(unknown))


def read_csv_header(path: Path) -> CsvHeader:
    with open(path, "rb") as handle:
        first = handle.readline()
    if first.startswith(BOM):
        first = first[len(BOM):]
    return parse_csv_header(line_content(first) if first else None, path)


def read_log(path: Path) -> Iterator[LogLine]:
    """Every non-blank line of a JSON Lines or CSV log (the CSV header is checked now, before any line)."""
    if not is_csv(path):
        return (line for number, raw in physical_lines(path) if (line := parse_json_line(number, raw)) is not None)
    header = read_csv_header(path)
    if header.ignored:
        warnings.warn(f"{path}: ignoring column{'s' if len(header.ignored) > 1 else ''} "
                      f"{', '.join(header.ignored)} (not log columns)", LogFormatWarning, stacklevel=2)
    return (line for number, raw in physical_lines(path) if number > 1
            if (line := parse_csv_line(number, raw, header)) is not None)


def check_row(row: dict[str, Any], boards: BoardList | None = None) -> tuple[type[Event], dict[str, Any], str]:
    """The contract for a log row: its record class, its fields (patient a placeholder) and its NHS number.

    Checked in this order: the event type, the NHS number, then the rest in the contract's order
    (:func:`bcfwatch.core.events.validated_fields`). Raises :class:`InvalidEvent` with the reason.
    """
    payload = {name: value for name, value in row.items() if name != "nhs_number"}
    payload["patient"] = PLACEHOLDER_PSEUDONYM
    event_type = payload.get("type")
    if not isinstance(event_type, str) or event_type not in RECORDS:
        validated_fields(payload, boards)  # raises the contract's unknown-type rejection
    try:
        digits = normalise_nhs_number(row.get("nhs_number"))
    except ValueError as error:
        raise InvalidEvent(str(error), Reason.INVALID_NHS_NUMBER) from None
    record, fields = validated_fields(payload, boards)
    return record, fields, digits


def check_line(line: LogLine, boards: BoardList | None = None) -> tuple[type[Event], dict[str, Any], str]:
    """The one accept/reject decision for a log line, whoever reads it (see :func:`check_row`)."""
    if line.row is None:
        raise InvalidEvent(line.error or "line is not an event", line.reason or Reason.MALFORMED_ROW)
    return check_row(line.row, boards)


def row_to_event(row: dict[str, Any], pseudonymiser: Pseudonymiser, boards: BoardList) -> Event:
    """Validate a log row and pseudonymise its NHS number."""
    record, fields, digits = check_row(row, boards)
    return record(**{**fields, "patient": pseudonymiser.pseudonym(digits), "key_id": pseudonymiser.key_id})


def line_to_event(line: LogLine, pseudonymiser: Pseudonymiser, boards: BoardList) -> Event:
    """Validate a log line (:func:`check_line`) and pseudonymise its NHS number."""
    record, fields, digits = check_line(line, boards)
    return record(**{**fields, "patient": pseudonymiser.pseudonym(digits), "key_id": pseudonymiser.key_id})


def rejected_text(raw: bytes) -> str:
    """A rejected line as it is kept: invalid UTF-8 replaced, NHS numbers redacted, at most
    ``MAX_REJECTED_TEXT`` characters (then a note of how many more there were)."""
    text = redact(raw.decode("utf-8", errors="replace"))
    if len(text) > MAX_REJECTED_TEXT:
        text = f"{text[:MAX_REJECTED_TEXT]}... [{len(text) - MAX_REJECTED_TEXT} more characters]"
    return text


def redacted_line(line: LogLine, pseudonymiser: Pseudonymiser) -> str:
    """The line as it may be kept on the dead-letter topic: NHS numbers pseudonymised or redacted."""
    if line.row is not None and "nhs_number" in line.row:
        row = dict(line.row)
        try:
            row["nhs_number"] = "pseudonym:" + pseudonymiser.pseudonym(row["nhs_number"])
        except ValueError:
            row["nhs_number"] = "[redacted]"
        return redact(orjson.dumps(row, default=str).decode())
    return redact(line.text.rstrip("\n"))
