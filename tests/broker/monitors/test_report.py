"""The analyst report: renders for a generated log, one SPC chart per board, and a real browser shows it."""

import re
import shutil
import subprocess
from datetime import date

import pytest

from bcfwatch.core.plans import load_plan
from monitors.alerting.alerts import AlertState
from monitors.analysis.backtest import backtest, write_outputs
from monitors.analysis.report import write_report
from producers.generate import Drift, GeneratorSpec, generate_frame, write_log
from producers.sample_plan import write_sample_plan

SCALE = 0.003
PLAN_YEAR = date(2015, 4, 1)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    log = folder / "events.jsonl"
    write_log(generate_frame(GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=SCALE, seed=3,
                                           drifts=[Drift.parse("E08000025:+40%")], malformed_share=0.002)), log)
    plan_path = folder / "plan.csv"
    write_sample_plan(plan_path, scale=SCALE)
    plans = load_plan(plan_path)
    return folder, plans, backtest(log, plans, PLAN_YEAR)


def test_backtest_writes_counts_and_alerts(analysed):
    folder, _, result = analysed
    counts_path, alerts_path = write_outputs(result, folder / "out")
    assert counts_path.read_text().splitlines()[0] == ("board,date,emergency_admissions,other_admissions,"
                                                       "delayed_days_nhs,delayed_days_social_care,delayed_days_both,"
                                                       "care_home_admissions_65,reablement_discharges_65,"
                                                       "at_home_91d,late_events")
    assert len(counts_path.read_text().splitlines()) == len(result.counts) + 1
    assert "E08000025" in {a.board for a in result.alerts if a.state is AlertState.RAISED}
    assert len(alerts_path.read_text().splitlines()) == len(result.alerts)


def test_report_has_a_chart_per_board_and_renders_in_chromium(analysed):
    folder, plans, result = analysed
    report = write_report(result, plans, PLAN_YEAR, folder / "report.html")
    text = report.read_text()
    assert len(re.findall(r'<img alt="SPC E\d{8}" src="data:image/png;base64,', text)) == len(plans) == 151
    assert "funnel plot" in text and "National roll-up" in text and "Boards not approved" in text
    assert "http://" not in text and "https://" not in text  # self-contained: nothing to fetch

    chromium = shutil.which("chromium")
    assert chromium, "scripts/setup.sh installs Debian's chromium"
    screenshot = folder / "report.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={folder / 'profile'}",
         "--window-size=1200,1600", f"--screenshot={screenshot}", report.as_uri()],
        capture_output=True, timeout=120, check=True)
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000  # a page with text and charts, not a blank one


def test_single_board_png(analysed):
    folder, plans, result = analysed
    png = write_report(result, plans, PLAN_YEAR, folder / "birmingham.png", board="E08000025").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="--board"):
        write_report(result, plans, PLAN_YEAR, folder / "none.png")
