"""A chunk of JSON lines to packed records, column by column: the bulk replay's fast path.

``bcfwatch replay`` (packed, unpaced, JSON Lines) reads its log in chunks of whole lines and hands each to
:func:`pack_chunk`. The decision about each line is the contract's, as everywhere: the chunk is read with
Arrow and checked a column at a time by the backtest's reader (:mod:`producers.eventlog.column_checks`), which
accepts a row only when every value is *plainly* valid (codes spelt exactly, text with no surrounding space,
...). Every other line (blank, bad JSON, refused by a check, or valid but not plainly so) goes through
:func:`producers.eventlog.logformat.check_line` one at a time, exactly as the line-by-line replay does, so
the dead letters and their reasons are the line path's.

For the accepted rows the wire fields are built from the columns, normalised as
:func:`bcfwatch.core.events.validated_fields` normalises them (plainly valid values need little: the
admission method upper-cased, a blank discharge method ``"1"``, the board the council's plan board, the
moment in UTC), the pseudonym computed once per distinct NHS number in the chunk. Each (type, board)'s
events, in line order, become packed records of at most ``MAX_PACKED_EVENTS`` events and ``MAX_PACKED_BYTES``
bytes, their JSON written with Arrow's string functions exactly as ``orjson`` writes the line path's dicts (the
fields in the record's order, :func:`bcfwatch.core.events.wire_order`; ``orjson`` itself for the rare text that
needs escaping). ``tests/unit/producers/test_columnar_packing.py`` compares them byte for byte.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from bcfwatch.core.boards import BoardList
from bcfwatch.core.events import (
    MAX_PACKED_BYTES,
    MAX_PACKED_EVENTS,
    RECORDS,
    InvalidEvent,
    wire_fields,
    wire_order,
)
from bcfwatch.core.topics import EVENT_TYPES
from producers.eventlog.arrow_json import TYPELESS, canonical, for_arrow, groups, read_group
from producers.eventlog.byte_lines import as_numpy, gather
from producers.eventlog.column_checks import PLAIN_TEXT, classify, nhs_numbers, timestamps
from producers.eventlog.compact import ADMISSION_METHODS, DELAY_ATTRIBUTIONS, Reading, plan_boards
from producers.eventlog.logformat import BOM, LogLine, check_line, line_spans, parse_json_line
from producers.eventlog.rejects import Rejects
from producers.pseudonym import Pseudonymiser

_RECORD_TYPE = {record: event_type for event_type, record in RECORDS.items()}
_STREAMS_PER_TYPE = 1 << 16  # a stream's code: type index * this + plan board index
PARENT_CHECK_SECONDS = 1.0  # how often a packing process checks that its replay is still there


@dataclass
class PackedChunk:
    """What a chunk of lines became: packed records, and the lines the contract refused (with why)."""

    records: list[tuple[str, str, bytes, list[int]]] = field(default_factory=list)  # type, board, value, lines
    rejected: list[tuple[LogLine, InvalidEvent]] = field(default_factory=list)  # in line order
    produced: Counter[str] = field(default_factory=Counter)  # events, by type
    lines: int = 0  # non-blank lines read


def log_chunks(path: Path, after_line: int, chunk_bytes: int) -> Iterator[tuple[int, bytes, int, int]]:
    """The log's lines after line ``after_line``, about ``chunk_bytes`` of whole lines at a time:
    ``(first line number, chunk, lines in it, lines skipped before it)``. A byte-order mark opening the
    file is dropped (as :func:`producers.eventlog.logformat.physical_lines` does); a last line without a
    newline is a line."""
    number, carry = 1, b""
    with open(path, "rb") as handle:
        opening = True
        while True:
            data = handle.read(max(chunk_bytes, len(BOM)) if opening else chunk_bytes)
            at_end = not data
            if opening:
                data, opening = data.removeprefix(BOM), False
            data = carry + data
            cut = len(data) if at_end else data.rfind(b"\n") + 1
            if cut == 0 and not at_end:
                carry = data
                continue
            whole, carry = data[:cut], data[cut:]
            lines = whole.count(b"\n") + (bool(whole) and not whole.endswith(b"\n"))
            skip = min(max(after_line - number + 1, 0), lines)
            if skip:
                offset = 0
                for _ in range(skip):
                    offset = whole.find(b"\n", offset) + 1 or len(whole)
                whole = whole[offset:]
            if lines:
                yield number + skip, whole, lines - skip, skip
            number += lines
            if at_end:
                return


class ChunkPacking:
    """:func:`pack_chunk` over a log's chunks (:func:`log_chunks`), in ``processes`` worker processes
    (spawned, so the replay's own threads are not forked; each ends itself when the replay is gone, even after
    a kill -9) or, with one, in this one; results in log order, at most two chunks per process ahead of the
    caller (memory stays a few chunks whatever the log)."""

    def __init__(self, boards: BoardList, pseudonymiser: Pseudonymiser, processes: int) -> None:
        self.setting = (boards, pseudonymiser, Reading.fresh())
        self.processes = processes

    def chunks(self, path: Path, after_line: int,
               chunk_bytes: int) -> Iterator[tuple[int, int, int, PackedChunk | None]]:
        """``(first line number, lines, lines skipped before, packed)`` of each chunk, in log order (``packed``
        None for a chunk of skipped lines only)."""
        every = log_chunks(path, after_line, chunk_bytes)
        if self.processes <= 1:
            for first, chunk, lines, skipped in every:
                yield first, lines, skipped, pack_chunk(chunk, first, *self.setting) if chunk else None
            return
        pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_set_packing, initargs=self.setting)
        try:
            waiting: deque[tuple[int, int, int, Future[PackedChunk] | None]] = deque()
            for first, chunk, lines, skipped in every:
                waiting.append((first, lines, skipped, pool.submit(_pack_here, chunk, first) if chunk else None))
                while len(waiting) > 2 * self.processes:
                    yield _result(waiting.popleft())
            while waiting:
                yield _result(waiting.popleft())
        finally:  # also when the replay stops early (an outage, Ctrl-C): chunks not started are dropped
            pool.shutdown(wait=True, cancel_futures=True)


_PACKING: tuple[BoardList, Pseudonymiser, Reading] | None = None  # a packing process's setting


def _set_packing(boards: BoardList, pseudonymiser: Pseudonymiser, reading: Reading) -> None:
    global _PACKING
    _PACKING = (boards, pseudonymiser, reading)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the replay's to handle; it stops the pool
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), name="bcfwatch-packing-parent-watch",
                     daemon=True).start()


def _end_with_parent(parent: int) -> None:
    """A packing process ends itself once its replay is gone (a replay killed with SIGKILL cannot stop it)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)  # a watchdog's period, not synchronisation
    os._exit(1)


