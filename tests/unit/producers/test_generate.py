import hashlib
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bcfwatch.cli import main
from bcfwatch.core.calendar import england_bank_holidays
from bcfwatch.core.national import daily_profile
from bcfwatch.core.nhs_number import is_valid_nhs_number
from producers.generate import (
    AdmissionsModel,
    Drift,
    GenerateError,
    GeneratorSpec,
    admissions_shape,
    draw_emergency,
    emergency_daily_counts,
    generate_frame,
    parse_peak_day,
    parse_weekday_profile,
    write_log,
)


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


# -- shape and noise (issue 13) ----------------------------------------------------------------------------

TWO_YEARS = (date(2014, 4, 1), date(2016, 3, 31))


def _spec(scale: float = 1.0, seed: int = 4, drifts: tuple[str, ...] = (), **model) -> GeneratorSpec:
    """Two financial years on the national 3.07% plan (no sample-plan file), with the given admissions model."""
    return GeneratorSpec(*TWO_YEARS, scale=scale, seed=seed, reductions={}, drifts=[Drift.parse(d) for d in drifts],
                         admissions=AdmissionsModel(**model))


def _draw(spec: GeneratorSpec):
    from bcfwatch.core.boards import load_boards

    days = pd.date_range(spec.start, spec.end)
    return draw_emergency(spec, load_boards().codes, days, np.random.default_rng(spec.seed))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Hashes of logs written before issue 13 added the admissions model: the defaults must not change a byte.
# (They also pin councils.csv and the event model; if either changes on purpose, regenerate them. Regenerated
# for issue 24: delayed days, care-home admissions and reablement now follow each board's plan. The emergency
# admissions' hash is unchanged.)
def test_defaults_leave_todays_output_unchanged(tmp_path):
    baseline_month = GeneratorSpec(date(2015, 4, 1), date(2015, 4, 30), scale=0.01, seed=5, malformed_share=0.01)
    write_log(generate_frame(baseline_month), tmp_path / "a.jsonl")
    assert _sha256((tmp_path / "a.jsonl").read_bytes()) == \
        "4875ab3bce76d2c5170b422da67a755583b4dedf37aa5c4e90cad7fb32abeeff"
    with_drifts = GeneratorSpec(date(2014, 4, 1), date(2015, 5, 31), scale=0.002, seed=3, reductions={},
                                drifts=[Drift.parse(d) for d in
                                        ("E08000025:+4%", "E10000014:creep+6%", "E10000016:-2%@2015-05-01")])
    write_log(generate_frame(with_drifts), tmp_path / "c.jsonl")
    assert _sha256((tmp_path / "c.jsonl").read_bytes()) == \
        "3aadac3789bb3665130d8bc7aded27206691ee3aee5a20c37baf7ddfd342fde0"
    counts = emergency_daily_counts(replace(with_drifts, scale=1.0)).to_numpy(dtype=np.int64)
    assert _sha256(np.ascontiguousarray(counts).tobytes()) == \
        "74bdca19eaaa701a5202f4e5c0cc30411ce2eb079faa61d71b37754d9ee29bcc"


def test_default_shape_is_exactly_the_plan_trajectory_shape():
    days = pd.date_range("2014-04-01", "2017-03-31")
    assert np.array_equal(admissions_shape(AdmissionsModel(), 151, days, np.random.default_rng(0)),
                          daily_profile(days))


@pytest.mark.parametrize("options", [
    [],
    ["--dispersion", "3", "--weekly-noise", "0.04", "--weekly-persistence", "0.5", "--bank-holidays",
     "--bank-holiday-drop", "30", "--weekday-profile", "1.1,1,1,1,0.9,0.8,0.7", "--winter-peak", "8",
     "--winter-peak-on", "02-01", "--winter-varies", "2"],
])
def test_cli_options_build_the_same_model(tmp_path, options):
    model = AdmissionsModel() if not options else AdmissionsModel(
        dispersion=3, weekly_noise=0.04, weekly_persistence=0.5, bank_holidays=True, bank_holiday_factor=0.7,
        weekday_profile=(1.1, 1, 1, 1, 0.9, 0.8, 0.7), winter_peak=0.08, winter_peak_day=32, winter_varies=0.02)
    spec = GeneratorSpec(date(2015, 12, 20), date(2016, 1, 5), scale=0.002, seed=9, admissions=model)
    write_log(generate_frame(spec), tmp_path / "api.jsonl")
    result = CliRunner().invoke(main, ["generate", "--out", str(tmp_path / "cli.jsonl"), "--from", "2015-12-20",
                                       "--to", "2016-01-05", "--scale", "0.002", "--seed", "9", *options])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli.jsonl").read_bytes() == (tmp_path / "api.jsonl").read_bytes()


