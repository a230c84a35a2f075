"""Plan files: the sample plan, the national roll-up and every kind of error with its row and column."""

import subprocess
import sys
from pathlib import Path

import pytest

from bcfwatch.core.plans import PlanError, load_plan, national_summary
from producers.sample_plan import sample_plan_path
from tests.support import REPO

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
        ("E09000012", "planned_reduction_pct", "-51", "below the minimum -50"),
        ("E09000012", "planned_reduction_pct", "130", "more than 100%"),
        ("E09000012", "baseline_emergency_q2", "12.5", "not a whole number"),
        ("E09000012", "population_65_plus", "", "is empty"),
        ("E09000012", "board", "E99999999", "is not a health and wellbeing board code"),
        ("E09000012", "board", "E06000053", "plans jointly under E06000052"),
        # Seen in issue 11: plans that loaded but could never alert.
        ("E09000012", "planned_reduction_pct", "nan", "is not a finite number"),
        ("E09000012", "planned_reduction_pct", "100", "above the plausible maximum 50"),
        ("E09000012", "planned_reduction_pct", "50.01", "above the plausible maximum 50"),
        ("E09000012", "baseline_emergency_q1", "0", "below the minimum 1"),
        ("E09000012", "baseline_emergency_q3", "1e300", "above the plausible maximum 200,000"),
        ("E09000012", "baseline_emergency_q4", "-5", "is negative"),
        ("E09000012", "pooled_fund_gbp", "inf", "is not a finite number"),
        ("E09000012", "pooled_fund_gbp", "-inf", "is not a finite number"),
        ("E09000012", "pooled_fund_gbp", "-1000", "is negative"),
        ("E09000012", "pooled_fund_gbp", "2000000000", "above the plausible maximum 1,000,000,000"),
        ("E09000012", "baseline_delayed_days", "0", "below the minimum 1"),
        ("E09000012", "planned_delayed_days", "1000001", "above the plausible maximum 1,000,000"),
        ("E09000012", "baseline_care_home_admissions_65", "60000", "above the plausible maximum 50,000"),
        ("E09000012", "reablement_target_pct", "0", "below the minimum 1"),
        ("E09000012", "reablement_target_pct", "NaN", "is not a finite number"),
        ("E09000012", "population_18_plus", "0", "below the minimum 1"),
        ("E09000012", "population_65_plus", "99999999", "above the plausible maximum 10,000,000"),
        ("E09000012", "population_65_plus", "204101", "aged 65+ is more than the 204,100 aged 18+"),
        ("E09000012", "population_18_plus", "263201", "more than the board's total population 263,200"),
        ("E09000012", "approval_status", "approved-ish", "is not one of: approved"),
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


@pytest.mark.parametrize(
    ("column", "value"),
    [("planned_reduction_pct", "-50"), ("planned_reduction_pct", "-2.5"), ("planned_reduction_pct", "50"),
     ("planned_reduction_pct", "0"), ("pooled_fund_gbp", "0"), ("baseline_care_home_admissions_65", "0"),
     ("planned_delayed_days", "0"), ("approval_status", " Approved With Conditions "),
     ("pooled_fund_gbp", '"1,234,000"')],
)
def test_values_at_the_edges_of_the_ranges_load(tmp_path, column, value):
    load = load_plan(write_plan(tmp_path, lambda lines: set_cell(lines, "E09000012", column, value)))
    assert "E09000012" in load


def test_a_planned_rise_loads_as_a_negative_reduction(tmp_path):
    plans = load_plan(write_plan(tmp_path, lambda lines: set_cell(lines, "E09000012", "planned_reduction_pct",
                                                                   "-2.5")))
    assert plans["E09000012"].planned_reduction == pytest.approx(-0.025)
    assert plans["E09000012"].planned_emergency > plans["E09000012"].baseline_emergency


