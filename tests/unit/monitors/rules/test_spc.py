"""SPC as NHSRplotthedots v0.2.2: rules worked by hand and the package's own test expectations.

Expectations marked "NHSRplotthedots" are ported from its tests/testthat (test-ptd_calculate_point_type.R,
test-ptd_spc_standard.R and its snapshot, test-ptd_spc.R's summary snapshot, test-geom_ptd_icon.R,
test-ptd_calculate_assurance_type.R, test-ptd_spc_options.R, test-ptd_add_short_group_warnings.R). The series those
tests draw with ``set.seed(123); rnorm(...)`` are in tests/data/nhsrplotthedots/vectors.json, made by R's own
generator re-implemented in tests/data/nhsrplotthedots/r_rnorm.py.
"""

import json
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitors.rules.spc import (
    Assurance,
    ImprovementDirection,
    Limits,
    PointType,
    Rule,
    SpecialCauseType,
    Variation,
    assurance,
    r_mean,
    shift,
    special_causes,
    trend,
    two_in_three,
    xmr_chart,
    xmr_limits,
)
from tests.support import TESTS

DATA = TESTS / "data" / "nhsrplotthedots"
VECTORS = json.loads((DATA / "vectors.json").read_text())
RNORM20 = VECTORS["rnorm20_seed123"]

S = SpecialCauseType
FLAT = Limits(mean=0.0, mean_moving_range=1.0, lower=-2.66, upper=2.66)
WIDE = Limits(mean=4.0, mean_moving_range=10.0, lower=-22.6, upper=30.6)


def flags(array: np.ndarray) -> list[int]:
    return array.astype(int).tolist()


# ------------------------------------------------------------------------------------------------ limits


def test_xmr_limits_worked_by_hand():
    # values 10, 12, 11, 13, 12: mean 11.6; moving ranges 2, 1, 2, 1 -> MR-bar 1.5; limits 11.6 +/- 3.99
    limits = xmr_limits([10, 12, 11, 13, 12])
    assert limits.mean == pytest.approx(11.6)
    assert limits.mean_moving_range == pytest.approx(1.5)
    assert limits.lower == pytest.approx(7.61)
    assert limits.upper == pytest.approx(15.59)
    assert limits.upper_two_thirds == pytest.approx(11.6 + 2 * 2.66 / 3 * 1.5)


def test_outlying_moving_ranges_screened():
    # moving ranges 1, 1, 1, 1, 20 (the jump to 30): MR-bar 4.8; 20 > 3.267 x 4.8 = 15.7 is screened -> MR-bar 1
    limits = xmr_limits([10, 11, 10, 11, 10, 30])
    assert limits.mean_moving_range == pytest.approx(1.0)
    assert xmr_limits([10, 11, 10, 11, 10, 30], screen_outliers=False).mean_moving_range == pytest.approx(4.8)


def test_a_moving_range_exactly_at_the_screening_line_is_dropped(monkeypatch):
    # moving ranges 0 and 2 (the first is missing): MR-bar 1; with the factor set to 2 the range of 2 sits exactly
    # on the line, and NHSRplotthedots keeps only ranges strictly below it
    monkeypatch.setattr("monitors.rules.spc.SCREEN_FACTOR", 2.0)
    limits = xmr_limits([0.0, 0.0, 2.0])
    assert limits.mean_moving_range == 0.0
    monkeypatch.setattr("monitors.rules.spc.SCREEN_FACTOR", 2.0000001)
    assert xmr_limits([0.0, 0.0, 2.0]).mean_moving_range == 1.0


def test_flat_fitting_period_gives_no_limits():
    limits = xmr_limits([5.0] * 12)
    assert math.isnan(limits.lower) and math.isnan(limits.upper) and not limits.defined
    assert limits.mean == 5.0
    # NHSRplotthedots: without screening MR-bar is 0 and the limits have zero width
    unscreened = xmr_limits([5.0] * 12, screen_outliers=False)
    assert unscreened.lower == unscreened.upper == 5.0
    assert assurance(limits, 4.0) is Assurance.HIT_AND_MISS  # NaN limits: "inconsistent" in NHSRplotthedots


