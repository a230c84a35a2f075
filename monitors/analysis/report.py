"""`bcfwatch report`: one self-contained HTML file for a board paper (images embedded, no network).

National roll-up (planned vs actual change in emergency admissions, avoided
admissions and their value, delayed days, care-home admissions, reablement at
91 days, boards by approval status, boards on and off track), a funnel plot of
each board's variance against its size, and a "Making Data Count" SPC chart per
board: weekly variance against plan, the mean and process limits from the
baseline year, the target (on plan), special-cause points highlighted.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bcfwatch.core.boards import load_boards
from bcfwatch.core.plans import APPROVAL_STATUSES, DEFAULT_UNIT_COST_GBP, BoardPlan
from monitors.alerting.alerts import AlertState
from monitors.alerting.timeline import daily_emergency_admissions, expectation_model
from monitors.analysis.backtest import BacktestResult
from monitors.rules.drift import Assessment, DriftRules, Question, assess

CONCERN, IMPROVEMENT, COMMON = "#ED8B00", "#005EB8", "#7F7F7F"  # Making Data Count colours


@dataclass
class BoardYear:
    plan: BoardPlan
    assessment: Assessment
    alerted: bool


def board_years(result: BacktestResult, plans: dict[str, BoardPlan], plan_year_start: date,
                rules: DriftRules | None = None) -> dict[str, BoardYear]:
    daily = daily_emergency_admissions(result.counts)
    alerted = {a.board for a in result.alerts if a.state is AlertState.RAISED and a.question is Question.PLAN_NUMBER}
    model = expectation_model(plans, daily, plan_year_start)  # the expectations and noise the alerts were judged on
    years = {}
    for code, plan in sorted(plans.items()):
        as_of = result.settled.get(code)
        if as_of is None:
            continue
        actual = daily[code] if code in daily else pd.Series(dtype=float)
        years[code] = BoardYear(plan, assess(plan, actual, plan_year_start, as_of, rules or DriftRules(), model),
                                code in alerted)
    return years


def has_settled_week(years: dict[str, BoardYear], board: str | None = None) -> bool:
    """Whether there is something to chart: ``board``'s plan year, or (no board) a settled week of the plan year
    for any board; without one the report's arithmetic would fail."""
    if board is not None:
        return board in years
    return any(year.assessment.weeks for year in years.values())


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def spc_chart(year: BoardYear, name: str) -> bytes:
    """The board's weekly variance against plan as a Making Data Count XmR chart."""
    weekly = year.assessment.weekly()
    figure, axes = plt.subplots(figsize=(7.5, 2.8))
    x = weekly["start"]
    axes.plot(x, weekly["variance"] * 100, color=COMMON, linewidth=1, marker="o", markersize=3, zorder=2)
    if "mean" in weekly:
        axes.plot(x, weekly["mean"] * 100, color="black", linewidth=1, label="mean")
        axes.plot(x, weekly["upper"] * 100, color="black", linewidth=0.8, linestyle="--", label="process limits")
        axes.plot(x, weekly["lower"] * 100, color="black", linewidth=0.8, linestyle="--")
        for flag, colour in (("special_cause_high", CONCERN), ("special_cause_low", IMPROVEMENT)):
            points = weekly[weekly[flag].astype(bool)]
            axes.scatter(points["start"], points["variance"] * 100, color=colour, s=18, zorder=3)
    axes.axhline(0, color="#DA291C", linewidth=1, label="target (on plan)")
    axes.set_ylabel("weekly variance vs plan, %")
    axes.set_title(f"{year.plan.board} {name}", fontsize=10, loc="left")
    axes.legend(fontsize=7, loc="upper left", ncols=3, frameon=False)
    axes.tick_params(labelsize=7)
    return _png(figure)


