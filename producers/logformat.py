"""The historic event log: JSON Lines or CSV, one event per line (docs/log-format.md).

Rows carry the raw NHS number; :func:`row_to_event` validates it and replaces it
with the pseudonym, so the records that leave this module are safe for Kafka.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bcfwatch.boards import BoardList
from producers.pseudonym import Pseudonymiser, redact
from streams.records import Event, InvalidEvent, Reason, parse_event

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


class LogLine:
    """One line of a log: its number, its text and its parsed row (or why it did not parse)."""

    __slots__ = ("error", "number", "row", "text")

    def __init__(self, number: int, text: str, row: dict[str, Any] | None, error: str | None) -> None:
        self.number, self.text, self.row, self.error = number, text, row, error


def is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def count_lines(path: Path) -> int:
    """Number of event lines (for progress bars); CSV header excluded."""
    count = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
    return max(count - 1, 0) if is_csv(path) else count


def read_log(path: Path) -> Iterator[LogLine]:
    """Yield every line of a JSON Lines or CSV log; blank lines are skipped."""
    if is_csv(path):
        yield from _read_csv(path)
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = orjson.loads(text)
            except orjson.JSONDecodeError as error:
                yield LogLine(number, text, None, f"line is not valid JSON: {error}")
                continue
            if not isinstance(row, dict):
                yield LogLine(number, text, None, "line is not a JSON object")
                continue
            yield LogLine(number, text, row, None)


def _read_csv(path: Path) -> Iterator[LogLine]:
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        header_line = handle.readline()
        header = next(csv.reader([header_line]))
        unknown = set(header) - set(LOG_COLUMNS)
        for number, text in enumerate(handle, start=2):
            if not text.strip():
                continue
            values = next(csv.reader([text]))
            if len(values) != len(header):
                yield LogLine(number, text, None, f"line has {len(values)} fields, header has {len(header)}")
                continue
            row = {k: v for k, v in zip(header, values, strict=True) if k not in unknown and v != ""}
            yield LogLine(number, text, row, None)


def row_to_event(row: dict[str, Any], pseudonymiser: Pseudonymiser, boards: BoardList) -> Event:
    """Validate a log row and pseudonymise its NHS number."""
    payload = {k: v for k, v in row.items() if k != "nhs_number"}
    try:
        payload["patient"] = pseudonymiser.pseudonym(row.get("nhs_number"))
    except ValueError as error:
        raise InvalidEvent(str(error), Reason.INVALID_NHS_NUMBER) from None
    return parse_event(payload, boards)


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