def test_counts_table_is_the_logs_emergency_admissions():
    """emergency_daily_counts and the log are one model: the log holds the same draw plus readmissions."""
    spec = GeneratorSpec(date(2015, 11, 1), date(2016, 1, 31), scale=0.005, seed=8, late_share=0, duplicate_share=0,
                         admissions=AdmissionsModel(dispersion=3, weekly_noise=0.05, bank_holidays=True,
                                                    winter_varies=0.02))
    table = emergency_daily_counts(spec)
    emergency = _emergency(generate_frame(spec))
    from_log = emergency.groupby([emergency["occurred_at"].str[:10], "board"]).size().unstack(fill_value=0)
    from_log.index = pd.to_datetime(from_log.index)
    from_log = from_log.reindex(index=table.index, columns=table.columns, fill_value=0)
    readmissions = from_log - table
    assert (readmissions >= 0).all().all()
    assert 0 < readmissions.to_numpy().sum() < 0.02 * table.to_numpy().sum()


def _pearson_dispersion(draw) -> float:
    """Variance/mean ratio of each board's weekly counts around their expected value, over boards and weeks."""
    weeks = slice(6, 6 + 7 * 100)  # 100 whole Monday-Sunday weeks from Monday 7 April 2014
    counts = draw.counts[:, weeks].reshape(len(draw.boards), 100, 7).sum(axis=2)
    expected = draw.expected[:, weeks].reshape(len(draw.boards), 100, 7).sum(axis=2)
    return float(((counts - expected) ** 2 / expected).mean())


@pytest.mark.parametrize("dispersion", [1.0, 2.0, 4.0])
def test_dispersion_sets_weekly_variance_to_mean_ratio(dispersion):
    ratio = _pearson_dispersion(_draw(_spec(scale=0.2, dispersion=dispersion)))
    assert dispersion * 0.9 < ratio < dispersion * 1.1


def test_dispersion_keeps_the_volume():
    poisson = emergency_daily_counts(_spec()).to_numpy().sum()
    mixed = emergency_daily_counts(_spec(dispersion=4.0)).to_numpy().sum()
    assert mixed / poisson == pytest.approx(1, abs=0.005)


def _weekly_log_pressure(noise: float, persistence: float) -> tuple[np.ndarray, np.ndarray]:
    """log(weekly count / weekly expectation without pressure) and its Poisson variance, big boards only."""
    counts = emergency_daily_counts(_spec(weekly_noise=noise, weekly_persistence=persistence))
    plain = _draw(_spec()).expected.T
    weeks = counts.loc["2014-04-07":"2016-03-27"]
    expected = pd.DataFrame(plain, index=counts.index, columns=counts.columns).loc[weeks.index]
    weekly = weeks.resample("W-SUN").sum()
    weekly_expected = expected.resample("W-SUN").sum()
    big = weekly_expected.mean() > 1000
    return (np.log(weekly.loc[:, big] / weekly_expected.loc[:, big]).to_numpy(),
            (1 / weekly_expected.loc[:, big]).to_numpy())


def test_weekly_noise_has_the_requested_spread_without_persistence():
    log_ratio, poisson_variance = _weekly_log_pressure(0.05, 0.0)
    centred = log_ratio - log_ratio.mean(axis=0)
    pressure_sd = np.sqrt((centred ** 2).mean() - poisson_variance.mean())
    assert 0.044 < pressure_sd < 0.056
    lag_one = (centred[1:] * centred[:-1]).mean() / (centred ** 2).mean()
    assert abs(lag_one) < 0.08
    assert np.exp(log_ratio).mean() == pytest.approx(1, abs=0.01)  # mean 1: volume unchanged


