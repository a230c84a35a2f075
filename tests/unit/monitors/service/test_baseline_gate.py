"""The live monitor judges no plan-year week before every planned board's baseline year is settled: the noise
is fitted on all boards' baseline years, and with two workers (or a cluster) one board's counts can run ahead of
another's. Found by the compose stack's first real run (issue 28): an alert a month late."""

from __future__ import annotations

from datetime import date

from monitors.service.monitor import baseline_waiting

PLAN_YEAR = date(2015, 4, 1)
PLANS = dict.fromkeys(["E06000001", "E08000025", "E10000016"])


def test_every_planned_board_must_be_settled_through_the_baseline_years_last_day():
    settled = {"E06000001": date(2015, 3, 31), "E08000025": date(2015, 6, 1), "E10000016": date(2015, 3, 30)}
    assert baseline_waiting(PLANS, settled, PLAN_YEAR) == ["E10000016"]  # one day short
    settled["E10000016"] = date(2015, 3, 31)
    assert baseline_waiting(PLANS, settled, PLAN_YEAR) == []


def test_a_board_not_yet_read_is_waited_for_and_unplanned_boards_are_not():
    settled = {"E06000001": date(2016, 1, 1), "E09000001": date(2014, 5, 1)}  # E09000001 has no plan
    assert baseline_waiting(PLANS, settled, PLAN_YEAR) == ["E08000025", "E10000016"]