def funnel_plot(years: dict[str, BoardYear]) -> bytes:
    """Each board's year-to-date variance against its planned admissions, with limits from the monitor's own
    noise model (its standard deviation of each board's year to date, fitted across boards by size)."""
    planned = np.array([y.assessment.planned_ytd for y in years.values()])
    variance = np.array([y.assessment.variance_pct for y in years.values()])
    spread = np.array([y.assessment.ytd_sd_pct for y in years.values()])
    finite = [y.assessment.threshold for y in years.values() if np.isfinite(y.assessment.threshold)]
    threshold = float(np.median(finite)) if finite else 3.0  # before any verdict: about what h is
    alerted = np.array([y.alerted for y in years.values()])
    figure, axes = plt.subplots(figsize=(7.5, 4))
    size = np.linspace(max(planned.min(), 1), planned.max(), 200)
    usable = (planned > 0) & (spread > 0)
    if usable.any():
        design = np.column_stack([1 / planned[usable], np.ones(usable.sum())])
        a, b = np.maximum(np.linalg.lstsq(design, spread[usable] ** 2, rcond=None)[0], 0.0)
        model_sd = np.sqrt(a / size + b)
        for z, style in ((1.96, ":"), (threshold, "--")):
            axes.plot(size, z * model_sd, color="black", linestyle=style, linewidth=0.8)
            axes.plot(size, -z * model_sd, color="black", linestyle=style, linewidth=0.8)
    axes.scatter(planned[~alerted], variance[~alerted], color=COMMON, s=12, label="no plan-number alert")
    axes.scatter(planned[alerted], variance[alerted], color=CONCERN, marker="^", s=28,
                 label="alerted: expected to miss its plan number")
    axes.axhline(0, color="#DA291C", linewidth=1)
    axes.set_xscale("log")
    axes.set_xlabel("planned emergency admissions, year to date (log scale)")
    axes.set_ylabel("variance vs plan, %")
    axes.set_title(f"Funnel plot: limits from the monitor's noise model (dotted 95%, dashed z = {threshold:.1f}, "
                   "the typical alert threshold)", fontsize=9, loc="left")
    axes.legend(fontsize=8)
    return _png(figure)


