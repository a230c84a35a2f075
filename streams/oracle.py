"""The batch reference: per-board per-day counts recomputed from an event log with pandas.

It applies the same rules as the worker (``streams/board_state.py``: per board
and type stream time, lateness, dedup, 91-day reablement outcome) but computes
them independently, vectorised over the whole log, so the streaming result can
be checked against it exactly.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from bcfwatch.boards import load_boards
from producers.logformat import read_log
from producers.pseudonym import Pseudonymiser
from streams import codes
from streams.board_state import COUNTERS, REABLEMENT_WINDOW_DAYS, SECONDS_PER_DAY
from streams.daily_table import complete_grid
from streams.records import InvalidEvent, validated_fields

EVENT_COLUMNS = ("type", "event_id", "board", "ts", "patient", "age", "admission_method", "delayed_days",
                 "delay_attributable_to", "into_reablement", "permanent")


def _event_row(row: dict, pseudonymiser: Pseudonymiser, boards) -> tuple | None:
    """The oracle's columns for one valid log row; None for a row the contract rejects."""
    payload = {k: v for k, v in row.items() if k != "nhs_number"}
    try:
        payload["patient"] = pseudonymiser.pseudonym(row.get("nhs_number"))
        _, fields = validated_fields(payload, boards)
    except (InvalidEvent, ValueError):
        return None
    event_type = payload["type"]
    return (event_type, fields["event_id"], fields["board"], fields["occurred_at"].timestamp(), fields["patient"],
            fields["age"], fields.get("admission_method"), fields.get("delayed_days", 0),
            fields.get("delay_attributable_to"), fields.get("into_reablement", False),
            fields.get("permanent", False))


def _load_jsonl_range(path: str, start: int, end: int, key: bytes) -> list[tuple]:
    """Valid events of the JSON Lines between two byte offsets (both at line starts)."""
    boards = load_boards()
    pseudonymiser = Pseudonymiser(key)
    rows = []
    with open(path, "rb") as handle:
        handle.seek(start)
        for line in handle.read(end - start).splitlines():
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(row, dict):
                event = _event_row(row, pseudonymiser, boards)
                if event is not None:
                    rows.append(event)
    return rows


def _line_aligned_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as handle:
        for i in range(1, parts):
            handle.seek(size * i // parts)
            handle.readline()
            cuts.append(max(handle.tell(), cuts[-1]))
    cuts.append(size)
    return list(itertools.pairwise(cuts))


def load_events(path: Path, pseudonymiser: Pseudonymiser, processes: int | None = None) -> pd.DataFrame:
    """The valid events of a log, in log order (the order replay produces them); bad lines are left out.

    JSON Lines are read in parallel chunks (one per core by default), each in its own process.
    """
    if path.suffix.lower() == ".csv":
        boards = load_boards()
        rows = [event for line in read_log(path) if line.row is not None
                for event in [_event_row(line.row, pseudonymiser, boards)] if event is not None]
        return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    processes = processes or (os.cpu_count() or 1)
    if path.stat().st_size < 32 * 1024 * 1024:
        processes = 1
    ranges = _line_aligned_ranges(path, processes)
    key = pseudonymiser.key
    if processes == 1:
        chunks = [_load_jsonl_range(str(path), start, end, key) for start, end in ranges]
    else:
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
            chunks = list(pool.map(_load_jsonl_range, [str(path)] * len(ranges), *zip(*ranges, strict=True),
                                   [key] * len(ranges)))
    return pd.DataFrame([row for chunk in chunks for row in chunk], columns=list(EVENT_COLUMNS))


def daily_counts(events: pd.DataFrame, lateness_seconds: float) -> pd.DataFrame:
    """The export grid (board, date, COUNTERS) for events in log order."""
    events = events.reset_index(drop=True)
    events["day"] = (events["ts"] // SECONDS_PER_DAY).astype("int64")
    by_stream = events.groupby(["board", "type"], sort=False)["ts"]
    previous_max = by_stream.cummax().groupby([events["board"], events["type"]], sort=False).shift(1)
    late = (events["ts"] < previous_max - lateness_seconds).fillna(False).to_numpy(dtype=bool)

    on_time = events[~late]
    counted = on_time[~on_time.duplicated(["type", "event_id"], keep="first")]
    admission = counted["type"] == "admission"
    discharge = counted["type"] == "discharge"
    placement = counted["type"] == "care_home_placement"
    emergency = admission & counted["admission_method"].isin(codes.EMERGENCY_ADMISSION_METHODS)
    other = admission & counted["admission_method"].isin(
        codes.MATERNITY_ADMISSION_METHODS | codes.OTHER_NON_ELECTIVE_ADMISSION_METHODS)
    old = counted["age"] >= 65
    reablement = discharge & counted["into_reablement"].astype(bool) & old
    delayed = counted["delayed_days"].where(discharge, 0)

    parts = pd.DataFrame({
        "board": counted["board"], "day": counted["day"],
        "emergency_admissions": emergency.astype(int),
        "other_admissions": other.astype(int),
        "delayed_days_nhs": delayed.where(counted["delay_attributable_to"] == "nhs", 0),
        "delayed_days_social_care": delayed.where(counted["delay_attributable_to"] == "social_care", 0),
        "delayed_days_both": delayed.where(counted["delay_attributable_to"] == "both", 0),
        "care_home_admissions_65": (placement & counted["permanent"].astype(bool) & old).astype(int),
        "reablement_discharges_65": reablement.astype(int),
        "at_home_91d": _at_home(events, counted, reablement, emergency, placement, old, lateness_seconds),
        "late_events": 0,
    })
    late_rows = events.loc[late, ["board", "day"]].assign(**{c: 0 for c in COUNTERS[:-1]}, late_events=1)
    table = pd.concat([parts, late_rows], ignore_index=True)
    table["date"] = pd.to_datetime(table["day"], unit="D").dt.strftime("%Y-%m-%d")
    return complete_grid(table.drop(columns="day"))


def _at_home(events: pd.DataFrame, counted: pd.DataFrame, reablement: pd.Series, emergency: pd.Series,
             placement: pd.Series, old: pd.Series, lateness_seconds: float) -> pd.Series:
    """1 for each reablement discharge settled as still at home after 91 days, else 0."""
    discharges = counted.loc[reablement, ["board", "patient", "day"]]
    final_clock = events.loc[events["type"] == "discharge"].groupby("board")["ts"].max()
    through = ((final_clock - lateness_seconds) // SECONDS_PER_DAY).astype("int64") - (REABLEMENT_WINDOW_DAYS + 1)
    settled = discharges["day"].to_numpy() <= discharges["board"].map(through).to_numpy()
    adverse = counted.loc[(emergency | (placement & counted["permanent"].astype(bool))) & old,
                          ["board", "patient", "day"]].rename(columns={"day": "adverse_day"})
    pairs = discharges.reset_index().merge(adverse, on=["board", "patient"])
    in_window = (pairs["adverse_day"] > pairs["day"]) & (pairs["adverse_day"] <= pairs["day"] + REABLEMENT_WINDOW_DAYS)
    readmitted = set(pairs.loc[in_window, "index"])
    home = settled & ~np.isin(discharges.index.to_numpy(), list(readmitted))
    result = pd.Series(0, index=counted.index)
    result.loc[discharges.index[home]] = 1
    return result


def oracle_counts(path: Path, pseudonymiser: Pseudonymiser, lateness_seconds: float) -> pd.DataFrame:
    return daily_counts(load_events(path, pseudonymiser), lateness_seconds)
