"""Rejected lines of a log read, kept compactly in Arrow, and what is done with them.

Each rejected line is its line number, its reason code and message (numbered once per reading and
dictionary encoded) and its text with NHS numbers redacted (:func:`producers.eventlog.logformat.rejected_text`;
:func:`rejected_texts` does the same for many lines at once, sending through it only the lines that could
need it). :func:`rejected_by_reason` counts them and :func:`write_rejected` writes them as JSON Lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from bcfwatch.core.events import Reason
from producers.eventlog.byte_lines import count_in, lines_array
from producers.eventlog.compact import ROWS_PER_TABLE
from producers.eventlog.logformat import MAX_REJECTED_TEXT, rejected_text

REJECTED_SCHEMA = pa.schema([
    ("line", pa.int64()), ("reason_code", pa.dictionary(pa.int32(), pa.string())),
    ("reason", pa.dictionary(pa.int32(), pa.string())), ("text", pa.string()),
])
_REASONS = tuple(Reason)


class Rejects:
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


def rejected_texts(chunk: bytes, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """:func:`producers.eventlog.logformat.rejected_text` of the given lines (in order), in Arrow: plain ASCII lines
    with no run of three digits and within the length limit are kept as they are, the rest go through it."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    lines = lines_array(chunk, starts, ends)
    if not len(starts):
        return pa.array([], pa.string())
    digit = (data >= ord("0")) & (data <= ord("9"))
    three = digit[:-2] & digit[1:-1] & digit[2:]  # three digits from here on: maybe part of an NHS number
    special = ((count_in(data >= 0x80, starts, ends) > 0) | (ends - starts > MAX_REJECTED_TEXT)
               | (count_in(three, starts, np.maximum(ends - 2, starts)) > 0))
    if special.any():
        index = np.flatnonzero(special)
        kept = [rejected_text(chunk[starts[i]:ends[i]]).encode() for i in index]
        lines = pc.replace_with_mask(lines, pa.array(special), pa.array(kept, pa.binary()))
    return lines.cast(pa.string())
