"""BCF plans: one row per health and wellbeing board (docs/plan-format.md).

The loader checks every row and reports each problem with its row number,
column and reason; :func:`national_summary` rolls the plans up the way the
national figures are quoted (pool, planned savings, avoided admissions).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcfwatch.core.boards import BoardList, load_boards

APPROVAL_STATUSES = ("approved", "approved with support", "approved with conditions", "not approved")
DEFAULT_UNIT_COST_GBP = 1550.0  # per avoided emergency admission (£253m for 163,000 fewer, Oct 2014)
PLAN_COLUMNS = (
    "board", "name", "approval_status", "pooled_fund_gbp",
    "baseline_emergency_q1", "baseline_emergency_q2", "baseline_emergency_q3", "baseline_emergency_q4",
    "planned_reduction_pct", "baseline_delayed_days", "planned_delayed_days",
    "baseline_care_home_admissions_65", "planned_care_home_admissions_65", "reablement_target_pct",
    "population_18_plus", "population_65_plus",
)
_WHOLE = {"baseline_emergency_q1", "baseline_emergency_q2", "baseline_emergency_q3", "baseline_emergency_q4",
          "baseline_delayed_days", "planned_delayed_days", "baseline_care_home_admissions_65",
          "planned_care_home_admissions_65", "population_18_plus", "population_65_plus"}


@dataclass(frozen=True)
class ColumnRange:
    """The values a numeric plan column may take (inclusive), and why, for the error message."""

    minimum: float
    maximum: float
    why: str


_EMERGENCY_QUARTER = ColumnRange(
    1, 200_000, "a quarter's emergency admissions: the largest board has about 40,000; with none the plan "
    "has nothing to monitor")
# The plausible ranges (docs/plan-format.md). Maxima are far above the largest board (Kent) so that only typing
# errors and unit mix-ups are caught: a few times the largest real value, well below the national total.
COLUMN_RANGES: dict[str, ColumnRange] = {
    "pooled_fund_gbp": ColumnRange(0, 1_000_000_000, "the largest pooled fund is about £150m (£5.3bn nationally)"),
    "baseline_emergency_q1": _EMERGENCY_QUARTER,
    "baseline_emergency_q2": _EMERGENCY_QUARTER,
    "baseline_emergency_q3": _EMERGENCY_QUARTER,
    "baseline_emergency_q4": _EMERGENCY_QUARTER,
    "planned_reduction_pct": ColumnRange(-50, 50, "planned reductions run from -50 (a planned rise of 50%) to 50"),
    "baseline_delayed_days": ColumnRange(1, 1_000_000, "the largest board has about 50,000 delayed days a year"),
    "planned_delayed_days": ColumnRange(0, 1_000_000, "the largest board has about 50,000 delayed days a year"),
    "baseline_care_home_admissions_65": ColumnRange(
        0, 50_000, "the largest board has about 2,000 permanent admissions 65+ a year"),
    "planned_care_home_admissions_65": ColumnRange(
        0, 50_000, "the largest board has about 2,000 permanent admissions 65+ a year"),
    "reablement_target_pct": ColumnRange(1, 100, "a share of people, in %"),
    "population_18_plus": ColumnRange(1, 10_000_000, "the largest board has about 1.2 million people aged 18+"),
    "population_65_plus": ColumnRange(1, 10_000_000, "the largest board has about 300,000 people aged 65+"),
}


class PlanError(ValueError):
    """A plan file with problems; ``problems`` lists (line number in the file, column, reason)."""

    def __init__(self, path: Path, problems: list[tuple[int, str, str]]) -> None:
        self.problems = problems
        lines = [f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"]
        lines += [f"  line {row}, column {column}: {reason}" if row else f"  {column}: {reason}"
                  for row, column, reason in problems[:50]]
        if len(problems) > 50:
            lines.append(f"  ... and {len(problems) - 50} more")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class BoardPlan:
    board: str
    name: str
    approval_status: str
    pooled_fund_gbp: float
    baseline_emergency_by_quarter: tuple[int, ...]  # four quarters: Apr-Jun, Jul-Sep, Oct-Dec, Jan-Mar
    planned_reduction: float  # 0.0307 for 3.07%
    baseline_delayed_days: int
    planned_delayed_days: int
    baseline_care_home_admissions_65: int
    planned_care_home_admissions_65: int
    reablement_target: float  # share of 65+ at home 91 days after reablement
    population_18_plus: int
    population_65_plus: int

    @property
    def baseline_emergency(self) -> int:
        return sum(self.baseline_emergency_by_quarter)

    @property
    def planned_emergency(self) -> float:
        return self.baseline_emergency * (1 - self.planned_reduction)

    @property
    def avoided_admissions(self) -> float:
        return self.baseline_emergency * self.planned_reduction




def load_plan(path: Path, boards: BoardList | None = None) -> dict[str, BoardPlan]:
    """Read and check a plan file; raise PlanError listing every problem found."""
    boards = boards or load_boards()
    problems: list[tuple[int, str, str]] = []
    text = _read_lines(path)
    comments = next((i for i, line in enumerate(text) if not line.startswith("#")), len(text))
    rows = csv.DictReader(text[comments:])
    try:
        header = rows.fieldnames or []
    except csv.Error as error:
        raise PlanError(path, [(comments + 1, "-", f"the header is not valid CSV: {error}")]) from None
    missing = [c for c in PLAN_COLUMNS if c not in header]
    if missing:
        raise PlanError(path, [(comments + 1, c, "column is missing from the header") for c in missing])
    plans: dict[str, BoardPlan] = {}
    seen: set[str] = set()
    try:
        for row in rows:
            number = comments + rows.line_num  # the file's line (blank lines skipped by the reader still count)
            code = (row.get("board") or "").strip()
            seen.add(boards.resolve(code) or code)
            plan = _parse_row(row, number, boards, problems)
            if plan is None:
                continue
            if plan.board in plans:
                problems.append((number, "board", f"{plan.board} already has a plan on an earlier line"))
                continue
            plans[plan.board] = plan
    except csv.Error as error:
        problems.append((comments + rows.line_num, "-", f"not valid CSV: {error}"))
    for code in boards.codes:
        if code not in seen:  # a board whose line has problems was reported there
            problems.append((0, "board", f"no plan for board {code} ({boards.boards[code].name})"))
    if problems:
        raise PlanError(path, problems)
    return plans


def _read_lines(path: Path) -> list[str]:
    """The file's lines, decoded as UTF-8 (a byte-order mark, as spreadsheets write, is dropped)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PlanError(path, [(0, "-", f"cannot read the file: {error.strerror}")]) from None
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - data.rfind(b"\n", 0, error.start)
        raise PlanError(path, [(line, "-", f"not valid UTF-8 (byte 0x{data[error.start]:02x} at character "
                                           f"{column}); save the file as UTF-8 CSV")]) from None


