"""The batch reference: per-board per-day counts recomputed from an event log with pandas.

It applies the same rules as the worker (``streams/board_state.py``: per board
and type stream time, lateness, dedup, 91-day reablement outcome) but computes
them independently, vectorised over the whole log, so the streaming result can
be checked against it exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bcfwatch.boards import load_boards
from producers.logformat import read_log, row_to_event
from producers.pseudonym import Pseudonymiser
from streams import codes
from streams.board_state import COUNTERS, REABLEMENT_WINDOW_DAYS, SECONDS_PER_DAY
from streams.daily_table import complete_grid
from streams.records import Admission, CareHomePlacement, Discharge, InvalidEvent

EVENT_COLUMNS = ("type", "event_id", "board", "ts", "patient", "age", "admission_method", "delayed_days",
                 "delay_attributable_to", "into_reablement", "permanent")


def load_events(path: Path, pseudonymiser: Pseudonymiser) -> pd.DataFrame:
    """The valid events of a log, in log order (the order replay produces them); bad lines are left out."""
    boards = load_boards()
    rows = []
    for line in read_log(path):
        if line.row is None:
            continue
        try:
            event = row_to_event(line.row, pseudonymiser, boards)
        except InvalidEvent:
            continue
        rows.append((
            event.type, event.event_id, event.board, event.occurred_at.timestamp(), event.patient, event.age,
            event.admission_method if isinstance(event, Admission) else None,
            event.delayed_days if isinstance(event, Discharge) else 0,
            event.delay_attributable_to if isinstance(event, Discharge) else None,
            event.into_reablement if isinstance(event, Discharge) else False,
            event.permanent if isinstance(event, CareHomePlacement) else False,
        ))
    return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))


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