def _pack_here(chunk: bytes, first_number: int) -> PackedChunk:
    assert _PACKING is not None  # _set_packing, the pool's initializer
    return pack_chunk(chunk, first_number, *_PACKING)


def _result(entry: tuple[int, int, int, Future[PackedChunk] | None]) -> tuple[int, int, int, PackedChunk | None]:
    first, lines, skipped, future = entry
    return first, lines, skipped, None if future is None else future.result()


def pack_chunk(chunk: bytes, first_number: int, boards: BoardList, pseudonymiser: Pseudonymiser,
               reading: Reading, max_events: int = MAX_PACKED_EVENTS,
               max_bytes: int = MAX_PACKED_BYTES) -> PackedChunk:
    """Packed records of a chunk of whole JSON lines whose first line is line ``first_number`` of the log."""
    starts, ends = line_spans(chunk)
    plan_codes = plan_boards()[0]
    # every accepted event: its line index in the chunk, its stream (type and plan board) and its wire JSON
    lines: list[np.ndarray] = []
    streams: list[np.ndarray] = []
    wires: list[pa.Array] = []
    for kind, (index, plan_board, type_wires) in _columnar_events(chunk, starts, ends, pseudonymiser, reading).items():
        lines.append(index)
        streams.append(kind * _STREAMS_PER_TYPE + plan_board)
        wires.append(type_wires)
    done = np.zeros(len(starts), dtype=bool)
    for index in lines:
        done[index] = True
    result = PackedChunk()
    slow_lines, slow_streams, slow_wires = [], [], []
    board_index = {code: i for i, code in enumerate(plan_codes)}
    for i in np.flatnonzero(~done).tolist():
        line = parse_json_line(first_number + i, chunk[starts[i]:ends[i]])
        if line is None:
            continue  # blank: neither an event nor a rejected line
        try:
            record, fields, digits = check_line(line, boards)
        except InvalidEvent as error:
            result.rejected.append((line, error))
            continue
        slow_lines.append(i)
        slow_streams.append(EVENT_TYPES.index(_RECORD_TYPE[record]) * _STREAMS_PER_TYPE
                            + board_index[fields["board"]])
        slow_wires.append(wire_fields(record, fields, pseudonymiser.pseudonym(digits), pseudonymiser.key_id).decode())
    line_of = np.concatenate([*lines, np.array(slow_lines, dtype=np.int64)])
    stream_of = np.concatenate([*streams, np.array(slow_streams, dtype=np.int64)])
    result.lines = len(line_of) + len(result.rejected)
    if not len(line_of):
        return result
    order = np.lexsort((line_of, stream_of))  # by stream, each in line order
    wire = pa.concat_arrays([*wires, pa.array(slow_wires, pa.string())]).take(pa.array(order))
    line_of, stream_of = line_of[order] + first_number, stream_of[order]
    bounds = _record_bounds(stream_of, as_numpy(pc.binary_length(wire)).astype(np.int64), max_events, max_bytes)
    values = pc.binary_join(pa.ListArray.from_arrays(pa.array(bounds, pa.int32()), wire), ",").to_pylist()
    for start, stop, value in zip(bounds[:-1].tolist(), bounds[1:].tolist(), values, strict=True):
        kind, board = divmod(int(stream_of[start]), _STREAMS_PER_TYPE)
        event_type = EVENT_TYPES[kind]
        result.produced[event_type] += stop - start
        result.records.append((event_type, plan_codes[board], f"[{value}]".encode(), line_of[start:stop].tolist()))
    result.records.sort(key=lambda record: record[3][0])  # in the order of their first line
    return result


