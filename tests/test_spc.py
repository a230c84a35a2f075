"""SPC rules, table-driven, with cases worked by hand."""

import numpy as np
import pytest

from monitors.spc import Assurance, Limits, assurance, shift, special_causes, trend, two_in_three, xmr_limits


def test_xmr_limits_worked_by_hand():
    # values 10, 12, 11, 13, 12: mean 11.6; moving ranges 2, 1, 2, 1 -> MR-bar 1.5; limits 11.6 +/- 3.99
    limits = xmr_limits([10, 12, 11, 13, 12])
    assert limits.mean == pytest.approx(11.6)
    assert limits.mean_moving_range == pytest.approx(1.5)
    assert limits.lower == pytest.approx(7.61)
    assert limits.upper == pytest.approx(15.59)


def test_outlying_moving_ranges_screened():
    # moving ranges 1, 1, 1, 1, 20 (the jump to 30): MR-bar 4.8; 20 > 3.267 x 4.8 = 15.7 is screened -> MR-bar 1
    limits = xmr_limits([10, 11, 10, 11, 10, 30])
    assert limits.mean_moving_range == pytest.approx(1.0)
    assert xmr_limits([10, 11, 10, 11, 10, 30], screen_outliers=False).mean_moving_range == pytest.approx(4.8)


FLAT = Limits(mean=0.0, mean_moving_range=1.0, lower=-2.66, upper=2.66)


@pytest.mark.parametrize(
    ("values", "high", "low"),
    [
        ([1, 1, 1, 1, 1, 1, 1], [1] * 7, [0] * 7),  # seven above: a shift
        ([1, 1, 1, 1, 1, 1, -1], [0] * 7, [0] * 7),  # six above then one below: no shift
        ([1, 1, 1, 0, 1, 1, 1, 1], [0] * 8, [0] * 8),  # a point on the mean breaks the run
        ([-1] * 8, [0] * 8, [1] * 8),
    ],
)
def test_shift_rule(values, high, low):
    above, below = shift(values, FLAT)
    assert above.astype(int).tolist() == high and below.astype(int).tolist() == low


@pytest.mark.parametrize(
    ("values", "rising", "falling"),
    [
        ([1, 2, 3, 4, 5, 6, 7], [1] * 7, [0] * 7),
        ([1, 2, 3, 4, 5, 6, 6], [0] * 7, [0] * 7),  # a tie breaks the trend: only six rising
        ([9, 1, 2, 3, 4, 5, 6, 7], [0] + [1] * 7, [0] * 8),
        ([7, 6, 5, 4, 3, 2, 1], [0] * 7, [1] * 7),
    ],
)
def test_trend_rule(values, rising, falling):
    up, down = trend(values)
    assert up.astype(int).tolist() == rising and down.astype(int).tolist() == falling


@pytest.mark.parametrize(
    ("values", "high"),
    [
        # 2/3 of the way to 2.66 is 1.773
        ([0, 1.8, 0, 1.9, 0], [0, 1, 0, 1, 0]),  # two of three beyond
        ([0, 1.8, 0, 0, 1.9], [0, 0, 0, 0, 0]),  # too far apart
        ([0, 1.8, -1.8, 0, 0], [0, 0, 0, 0, 0]),  # opposite sides do not combine
        ([1.8, 1.9, 2.0], [1, 1, 1]),
    ],
)
def test_two_in_three_rule(values, high):
    above, _ = two_in_three(values, FLAT)
    assert above.astype(int).tolist() == high


def test_special_causes_combine_rules_and_name_them():
    values = [0, 0.5, -0.5, 0, 3.0, 0]
    result = special_causes(values, FLAT)
    assert result.high.astype(int).tolist() == [0, 0, 0, 0, 1, 0]
    assert result.rules_fired(4) == ["outside limits"]
    assert result.variation(4).value == "special cause: concern"
    assert result.variation(4, improvement="increase").value == "special cause: improvement"
    assert result.variation(0).value == "common cause"


def test_common_cause_noise_rarely_special():
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, 52)
    result = special_causes(values)
    assert result.high.sum() + result.low.sum() < 10


@pytest.mark.parametrize(
    ("limits", "target", "improvement", "expected"),
    [
        (Limits(10, 1, 7.34, 12.66), 15, "decrease", Assurance.CONSISTENTLY_HIT),
        (Limits(10, 1, 7.34, 12.66), 5, "decrease", Assurance.CONSISTENTLY_MISSED),
        (Limits(10, 1, 7.34, 12.66), 10, "decrease", Assurance.HIT_AND_MISS),
        (Limits(10, 1, 7.34, 12.66), 5, "increase", Assurance.CONSISTENTLY_HIT),
        (Limits(10, 1, 7.34, 12.66), 13, "increase", Assurance.CONSISTENTLY_MISSED),
    ],
)
def test_assurance(limits, target, improvement, expected):
    assert assurance(limits, target, improvement) is expected
