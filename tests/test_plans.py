"""Plan files: the sample plan, the national roll-up and every kind of error with its row and column."""

import subprocess
import sys
from pathlib import Path

import pytest

from monitors.plans import PlanError, load_plan, national_summary, sample_plan_path

SAMPLE = sample_plan_path().read_text().splitlines()
HEADER = next(i for i, line in enumerate(SAMPLE) if line.startswith("board,"))


def write_plan(tmp_path: Path, edit) -> Path:
    lines = list(SAMPLE)
    edit(lines)
    path = tmp_path / "plan.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def set_cell(lines, board, column, value):
    columns = lines[HEADER].split(",")
    for i, line in enumerate(lines):
        if line.startswith(board + ","):
            cells = line.split(",")
            cells[columns.index(column)] = value
            lines[i] = ",".join(cells)
            return i + 1  # the line number in the file
    raise AssertionError(board)


def test_sample_plan_rolls_up_to_the_national_figures():
    summary = national_summary(load_plan(sample_plan_path()))
    assert summary.boards == 151
    assert summary.planned_reduction == pytest.approx(0.0307, abs=0.0002)
    assert summary.by_status["not approved"] == 5 and sum(summary.by_status.values()) == 151
    assert 5.2e9 < summary.pooled_fund_gbp < 5.4e9
    assert 150_000 < summary.avoided_admissions < 180_000
    assert summary.avoided_admissions_value_gbp == pytest.approx(summary.avoided_admissions * 1550)


@pytest.mark.parametrize(
    ("board", "column", "value", "reason"),
    [
        ("E09000012", "approval_status", "maybe", "is not one of: approved"),
        ("E09000012", "pooled_fund_gbp", "lots", "'lots' is not a number"),
        ("E09000012", "planned_reduction_pct", "-1", "is negative"),
        ("E09000012", "planned_reduction_pct", "130", "more than 100%"),
        ("E09000012", "baseline_emergency_q2", "12.5", "not a whole number"),
        ("E09000012", "population_65_plus", "", "is empty"),
        ("E09000012", "board", "E99999999", "is not a health and wellbeing board code"),
    ],
)
def test_each_error_names_row_column_and_reason(tmp_path, board, column, value, reason):
    row = None

    def edit(lines):
        nonlocal row
        row = set_cell(lines, board, column, value)

    path = write_plan(tmp_path, edit)
    with pytest.raises(PlanError) as error:
        load_plan(path)
    assert any(r == row and c == column and reason in why for r, c, why in error.value.problems), error.value


def test_duplicate_and_missing_boards(tmp_path):
    def edit(lines):
        hackney = next(line for line in lines if line.startswith("E09000012,"))
        lines.remove(next(line for line in lines if line.startswith("E09000013,")))
        lines.append(hackney)

    with pytest.raises(PlanError) as error:
        load_plan(write_plan(tmp_path, edit))
    text = str(error.value)
    assert "E09000012 already has a plan" in text and "no plan for board E09000013" in text


def test_missing_column(tmp_path):
    def edit(lines):
        lines[HEADER] = lines[HEADER].replace("reablement_target_pct", "reablement")

    with pytest.raises(PlanError, match=f"line {HEADER + 1}, column reablement_target_pct: column is missing"):
        load_plan(write_plan(tmp_path, edit))


def test_cli_check_reports_errors_without_traceback(tmp_path):
    path = write_plan(tmp_path, lambda lines: set_cell(lines, "E08000025", "approval_status", "pending"))
    result = subprocess.run([sys.executable, "-m", "bcfwatch.cli", "plan", "check", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "column approval_status" in result.stderr and "Traceback" not in result.stderr
    ok = subprocess.run([sys.executable, "-m", "bcfwatch.cli", "plan", "summary", str(sample_plan_path())],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "3.07%" in ok.stdout
    missing = subprocess.run([sys.executable, "-m", "bcfwatch.cli", "plan", "check", str(tmp_path / "none.csv")],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "cannot read the file" in missing.stderr