def _record_bounds(stream_of: np.ndarray, lengths: np.ndarray, max_events: int, max_bytes: int) -> np.ndarray:
    """Where records start (and the last one ends) in events sorted by stream: each record one stream's, at most
    ``max_events`` events and ``max_bytes`` bytes as a JSON array (a single larger event alone), filled
    greedily in order, as the line-by-line packing fills them."""
    stream_ends = [*np.flatnonzero(np.diff(stream_of)).tolist(), len(stream_of) - 1]
    used = np.concatenate([[0], np.cumsum(lengths + 1)])  # events [0, k) with a comma each: used[k] bytes
    bounds = [0]
    for last in stream_ends:
        position, stream_end = bounds[-1], last + 1
        while position < stream_end:
            # '[' + events [position, k) + commas between + ']' is used[k] - used[position] + 1 bytes
            fits = int(np.searchsorted(used, used[position] + max_bytes - 1, side="right")) - 1
            position = max(position + 1, min(position + max_events, stream_end, fits))
            bounds.append(position)
    return np.array(bounds, dtype=np.int64)


def _columnar_events(chunk: bytes, starts: np.ndarray, ends: np.ndarray, pseudonymiser: Pseudonymiser,
                     reading: Reading) -> dict[int, tuple[np.ndarray, np.ndarray, pa.Array]]:
    """Per event type (its index): the line indexes (in the chunk) of the rows the column checks accept as
    plainly valid, their plan boards (indexes) and their wire fields."""
    tables, lines = [], []
    for group, schema in groups(chunk, starts, ends, np.flatnonzero(for_arrow(chunk, starts, ends))):
        if schema == TYPELESS:
            continue  # no type: the line path rejects them
        piece, piece_starts, _ = gather(chunk, starts[group], ends[group])
        read, positions, _left = read_group(piece, piece_starts, schema)  # what is left goes line by line
        tables += [canonical(rows) for rows in read]
        lines += [group[p] for p in positions]
    if not tables:
        return {}
    rows = pa.concat_tables(tables)
    compact, _cascade, valid = classify(rows, reading, Rejects())
    taken = compact["line"].to_numpy()[valid]
    rows, compact = rows.take(pa.array(taken)), compact.filter(pa.array(valid))
    line = np.concatenate(lines)[taken]
    return {int(kind): _wire_columns(rows.filter(pa.array(of_kind)), compact.filter(pa.array(of_kind)),
                                             line[of_kind], EVENT_TYPES[kind], pseudonymiser,
                                             reading.latest_micros)
            for kind in np.unique(compact["type"].to_numpy())
            if (of_kind := compact["type"].to_numpy() == kind).any()}


