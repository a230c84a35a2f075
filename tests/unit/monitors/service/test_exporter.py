"""The monitor's gauges show the plan the alerts judge with."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from prometheus_client import REGISTRY

from bcfwatch.core.plans import load_plan
from monitors.alerting.timeline import expectation_model
from monitors.service import exporter
from producers.generate import GeneratorSpec, emergency_daily_counts
from producers.sample_plan import sample_plan_path
from streams.views import windows

PLAN_YEAR = date(2015, 4, 1)


def test_the_planned_windows_come_from_the_model_of_every_board():
    """The round hands the exporter the boards whose settled day moved; the planned windows must still come from
    the model fitted on every board's baseline year (the one the alerts judge with), not from one fitted on
    the few boards that moved this round."""
    plans = dict(sorted(load_plan(sample_plan_path()).items())[:12])
    daily = emergency_daily_counts(GeneratorSpec(date(2014, 4, 1), date(2015, 9, 30), scale=0.3, seed=5))
    daily = daily[list(plans)]
    board, as_of = next(iter(plans)), date(2015, 9, 20)
    exporter.update(plans, daily, {board: as_of}, {}, set(), PLAN_YEAR)
    planned = expectation_model(plans, daily, PLAN_YEAR).planned_days(plans[board])
    alone = expectation_model({board: plans[board]}, daily, PLAN_YEAR).planned_days(plans[board])
    for window in exporter.WINDOWS:
        start, end = windows(as_of)[window]
        shown = REGISTRY.get_sample_value("bcf_emergency_admissions_planned", {"board": board, "window": window})
        expected = float(planned[pd.Timestamp(start):pd.Timestamp(end)].sum())
        assert shown == pytest.approx(expected, rel=1e-12), window
        counted = REGISTRY.get_sample_value("bcf_emergency_admissions", {"board": board, "window": window})
        assert counted == float(daily[board][pd.Timestamp(start):pd.Timestamp(end)].sum()), window
    year_to_date = slice(pd.Timestamp(PLAN_YEAR), pd.Timestamp(as_of))
    assert float(alone[year_to_date].sum()) != pytest.approx(float(planned[year_to_date].sum()), rel=1e-6)
