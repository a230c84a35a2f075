"""One board's page as a PNG (``bcfwatch report --board CODE --out board.png``): for each metric its SPC chart
and its year to date against the plan trajectory, drawn with matplotlib from the same views as the HTML."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from monitors.analysis.report.boards import BoardReport
from monitors.analysis.report.metrics import Cumulative, SpcSeries
from monitors.rules.spc import PointType

COLOUR = {PointType.COMMON_CAUSE: "#7F7F7F", PointType.SPECIAL_CAUSE_CONCERN: "#ED8B00",
          PointType.SPECIAL_CAUSE_IMPROVEMENT: "#005EB8", PointType.SPECIAL_CAUSE_NEUTRAL_HIGH: "#490092",
          PointType.SPECIAL_CAUSE_NEUTRAL_LOW: "#490092"}
SHAPE = {PointType.COMMON_CAUSE: "o", PointType.SPECIAL_CAUSE_CONCERN: "^", PointType.SPECIAL_CAUSE_IMPROVEMENT: "s",
         PointType.SPECIAL_CAUSE_NEUTRAL_HIGH: "D", PointType.SPECIAL_CAUSE_NEUTRAL_LOW: "D"}


def _values(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _spc(axes, spc: SpcSeries) -> None:
    x = pd.to_datetime(spc.periods)
    values = np.array(spc.values)
    axes.plot(x, values, color="#7F7F7F", linewidth=1, zorder=2)
    axes.plot(x, _values(spc.mean), color="black", linewidth=1)
    for limit in (spc.upper, spc.lower):
        axes.plot(x, _values(limit), color="black", linewidth=0.8, linestyle="--")
    if spc.target is not None:
        axes.axhline(spc.target, color="#DA291C", linewidth=1, linestyle="-.")
    for kind in set(spc.point_types):
        chosen = np.array([t is kind for t in spc.point_types])
        axes.scatter(x[chosen], values[chosen], color=COLOUR[kind], marker=SHAPE[kind],
                     s=10 if kind is PointType.COMMON_CAUSE else 24, zorder=3)
    axes.set_ylabel(spc.unit, fontsize=7)


def _cumulative(axes, cumulative: Cumulative) -> None:
    plan_days, days = pd.to_datetime(cumulative.plan_days), pd.to_datetime(cumulative.days)
    end = pd.Timestamp(cumulative.year_end)
    axes.plot(plan_days, cumulative.plan, color="#DA291C", linestyle="--", linewidth=1.2, label="plan")
    axes.plot(days, cumulative.actual, color="#003087", linewidth=1.8, label="actual")
    if len(days):
        axes.fill([days[-1], end, end], [cumulative.actual[-1], cumulative.high, cumulative.low], color="#ED8B00",
                  alpha=0.22, label="projection (90%)")
    axes.set_ylabel(cumulative.unit, fontsize=7)
    axes.legend(fontsize=6, frameon=False, loc="upper left")


def board_png(report: BoardReport) -> bytes:
    figure, grid = plt.subplots(len(report.views), 2, figsize=(11, 2.4 * len(report.views)))
    for row, view in zip(grid, report.views.values(), strict=True):
        for axes in row:
            axes.tick_params(labelsize=7)
        row[0].set_title(f"{view.metric.label}: {view.status}", fontsize=9, loc="left")
        if view.spc is not None:
            _spc(row[0], view.spc)
        if view.cumulative is not None:
            _cumulative(row[1], view.cumulative)
    figure.suptitle(f"{report.name} ({report.code})", fontsize=11, x=0.01, ha="left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()
