"""The contract's checks a column at a time: what the column readers make of the rows Arrow read.

The checks walk the contract's order (type, NHS number, board, age, event id, timestamp, then the type's
own fields). At each step a row whose value is *plainly* valid (codes spelt exactly, text with no
surrounding space, NHS numbers of digits, spaces and hyphens, timestamps shaped
``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]`` with ``Z`` or ``+HH:MM``) goes on; for the others the contract
itself is asked, once per distinct value (:class:`Cascade`), and its rejection (reason code and message)
is the row's, so ``{}`` a million times costs one call. A row the contract would pass but that is not
plainly valid goes line by line. :func:`classify` gives the compact events (:mod:`producers.eventlog.compact`)
of the rows and every row's fate.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bcfwatch.core import codes
from bcfwatch.core.boards import load_boards
from bcfwatch.core.calendar import SECONDS_PER_DAY, civil_epoch_days, days_in_month
from bcfwatch.core.events import MAX_AGE, InvalidEvent, earliest_moment
from bcfwatch.core.nhs_number import passes_check
from bcfwatch.core.topics import EVENT_TYPES
from producers.eventlog.arrow_json import ODD
from producers.eventlog.byte_lines import as_numpy
from producers.eventlog.compact import (
    ADMISSION_METHODS,
    COMPACT_SCHEMA,
    DELAY_ATTRIBUTIONS,
    Reading,
    plan_boards,
    text_hashes,
)
from producers.eventlog.logformat import check_row
from producers.eventlog.rejects import Rejects

PLAIN_TEXT = r"(?s)^[!-~](.*[!-~])?$"  # starts and ends with visible ASCII: str.strip() leaves it alone
# might hold an NHS number (bcfwatch.core.nhs_number.contains_nhs_number decides, through the contract)
# RE2's \s is ASCII white space without \v; Python's (which the contract uses) is every Unicode white space,
# so the separators here name the rest: \v, \x1c-\x1f, NEL and the Unicode separators (\p{Z}).
_SPACE = r"\s\x0b\x1c-\x1f\x{85}\p{Z}"
_TEN_DIGITS = rf"[0-9]{{3}}[{_SPACE}.\-]*[0-9]{{3}}[{_SPACE}.\-]*[0-9]{{4}}|[0-9](?:[{_SPACE}.]{{0,3}}[0-9]){{9}}"
_TIMESTAMP = (r"^(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
              r":(?P<second>[0-9]{2})(?P<fraction>\.[0-9]{3}|\.[0-9]{6})?(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})$")
MICROS = 1_000_000
# Each type's own fields in a valid row (beyond the fields every event has).
_TYPE_FIELDS: dict[str, dict[str, Any]] = {
    "admission": {"admission_method": "21", "provider": "P"},
    "discharge": {"discharge_destination": "19", "discharge_method": "1", "delayed_days": 1,
                  "delay_attributable_to": "nhs", "into_reablement": False},
    "care_home_placement": {"setting": "nursing", "permanent": False},
}


def _index_in(column: pa.ChunkedArray, values: tuple[str, ...]) -> np.ndarray:
    """Position of each value in ``values``, -1 when absent or null."""
    return as_numpy(pc.fill_null(pc.index_in(column, value_set=pa.array(values)), -1)).astype(np.int64)


def _matches(column: pa.ChunkedArray, pattern: str) -> np.ndarray:
    return as_numpy(pc.fill_null(pc.match_substring_regex(column, pattern), False)).astype(bool)


def _integers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(value with nulls as 0, present)."""
    return as_numpy(pc.fill_null(column, 0)).astype(np.int64), as_numpy(pc.is_valid(column)).astype(bool)