def test_weekly_persistence_is_ar1():
    log_ratio, poisson_variance = _weekly_log_pressure(0.05, 0.7)
    centred = log_ratio - log_ratio.mean(axis=0)
    pressure_variance = (centred ** 2).mean() - poisson_variance.mean()
    assert 0.044 < np.sqrt(pressure_variance) < 0.056  # the stationary spread stays the noise
    autocorrelation = (centred[1:] * centred[:-1]).mean() / pressure_variance
    assert 0.6 < autocorrelation < 0.8
    plain, plain_poisson_variance = _weekly_log_pressure(0.0, 0.0)
    plain = plain - plain.mean(axis=0)
    assert abs((plain ** 2).mean() - plain_poisson_variance.mean()) < 0.1 * 0.05 ** 2  # no option, no pressure


def test_weekday_profile_followed():
    profile = (1.15, 1.05, 1.0, 1.0, 0.95, 0.75, 0.70)
    national = emergency_daily_counts(_spec(scale=0.3, weekday_profile=profile)).sum(axis=1)
    national = national / national.rolling(7, center=True).mean()  # take the season and the plan out
    by_weekday = national.groupby(national.index.day_of_week).mean()
    assert np.allclose(by_weekday, np.array(profile) / np.mean(profile), rtol=0.015)
    default = emergency_daily_counts(_spec(scale=0.3)).sum(axis=1)
    default = default / default.rolling(7, center=True).mean()
    assert default[default.index.day_of_week == 0].mean() < by_weekday[0] - 0.1


def _fitted_winter(national: pd.Series) -> tuple[float, float]:
    """Seasonal amplitude and peak day of the year, fitted as a cosine to weekly national totals."""
    weekly = national.loc["2014-04-07":"2016-03-27"].resample("W-SUN").sum()
    weekly = weekly / weekly.mean()
    angle = 2 * np.pi * (np.asarray(weekly.index.day_of_year) - 3) / 365.25  # mid-week of a Monday-Sunday week
    design = np.column_stack([np.ones(len(weekly)), np.cos(angle), np.sin(angle),
                              np.asarray(weekly.index >= "2015-04-01", dtype=float)])  # the plan year's step
    _, cos, sin, _ = np.linalg.lstsq(design, weekly.to_numpy(), rcond=None)[0]
    return float(np.hypot(cos, sin)), float(np.degrees(np.arctan2(sin, cos)) / 360 * 365.25 % 365.25)


def test_winter_peak_size_and_day():
    amplitude, peak = _fitted_winter(emergency_daily_counts(_spec()).sum(axis=1))
    assert amplitude == pytest.approx(0.05, abs=0.006) and peak == pytest.approx(15, abs=6)
    model = {"winter_peak": 0.12, "winter_peak_day": parse_peak_day("03-01")}
    amplitude, peak = _fitted_winter(emergency_daily_counts(_spec(**model)).sum(axis=1))
    assert amplitude == pytest.approx(0.12, abs=0.008) and peak == pytest.approx(60, abs=6)


def _peak_amplitudes(spec: GeneratorSpec) -> np.ndarray:
    """Each board's seasonal amplitude at the winter peaks of January 2015 and 2016 (boards x 2)."""
    varying = _draw(spec).expected
    steady = _draw(replace(spec, admissions=replace(spec.admissions, winter_varies=0.0))).expected
    peaks = pd.date_range(*TWO_YEARS).get_indexer(pd.DatetimeIndex(["2015-01-15", "2016-01-15"]))
    return varying[:, peaks] / steady[:, peaks] * (1 + spec.admissions.winter_peak) - 1


def test_winter_varies_by_year_and_board():
    amplitudes = _peak_amplitudes(_spec(winter_varies=0.03))
    within_winter = amplitudes.std(axis=0)
    assert ((0.014 < within_winter) & (within_winter < 0.028)).all()  # board share: 0.03 / sqrt(2) = 0.021
    assert amplitudes.min() > -1e-9  # clipped: a winter can have no peak, never a summer one
    assert not np.allclose(amplitudes[:, 0], amplitudes[:, 1], atol=0.005)  # each winter its own
    steady = _peak_amplitudes(_spec(winter_varies=1e-12))
    assert np.allclose(steady, 0.05, atol=1e-6)


