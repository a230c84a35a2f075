"""The live monitor judges no plan-year week before every planned board's baseline year is read: the noise is
fitted on all boards' baseline years, and with two workers (or a cluster) one partition's counts can run ahead of
another's. Found by the compose stack's first real run (issue 28): an alert a month late. A sparse or silent
board in a partition that has moved on does not hold the others back."""

from __future__ import annotations

from datetime import date

from monitors.service.monitor import baseline_waiting

PLAN_YEAR = date(2015, 4, 1)
PLANS = dict.fromkeys(["E06000001", "E06000053", "E08000025", "E10000016"])
PARTITION = {"E06000001": 0, "E06000053": 0, "E08000025": 1, "E10000016": 1, "E09000001": 1}
GRACE = 28


def waiting(settled: dict[str, date]) -> list[str]:
    return baseline_waiting(PLANS, settled, PLAN_YEAR, PARTITION.__getitem__, GRACE)


def test_a_partition_behind_holds_its_boards_and_so_every_judgement():
    settled = {"E06000001": date(2016, 1, 1), "E06000053": date(2016, 1, 1),
               "E08000025": date(2015, 3, 30), "E10000016": date(2015, 2, 1)}  # partition 1 not read that far
    assert waiting(settled) == ["E08000025", "E10000016"]
    settled["E08000025"] = date(2015, 3, 31)  # the baseline year's last day: partition 1 at it, not past it
    assert waiting(settled) == ["E10000016"]
    settled["E10000016"] = date(2015, 3, 31)
    assert waiting(settled) == []


def test_a_sparse_or_silent_board_is_not_waited_for_once_its_partition_moved_on():
    # E06000053 had its last admission in 2014 (or none at all): its own clock says nothing about its partition.
    settled = {"E06000001": date(2015, 4, 27), "E06000053": date(2014, 11, 2),
               "E08000025": date(2016, 1, 1), "E10000016": date(2016, 1, 1)}
    assert waiting(settled) == ["E06000053"]  # partition 0 only 27 days past the baseline year: not yet
    settled["E06000001"] = date(2015, 4, 28)
    assert waiting(settled) == []
    del settled["E06000053"]  # never read at all
    assert waiting(settled) == []
    assert waiting({"E08000025": date(2016, 1, 1)}) == ["E06000001", "E06000053"]  # nothing of partition 0 read
