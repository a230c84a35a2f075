from datetime import date

import numpy as np
import pandas as pd
import pytest

from producers.generate import Drift, GenerateError, GeneratorSpec, generate_frame, write_log
from producers.pseudonym import is_valid_nhs_number


@pytest.fixture(scope="module")
def year() -> pd.DataFrame:
    spec = GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=0.02, seed=11,
                         drifts=[Drift.parse("E08000025:+8%")], late_share=0.05, duplicate_share=0.01)
    return generate_frame(spec)


def _emergency(frame: pd.DataFrame) -> pd.DataFrame:
    first = frame.drop_duplicates("event_id")
    return first[(first["type"] == "admission") & first["admission_method"].str.startswith("2")]


def test_reproducible_from_seed(tmp_path):
    spec = GeneratorSpec(date(2015, 4, 1), date(2015, 4, 30), scale=0.01, seed=5, malformed_share=0.01)
    one, two = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_log(generate_frame(spec), one)
    write_log(generate_frame(spec), two)
    assert one.read_bytes() == two.read_bytes()


def test_national_volume_calibrated(year):
    emergency = _emergency(year)
    baseline = emergency[emergency["occurred_at"] < "2015-04-01"]
    # 5.5M a year at scale 1.0 -> 110,000 at 0.02 (Poisson noise is ~0.3%)
    assert 110_000 * 0.98 < len(baseline) < 110_000 * 1.02


def test_weekends_lower_and_winter_higher(year):
    emergency = _emergency(year)
    days = pd.to_datetime(emergency["occurred_at"].str[:10])
    per_day = days.value_counts().sort_index()
    weekend = per_day[per_day.index.day_of_week >= 5].mean()
    weekday = per_day[per_day.index.day_of_week < 5].mean()
    assert 0.78 < weekend / weekday < 0.86
    by_month = per_day.groupby(per_day.index.month).mean()
    assert by_month[1] > by_month[7]


def test_plan_followed_and_drift_applied(year):
    emergency = _emergency(year)
    emergency = emergency.assign(plan_year=emergency["occurred_at"] >= "2015-04-01")
    national = emergency[emergency["board"] != "E08000025"].groupby("plan_year").size()
    change = national[True] / national[False] - 1
    assert -0.045 < change < -0.015  # planned -3.07%
    birmingham = emergency[emergency["board"] == "E08000025"].groupby("plan_year").size()
    assert birmingham[True] / birmingham[False] - 1 > 0.02  # (1 - 3.07%) x 1.08 = +4.7%


def test_out_of_order_and_duplicates_present(year):
    stamps = year["occurred_at"].to_numpy()
    assert (stamps[1:] < stamps[:-1]).mean() > 0.01
    assert 0.005 < year["event_id"].duplicated().mean() < 0.015


def test_nhs_numbers_valid(year):
    sample = year["nhs_number"].sample(2000, random_state=1)
    assert all(is_valid_nhs_number(n) for n in sample)


def test_reablement_outcome_near_national_rate(year):
    first = year.drop_duplicates("event_id")
    reabled = first[(first["type"] == "discharge") & (first["into_reablement"] == True)]  # noqa: E712
    assert len(reabled) > 1000
    adverse = first[first["nhs_number"].isin(reabled["nhs_number"]) & (first["type"] != "discharge")]
    assert len(adverse) > 0
    assert np.isclose(reabled["age"].min(), 65)


def test_bad_drift_rejected():
    with pytest.raises(GenerateError, match="E09000012:\\+4%"):
        Drift.parse("Hackney up 4")
    with pytest.raises(GenerateError, match="not a BCF plan board"):
        generate_frame(GeneratorSpec(date(2015, 4, 1), date(2015, 4, 2), drifts=[Drift.parse("E06000053:+4%")]))