def test_first_moving_range_is_missing_and_one_point_has_no_limits():
    assert math.isnan(xmr_limits([3.0]).upper)
    with pytest.raises(ValueError):
        xmr_limits([])


def test_r_mean_matches_r_where_numpy_does_not():
    fitting = [0.2, 0.1, 0.3, 0.6]
    assert np.mean(fitting) == 0.30000000000000004  # pairwise double sum
    assert r_mean(fitting) == 0.3  # R: mean(c(0.2, 0.1, 0.3, 0.6)) == 0.3 (long double sum, then a correction)
    limits = xmr_limits(fitting)
    assert limits.mean == 0.3
    # so 0.3 is *on* the mean and breaks a run below it, as in R (numpy's mean would make it a run of seven)
    values = [0.2, 0.2, 0.2, 0.3, 0.2, 0.2, 0.2]
    assert special_causes(values, limits).special_cause_types == (S.COMMON_CAUSE,) * 7


def test_non_finite_values_are_refused():
    with pytest.raises(ValueError):
        special_causes([1.0, float("nan"), 2.0])


# ------------------------------------------------------------------------------------------------ single rules


@pytest.mark.parametrize(
    ("values", "high", "low"),
    [
        ([1, 1, 1, 1, 1, 1, 1], [1] * 7, [0] * 7),  # seven above: a shift
        ([1, 1, 1, 1, 1, 1, -1], [0] * 7, [0] * 7),  # six above then one below: no shift
        ([1, 1, 1, 0, 1, 1, 1, 1], [0] * 8, [0] * 8),  # a point on the mean breaks the run
        ([-1] * 8, [0] * 8, [1] * 8),
        # NHSRplotthedots ptd_seven_point_one_side_mean + ptd_part_of_seven_trend
        ([], [], []),
        ([1] * 6, [0] * 6, [0] * 6),
        ([1] * 8 + [-1], [1] * 8 + [0], [0] * 9),
        ([-1] * 8 + [1], [0] * 9, [1] * 8 + [0]),
    ],
)
def test_shift_rule(values, high, low):
    above, below = shift(values, FLAT)
    assert flags(above) == high and flags(below) == low


@pytest.mark.parametrize(
    ("values", "rising", "falling"),
    [
        ([1, 2, 3, 4, 5, 6, 7], [1] * 7, [0] * 7),
        ([1, 2, 3, 4, 5, 6, 6], [0] * 7, [0] * 7),  # a tie breaks the trend: only six rising
        ([9, 1, 2, 3, 4, 5, 6, 7], [0] + [1] * 7, [0] * 8),
        ([7, 6, 5, 4, 3, 2, 1], [0] * 7, [1] * 7),
        # NHSRplotthedots ptd_seven_point_trend
        ([], [], []),
        ([1, 2, 3, 4, 5, 6], [0] * 6, [0] * 6),
        ([1, 2, 3, 3, 4, 5, 6], [0] * 7, [0] * 7),
        ([2, 1, 2, 3, 4, 5, 6, 7, 3], [0] + [1] * 7 + [0], [0] * 9),
        ([2, 7, 6, 5, 4, 3, 2, 1, 3], [0] * 9, [0] + [1] * 7 + [0]),
    ],
)
def test_trend_rule(values, rising, falling):
    up, down = trend(values)
    assert flags(up) == rising and flags(down) == falling


C, N, B, CB = 2.0, 0.5, -0.5, -2.0  # close above, near above, near below (B), close below (CB) (FLAT: 2/3 line 1.77)