def test_england_bank_holidays_on_the_right_dates():
    days = pd.date_range("2014-01-01", "2017-12-31")
    listed = {  # DESIGN.md, from gov.uk
        "2014-01-01", "2014-04-18", "2014-04-21", "2014-05-05", "2014-05-26", "2014-08-25", "2014-12-25",
        "2014-12-26", "2015-01-01", "2015-04-03", "2015-04-06", "2015-05-04", "2015-05-25", "2015-08-31",
        "2015-12-25", "2015-12-28", "2016-01-01", "2016-03-25", "2016-03-28", "2016-05-02", "2016-05-30",
        "2016-08-29", "2016-12-26", "2016-12-27", "2017-01-02", "2017-04-14", "2017-04-17", "2017-05-01",
        "2017-05-29", "2017-08-28", "2017-12-25", "2017-12-26"}
    assert {str(d.date()) for d in days[england_bank_holidays(days)]} == listed


def _holiday_ratios(national: pd.Series) -> np.ndarray:
    """Each bank holiday against the same weekday in the four weeks either side that are not holidays."""
    holiday = england_bank_holidays(national.index)
    ratios = []
    for day in national.index[holiday]:
        near = (np.abs((national.index - day).days) <= 28) & (national.index.day_of_week == day.day_of_week)
        ratios.append(national[day] / national[near & ~holiday].mean())
    return np.array(ratios)


def test_bank_holidays_25_to_30_percent_below_the_same_weekday():
    with_holidays = _holiday_ratios(emergency_daily_counts(_spec(scale=0.3, bank_holidays=True)).sum(axis=1))
    assert len(with_holidays) == 18
    assert 0.70 < with_holidays.mean() < 0.75
    assert ((0.64 < with_holidays) & (with_holidays < 0.81)).all()
    without = _holiday_ratios(emergency_daily_counts(_spec(scale=0.3)).sum(axis=1))
    assert 0.97 < without.mean() < 1.03


def test_step_drift_from_a_date_and_creep_from_a_date():
    drifts = ("E08000025:+10%@2015-10-01", "E10000016:creep+6%@2015-07-01")
    drifted, plain = _draw(_spec(drifts=drifts)), _draw(_spec())
    days = pd.date_range(*TWO_YEARS)
    codes = list(drifted.boards)
    birmingham, kent = codes.index("E08000025"), codes.index("E10000016")
    ratio = drifted.expected / plain.expected
    step = pd.Series(ratio[birmingham], index=days)
    assert np.allclose(step[:"2015-09-30"], 1) and np.allclose(step["2015-10-01":], 1.10)
    creep = pd.Series(ratio[kent], index=days)
    assert np.allclose(creep[:"2015-07-01"], 1)
    assert creep["2015-12-30"] == pytest.approx(1.03, abs=0.001)  # half way
    assert np.allclose(creep["2016-06-30":], 1.06)
    counted = drifted.frame()["E08000025"]
    before, after = counted["2015-04-01":"2015-09-30"].sum(), counted["2015-10-01":].sum()
    expected_before, expected_after = plain.expected[birmingham, 365:548].sum(), plain.expected[birmingham, 548:].sum()
    assert (after / expected_after) / (before / expected_before) == pytest.approx(1.10, abs=0.03)


def test_drift_in_the_baseline_year_refused():
    with pytest.raises(GenerateError, match="baseline year"):
        emergency_daily_counts(_spec(drifts=("E08000025:+4%@2014-10-01",)))


@pytest.mark.parametrize(("model", "message"), [
    ({"dispersion": 0.5}, "--dispersion"),
    ({"weekday_profile": (1, 1, 1, 1, 1, 0.8)}, "--weekday-profile"),
    ({"weekday_profile": (1, 1, 1, 1, 1, 0.8, 0)}, "--weekday-profile"),
    ({"winter_peak": 1.2}, "--winter-peak"),
    ({"weekly_noise": -0.1}, "--weekly-noise"),
    ({"weekly_persistence": 1.0}, "--weekly-persistence"),
    ({"bank_holiday_factor": 0.0}, "--bank-holiday-drop"),
])
def test_bad_admissions_model_refused(model, message):
    with pytest.raises(GenerateError, match=message):
        AdmissionsModel(**model)