def _flags(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(true, present)."""
    return as_numpy(pc.fill_null(column, False)).astype(bool), as_numpy(pc.is_valid(column)).astype(bool)


def _blank(column: pa.ChunkedArray) -> np.ndarray:
    """Null or the empty string (the contract's 'missing')."""
    return as_numpy(pc.fill_null(pc.equal(column, ""), True)).astype(bool)


def nhs_numbers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(ten digits as an integer, valid) for NHS numbers written with digits, spaces and hyphens only."""
    shaped = _matches(column, r"^[0-9 -]*$")
    digits = pc.replace_substring(pc.replace_substring(column, " ", ""), "-", "")
    shaped &= _matches(digits, r"^[0-9]{10}$")
    numbers = as_numpy(pc.cast(pc.if_else(pa.array(shaped), digits, "0"), pa.int64())).astype(np.int64)
    return numbers, shaped & passes_check(numbers)


def timestamps(column: pa.ChunkedArray, latest_micros: int) -> tuple[np.ndarray, np.ndarray]:
    """(UTC microseconds since the epoch, valid) for timestamps in the common ISO 8601 shape."""
    shaped = _matches(column, _TIMESTAMP)
    text = pc.if_else(pa.array(shaped), column, "2000-01-01T00:00:00+00:00")

    def number(text: pa.Array, start: int, stop: int) -> np.ndarray:
        digits = pc.utf8_rpad(pc.utf8_slice_codeunits(text, start, stop), stop - start, "0")
        return as_numpy(pc.cast(digits, pa.int64())).astype(np.int64)

    year, month, day = number(text, 0, 4), number(text, 5, 7), number(text, 8, 10)
    hour, minute, second = number(text, 11, 13), number(text, 14, 16), number(text, 17, 19)
    zone = pc.if_else(pc.ends_with(text, "Z"), "+00:00", pc.utf8_slice_codeunits(text, -6))
    zone_hours, zone_minutes = number(zone, 1, 3), number(zone, 4, 6)
    sign = np.where(as_numpy(pc.starts_with(zone, "-")).astype(bool), -1, 1)
    micros = np.zeros(len(year), dtype=np.int64)
    with_fraction = np.flatnonzero(~np.isin(as_numpy(pc.utf8_length(text)), (20, 25)))
    if len(with_fraction):  # '.fff' or '.ffffff' after the seconds
        fraction = pc.struct_field(pc.extract_regex(text.take(pa.array(with_fraction)), _TIMESTAMP), "fraction")
        micros[with_fraction] = number(fraction, 1, 7)
    shaped &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= days_in_month(year, month))
    shaped &= (hour <= 23) & (minute <= 59) & (second <= 59) & (zone_hours <= 23) & (zone_minutes <= 59)
    seconds = (civil_epoch_days(year, month, day) * SECONDS_PER_DAY + hour * 3_600 + minute * 60 + second
               - sign * (zone_hours * 3_600 + zone_minutes * 60))
    stamp = seconds * MICROS + micros
    earliest = int(earliest_moment().timestamp()) * MICROS
    return stamp, shaped & (stamp >= earliest) & (stamp <= latest_micros)


@cache
def _base_rows() -> dict[str, dict[str, Any]]:
    """A valid row of each type: one field of it replaced shows what the contract says of that value."""
    common = {"event_id": "e", "board": plan_boards()[1][0], "occurred_at": earliest_moment().isoformat(),
              "nhs_number": "9434765919", "age": 70}
    return {event_type: {**common, "type": event_type, **_TYPE_FIELDS[event_type]} for event_type in EVENT_TYPES}


class Cascade:
    """Each row's fate as the contract's checks are walked in order: open, rejected (message id) or slow."""

    def __init__(self, rows: int, rejects: Rejects) -> None:
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
        ids = said[as_numpy(pc.index_in(values, value_set=distinct, skip_nulls=False)).astype(np.int64)]
        failed = ids >= 0
        self.rejected[index[failed]] = ids[failed]
        self.open[index[failed]] = False
        self.plain[index[~failed]] = False

    def finish(self) -> np.ndarray:
        """Rows accepted as plainly valid; open rows that are not go line by line."""
        self.slow |= self.open & ~self.plain
        return self.open & self.plain


def classify(rows: pa.Table, reading: Reading, rejects: Rejects) -> tuple[pa.Table, Cascade, np.ndarray]:
    """The compact columns of the rows with a known type, every row's fate, and which rows are valid events
    (the compact table's ``line`` column is the row's position in ``rows``)."""
    cascade = Cascade(rows.num_rows, rejects)
    event_type = _index_in(rows["type"], EVENT_TYPES)
    cascade.check(rows["type"], event_type >= 0, "type")
    known = np.flatnonzero(cascade.open)  # the other checks only for these: rejecting junk stays cheap
    compact, rest, valid = _classify_known(rows.take(pa.array(known)), event_type[known], reading, rejects)
    cascade.rejected[known] = rest.rejected
    cascade.slow[known] = rest.slow
    cascade.open[known] = rest.open
    return compact.set_column(0, "line", pa.array(known)), cascade, valid


def _classify_known(rows: pa.Table, event_type: np.ndarray, reading: Reading,
                    rejects: Rejects) -> tuple[pa.Table, Cascade, np.ndarray]:
    _, councils, plan_board_of = plan_boards()
    cascade = Cascade(rows.num_rows, rejects)

    def odd(name: str) -> np.ndarray:
        return as_numpy(rows[name + ODD]).astype(bool)

    patient, valid_patient = nhs_numbers(rows["nhs_number"])
    cascade.check(rows["nhs_number"], valid_patient, "nhs_number")
    council = _index_in(rows["board"], councils)
    cascade.check(rows["board"], council >= 0, "board")
    age, has_age = _integers(rows["age"])
    cascade.check(rows["age"], has_age & (age >= 0) & (age <= MAX_AGE), "age", odd=odd("age"))
    cascade.check(rows["event_id"], _matches(rows["event_id"], PLAIN_TEXT) & ~_matches(rows["event_id"], _TEN_DIGITS),
                  "event_id")
    stamp, valid_stamp = timestamps(rows["occurred_at"], reading.latest_micros)
    cascade.check(rows["occurred_at"], valid_stamp, "occurred_at")

    admission, discharge, placement = "admission", "discharge", "care_home_placement"
    is_admission = event_type == EVENT_TYPES.index(admission)
    is_discharge = event_type == EVENT_TYPES.index(discharge)
    is_placement = event_type == EVENT_TYPES.index(placement)
    method = _index_in(pc.ascii_upper(rows["admission_method"]), ADMISSION_METHODS)
    cascade.check(rows["admission_method"], method >= 0, "admission_method", admission, is_admission)
    cascade.check(rows["provider"], _matches(rows["provider"], PLAIN_TEXT) & ~_matches(rows["provider"], _TEN_DIGITS),
                  "provider", admission, is_admission)

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
        pa.array(stamp / MICROS),
        pa.array(reading.patients.of(patient)),
        pa.array(age.astype(np.int16)),
        pa.array(np.where(is_admission, method, -1).astype(np.int8)),
        pa.array(np.where(is_discharge, delayed, 0).astype(np.int16)),
        pa.array(np.where(is_discharge, attribution, -1).astype(np.int8)),
        pa.array(is_discharge & into_reablement),
        pa.array(is_placement & permanent),
    ], schema=COMPACT_SCHEMA)
    return compact, cascade, valid