@pytest.mark.parametrize(
    ("values", "high", "low"),
    [
        # issue 13: a point *on* the mean is not on the same side, so these three do not make a 2-in-3
        ([0, 1.8, 0, 1.9, 0], [0, 0, 0, 0, 0], [0] * 5),
        ([0, 1.8, 0, 0, 1.9], [0, 0, 0, 0, 0], [0] * 5),  # too far apart
        ([0, 1.8, -1.8, 0, 0], [0, 0, 0, 0, 0], [0] * 5),  # opposite sides do not combine
        ([1.8, 1.9, 2.0], [1, 1, 1], [0] * 3),
        ([0.5, 1.8, 0.5, 1.9, 0.5], [0, 1, 0, 1, 0], [0] * 5),  # same side: two of three
        # points beyond the limit do not count towards the two...
        ([1.8, 3.0, 0.5], [0, 0, 0], [0] * 3),
        ([1.8, 3.0, 3.1], [0, 0, 0], [0] * 3),
        # ...but sit in the window, on their side
        ([0.5, 1.8, 3.0, 1.9], [0, 1, 0, 1], [0] * 4),
        ([-1.8, -1.9, -0.1], [0] * 3, [1, 1, 0]),
        # NHSRplotthedots ptd_two_in_three / ptd_part_of_two_in_three (close flags c(1,0,1), c(0,1,1), ...)
        ([C, N, C], [1, 0, 1], [0] * 3),
        ([N, C, C], [0, 1, 1], [0] * 3),
        ([C, C, N], [1, 1, 0], [0] * 3),
        ([N, N, C, N, C, N, N], [0, 0, 1, 0, 1, 0, 0], [0] * 7),
        ([N, N, C, C, N, N, N], [0, 0, 1, 1, 0, 0, 0], [0] * 7),
        ([C, N, N, C], [0, 0, 0, 0], [0] * 4),
        ([C, N, N, C, C], [0, 0, 0, 1, 1], [0] * 5),
        # ... and on opposite sides of the mean (v0.2 fix, NHSRplotthedots #143)
        ([C, B, C], [0] * 3, [0] * 3),
        ([N, CB, C], [0] * 3, [0] * 3),
        ([C, CB, N], [0] * 3, [0] * 3),
        ([N, B, C, B, C, B, N], [0] * 7, [0] * 7),
        ([B, N, CB, C, B, N, B], [0] * 7, [0] * 7),
    ],
)
def test_two_in_three_rule(values, high, low):
    above, below = two_in_three(values, FLAT)
    assert flags(above) == high and flags(below) == low


# ------------------------------------------------------------------------------------------------ one label per point


def test_special_causes_combine_rules_and_name_them():
    values = [0, 0.5, -0.5, 0, 3.0, 0]
    result = special_causes(values, FLAT)
    assert flags(result.high) == [0, 0, 0, 0, 1, 0]
    assert result.rules_fired(4) == ["outside limits"]
    assert result.variation(4) is Variation.SPECIAL_CAUSE_CONCERN
    assert result.variation(4, improvement="increase") is Variation.SPECIAL_CAUSE_IMPROVEMENT
    assert result.variation(4, improvement="neutral") is Variation.SPECIAL_CAUSE_NEUTRAL_HIGH
    assert result.variation(0) is Variation.COMMON_CAUSE
    assert result.rules_fired(0) == []


def test_falling_trend_above_the_mean_is_improvement_when_lower_is_better():
    values = [11, 10, 9, 8, 7, 6, 5]  # seven above the mean (a shift) *and* seven falling (a trend)
    result = special_causes(values, WIDE)
    raw_shift, raw_trend = result.rules_high["shift"], result.rules_low["trend"]
    assert raw_shift.all() and raw_trend.all()  # both rules fire...
    assert result.special_cause_types == (S.TREND_DECREASING,) * 7  # ...the trend label wins
    assert flags(result.low) == [1] * 7 and flags(result.high) == [0] * 7
    assert all(result.variation(i) is Variation.SPECIAL_CAUSE_IMPROVEMENT for i in range(7))
    assert result.rules_fired(6) == ["trend"]


