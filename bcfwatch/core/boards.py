"""The health and wellbeing boards of 2015-16: one place for the board list.

The reference file lists the 152 councils with social-care duties; Cornwall and
the Isles of Scilly planned jointly, so there are 151 BCF plan boards. Events may
name either council of the pair; they are counted under the plan board.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Board:
    code: str
    name: str
    population: int
    population_18_plus: int
    population_65_plus: int


@dataclass(frozen=True)
class BoardList:
    boards: dict[str, Board]  # plan board code -> board (populations summed over its councils)
    plan_board_of: dict[str, str]  # council code -> plan board code

    def resolve(self, code: str) -> str | None:
        """The plan board for a council code, or None if the code is not an English council."""
        return self.plan_board_of.get(code)

    def __len__(self) -> int:
        return len(self.boards)

    def __iter__(self) -> Iterator[Board]:
        return iter(self.boards.values())

    @property
    def codes(self) -> list[str]:
        return list(self.boards)


@cache
def load_boards() -> BoardList:
    """Load the shipped reference file (cached)."""
    text = resources.files("bcfwatch.core").joinpath("councils.csv").read_text()
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    plan_board_of = {row["code"]: row["plan_board"] for row in rows}
    names = {row["code"]: row["name"] for row in rows}
    totals: dict[str, list[int]] = {}
    members: dict[str, list[str]] = {}
    for row in rows:
        plan = row["plan_board"]
        sums = totals.setdefault(plan, [0, 0, 0])
        sums[0] += int(row["population"])
        sums[1] += int(row["population_18_plus"])
        sums[2] += int(row["population_65_plus"])
        members.setdefault(plan, []).append(row["code"])
    boards = {}
    for plan in sorted(totals):
        name = " and ".join(names[c] for c in sorted(members[plan]))
        boards[plan] = Board(plan, name, *totals[plan])
    return BoardList(boards=boards, plan_board_of=plan_board_of)
