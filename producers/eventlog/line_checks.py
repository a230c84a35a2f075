"""The line-by-line reading of a log: each line through the contract, as ``bcfwatch replay`` decides it.

:func:`line_by_line` puts parsed lines through :func:`producers.eventlog.logformat.check_line` one at a time and
gathers the accepted ones as compact events (:mod:`producers.eventlog.compact`), the rejected ones in
:class:`producers.eventlog.rejects.Rejects`. It is the reference the column checks are tested against, the way
CSV logs are read, and the fallback for every line the column checks do not decide plainly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from bcfwatch.core.boards import load_boards
from bcfwatch.core.events import Event, InvalidEvent
from producers.eventlog.compact import (
    ADMISSION_METHODS,
    COMPACT_SCHEMA,
    DELAY_ATTRIBUTIONS,
    ROWS_PER_TABLE,
    TYPE_INDEX,
    Reading,
    plan_boards,
    text_hashes,
)
from producers.eventlog.logformat import check_line, rejected_text
from producers.eventlog.rejects import Rejects


def _compact(record: type[Event], fields: dict[str, Any], digits: str) -> tuple:
    """The compact columns of an event the contract accepted (patient as its ten digits)."""
    method = fields.get("admission_method")
    attribution = fields.get("delay_attributable_to")
    return (TYPE_INDEX[record], fields["event_id"], plan_boards()[0].index(fields["board"]),
            fields["occurred_at"].timestamp(), int(digits), fields["age"],
            -1 if method is None else ADMISSION_METHODS.index(method), fields.get("delayed_days", 0),
            -1 if attribution is None else DELAY_ATTRIBUTIONS.index(attribution),
            fields.get("into_reablement", False), fields.get("permanent", False))


def _contract_table(rows: list[tuple[int, tuple]], reading: Reading) -> pa.Table:
    """Compact table of (line, contract row) pairs."""
    if not rows:
        return COMPACT_SCHEMA.empty_table()
    lines = [line for line, _ in rows]
    columns: list[Any] = list(zip(*(row for _, row in rows), strict=True))
    columns[4] = reading.patients.of(np.array(columns[4], dtype=np.int64))
    columns.insert(2, text_hashes(pa.array(columns[1], pa.string())))
    arrays = [pa.array(lines, pa.int64())] + [pa.array(values, field.type)
                                             for values, field in zip(columns, list(COMPACT_SCHEMA)[1:], strict=True)]
    return pa.Table.from_arrays(arrays, schema=COMPACT_SCHEMA)


def line_by_line(lines: Iterable[Any], reading: Reading, rejects: Rejects) -> list[pa.Table]:
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