def test_outside_beats_trend_beats_two_in_three_beats_run():
    limits = Limits(mean=0.0, mean_moving_range=1.0, lower=-2.66, upper=2.66)
    # seven above the mean; 1.8 and 1.9 are two in three; the last three rise with 3.0 beyond the limit
    values = [0.5, 0.4, 1.8, 0.3, 1.9, 0.2, 0.1, 0.6, 3.0]
    assert special_causes(values, limits).special_cause_types == (
        S.SHIFT_ABOVE, S.SHIFT_ABOVE, S.TWO_IN_THREE_ABOVE, S.SHIFT_ABOVE, S.TWO_IN_THREE_ABOVE,
        S.SHIFT_ABOVE, S.SHIFT_ABOVE, S.SHIFT_ABOVE, S.ABOVE_UCL)
    rising = [0.1, 0.2, 0.3, 0.4, 1.8, 1.9, 3.0]  # a trend ending beyond the limit, through two-in-three points
    assert special_causes(rising, limits).special_cause_types == (S.TREND_INCREASING,) * 6 + (S.ABOVE_UCL,)


def test_turning_point_shared_by_two_trends_takes_the_next_steps_direction():
    values = [1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2, 1]
    labels = special_causes(values, WIDE).special_cause_types
    assert labels == (S.TREND_INCREASING,) * 6 + (S.TREND_DECREASING,) * 7


def test_equal_pair_between_two_trends_follows_nhsrplotthedots():
    # ptd_special_cause_type: sign of the next step (0 here) and "Increasing" only for +1, so the top of the rising
    # trend is labelled Decreasing, exactly as NHSRplotthedots does
    values = [1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1]
    labels = special_causes(values, WIDE).special_cause_types
    assert labels == (S.TREND_INCREASING,) * 6 + (S.TREND_DECREASING,) * 8


@pytest.mark.parametrize(
    ("direction", "high", "low"),
    [
        ("increase", PointType.SPECIAL_CAUSE_IMPROVEMENT, PointType.SPECIAL_CAUSE_CONCERN),
        ("decrease", PointType.SPECIAL_CAUSE_CONCERN, PointType.SPECIAL_CAUSE_IMPROVEMENT),
        ("neutral", PointType.SPECIAL_CAUSE_NEUTRAL_HIGH, PointType.SPECIAL_CAUSE_NEUTRAL_LOW),
    ],
)
def test_point_types_follow_the_improvement_direction(direction, high, low):
    chart = xmr_chart([0, 0.5, -0.5, 0, 0.5, -0.5, 0, 30.0, -30.0], improvement=direction)
    assert chart.special_cause_types[-2:] == (S.ABOVE_UCL, S.BELOW_LCL)
    assert chart.point_types == (PointType.COMMON_CAUSE,) * 7 + (high, low)


def test_common_cause_noise_rarely_special():
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, 52)
    result = special_causes(values)
    assert result.high.sum() + result.low.sum() < 10


# ------------------------------------------------------------------------------------------------ NHSRplotthedots data


def test_reference_vectors_are_rs_rnorm():
    # the first values as R prints them in tests/testthat/_snaps/ptd_spc_standard.md
    assert np.round(RNORM20[:4], 8).tolist() == [-0.56047565, -0.23017749, 1.55870831, 0.07050839]
    sys.path.insert(0, str(DATA))
    try:
        from r_rnorm import vectors
    finally:
        sys.path.remove(str(DATA))
    assert vectors() == VECTORS


def test_ptd_spc_standard_snapshot_limits():
    chart = xmr_chart(RNORM20, improvement="increase")
    limits = chart.groups[0].limits
    assert limits.mean == pytest.approx(0.1416238, abs=5e-8)
    assert limits.lower == pytest.approx(-3.01138, abs=5e-6)
    assert limits.upper == pytest.approx(3.294627, abs=5e-7)
    side = np.sign(np.array(RNORM20) - limits.mean).astype(int).tolist()
    assert side[:13] == [-1, -1, 1, -1, -1, 1, 1, -1, -1, -1, 1, 1, 1]
    assert set(chart.special_cause_types) == {S.COMMON_CAUSE}  # summary: 20 common cause


