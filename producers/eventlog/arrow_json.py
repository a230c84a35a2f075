"""Arrow reads a chunk's JSON lines exactly as the contract's JSON parser would, or says which it cannot.

:func:`for_arrow` picks the lines Arrow reads as the contract's parser does: one flat object (starts with
``{``, ends with ``}``, no other ``{`` or ``[``), no stray carriage return, valid UTF-8. :func:`groups`
groups them by how each field is written (numbers or flags written as strings, text written as numbers),
each group with the schema to read it; :func:`read_group` reads a group with Arrow's JSON reader, cutting
smaller (no recursion) the parts Arrow refuses, and leaves the lines of small refused parts to the
line-by-line reading; :func:`canonical` brings what was read to the column checks' types.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from producers.eventlog.byte_lines import as_numpy, count_in, lines_array
from producers.eventlog.logformat import LOG_COLUMNS

LINE_BY_LINE_BELOW = 32  # lines: a piece Arrow cannot read is cut into PIECES until it is this small
PIECES = 32
INTEGER_COLUMNS = ("age", "delayed_days")
FLAG_COLUMNS = ("into_reablement", "permanent")
_NUMBER_AS_TEXT = ("event_id", "nhs_number", "board", "admission_method", "provider", "discharge_destination",
                   "discharge_method", "delay_attributable_to", "admission_id", "setting")
# How a column may be written, in order: the first is assumed unless the line says otherwise.
_WRITTEN_AS: dict[str, tuple[pa.DataType, ...]] = {
    **{name: (pa.string(),) for name in LOG_COLUMNS},
    **{name: (pa.string(), pa.int64()) for name in _NUMBER_AS_TEXT},
    **{name: (pa.int64(), pa.string()) for name in INTEGER_COLUMNS},
    **{name: (pa.bool_(), pa.string(), pa.int64()) for name in FLAG_COLUMNS},
}
_WRITTEN_AS_STRING = r'"{}"[ \t]*:[ \t]*"'
_WRITTEN_AS_NUMBER = r'"{}"[ \t]*:[ \t]*-?[0-9]'
TYPELESS = pa.schema([("type", pa.string())])  # lines without a "type" key: read only to check their JSON
ODD = ":odd"  # canonical column: the value was written as a string the column checks do not decode
CANONICAL_SCHEMA = pa.schema(
    [(name, pa.int64() if name in INTEGER_COLUMNS else pa.bool_() if name in FLAG_COLUMNS else pa.string())
     for name in LOG_COLUMNS]
    + [(name + ODD, pa.bool_()) for name in (*INTEGER_COLUMNS, *FLAG_COLUMNS)])
_ROW_IN_ERROR = re.compile(r" in row (\d+)")


def for_arrow(chunk: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines Arrow reads exactly as the contract's parser does: one flat JSON object (``{`` first,
    ``}`` last, no other ``{`` or ``[``: no nesting orjson would refuse, no ``null`` or two objects),
    no carriage return inside, valid UTF-8 (Arrow lets invalid bytes through in fields it ignores), and
    no ``key_id`` or ``\\u`` escape anywhere: the contract checks a row's ``key_id``, which Arrow's reading
    ignores (not a log column), and an escape could spell that key."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    if not len(data):
        return np.zeros(len(starts), dtype=bool)
    ok = (ends - starts >= 2) & (data[starts.clip(0, len(data) - 1)] == ord("{"))
    ok &= data[(ends - 1).clip(0, len(data) - 1)] == ord("}")
    ok &= count_in((data == ord("{")) | (data == ord("[")), starts, ends) == 1
    ok &= count_in(data == 13, starts, ends) == 0
    if b"key_id" in chunk or b"\\u" in chunk:
        ok &= ~as_numpy(pc.match_substring_regex(lines_array(chunk, starts, ends), r"key_id|\\u")).astype(bool)
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            for i in np.flatnonzero(ok & (count_in(data >= 0x80, starts, ends) > 0)):
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


def groups(chunk: bytes, starts: np.ndarray, ends: np.ndarray,
           lines: np.ndarray) -> Iterable[tuple[np.ndarray, pa.Schema]]:
    """``lines`` grouped by how their fields are written, with the schema to read each group."""
    any_way, ways = _written_as_patterns()
    signature = np.zeros(len(lines), dtype=np.int64)
    if len(lines):
        texts = lines_array(chunk, starts[lines], ends[lines])
        typeless = ~as_numpy(pc.match_substring_regex(texts, r'"type"|\\')).astype(bool)
        signature[typeless] = -1
        unusual = np.flatnonzero(as_numpy(pc.match_substring_regex(texts, any_way)).astype(bool))
        if len(unusual):
            texts = texts.take(pa.array(unusual))
            seen = np.zeros((len(unusual), len(LOG_COLUMNS)), dtype=np.int64)
            for name, way, pattern in reversed(ways):  # the first matching way wins
                column = LOG_COLUMNS.index(name)
                seen[as_numpy(pc.match_substring_regex(texts, pattern)).astype(bool), column] = way
            written = seen @ (3 ** np.arange(len(LOG_COLUMNS), dtype=np.int64))
            signature[unusual] = np.where(signature[unusual] < 0, -1, written)
    for value in np.unique(signature):
        if value < 0:  # no "type" key (nor any escape that could spell one): read only to check the JSON
            yield lines[signature == value], TYPELESS
            continue
        ways_written = [(value // 3 ** i) % 3 for i in range(len(LOG_COLUMNS))]
        schema = pa.schema([(name, _WRITTEN_AS[name][way])
                            for name, way in zip(LOG_COLUMNS, ways_written, strict=True)])
        yield lines[signature == value], schema


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


def read_group(piece: bytes, starts: np.ndarray, schema: pa.Schema) -> tuple[list[pa.Table], list[np.ndarray],
                                                                             list[int]]:
    """Arrow's tables of a piece of whole lines (with each table's line positions) and the lines left over.

    A part Arrow refuses is retried either side of the line it names, or cut in ``PIECES``; parts under
    ``LINE_BY_LINE_BELOW`` lines are left over. Iterative, and each line is read a bounded number of times.
    """
    buffer = pa.py_buffer(piece)
    tables: list[pa.Table] = []
    positions: list[np.ndarray] = []
    left: list[int] = []
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


def canonical(rows: pa.Table) -> pa.Table:
    """Rows read with some columns typed as written, in the column checks' types (``:odd`` marks strings
    in number or flag columns that are not plainly a number or a flag)."""
    columns, odd = [], []
    for name in LOG_COLUMNS:
        column = rows[name].combine_chunks()
        if name in INTEGER_COLUMNS:
            if pa.types.is_string(column.type):
                plain = pc.fill_null(pc.match_substring_regex(column, r"^-?[0-9]{1,15}$"), False)
                odd.append(pc.and_(pc.is_valid(column), pc.invert(plain)))
                column = pc.cast(pc.if_else(plain, column, pa.scalar(None, pa.string())), pa.int64())
            else:
                odd.append(pa.array(np.zeros(len(column), dtype=bool)))
        elif name in FLAG_COLUMNS:
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
    return pa.Table.from_arrays(columns + odd, schema=CANONICAL_SCHEMA)
