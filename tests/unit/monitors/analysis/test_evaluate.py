"""`bcfwatch evaluate` in miniature: one simulated year runs the monitor's rule and tabulates it.
(The rates themselves are measured by the benchmark over many years: docs/evaluation.md.)"""

import os
import subprocess
import sys

from monitors.analysis.evaluate import SETTINGS, markdown, run_year, summary, tidy_table
from monitors.rules.drift import DriftRules


def test_one_simulated_year_is_judged_and_tabulated():
    outcomes = run_year(SETTINGS[0], 0, 7, DriftRules())
    assert len(outcomes) == 151
    totals = summary(outcomes)
    assert totals["concern alerts on improving boards"] == 0
    assert totals["false drifting alerts per 100 on-plan board-years"] <= 5  # wide: one year only
    assert totals["step changes alerted before they began"] <= 1
    five = [o for o in outcomes if o.scenario == "+5% sustained" and o.size >= 50_000]
    assert sum(o.first_week_end is not None for o in five) >= len(five) / 2
    # the ideal year-end test: ~1 false alert per 100 on-plan board-years, and at least as good as the rule
    # on +5% boards (it knows the true spread; the rule learns it from one baseline year)
    assert totals["ideal year-end test: false alerts per 100 on-plan board-years"] <= 5
    assert sum(o.ideal_detected for o in five) >= sum(o.first_week_end is not None for o in five) - 1
    # a seed gives the same year in any process (string hashing differs from one process to the next)
    other = subprocess.run([sys.executable, "-c", "from monitors.rules.drift import DriftRules; "
                            "from monitors.analysis.evaluate import SETTINGS, run_year; "
                            "print([o.first_week_end for o in run_year(SETTINGS[0], 0, 7, DriftRules())])"],
                           env={**os.environ, "PYTHONHASHSEED": "12345"},
                           capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str([o.first_week_end for o in outcomes])
    table = tidy_table(outcomes)
    assert "ideal_pct" in table.columns
    assert set(table["scenario"]) >= {"on plan", "+3% sustained", "step +8%", "improving -3%"}
    assert markdown(table).count("\n") == len(table) + 1