def test_ptd_spc_standard_snapshot_screen_outliers():
    values = list(RNORM20)
    values[14] = 10.0  # data$y[15] <- 10
    screened = xmr_chart(values, improvement="increase").groups[0].limits
    assert screened.mean == pytest.approx(0.6694159, abs=5e-8)
    assert screened.lower == pytest.approx(-2.383666, abs=5e-7)
    assert screened.upper == pytest.approx(3.722497, abs=5e-7)
    side = np.sign(np.array(values) - screened.mean).astype(int).tolist()
    assert side[:14] == [-1, -1, 1, -1, -1, 1, -1, -1, -1, -1, 1, -1, -1, -1]
    unscreened = xmr_chart(values, improvement="increase", screen_outliers=False).groups[0].limits
    assert unscreened.lower == pytest.approx(-4.596625, abs=5e-7)
    assert unscreened.upper == pytest.approx(5.935457, abs=5e-7)
    assert unscreened.upper - unscreened.lower > screened.upper - screened.lower


def test_fix_after_n_points_changes_the_limits_and_is_at_least_12():
    s0 = xmr_chart(RNORM20, improvement="increase")
    s1 = xmr_chart(RNORM20, improvement="increase", fix_after_n_points=12)
    assert s1.groups[0].limits.lower != s0.groups[0].limits.lower
    assert s1.groups[0].limits == xmr_limits(RNORM20[:12])
    assert s1.groups[0].fitted_points == 12 and len(s1.special_cause_types) == 20
    for bad in (11, 11.5, "a", True):
        with pytest.raises(ValueError):
            xmr_chart(RNORM20, improvement="increase", fix_after_n_points=bad)
    assert xmr_chart(RNORM20, improvement="increase", fix_after_n_points=40).groups[0].fitted_points == 20


def test_two_close_points_on_opposite_sides_are_common_cause():
    # test-ptd_spc_standard.R: symmetrical data, then 5.5 and -5.5 as the last two points
    values = [1.0, -1.0] * 8
    values[14], values[15] = 5.5, -5.5
    chart = xmr_chart(values, improvement="increase")
    assert chart.point_types[-2:] == (PointType.COMMON_CAUSE, PointType.COMMON_CAUSE)
    limits = chart.groups[0].limits
    assert limits.upper_two_thirds < 5.5 <= limits.upper and limits.lower <= -5.5 < limits.lower_two_thirds


def test_summary_snapshot_facets_and_rebase():
    # test-ptd_spc.R summary: facets of 10 points each; a rebase after 10 points splits the series the same way
    chart = xmr_chart(RNORM20, improvement="increase", rebase=[10])
    first, second = (g.limits for g in chart.groups)
    assert (round(first.mean, 4), round(first.lower, 2), round(first.upper, 2)) == (0.0746, -2.60, 2.75)
    assert (round(second.mean, 3), round(second.lower, 2), round(second.upper, 2)) == (0.209, -3.28, 3.70)
    assert set(chart.point_types) == {PointType.COMMON_CAUSE}
    assert [g.short_group_warning for g in chart.groups] == [True, True]
    # a rebase at the first point (2020-01-01 in the snapshot is before the data) changes nothing
    assert xmr_chart(RNORM20, improvement="increase", rebase=[0]).groups == \
        xmr_chart(RNORM20, improvement="increase").groups


def test_short_group_warning_threshold():
    assert xmr_chart(RNORM20[:12], improvement="increase").groups[0].short_group_warning
    assert not xmr_chart(RNORM20[:13], improvement="increase").groups[0].short_group_warning


