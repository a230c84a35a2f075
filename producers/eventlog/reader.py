"""An event log read column by column: the batch side's fast way to the same events and rejections.

The decision about one line is :func:`producers.eventlog.logformat.check_line` (the line's framing, then the
contract :func:`bcfwatch.core.events.validated_fields`), the same function ``bcfwatch replay`` uses.
Checking a national year (12M lines) that way takes minutes, so the batch side (the oracle,
``bcfwatch backtest`` and ``report``) reads JSON Lines with Arrow's JSON reader and checks whole
columns at once: blocks of the log in worker processes, each block a chunk (``CHUNK_BYTES``) at a time,
so memory follows the chunk whatever the lines are. This module runs that reading; its parts are

* :mod:`producers.eventlog.byte_lines`: the log's bytes as blocks, chunks and line spans;
* :mod:`producers.eventlog.arrow_json`: which lines Arrow reads exactly as the contract's JSON parser does, and
  reading them (lines whose numbers or flags are written as strings, or text as numbers, are grouped by
  how each field is written and read with their own column types, so such logs stay fast);
* :mod:`producers.eventlog.column_checks`: the contract's checks a column at a time, asking the contract itself once
  per distinct value that is not plainly valid;
* :mod:`producers.eventlog.line_checks`: every other line (blank lines, bad JSON, nested values, a ``key_id`` or a
  ``\\u`` escape (the contract checks a row's ``key_id``; Arrow's reading ignores it), a byte-order mark
  inside the file, pieces Arrow refuses, values the column checks do not decide plainly) through
  ``check_line`` one at a time; a piece Arrow refuses is cut smaller, so one bad line costs a few dozen
  lines of slow reading at most;
* :mod:`producers.eventlog.compact`: the compact events both ways produce (patients as 64-bit keys made for the
  run, never leaving the process; raw NHS numbers are not kept) and the oracle's frame of them;
* :mod:`producers.eventlog.rejects`: the rejected lines, kept compactly in Arrow with NHS numbers redacted.

The result is therefore the contract's, line for line, events and rejections;
``tests/unit/producers/eventlog/test_reader`` and ``tests/unit/producers/eventlog/test_log_files`` prove it.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from producers.eventlog.arrow_json import TYPELESS, canonical, for_arrow, groups, read_group
from producers.eventlog.byte_lines import blocks, chunks, gather
from producers.eventlog.column_checks import Cascade, classify
from producers.eventlog.compact import (
    ADMISSION_METHODS,
    COMPACT_SCHEMA,
    DELAY_ATTRIBUTIONS,
    EVENT_COLUMNS,
    EVENT_TYPES,
    PatientKeys,
    Reading,
    text_hashes,
    to_frame,
)
from producers.eventlog.line_checks import line_by_line
from producers.eventlog.logformat import (
    LogFormatWarning,
    is_csv,
    line_spans,
    parse_json_line,
    read_csv_header,
    read_log,
)
from producers.eventlog.rejects import REJECTED_SCHEMA, Rejects, rejected_by_reason, rejected_texts, write_rejected

__all__ = [  # what callers import from here, wherever it is defined
    "ADMISSION_METHODS", "BLOCK_BYTES", "CHUNK_BYTES", "DELAY_ATTRIBUTIONS", "EVENT_COLUMNS", "EVENT_TYPES",
    "REJECTED_SCHEMA", "LogEvents", "PatientKeys", "read_events", "read_events_line_by_line", "read_log_events",
    "read_log_events_line_by_line", "rejected_by_reason", "text_hashes", "write_rejected",
]

BLOCK_BYTES = 32 << 20  # a worker process's share of the log at a time
CHUNK_BYTES = 1 << 20  # what a worker reads at once: bounds memory whatever the lines are


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


def _chunk_events(chunk: bytes, first: int, reading: Reading, rejects: Rejects) -> list[pa.Table]:
    """Compact events (with their line ordinal, counted from ``first``) of one chunk of whole lines."""
    starts, ends = line_spans(chunk)
    arrow_lines = np.flatnonzero(for_arrow(chunk, starts, ends))
    slow = [np.flatnonzero(~np.isin(np.arange(len(starts)), arrow_lines))]
    tables, lines, typeless = [], [], []
    for group, schema in groups(chunk, starts, ends, arrow_lines):
        piece, piece_starts, _ = gather(chunk, starts[group], ends[group])
        read, positions, left = read_group(piece, piece_starts, schema)
        if schema == TYPELESS:
            typeless += [group[p] for p in positions]
        else:
            tables += [canonical(rows) for rows in read]
            lines += [group[p] for p in positions]
        slow.append(group[np.array(left, dtype=np.int64)])
    events = []
    if tables:
        compact, cascade, valid = classify(pa.concat_tables(tables), reading, rejects)
        line = np.concatenate(lines)
        positions = compact["line"].to_numpy()
        events.append(compact.set_column(0, "line", pa.array(line[positions] + first)).filter(pa.array(valid)))
        refused = np.flatnonzero(cascade.rejected >= 0)
        order = np.argsort(line[refused])
        refused_lines = line[refused][order]
        rejects.add(refused_lines + first, cascade.rejected[refused][order],
                    rejected_texts(chunk, starts[refused_lines], ends[refused_lines]))
        slow.append(line[cascade.slow])
    for group in typeless:  # objects without a type: the contract's unknown type, without reading more
        rejects.add(group + first, np.full(len(group), Cascade(0, rejects).typeless(), dtype=np.int32),
                    rejected_texts(chunk, starts[group], ends[group]))
    slow_lines = np.sort(np.concatenate(slow))
    parsed = (log_line for i in slow_lines
              if (log_line := parse_json_line(first + int(i), chunk[starts[i]:ends[i]])) is not None)
    events += line_by_line(parsed, reading, rejects)
    rejects.settle()
    return events


def _block_events(path: str, start: int, end: int, reading: Reading) -> tuple[pa.Table, pa.Table, int]:
    """Compact valid events and the rejected lines of one block of whole lines, in line order, with line
    ordinals counted from 0 at the block's first line; and the block's number of newlines."""
    with open(path, "rb") as handle:
        handle.seek(start)
        block = handle.read(end - start)
    rejects, tables, first = Rejects(), [], 0
    for lo, hi in chunks(block, CHUNK_BYTES):
        chunk = block[lo:hi]
        tables += _chunk_events(chunk, first, reading, rejects)
        first += chunk.count(b"\n")
    events = pa.concat_tables(tables) if tables else COMPACT_SCHEMA.empty_table()
    return events.take(pc.sort_indices(events["line"])).drop_columns(["line"]), rejects.table(), first


def _with_lines_from(rejected: pa.Table, offset: int) -> pa.Table:
    return rejected.set_column(0, "line", pc.add(rejected["line"], pa.scalar(offset, pa.int64())))


def read_log_events(path: Path, progress: Callable[[int, int], None] | None = None, processes: int | None = None,
                    block_bytes: int = BLOCK_BYTES, patients: PatientKeys | None = None) -> LogEvents:
    """The valid events of a log in log order (the order replay produces them) and every rejected line.

    ``progress(bytes_read, total_bytes)`` is called as blocks finish. JSON Lines are read in blocks by
    ``processes`` worker processes (one per core by default); CSV goes through the contract line by line
    (its header is checked first: :class:`producers.eventlog.logformat.LogFormatError`).
    """
    total = path.stat().st_size
    if is_csv(path):
        read = read_log_events_line_by_line(path, patients)
        if progress is not None:
            progress(total, total)
        return read
    reading = Reading.fresh(patients)
    ranges = blocks(path, block_bytes)
    processes = max(1, min(processes or os.cpu_count() or 1, len(ranges)))
    done, lines_before, tables, rejected = 0, 0, [], []
    with (ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) if processes > 1
          else contextlib.nullcontext()) as pool:
        read_block = partial(_block_events, str(path), reading=reading)
        results = pool.map(read_block, *zip(*ranges, strict=True)) if pool else itertools.starmap(read_block, ranges)
        for (start, end), (events, refused, newlines) in zip(ranges, results, strict=True):  # in log order
            tables.append(events)
            rejected.append(_with_lines_from(refused, lines_before + 1))
            lines_before += newlines
            done += end - start
            if progress is not None:
                progress(done, total)
    events = pa.concat_tables(tables) if tables else COMPACT_SCHEMA.empty_table().drop_columns(["line"])
    return LogEvents(to_frame(events), pa.concat_tables(rejected) if rejected else REJECTED_SCHEMA.empty_table())


def read_events(path: Path, progress: Callable[[int, int], None] | None = None, processes: int | None = None,
                block_bytes: int = BLOCK_BYTES, patients: PatientKeys | None = None) -> pd.DataFrame:
    """The valid events of a log in log order; refused lines are left out (:func:`read_log_events` has them)."""
    return read_log_events(path, progress, processes, block_bytes, patients).events


def read_log_events_line_by_line(path: Path, patients: PatientKeys | None = None) -> LogEvents:
    """The same events and rejections through :func:`producers.eventlog.logformat.check_line` one line at a time:
    the reference the fast path is tested against (and the way CSV logs are read)."""
    reading = Reading.fresh(patients)
    ignored = read_csv_header(path).ignored if is_csv(path) else ()
    rejects = Rejects()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LogFormatWarning)  # reported as ignored_columns
        tables = line_by_line(read_log(path), reading, rejects)
    events = pa.concat_tables(tables).drop_columns(["line"])
    return LogEvents(to_frame(events), rejects.table(), ignored)


def read_events_line_by_line(path: Path, patients: PatientKeys | None = None) -> pd.DataFrame:
    """The events of :func:`read_log_events_line_by_line`."""
    return read_log_events_line_by_line(path, patients).events
