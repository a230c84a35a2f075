"""`bcfwatch backtest`: the live pipeline's counts and alerts, recomputed offline with pandas.

Same rules, same code paths where it matters: the oracle (``streams/oracle.py``)
applies the event-time rules of the worker to the whole log at once, and the
alert timeline (``monitors/timeline.py``) is the one the live monitor runs,
judged on the same settled weeks. Outputs have the shapes of
``bcfwatch counts export`` (CSV) and the ``alerts`` topic (JSON Lines).

Patient identities inside the backtest are HMAC pseudonyms under a key made
for the run and thrown away: raw NHS numbers are read, checked and replaced,
never kept or written.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import orjson
import pandas as pd

from monitors.drift import DriftRules
from monitors.plans import BoardPlan
from monitors.timeline import alert_timeline, daily_emergency_admissions, settled_through
from producers.pseudonym import Pseudonymiser
from streams.daily_table import write_csv
from streams.oracle import daily_counts, load_events


@dataclass
class BacktestResult:
    counts: pd.DataFrame
    alerts: list[dict]
    settled: dict[str, date]
    events: int
    seconds: float


def backtest(log: Path, plans: dict[str, BoardPlan], plan_year_start: date, lateness_days: int = 14,
             rules: DriftRules | None = None, say=lambda step: None) -> BacktestResult:
    started = time.monotonic()
    say("reading and validating the log")
    events = load_events(log, Pseudonymiser(secrets.token_bytes(32)))
    say(f"counting {len(events):,} events")
    counts = daily_counts(events, lateness_days * 86_400)
    clocks = events[events["type"] == "admission"].groupby("board")["ts"].max()
    settled = settled_through({f"{board}|admission": ts for board, ts in clocks.items()}, lateness_days)
    say("judging every board week by week")
    alerts = alert_timeline(plans, daily_emergency_admissions(counts), plan_year_start, settled, rules)
    return BacktestResult(counts, alerts, settled, len(events), time.monotonic() - started)


def write_outputs(result: BacktestResult, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    counts_path, alerts_path = out_dir / "counts.csv", out_dir / "alerts.jsonl"
    write_csv(result.counts, counts_path)
    alerts_path.write_bytes(b"".join(orjson.dumps(alert) + b"\n" for alert in result.alerts))
    return counts_path, alerts_path


def timeline_key(alert: dict) -> tuple[str, str, str]:
    """Order in which to compare alert timelines (the live topic interleaves boards by evaluation round)."""
    return alert["as_of"], alert["board"], alert["event_id"]