ICONS = VECTORS["icons_rnorm24_seed123"]
ICONS_HIGH = ICONS[:12] + VECTORS["icons_then_rnorm12_mean5"]
ICONS_LOW = ICONS[:12] + VECTORS["icons_then_rnorm12_mean_minus5"]


@pytest.mark.parametrize(
    ("values", "target", "direction", "variation", "assurance_type"),
    [
        (ICONS, None, "increase", "common_cause", None),  # s1
        (ICONS, 0.5, "increase", "common_cause", "inconsistent"),  # s2
        (ICONS_HIGH, -3, "increase", "special_cause_improvement", "consistent_pass"),  # s5: improvement_high
        (ICONS_HIGH, -3, "decrease", "special_cause_concern", "consistent_fail"),  # s6: concern_high
        (ICONS_LOW, 3, "increase", "special_cause_concern", "consistent_fail"),  # s7: concern_low
        (ICONS_LOW, 3, "decrease", "special_cause_improvement", "consistent_pass"),  # s8: improvement_low
        (ICONS_LOW, 3, "neutral", "special_cause_neutral_low", None),  # s9: neutral_low, no assurance icon
    ],
)
def test_geom_ptd_icon_expectations(values, target, direction, variation, assurance_type):
    chart = xmr_chart(values, improvement=direction, target=target)
    assert chart.point_types[-1].value == variation
    assert (chart.assurance.ptd_name if chart.assurance else None) == assurance_type


@pytest.mark.parametrize("target", [None, 0.5])
def test_geom_ptd_icon_facets(target):
    # s3 / s4: two facets of 12 points: each common cause at its last point, inconsistent against 0.5
    for facet in (ICONS[:12], ICONS[12:]):
        chart = xmr_chart(facet, improvement="increase", target=target)
        assert chart.point_types[-1] is PointType.COMMON_CAUSE
        assert chart.assurance is (None if target is None else Assurance.HIT_AND_MISS)


# ------------------------------------------------------------------------------------------------ fix / rebase


def test_rules_run_over_the_baseline_when_limits_are_fixed():
    baseline = [-1.0, 1.0] * 4 + [2.0, 2.0, 2.0, 2.0]  # ends with four points above its mean (0.667)
    later = [1.0, 1.0, 1.0]  # three more above: seven in a row, straddling the fix
    chart = xmr_chart(baseline + later, improvement="decrease", fix_after_n_points=12)
    assert chart.groups[0].limits == xmr_limits(baseline)
    assert chart.special_cause_types[8:] == (S.SHIFT_ABOVE,) * 7
    assert chart.variation(14) is Variation.SPECIAL_CAUSE_CONCERN
    assert chart.rules_fired(14) == [Rule.SHIFT.value]
    # judging only the later points against the same limits cannot see the run
    assert special_causes(later, xmr_limits(baseline)).special_cause_types == (S.COMMON_CAUSE,) * 3


def test_flat_baseline_has_no_limits_but_runs_still_count():
    chart = xmr_chart([5.0] * 12 + [6.0] * 7, improvement="decrease", fix_after_n_points=12, target=5.5)
    assert not chart.groups[0].limits.defined
    assert chart.special_cause_types == (S.COMMON_CAUSE,) * 12 + (S.SHIFT_ABOVE,) * 7
    assert chart.assurance is Assurance.HIT_AND_MISS


def test_rebase_groups_have_their_own_limits_and_rules():
    values = [0.0, 1.0] * 5 + [5.0, 5.2] * 5
    whole = xmr_chart(values, improvement="increase")
    assert whole.special_cause_types[10:] == (S.ABOVE_UCL,) * 10
    rebased = xmr_chart(values, improvement="increase", rebase=[10])
    assert [(g.start, g.stop) for g in rebased.groups] == [(0, 10), (10, 20)]
    assert rebased.limits_at(15) == xmr_limits(values[10:])
    assert set(rebased.special_cause_types) == {S.COMMON_CAUSE}
    with pytest.raises(ValueError):
        xmr_chart(values, improvement="increase", rebase=[20])


