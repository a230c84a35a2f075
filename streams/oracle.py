"""The batch reference: per-board per-day counts recomputed from an event log with pandas.

It applies the same rules as the worker (``streams/board_state.py``: per board
and type stream time, lateness, dedup, 91-day reablement outcome) but computes
them independently, vectorised over the whole log, so the streaming result can
be checked against it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from bcfwatch.core import codes
from bcfwatch.core.boards import load_boards
from bcfwatch.core.calendar import SECONDS_PER_DAY, day_texts, epoch_days
from bcfwatch.core.topics import EVENT_TYPES
from producers.eventlog.reader import ADMISSION_METHODS, DELAY_ATTRIBUTIONS, read_events
from streams.board_state import DEFAULT_MAX_AHEAD_DAYS, REABLEMENT_WINDOW_DAYS
from streams.daily_table import complete_grid
from streams.published import COUNTERS

# the type codes of the event frame (its categories are EVENT_TYPES, in order)
ADMISSION = EVENT_TYPES.index("admission")
DISCHARGE = EVENT_TYPES.index("discharge")
PLACEMENT = EVENT_TYPES.index("care_home_placement")
EMERGENCY = [ADMISSION_METHODS.index(m) for m in sorted(codes.EMERGENCY_ADMISSION_METHODS)]
OTHER_NON_ELECTIVE = [ADMISSION_METHODS.index(m) for m in
                      sorted(codes.MATERNITY_ADMISSION_METHODS | codes.OTHER_NON_ELECTIVE_ADMISSION_METHODS)]


@dataclass
class EventTimeDecisions:
    """What the event-time rules make of each row of a log: counted, tallied late, or still held at its end."""

    counted: np.ndarray  # row numbers (log order)
    late: np.ndarray
    held: np.ndarray
    clocks: dict[tuple[str, str], float]  # (board, type) -> the stream's clock at the end of the log


def event_time_decisions(events: pd.DataFrame, lateness_seconds: float,
                         max_ahead_seconds: float = DEFAULT_MAX_AHEAD_DAYS * SECONDS_PER_DAY) -> EventTimeDecisions:
    """Duplicates first, then the corroborated clock per board and type, then lateness (``streams/board_state``).

    Streams whose events never jump more than ``max_ahead`` past the running maximum (and whose first two
    events are within ``max_ahead`` of each other) behave exactly like a plain running-maximum clock, so they
    are decided with whole-column operations; the others are walked event by event.
    """
    board = events["board"].cat.codes.to_numpy().astype(np.int64)
    kind = events["type"].cat.codes.to_numpy().astype(np.int64)
    rows = np.arange(len(events))
    distinct = rows[_first_seen(events, rows, kind)]
    stream = (board * len(EVENT_TYPES) + kind)[distinct]
    ts = events["ts"].to_numpy()[distinct]
    by_stream = pd.Series(ts).groupby(stream)
    previous_max = by_stream.cummax().groupby(stream).shift(1).to_numpy()
    position = by_stream.cumcount().to_numpy()
    size = by_stream.transform("size").to_numpy()
    jumps = (((position == 1) & (np.abs(ts - previous_max) > max_ahead_seconds))
             | ((position >= 2) & (ts > previous_max + max_ahead_seconds)) | (size == 1))
    late = ts < previous_max - lateness_seconds  # NaN (a stream's first event) compares False
    held = np.zeros(len(ts), dtype=bool)
    final = pd.Series(ts).groupby(stream).max()
    clocks: dict[int, float | None] = dict(final.items())
    walked = np.isin(stream, np.unique(stream[jumps]))
    order = np.flatnonzero(walked)
    order = order[np.argsort(stream[order], kind="stable")]
    for part in np.split(order, np.flatnonzero(np.diff(stream[order])) + 1) if len(order) else []:
        late[part], held[part], clocks[int(stream[part[0]])] = _walk_clock(ts[part].tolist(), lateness_seconds,
                                                                            max_ahead_seconds)
    plan_codes = events["board"].cat.categories
    return EventTimeDecisions(
        counted=distinct[~late & ~held], late=distinct[late], held=distinct[held],
        clocks={(plan_codes[key // len(EVENT_TYPES)], EVENT_TYPES[key % len(EVENT_TYPES)]): clock
                for key, clock in clocks.items() if clock is not None})


def _walk_clock(times: list[float], lateness_seconds: float,
                max_ahead_seconds: float) -> tuple[np.ndarray, np.ndarray, float | None]:
    """One stream's distinct events in arrival order -> (late, still held at the end, final clock)."""
    late, held = np.zeros(len(times), dtype=bool), np.zeros(len(times), dtype=bool)
    clock: float | None = None
    waiting: list[int] = []
    for i, occurred in enumerate(times):
        if waiting:
            released = [j for j in waiting if occurred >= times[j] - max_ahead_seconds]
            if released:
                waiting = [j for j in waiting if occurred < times[j] - max_ahead_seconds]
            for j in released:
                if clock is not None and times[j] < clock - lateness_seconds:
                    late[j] = True
                elif clock is None or times[j] > clock:
                    clock = times[j]
        if clock is None or occurred > clock + max_ahead_seconds:
            waiting.append(i)
        elif occurred < clock - lateness_seconds:
            late[i] = True
        else:
            clock = max(clock, occurred)
    held[waiting] = True
    return late, held, clock


