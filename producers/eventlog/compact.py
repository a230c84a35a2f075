"""The compact events a log read produces, whichever way a line was read, and the oracle's frame of them.

Both readers of a log (the column checks, :mod:`producers.eventlog.column_checks`, and the line-by-line contract,
:mod:`producers.eventlog.line_checks`) turn each accepted line into one row of :data:`COMPACT_SCHEMA`: codes as small
integers (event type, plan board, admission method, delay attribution), the moment as epoch seconds, the
patient as a 64-bit key (:class:`PatientKeys`: NHS numbers never leave the process that read them) and the
event id with a 64-bit hash of it (:func:`text_hashes`) for finding repeats cheaply. :func:`to_frame` turns
such rows into the pandas frame the oracle and the backtest work on.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bcfwatch.core import codes
from bcfwatch.core.boards import load_boards
from bcfwatch.core.calendar import epoch_microseconds
from bcfwatch.core.events import RECORDS
from bcfwatch.core.topics import EVENT_TYPES

ADMISSION_METHODS = tuple(sorted(codes.ADMISSION_METHODS))
DELAY_ATTRIBUTIONS = codes.DELAY_ATTRIBUTIONS
EVENT_COLUMNS = ("type", "event_id", "event_id_hash", "board", "ts", "patient", "age", "admission_method",
                 "delayed_days", "delay_attributable_to", "into_reablement", "permanent")
ROWS_PER_TABLE = 1 << 16  # rows gathered one at a time are put into Arrow this many at a time
TYPE_INDEX = {RECORDS[event_type]: i for i, event_type in enumerate(EVENT_TYPES)}  # record class -> type code
COMPACT_SCHEMA = pa.schema([
    ("line", pa.int64()), ("type", pa.int8()), ("event_id", pa.string()), ("event_id_hash", pa.uint64()),
    ("board", pa.int16()),
    ("ts", pa.float64()), ("patient", pa.uint64()), ("age", pa.int16()), ("admission_method", pa.int8()),
    ("delayed_days", pa.int16()), ("delay_attributable_to", pa.int8()), ("into_reablement", pa.bool_()),
    ("permanent", pa.bool_()),
])


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
class Reading:
    """What every block needs to know: the clock for 'tomorrow' and the patient keys."""

    latest_micros: int
    patients: PatientKeys

    @classmethod
    def fresh(cls, patients: PatientKeys | None = None) -> Reading:
        """A reading starting now (events up to a day ahead of this moment are believed), with ``patients`` or
        fresh patient keys."""
        return cls(epoch_microseconds(datetime.now(UTC) + timedelta(days=1)), patients or PatientKeys.fresh())


@cache
def plan_boards() -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """Plan board codes, council codes, and each council's plan board as an index into the first."""
    boards = load_boards()
    plan_codes = tuple(boards.codes)
    councils = tuple(boards.plan_board_of)
    plan_index = {code: i for i, code in enumerate(plan_codes)}
    return plan_codes, councils, np.array([plan_index[boards.plan_board_of[c]] for c in councils], dtype=np.int16)


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


def to_frame(events: pa.Table) -> pd.DataFrame:
    """The oracle's event frame: categories for codes, the event id as Arrow-backed text."""
    plan_codes = plan_boards()[0]

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