def test_fix_after_n_points_applies_within_each_rebase_group():
    values = RNORM20 * 2
    chart = xmr_chart(values, improvement="increase", rebase=[20], fix_after_n_points=12)
    assert [g.limits for g in chart.groups] == [xmr_limits(RNORM20[:12])] * 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=2, max_size=40), st.integers(1, 39))
def test_a_rebased_chart_is_its_groups_charted_apart(values, cut):
    cut = min(cut, len(values) - 1)
    rebased = xmr_chart(values, improvement="decrease", rebase=[cut])
    apart = (xmr_chart(values[:cut], improvement="decrease").special_cause_types
             + xmr_chart(values[cut:], improvement="decrease").special_cause_types)
    assert rebased.special_cause_types == apart
    assert len(rebased.point_types) == len(values)  # one label per point
    assert rebased.special_cause_types == xmr_chart(values, improvement="neutral", rebase=[cut]).special_cause_types


# ------------------------------------------------------------------------------------------------ assurance


@pytest.mark.parametrize(
    ("limits", "target", "improvement", "expected"),
    [
        (Limits(10, 1, 7.34, 12.66), 15, "decrease", Assurance.CONSISTENTLY_HIT),
        (Limits(10, 1, 7.34, 12.66), 5, "decrease", Assurance.CONSISTENTLY_MISSED),
        (Limits(10, 1, 7.34, 12.66), 10, "decrease", Assurance.HIT_AND_MISS),
        (Limits(10, 1, 7.34, 12.66), 5, "increase", Assurance.CONSISTENTLY_HIT),
        (Limits(10, 1, 7.34, 12.66), 13, "increase", Assurance.CONSISTENTLY_MISSED),
        (Limits(10, 1, 7.34, 12.66), 12.66, "decrease", Assurance.HIT_AND_MISS),  # strictly beyond
        (Limits(10, 1, 7.34, 12.66), 7.34, "increase", Assurance.HIT_AND_MISS),
        # test-ptd_calculate_assurance_type.R: lpl/upl (1, 3), (5, 7), (1, 5) against a target of 4
        (Limits(2, 0, 1, 3), 4, "increase", Assurance.CONSISTENTLY_MISSED),
        (Limits(6, 0, 5, 7), 4, "increase", Assurance.CONSISTENTLY_HIT),
        (Limits(4, 0, 1, 5), 4, "increase", Assurance.HIT_AND_MISS),
        (Limits(2, 0, 1, 3), 4, "decrease", Assurance.CONSISTENTLY_HIT),
        (Limits(6, 0, 5, 7), 4, "decrease", Assurance.CONSISTENTLY_MISSED),
        (Limits(4, 0, 1, 5), 4, "decrease", Assurance.HIT_AND_MISS),
    ],
)
def test_assurance(limits, target, improvement, expected):
    assert assurance(limits, target, improvement) is expected


def test_assurance_names_and_neutral():
    assert [a.ptd_name for a in Assurance] == ["consistent_pass", "consistent_fail", "inconsistent"]
    with pytest.raises(ValueError):
        assurance(FLAT, 1.0, ImprovementDirection.NEUTRAL)
    assert xmr_chart(RNORM20, improvement="neutral", target=10).assurance is None
    assert xmr_chart(RNORM20, improvement="decrease").assurance is None  # no target


def test_assurance_uses_the_last_rebase_group():
    # test-ptd_calculate_assurance_type.R "when rebase": the last group's limits decide
    values = [0.0, 1.0] * 7 + [10.0, 11.0] * 7
    chart = xmr_chart(values, improvement="decrease", rebase=[14], target=5.0)
    assert chart.assurance is Assurance.CONSISTENTLY_MISSED
    assert xmr_chart(values[:14], improvement="decrease", target=5.0).assurance is Assurance.CONSISTENTLY_HIT
