"""`bcfwatch backtest`: the live pipeline's counts and alerts, recomputed offline with pandas.

Same rules, same code paths where it matters: the oracle (``streams/oracle.py``)
applies the event-time rules of the worker to the whole log at once, and the
alert timeline (``monitors/alerting/timeline.py``) is the one the live monitor runs,
judged on the same settled weeks. Outputs have the shapes of
``bcfwatch counts export`` (CSV) and the ``alerts`` topic (JSON Lines).

The log is read column by column (``producers/eventlog/reader.py``: Arrow's JSON
reader, whole-column checks, anything unusual through the one contract line by
line), in blocks across every core, so a national year takes well under a
minute. Patients are held as 64-bit keys mixed under a secret made for the run
and thrown away: raw NHS numbers are read, checked and replaced, never kept or
written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa

from bcfwatch.core.calendar import SECONDS_PER_DAY
from bcfwatch.core.plans import BoardPlan
from bcfwatch.core.settings import DEFAULTS
from monitors.alerting.alerts import Alert, AlertState
from monitors.alerting.metric_timeline import metric_settled_days, plan_metric_timeline, tables_from_counts
from monitors.alerting.timeline import alert_timeline, daily_emergency_admissions, last_settled_admission_days
from monitors.rules.drift import DriftRules, Question
from producers.eventlog.reader import read_log_events, rejected_by_reason, write_rejected
from streams.board_state import DEFAULT_MAX_AHEAD_DAYS
from streams.daily_table import write_csv
from streams.oracle import EventTimeDecisions, daily_counts, event_time_decisions


@dataclass
class BacktestResult:
    counts: pd.DataFrame
    alerts: list[Alert]
    settled: dict[str, date]  # per board, the last settled admission day at the end of the log
    events: int
    seconds: float
    held: pd.DataFrame  # valid events still held at the end of the log (far ahead of their board's clock)
    rejected: pa.Table  # every rejected line: line, reason_code, reason, text (NHS numbers redacted)
    ignored_columns: tuple[str, ...] = ()
    metric_settled: dict = field(default_factory=dict)  # PlanMetric -> board -> last settled day of that metric

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return rejected_by_reason(self.rejected)

    @property
    def alerted_boards(self) -> list[str]:
        """The boards whose plan-number alert was raised at least once in the alert timeline, sorted."""
        return sorted({alert.board for alert in self.alerts
                       if alert.state is AlertState.RAISED and alert.question is Question.PLAN_NUMBER})


def backtest(log: Path, plans: dict[str, BoardPlan], plan_year_start: date,
             lateness_days: int = DEFAULTS.lateness_days,
             rules: DriftRules | None = None, say: Callable[[str], None] = lambda step: None,
             progress: Callable[[int, int], None] | None = None,
             max_ahead_days: int = DEFAULT_MAX_AHEAD_DAYS) -> BacktestResult:
    """``progress(bytes_read, total_bytes)`` follows the reading; ``say`` names each later step."""
    started = time.monotonic()
    read = read_log_events(log, progress=progress)
    events = read.events
    say(f"counting {len(events):,} events")
    decisions = event_time_decisions(events, lateness_days * SECONDS_PER_DAY, max_ahead_days * SECONDS_PER_DAY)
    counts = daily_counts(events, lateness_days * SECONDS_PER_DAY, decisions=decisions)
    settled = settled_from_events(events, lateness_days, max_ahead_days, decisions)
    say("judging every board week by week")
    alerts = alert_timeline(plans, daily_emergency_admissions(counts), plan_year_start, settled, rules)
    say("judging delayed days, care-home admissions and reablement month by month")
    metric_settled = metric_settled_days(final_clocks(decisions), lateness_days)
    alerts += plan_metric_timeline(plans, tables_from_counts(counts), plan_year_start, metric_settled)
    return BacktestResult(counts, alerts, settled, len(events), time.monotonic() - started,
                          held_events(events, decisions), read.rejected, tuple(read.ignored_columns),
                          metric_settled)


def final_clocks(decisions: EventTimeDecisions) -> dict[str, float]:
    """Every board's clock of every event type at the end of the log, as the worker's ``board|type`` keys."""
    return {f"{board}|{kind}": clock_seconds for (board, kind), clock_seconds in decisions.clocks.items()}


def settled_from_events(events: pd.DataFrame, lateness_days: int, max_ahead_days: int = DEFAULT_MAX_AHEAD_DAYS,
                        decisions: EventTimeDecisions | None = None) -> dict[str, date]:
    """Per board, the last settled day at the end of the log (from each board's admission clock)."""
    decisions = decisions or event_time_decisions(events, lateness_days * SECONDS_PER_DAY,
                                                  max_ahead_days * SECONDS_PER_DAY)
    return last_settled_admission_days({f"{board}|admission": clock_seconds
                                        for (board, kind), clock_seconds in decisions.clocks.items()
                                        if kind == "admission"}, lateness_days)


def held_events(events: pd.DataFrame, decisions: EventTimeDecisions) -> pd.DataFrame:
    """The events never corroborated by the end of the log: board, type, event id and event time."""
    held = events.iloc[decisions.held]
    return pd.DataFrame({
        "board": held["board"].astype(str).to_numpy(), "type": held["type"].astype(str).to_numpy(),
        "event_id": held["event_id"].astype(str).to_numpy(),
        "occurred_at": pd.to_datetime(held["ts"].to_numpy(), unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })


def write_outputs(result: BacktestResult, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    counts_path, alerts_path = out_dir / "counts.csv", out_dir / "alerts.jsonl"
    write_csv(result.counts, counts_path)
    alerts_path.write_bytes(b"".join(alert.to_wire() + b"\n" for alert in result.alerts))
    write_side_outputs(result, out_dir)
    return counts_path, alerts_path


def write_side_outputs(result: BacktestResult, out_dir: Path, stem: str = "") -> tuple[Path, Path]:
    """``rejected.jsonl`` (every rejected line and why) and ``held.jsonl`` (events never corroborated)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rejected_path, held_path = out_dir / f"{stem}rejected.jsonl", out_dir / f"{stem}held.jsonl"
    write_rejected(result.rejected, rejected_path)
    write_held(result, held_path)
    return rejected_path, held_path


def write_held(result: BacktestResult, path: Path) -> Path:
    """The held events as JSON Lines (no patient data: board, type, event id, event time)."""
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in result.held.to_dict("records")))
    return path


def timeline_key(alert: Alert) -> tuple[date, str, str]:
    """Order in which to compare alert timelines (the live topic interleaves boards by evaluation round)."""
    return alert.as_of, alert.board, alert.event_id
