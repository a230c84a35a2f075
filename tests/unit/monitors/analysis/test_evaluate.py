"""`bcfwatch evaluate` in miniature: one simulated year runs the monitor's rule and tabulates it.
(The rates themselves are measured by the benchmark over many years: docs/evaluation.md.)"""

import os
import subprocess
import sys
from datetime import date

import numpy as np
import pytest

from monitors.analysis.evaluate import (
    SETTINGS,
    TARGETS,
    expected_daily,
    markdown,
    run_year,
    simulate_daily,
    summary,
    targets_table,
    tidy_table,
)
from monitors.rules.drift import DriftRules


def test_one_simulated_year_is_judged_and_tabulated():
    outcomes = run_year(SETTINGS[0], 0, 7, DriftRules())
    assert len(outcomes) == 151
    totals = summary(outcomes)
    assert totals["alerts on boards expected >= 3% under the plan number"] == 0
    assert totals["false alerts per 100 board-years expected at or under the plan number"] <= 5  # wide: one year
    assert totals["+8% steps, boards >= 30k: alerted before the step (per 100)"] <= 10
    # the truth is each board's expected total: the scenario moves it, the counted baseline's noise too
    by_scenario = {s: [o.expected_excess for o in outcomes if o.scenario == s] for s in ("on plan", "+8% sustained")}
    assert abs(np.mean(by_scenario["on plan"])) < 0.01 and np.mean(by_scenario["+8% sustained"]) > 0.06
    assert np.std(by_scenario["on plan"]) > 0.002  # the plan number carries the baseline year's noise
    five = [o for o in outcomes if o.scenario == "+5% sustained" and o.size >= 50_000]
    assert sum(o.first_week_end is not None for o in five) >= len(five) / 2
    # the ideal one-look tests: the plan number's sees only the year's noise, so it flags at least as many
    assert sum(o.ideal_detected for o in outcomes) >= sum(o.underlying_ideal_detected for o in outcomes)
    assert sum(o.ideal_detected for o in five) >= sum(o.first_week_end is not None for o in five) - 1
    # a seed gives the same year in any process (string hashing differs from one process to the next)
    other = subprocess.run([sys.executable, "-c", "from monitors.rules.drift import DriftRules; "
                            "from monitors.analysis.evaluate import SETTINGS, run_year; "
                            "print([o.first_week_end for o in run_year(SETTINGS[0], 0, 7, DriftRules())])"],
                           env={**os.environ, "PYTHONHASHSEED": "12345"},
                           capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str([o.first_week_end for o in outcomes])
    table = tidy_table(outcomes)
    assert {"ideal_pct", "underlying_alerted_pct", "underlying_ideal_pct"} <= set(table.columns)
    assert set(table["scenario"]) >= {"on plan", "+3% sustained", "+8% sustained", "step +8%", "improving -3%"}
    assert markdown(table).count("\n") == len(table) + 1
    targets = targets_table(outcomes)
    assert set(targets["met"]) <= {"yes", "no", ""} and (targets["target"] != "").sum() == len(TARGETS)


def test_the_expected_total_is_the_mean_of_simulated_years():
    """The truth "expected to miss" rests on expected_daily: the mean of many simulated plan years."""
    setting = SETTINGS[1]
    volumes = np.array([20_000.0, 60_000.0])
    baseline_start = date(2014, 4, 1)
    factors = np.full((2, 366), 0.97)
    expected = expected_daily(setting, baseline_start, factors, volumes)[:, -366:].sum(axis=1)
    totals = [simulate_daily(setting, baseline_start, factors, np.random.default_rng(seed), volumes).to_numpy()
              [-366:].sum(axis=0) for seed in range(200)]
    assert np.mean(totals, axis=0) == pytest.approx(expected, rel=0.002)