def daily_counts(events: pd.DataFrame, lateness_seconds: float,
                 max_ahead_seconds: float = DEFAULT_MAX_AHEAD_DAYS * SECONDS_PER_DAY,
                 decisions: EventTimeDecisions | None = None) -> pd.DataFrame:
    """The export grid (board, date, COUNTERS) for events in log order (``producers.eventlog.reader`` frames).

    A day appears on the grid's range when something was added to it, as in the worker's table.
    """
    decisions = decisions or event_time_decisions(events, lateness_seconds, max_ahead_seconds)
    board = events["board"].cat.codes.to_numpy().astype(np.int64)
    kind = events["type"].cat.codes.to_numpy().astype(np.int64)
    day = epoch_days(events["ts"].to_numpy())
    counted, late = decisions.counted, decisions.late

    c_kind, old = kind[counted], events["age"].to_numpy()[counted] >= 65
    method = events["admission_method"].cat.codes.to_numpy()[counted]
    attribution = events["delay_attributable_to"].cat.codes.to_numpy()[counted]
    delayed = np.where(c_kind == DISCHARGE, events["delayed_days"].to_numpy()[counted], 0)
    emergency = (c_kind == ADMISSION) & np.isin(method, EMERGENCY)
    placement_65 = (c_kind == PLACEMENT) & events["permanent"].to_numpy()[counted] & old
    reablement = (c_kind == DISCHARGE) & events["into_reablement"].to_numpy()[counted] & old
    patient = events["patient"].to_numpy()[counted]
    plan_index = {code: i for i, code in enumerate(events["board"].cat.categories)}
    discharge_clocks = pd.Series({plan_index[b]: clock for (b, t), clock in decisions.clocks.items()
                                  if t == "discharge"}, dtype=float)
    per_event = {
        "emergency_admissions": emergency,
        "other_admissions": (c_kind == ADMISSION) & np.isin(method, OTHER_NON_ELECTIVE),
        **{f"delayed_days_{name}": np.where(attribution == i, delayed, 0) for i, name in enumerate(DELAY_ATTRIBUTIONS)},
        "care_home_admissions_65": placement_65,
        "reablement_discharges_65": reablement,
        "at_home_91d": _at_home(board[counted], patient, day[counted], reablement, (emergency & old) | placement_65,
                                discharge_clocks, lateness_seconds),
    }
    return _grid(board[counted], day[counted], per_event, board[late], day[late])