def test_option_text_parsed():
    assert parse_weekday_profile("1.1, 1,1,1,0.9,0.8,0.7") == (1.1, 1, 1, 1, 0.9, 0.8, 0.7)
    assert parse_peak_day("01-15") == 15 and parse_peak_day("03-01") == 60
    with pytest.raises(GenerateError, match="seven"):
        parse_weekday_profile("1,1,1")
    with pytest.raises(GenerateError, match="MM-DD"):
        parse_peak_day("13-01")


def test_local_pressure_has_mean_one():
    from producers.generate import local_pressure

    days = pd.date_range(*TWO_YEARS)
    pressure = local_pressure(AdmissionsModel(weekly_noise=0.3), 151, days, np.random.default_rng(2))
    assert pressure.mean() == pytest.approx(1, abs=0.01)  # without the lognormal's correction: 1.046
    assert (pressure[:, 6:13] == pressure[:, [6]]).all()  # one value from Monday 7 to Sunday 13 April 2014


def test_other_metrics_follow_their_plans_and_drift_alone():
    """Each board's delayed days and permanent care-home admissions 65+ follow its plan in the plan year, its
    share at home after reablement its target; a metric's drift moves that metric only."""
    from bcfwatch.core.boards import load_boards
    from producers.generate import PlanTargets, _OtherMetricsPlan

    codes = load_boards().codes
    targets = PlanTargets(dict.fromkeys(codes, 0.9), dict.fromkeys(codes, 0.95), dict.fromkeys(codes, 0.8))
    spec = GeneratorSpec(*TWO_YEARS, scale=1.0, seed=1, reductions={}, targets=targets,
                         drifts=[Drift.parse("E08000025:delayed_days+20%"), Drift.parse("E10000016:reablement-5pt"),
                                 Drift.parse("E08000026:care_home_admissions_65+15%"), Drift.parse("E06000001:+10%")])
    days = pd.date_range(*TWO_YEARS)
    plan = _OtherMetricsPlan.of(spec, codes, days)
    base, after = days < pd.Timestamp("2015-04-01"), days >= pd.Timestamp("2015-04-01")
    index = {code: i for i, code in enumerate(codes)}
    delayed_year = plan.delayed_share[:, after].mean(axis=1) / plan.delayed_share[:, base].mean(axis=1)
    # the chance of a delay per discharge carries the plan (0.9) over emergency admissions' own (1 - 3.07%)
    assert delayed_year[index["E09000012"]] == pytest.approx(0.9 / (1 - 0.0307), rel=1e-6)
    assert delayed_year[index["E08000025"]] == pytest.approx(1.2 * 0.9 / (1 - 0.0307), rel=1e-6)
    assert delayed_year[index["E06000001"]] == pytest.approx(0.9 / ((1 - 0.0307) * 1.1), rel=1e-6)  # not with it
    assert plan.at_home[index["E10000016"], after].mean() == pytest.approx(0.75)
    assert plan.at_home[index["E09000012"], after].mean() == pytest.approx(0.8)
    homes = plan.placements[:, after].mean(axis=1) / plan.placements[:, base].mean(axis=1)
    assert homes[index["E08000026"]] > homes[index["E09000012"]] * 1.15  # placements carry the whole +15%


def test_metric_drifts_parse():
    assert Drift.parse("E08000025:delayed_days+20%").metric == "delayed_days"
    assert Drift.parse("E08000025:reablement-5pt").change == pytest.approx(-0.05)
    assert Drift.parse("E08000025:care_home_admissions_65+15%@2015-06-01").start == date(2015, 6, 1)
    for wrong in ("E08000025:reablement-5%", "E08000025:delayed_days+20pt", "E08000025:bed_days+5%"):
        with pytest.raises(GenerateError, match="reablement-5pt"):
            Drift.parse(wrong)