def _wire_columns(rows: pa.Table, compact: pa.Table, line: np.ndarray, event_type: str, pseudonymiser: Pseudonymiser,
                  latest_micros: int) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """The wire JSON of plainly valid rows of one type (see the module docstring), as ``orjson`` writes the line
    path's dict: the fields in the record's order, no spaces."""
    plan_codes = plan_boards()[0]
    board = compact["board"].to_numpy().astype(np.int64)
    fields: dict[str, pa.Array | str] = {
        "event_id": _json_text(compact["event_id"]),
        "board": _json_text(pa.array(plan_codes).take(pa.array(board)), plain=True),
        "occurred_at": _json_text(pa.array(_isoformat(timestamps(rows["occurred_at"], latest_micros)[0])), plain=True),
        "patient": _json_text(pa.array(_pseudonyms(nhs_numbers(rows["nhs_number"])[0], pseudonymiser)), plain=True),
        "age": pc.cast(compact["age"], pa.string()),
        "type": orjson.dumps(event_type).decode(),
        "key_id": orjson.dumps(pseudonymiser.key_id).decode(),
    }
    if event_type == "admission":
        fields["admission_method"] = _json_text(_codes(ADMISSION_METHODS, compact["admission_method"]), plain=True)
        fields["provider"] = _json_text(_text(rows["provider"]))
    elif event_type == "discharge":
        fields["discharge_destination"] = _json_text(_text(rows["discharge_destination"]), plain=True)
        method = _text(rows["discharge_method"])
        fields["discharge_method"] = _json_text(pc.if_else(pc.fill_null(pc.equal(method, ""), True), "1", method),
                                                plain=True)
        fields["delayed_days"] = pc.cast(compact["delayed_days"], pa.string())
        fields["delay_attributable_to"] = _json_text(_codes(DELAY_ATTRIBUTIONS, compact["delay_attributable_to"]),
                                                     plain=True)
        fields["into_reablement"] = _json_flag(compact["into_reablement"])
        # the contract's order: missing (null or "") is None, anything else is stripped ("  " gives "")
        written = pc.cast(rows["admission_id"], pa.string())
        fields["admission_id"] = _json_text(pc.if_else(pc.fill_null(pc.equal(written, ""), True),
                                                       pa.scalar(None, pa.string()), _text(rows["admission_id"])))
    else:
        fields["setting"] = _json_text(_text(rows["setting"]), plain=True)
        fields["permanent"] = _json_flag(compact["permanent"])
    parts: list[pa.Array | str] = []
    # mypy#20409: mypy does not see that a type[...] variable is Hashable
    for number, name in enumerate(wire_order(RECORDS[event_type])):  # type: ignore[arg-type]
        parts += ["{" if number == 0 else ",", orjson.dumps(name).decode() + ":", fields[name]]
    wires = pc.binary_join_element_wise(*parts, "}", "")
    return line, board, wires.combine_chunks() if isinstance(wires, pa.ChunkedArray) else wires


def _codes(names: tuple[str, ...], index: pa.ChunkedArray) -> pa.Array:
    """Code names by index (-1: null)."""
    positions = index.to_numpy().astype(np.int64)
    named = pa.array(names, pa.string()).take(pa.array(np.maximum(positions, 0)))
    return pc.if_else(pa.array(positions >= 0), named, pa.scalar(None, pa.string()))


def _json_text(text: pa.Array | pa.ChunkedArray, plain: bool = False) -> pa.Array:
    """Text (null: ``null``) as ``orjson`` writes it: in quotes, and for the few values with a quote, a backslash
    or a control character, ``orjson`` itself (``plain``: codes, moments and pseudonyms, which have none)."""
    text = pc.cast(text, pa.string())
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    quoted = pc.binary_join_element_wise('"', text, '"', "")
    if plain:
        return pc.fill_null(quoted, "null")
    plainly = as_numpy(pc.fill_null(pc.match_substring_regex(text, r'^[^"\\\x00-\x1f]*$'), True)).astype(bool)
    if plainly.all():
        return pc.fill_null(quoted, "null")
    values = quoted.to_pylist()
    for i in np.flatnonzero(~plainly).tolist():
        values[i] = orjson.dumps(text[i].as_py()).decode()
    return pc.fill_null(pa.array(values, pa.string()), "null")


def _json_flag(flags: pa.ChunkedArray) -> pa.Array:
    return pc.if_else(flags, "true", "false")


def _text(column: pa.ChunkedArray) -> pa.Array:
    """A text column as the contract's ``_text`` gives it: stripped (in Python, for the few values Arrow's
    plain-text test does not clear), a number written as a number in its decimal form; null stays null."""
    text = pc.cast(column, pa.string()).combine_chunks()
    plain = as_numpy(pc.fill_null(pc.match_substring_regex(text, PLAIN_TEXT), True)).astype(bool)
    if plain.all():
        return text
    values = text.to_pylist()
    for i in np.flatnonzero(~plain).tolist():
        values[i] = values[i].strip()
    return pa.array(values, pa.string())


def _isoformat(micros: np.ndarray) -> list[str]:
    """UTC moments (epoch microseconds) as ``datetime.isoformat()`` writes them: ``.ffffff`` only when there are
    microseconds, then ``+00:00``."""
    text = np.datetime_as_string((micros // 1_000_000).astype("datetime64[s]")).tolist()
    fraction = micros % 1_000_000
    for i in np.flatnonzero(fraction).tolist():
        text[i] = f"{text[i]}.{int(fraction[i]):06d}"
    return [f"{moment}+00:00" for moment in text]


def _pseudonyms(numbers: np.ndarray, pseudonymiser: Pseudonymiser) -> list[str]:
    """Each row's pseudonym, computed once per distinct NHS number (ten digits as an integer)."""
    distinct, inverse = np.unique(numbers, return_inverse=True)
    pseudonyms = pseudonymiser.pseudonyms_of_digits(f"{number:010d}" for number in distinct.tolist())
    return [pseudonyms[i] for i in inverse.tolist()]