def _first_seen(events: pd.DataFrame, rows: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Which of ``rows`` (in log order) is the first with its (type, event_id).

    Hashes find the candidates; candidates are then compared as text, so a hash collision changes nothing.
    """
    with np.errstate(over="ignore"):
        keys = events["event_id_hash"].to_numpy()[rows] * np.uint64(3) + kind[rows].astype(np.uint64)
    maybe_repeated = pd.Series(keys).duplicated(keep=False).to_numpy()
    candidates = rows[maybe_repeated]
    event_ids = pa.chunked_array(events["event_id"].array.__arrow_array__()).take(pa.array(candidates))
    repeated = pd.DataFrame({"type": kind[candidates], "event_id": pd.Series(event_ids, dtype=pd.ArrowDtype(
        pa.string()))}).duplicated().to_numpy()
    first = ~maybe_repeated
    first[maybe_repeated] = ~repeated
    return first


def _at_home(board: np.ndarray, patient: np.ndarray, day: np.ndarray, reablement: np.ndarray, adverse: np.ndarray,
             discharge_clocks: pd.Series, lateness_seconds: float) -> np.ndarray:
    """For each counted event: 1 if it is a reablement discharge settled as still at home after 91 days."""
    through = epoch_days(discharge_clocks - lateness_seconds) - (REABLEMENT_WINDOW_DAYS + 1)
    followed = pd.DataFrame({"row": np.flatnonzero(reablement), "board": board[reablement],
                             "patient": patient[reablement], "day": day[reablement]})
    settled = followed["day"].to_numpy() <= followed["board"].map(through).to_numpy()
    readmissions = pd.DataFrame({"board": board[adverse], "patient": patient[adverse], "adverse_day": day[adverse]})
    pairs = followed.merge(readmissions, on=["board", "patient"])
    in_window = (pairs["adverse_day"] > pairs["day"]) & (pairs["adverse_day"] <= pairs["day"] + REABLEMENT_WINDOW_DAYS)
    home = settled & ~np.isin(followed["row"].to_numpy(), pairs.loc[in_window, "row"].to_numpy())
    result = np.zeros(len(board), dtype=np.int64)
    result[followed["row"].to_numpy()[home]] = 1
    return result


def _grid(board: np.ndarray, day: np.ndarray, per_event: dict[str, np.ndarray], late_board: np.ndarray,
          late_day: np.ndarray) -> pd.DataFrame:
    """Sum per-event amounts into board-days; hand the touched board-days to the shared export grid."""
    plan_codes = load_boards().codes
    all_days = np.concatenate([day, late_day])
    if len(all_days) == 0:
        return complete_grid(pd.DataFrame(columns=["board", "date", *COUNTERS]))
    first, width = all_days.min(), all_days.max() - all_days.min() + 1
    cells, late_cells = board * width + (day - first), late_board * width + (late_day - first)
    size = len(plan_codes) * width
    sums = {name: np.bincount(cells[amount] if amount.dtype == bool else cells, minlength=size,
                              weights=None if amount.dtype == bool else amount).astype(np.int64)
            for name, amount in per_event.items()}
    sums["late_events"] = np.bincount(late_cells, minlength=size).astype(np.int64)
    table = pd.DataFrame(sums)[list(COUNTERS)]
    touched = np.flatnonzero(table.to_numpy().any(axis=1))
    table = table.iloc[touched]
    dates = day_texts(first + touched % width)
    table.insert(0, "date", dates)
    table.insert(0, "board", np.asarray(plan_codes)[touched // width])
    return complete_grid(table)


def oracle_counts(path: Path, lateness_seconds: float,
                  max_ahead_seconds: float = DEFAULT_MAX_AHEAD_DAYS * SECONDS_PER_DAY) -> pd.DataFrame:
    return daily_counts(read_events(path), lateness_seconds, max_ahead_seconds)