def test_every_problem_on_every_row_is_reported(tmp_path):
    rows = {}

    def edit(lines):
        rows["a"] = set_cell(lines, "E09000012", "planned_reduction_pct", "nan")
        set_cell(lines, "E09000012", "pooled_fund_gbp", "inf")
        rows["b"] = set_cell(lines, "E08000025", "baseline_emergency_q1", "0")

    with pytest.raises(PlanError) as error:
        load_plan(write_plan(tmp_path, edit))
    found = {(row, column) for row, column, _ in error.value.problems}
    assert found == {(rows["a"], "planned_reduction_pct"), (rows["a"], "pooled_fund_gbp"),
                     (rows["b"], "baseline_emergency_q1")}
    assert "3 problems" in str(error.value)


def test_line_numbers_count_blank_lines(tmp_path):
    def edit(lines):
        lines.insert(HEADER + 1, "")
        lines.insert(HEADER + 1, "")

    path = write_plan(tmp_path, edit)
    lines = path.read_text().splitlines()
    hackney = next(i for i, line in enumerate(lines) if line.startswith("E09000012,")) + 1
    lines[hackney - 1] = lines[hackney - 1].replace(",approved", ",pending", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PlanError) as error:
        load_plan(path)
    assert [(row, column) for row, column, _ in error.value.problems] == [(hackney, "approval_status")]


def test_surplus_cells_are_reported(tmp_path):
    row = None

    def edit(lines):
        nonlocal row
        row = set_cell(lines, "E09000012", "name", "Hackney,extra")

    with pytest.raises(PlanError) as error:
        load_plan(write_plan(tmp_path, edit))
    assert (row, "-", "1 more cell(s) than the header has columns") in error.value.problems


def test_a_file_that_is_not_utf8_names_the_line(tmp_path):
    path = write_plan(tmp_path, lambda lines: None)
    data = path.read_bytes().replace(b"Hackney", b"Hackn\xe9y")
    path.write_bytes(data)
    line = data[:data.index(b"Hackn\xe9y")].count(b"\n") + 1
    with pytest.raises(PlanError) as error:
        load_plan(path)
    assert error.value.problems == [(line, "-", error.value.problems[0][2])]
    assert "not valid UTF-8 (byte 0xe9" in str(error.value) and f"line {line}," in str(error.value)


def test_a_byte_order_mark_is_ignored(tmp_path):
    path = write_plan(tmp_path, lambda lines: None)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(load_plan(path)) == 151


def test_documented_ranges_are_the_ranges_checked():
    from bcfwatch.core.plans import COLUMN_RANGES, PLAN_COLUMNS

    assert set(COLUMN_RANGES) == set(PLAN_COLUMNS[3:])
    docs = (REPO / "docs" / "plan-format.md").read_text()
    table = {cells[1].strip(" `"): (cells[2].strip(), cells[3].strip()) for line in docs.splitlines()
             if line.startswith("| `") and len(cells := line.split("|")) == 6}
    quarters = table.pop("baseline_emergency_q1`..`q4")
    table.update({f"baseline_emergency_q{q}": quarters for q in range(1, 5)})
    for column, allowed in COLUMN_RANGES.items():
        assert table[column] == (f"{allowed.minimum:,}", f"{allowed.maximum:,}"), column


def test_cli_check_reports_seen_cases_without_traceback(tmp_path):
    def edit(lines):
        set_cell(lines, "E09000012", "planned_reduction_pct", "nan")
        set_cell(lines, "E08000025", "pooled_fund_gbp", "inf")

    path = write_plan(tmp_path, edit)
    result = subprocess.run([sys.executable, "-m", "bcfwatch.cli", "plan", "check", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "column planned_reduction_pct: nan is not a finite number" in result.stderr
    assert "column pooled_fund_gbp: inf is not a finite number" in result.stderr
    path.write_bytes(b"board,name\n\xff\xfe\n")
    result = subprocess.run([sys.executable, "-m", "bcfwatch.cli", "plan", "check", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "not valid UTF-8" in result.stderr