def _image(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _counts_by_year(counts: pd.DataFrame, plan_year_start: date) -> pd.DataFrame:
    year = np.where(counts["date"] >= plan_year_start.isoformat(), "plan", "baseline")
    return counts.drop(columns=["board", "date"]).groupby(year).sum()


def national_rollup(result: BacktestResult, years: dict[str, BoardYear], plans: dict[str, BoardPlan],
                    plan_year_start: date, unit_cost: float) -> list[tuple[str, str]]:
    totals = _counts_by_year(result.counts, plan_year_start)
    planned_change = -sum(p.avoided_admissions for p in plans.values()) / sum(p.baseline_emergency
                                                                               for p in plans.values())
    planned_ytd = sum(y.assessment.planned_ytd for y in years.values())
    actual_ytd = sum(y.assessment.actual_ytd for y in years.values())
    baseline_equivalent = planned_ytd / (1 + planned_change)
    avoided = baseline_equivalent - actual_ytd
    population_65 = sum(b.population_65_plus for b in load_boards())
    rows = [
        ("Weeks judged (plan year)", f"{max(y.assessment.weeks for y in years.values())}"),
        ("Emergency admissions: planned change", f"{planned_change:+.2%}"),
        ("Emergency admissions: actual change against baseline (same weeks)",
         f"{actual_ytd / baseline_equivalent - 1:+.2%}"),
        ("Emergency admissions: actual vs planned (year to date)", f"{actual_ytd:,.0f} vs {planned_ytd:,.0f}"),
        ("Admissions avoided against baseline", f"{avoided:,.0f}"),
        (f"Their value at £{unit_cost:,.0f} each", f"£{avoided * unit_cost:,.0f}"),
    ]
    for label in ("baseline", "plan"):
        if label not in totals.index:
            continue
        row = totals.loc[label]
        delayed = row["delayed_days_nhs"] + row["delayed_days_social_care"] + row["delayed_days_both"]
        rows += [
            (f"Delayed days, {label} year",
             f"{delayed:,.0f} (NHS {row['delayed_days_nhs']:,.0f}, social care "
             f"{row['delayed_days_social_care']:,.0f}, both {row['delayed_days_both']:,.0f})"),
            (f"Permanent care-home admissions 65+, {label} year",
             f"{row['care_home_admissions_65']:,.0f} ({row['care_home_admissions_65'] / population_65 * 1e5:,.1f} "
             "per 100,000 aged 65+, at the log's scale)"),
            (f"Reablement 65+: at home after 91 days, {label} year",
             f"{row['at_home_91d']:,.0f} of {row['reablement_discharges_65']:,.0f} discharges "
             "(settled ones only)"),
        ]
    for status in APPROVAL_STATUSES:
        rows.append((f"Boards {status}", str(sum(p.approval_status == status for p in plans.values()))))
    off_track = sum(y.alerted for y in years.values())
    rows += [("Boards on track", str(len(years) - off_track)), ("Boards off track (alerted)", str(off_track))]
    return rows


def plan_number_status(assessment: Assessment, alerted: bool) -> str:
    """The board's standing on the primary question, worded from the same test that raises the alert: an
    alert says it is expected to miss its plan number; without one, over plan to date is "within noise"."""
    if alerted and assessment.drifting:
        return "alerted: expected to miss its plan number"
    if alerted:
        return "alerted earlier this year: now within noise of its plan number"
    if assessment.variance_pct > 0:
        return "over plan to date, within noise: not (yet) expected to miss its plan number"
    return "on track for its plan number"


def render_report(result: BacktestResult, plans: dict[str, BoardPlan], plan_year_start: date, title: str,
                  board: str | None = None, unit_cost: float = DEFAULT_UNIT_COST_GBP,
                  years: dict[str, BoardYear] | None = None) -> str:
    """``years``: :func:`board_years` of the same result, when the caller has it already."""
    years = years if years is not None else board_years(result, plans, plan_year_start)
    names = {b.code: b.name for b in load_boards()}
    chosen = [board] if board else list(years)
    rollup = national_rollup(result, years, plans, plan_year_start, unit_cost)
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rollup)
    charts = []
    for code in chosen:
        year = years[code]
        a = year.assessment
        charts.append(
            f'<section class="board" id="{code}"><h3>{code} {html.escape(names.get(code, ""))} '
            f'<small>{plan_number_status(a, year.alerted)}; year to date {a.variance_pct:+.1f}% vs plan, projected '
            f"{a.projected_year_end:,.0f} ({a.projected_year_end_low:,.0f}-{a.projected_year_end_high:,.0f}) "
            f"vs a plan number of {a.planned_year_end:,.0f}, £{a.money_at_risk_gbp:,.0f} at risk if the rate "
            f"holds; {html.escape(a.variation)}, "
            f"{html.escape(a.assurance)}</small></h3>{_image(spc_chart(year, names.get(code, '')), f'SPC {code}')}"
            "</section>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: Arial, sans-serif; margin: 2em; color: #231f20; }}
h1 {{ color: #005EB8; }} table {{ border-collapse: collapse; }}
th, td {{ text-align: left; padding: 4px 12px; border-bottom: 1px solid #ddd; }}
section.board {{ margin: 1.5em 0; }} small {{ font-weight: normal; color: #555; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Emergency admissions against each health and wellbeing board's Better Care Fund plan, judged week by week with
statistical process control ("Making Data Count"). Orange points are special cause for concern, blue for
improvement; dashed lines are process limits from the baseline year; the red line is the plan.</p>
<h2>National roll-up</h2><table>{table}</table>
<h2>Variance against size</h2>{_image(funnel_plot(years), "funnel plot")}
<h2>Boards ({len(chosen)})</h2>
{"".join(charts)}
</body></html>
"""


def write_report(result: BacktestResult, plans: dict[str, BoardPlan], plan_year_start: date, out: Path,
                 board: str | None = None, years: dict[str, BoardYear] | None = None) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    years = years if years is not None else board_years(result, plans, plan_year_start)
    if out.suffix.lower() == ".png":
        if board is None:
            raise ValueError("a PNG holds one chart: give --board CODE")
        out.write_bytes(spc_chart(years[board], load_boards().boards[board].name))
        return out
    out.write_text(render_report(result, plans, plan_year_start, "Better Care Fund: emergency admissions against "
                                 "plan", board, years=years))
    return out