def _number(text: str, column: str) -> tuple[float | None, str | None]:
    """The cell's value, or the reason it is not acceptable for the column."""
    if not text:
        return None, "is empty"
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None, f"{text!r} is not a number"
    allowed = COLUMN_RANGES[column]
    if not math.isfinite(value):
        return None, f"{text} is not a finite number"
    if value < 0 <= allowed.minimum:
        return None, f"{text} is negative"
    if column in _WHOLE and not value.is_integer():
        return None, f"{text} is not a whole number"
    if column.endswith("_pct") and value > 100:
        return None, f"{text} is more than 100%"
    if value < allowed.minimum:
        return None, f"{text} is below the minimum {allowed.minimum:,g} ({allowed.why})"
    if value > allowed.maximum:
        return None, f"{text} is above the plausible maximum {allowed.maximum:,.0f} ({allowed.why})"
    return value, None


def _parse_row(row: dict[str | None, Any], number: int, boards: BoardList,
               problems: list[tuple[int, str, str]]) -> BoardPlan | None:
    before = len(problems)
    values: dict[str, float] = {}
    surplus = row.get(None)  # DictReader puts the cells beyond the header under None
    if surplus:
        problems.append((number, "-", f"{len(surplus)} more cell(s) than the header has columns"))
    code = (row.get("board") or "").strip()
    board = boards.resolve(code)
    if board is None:
        problems.append((number, "board", f"{code!r} is not a health and wellbeing board code"))
    elif board != code:
        problems.append((number, "board", f"{code} plans jointly under {board}; use {board}"))
    status = (row.get("approval_status") or "").strip().lower()
    if status not in APPROVAL_STATUSES:
        problems.append((number, "approval_status", f"{status!r} is not one of: {', '.join(APPROVAL_STATUSES)}"))
    for column in PLAN_COLUMNS[3:]:
        value, reason = _number((row.get(column) or "").strip(), column)
        if reason is not None:
            problems.append((number, column, reason))
        elif value is not None:  # always, without a reason
            values[column] = value
    adults, older = values.get("population_18_plus"), values.get("population_65_plus")
    if adults is not None and older is not None and older > adults:
        problems.append((number, "population_65_plus",
                         f"{older:,.0f} people aged 65+ is more than the {adults:,.0f} aged 18+"))
    if adults is not None and board is not None and adults > boards.boards[board].population:
        problems.append((number, "population_18_plus",
                         f"{adults:,.0f} people aged 18+ is more than the board's total population "
                         f"{boards.boards[board].population:,} (bcfwatch/core/councils.csv)"))
    if len(problems) > before or board is None:  # an unknown board is one of the problems
        return None
    return BoardPlan(
        board=board, name=(row.get("name") or "").strip(), approval_status=status,
        pooled_fund_gbp=values["pooled_fund_gbp"],
        baseline_emergency_by_quarter=tuple(int(values[f"baseline_emergency_q{q}"]) for q in range(1, 5)),
        planned_reduction=values["planned_reduction_pct"] / 100,
        baseline_delayed_days=int(values["baseline_delayed_days"]),
        planned_delayed_days=int(values["planned_delayed_days"]),
        baseline_care_home_admissions_65=int(values["baseline_care_home_admissions_65"]),
        planned_care_home_admissions_65=int(values["planned_care_home_admissions_65"]),
        reablement_target=values["reablement_target_pct"] / 100,
        population_18_plus=int(values["population_18_plus"]),
        population_65_plus=int(values["population_65_plus"]),
    )


