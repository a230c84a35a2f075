"""The demo's year-on-year table shows the plan file's numbers and the monitor's own statistics (issue 23):
no second "planned" or z is computed for it."""

from datetime import date

import pytest

from bcfwatch.core.plans import load_plan
from bcfwatch.demo import year_on_year
from monitors.alerting.timeline import alert_timeline
from producers.generate import Drift, GeneratorSpec, emergency_daily_counts
from producers.sample_plan import write_sample_plan

PLAN_YEAR = date(2015, 4, 1)


def test_the_demo_table_shows_the_plan_files_numbers_and_the_monitors_z(tmp_path):
    write_sample_plan(tmp_path / "plan.csv", scale=0.05)
    plans = load_plan(tmp_path / "plan.csv")
    spec = GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=0.05, seed=2015,
                         drifts=[Drift.parse("E08000025:+10%")])
    daily = emergency_daily_counts(spec)
    latest: dict = {}
    alert_timeline(plans, daily, PLAN_YEAR, date(2016, 3, 31), latest=latest)
    table = year_on_year(daily, plans, latest)
    assert len(table) == len(plans)
    for board, row in table.iterrows():
        assert row.plan_number == pytest.approx(plans[board].planned_emergency)  # the plan file's number
        assert row.z == latest[board].z and row.variance_pct == latest[board].variance_pct  # the monitor's
        assert row.projected_low <= row.projected <= row.projected_high
        assert row.counted_2014 == daily.loc["2014-04-01":"2015-03-31", board].sum()
    assert list(table["z"]) == sorted(table["z"], reverse=True)
    assert table.loc["E08000025", "drifting"]  # Birmingham, 10% over: expected to miss its plan number