@dataclass(frozen=True)
class NationalSummary:
    boards: int
    pooled_fund_gbp: float
    baseline_emergency: int
    avoided_admissions: float
    planned_reduction: float
    unit_cost_gbp: float
    by_status: dict[str, int]
    baseline_delayed_days: int
    planned_delayed_days: int

    @property
    def avoided_admissions_value_gbp(self) -> float:
        return self.avoided_admissions * self.unit_cost_gbp

    @property
    def delayed_days_change(self) -> float:
        """Planned delayed transfer of care days against the baseline, as a fraction (-0.05: 5% fewer)."""
        return self.planned_delayed_days / max(self.baseline_delayed_days, 1) - 1


def national_summary(plans: dict[str, BoardPlan], unit_cost_gbp: float = DEFAULT_UNIT_COST_GBP) -> NationalSummary:
    baseline = sum(p.baseline_emergency for p in plans.values())
    avoided = sum(p.avoided_admissions for p in plans.values())
    return NationalSummary(
        boards=len(plans),
        pooled_fund_gbp=sum(p.pooled_fund_gbp for p in plans.values()),
        baseline_emergency=baseline,
        avoided_admissions=avoided,
        planned_reduction=avoided / baseline if baseline else 0.0,
        unit_cost_gbp=unit_cost_gbp,
        by_status={s: sum(p.approval_status == s for p in plans.values()) for s in APPROVAL_STATUSES},
        baseline_delayed_days=sum(p.baseline_delayed_days for p in plans.values()),
        planned_delayed_days=sum(p.planned_delayed_days for p in plans.values()),
    )
