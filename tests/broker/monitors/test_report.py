"""The report a board lead uses, driven in the real Chromium: what needs attention, a sortable, filterable,
searchable table of every board and metric, board links and fragments, one board per printed page."""

import base64
import io
import json
import re
import unicodedata
from datetime import date

import pytest
from pypdf import PdfReader
from selenium.webdriver.common.by import By
from selenium.webdriver.common.print_page_options import PrintOptions
from selenium.webdriver.support.ui import Select

from bcfwatch.core.boards import load_boards
from bcfwatch.core.plans import load_plan
from monitors.alerting.alerts import AlertState
from monitors.analysis.backtest import backtest, write_outputs
from monitors.analysis.report import write_report
from monitors.analysis.report.metrics import Metric
from producers.generate import Drift, GeneratorSpec, generate_frame, write_log
from producers.sample_plan import write_sample_plan
from tests.support import wait_for
from tests.support.browser import chromium, page_ready

SCALE = 0.003
PLAN_YEAR = date(2015, 4, 1)
DRIFTED = ("E08000025", "E10000016")  # Birmingham and Kent, both well over plan


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    log = folder / "events.jsonl"
    write_log(generate_frame(GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=SCALE, seed=3,
                                           drifts=[Drift.parse(f"{DRIFTED[0]}:+40%"),
                                                   Drift.parse(f"{DRIFTED[1]}:+15%")],
                                           malformed_share=0.002)), log)
    plan_path = folder / "plan.csv"
    write_sample_plan(plan_path, scale=SCALE)
    plans = load_plan(plan_path)
    return folder, plans, backtest(log, plans, PLAN_YEAR)


@pytest.fixture(scope="module")
def national(analysed):
    folder, plans, result = analysed
    return write_report(result, plans, PLAN_YEAR, folder / "report.html")


def open_alerts(alerts_path) -> dict[tuple[str, str], dict]:
    """alerts.jsonl's plan-number alerts (every metric) whose latest event is not a resolution: (board, metric)
    -> that event."""
    latest: dict[tuple[str, str], dict] = {}
    for line in alerts_path.read_text().splitlines():
        alert = json.loads(line)
        if alert["question"] == "plan_number":
            latest[(alert["board"], alert["metric"])] = alert
    return {key: a for key, a in latest.items() if a["state"] != AlertState.RESOLVED.value}


def test_backtest_writes_counts_and_alerts(analysed):
    folder, _, result = analysed
    counts_path, alerts_path = write_outputs(result, folder / "out")
    assert counts_path.read_text().splitlines()[0] == ("board,date,emergency_admissions,other_admissions,"
                                                       "delayed_days_nhs,delayed_days_social_care,delayed_days_both,"
                                                       "care_home_admissions_65,reablement_discharges_65,"
                                                       "at_home_91d,late_events")
    assert len(counts_path.read_text().splitlines()) == len(result.counts) + 1
    assert set(DRIFTED) <= {a.board for a in result.alerts if a.state is AlertState.RAISED}
    assert len(alerts_path.read_text().splitlines()) == len(result.alerts)


def test_national_report_is_one_small_self_contained_file(analysed, national):
    _, plans, _ = analysed
    text = national.read_text()
    assert len(re.findall(r'<section class="board" id="E\d{8}"', text)) == len(plans) == 151
    for metric in Metric:  # every board has every metric's two charts, each with a text alternative
        assert len(re.findall(rf'data-metric="{metric.value}" data-chart="spc"><div class="plot"></div>'
                              r"<figcaption>[^<]{20,}", text)) == 151
    assert "http://" not in text and "https://" not in text and "<img" not in text  # nothing to fetch
    assert national.stat().st_size < 5_000_000


def _visible_rows(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#board-table tbody tr')).filter(r => !r.hidden)"
        ".map(r => [r.dataset.board, r.dataset.metric, r.dataset.status, +r.dataset.money])")


def test_report_in_chromium(analysed, national):
    folder, plans, result = analysed
    _, alerts_path = write_outputs(result, folder / "browser-out")
    alerted = open_alerts(alerts_path)
    assert {(board, "emergency_admissions") for board in DRIFTED} <= set(alerted)
    with chromium() as driver:
        driver.get(national.as_uri())
        wait_for(lambda: page_ready(driver), 30, "the report's script to finish")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
        assert errors == [], errors
        assert driver.find_elements(By.CSS_SELECTOR, "figure.chart svg[role=img][aria-label]"), "charts drawn"
        assert len(driver.find_elements(By.CSS_SELECTOR, "figure.chart svg")) == 151 * len(Metric) * 2 - \
            len(driver.find_elements(By.XPATH, "//div[@class='plot'][text()='Not enough data to chart yet.']"))

        # The page opens on what needs attention: the alerted boards, most urgent first.
        listed = [(li.get_attribute("data-board"), li.get_attribute("data-metric"))
                  for li in driver.find_elements(By.CSS_SELECTOR, "ol.attention li")]
        assert sorted(listed) == sorted(alerted)

        # Sort by money at risk: the money column runs down, and the top alerted row is the alerted board with
        # the most money at risk in alerts.jsonl.
        driver.find_element(By.CSS_SELECTOR, "th[data-sort=money] button").click()
        money = [row[3] for row in _visible_rows(driver)]
        assert money == sorted(money, reverse=True) and money[0] > 0
        top_alerted = max(alerted, key=lambda key: alerted[key]["money_at_risk_gbp"])
        assert _visible_rows(driver)[0][:3] == [*top_alerted, "alerted"]

        # Filter to alerted boards: one row each, as alerts.jsonl has them open.
        Select(driver.find_element(By.ID, "filter-status")).select_by_value("alerted")
        rows = _visible_rows(driver)
        assert sorted((row[0], row[1]) for row in rows) == sorted(alerted)
        assert driver.find_element(By.ID, "row-count").text.startswith(f"{len(alerted)} of {151 * len(Metric)}")
        Select(driver.find_element(By.ID, "filter-status")).select_by_value("")

        # Search a board by name and follow its link to its section.
        name = load_boards().boards["E08000026"].name
        driver.find_element(By.ID, "board-search").send_keys(name)
        rows = _visible_rows(driver)
        assert {row[0] for row in rows} == {"E08000026"} and len(rows) == len(Metric)
        driver.find_element(By.CSS_SELECTOR, "#board-table tbody tr:not([hidden]) th a").click()
        wait_for(lambda: driver.execute_script("return location.hash") == "#E08000026", 10, "the board's fragment")
        top = driver.execute_script("return document.getElementById('E08000026').getBoundingClientRect().top")
        assert abs(top) < 5, top

    # A #board fragment opens that board directly.
    with chromium() as driver:
        driver.get(national.as_uri() + "#E10000016")
        wait_for(lambda: page_ready(driver), 30, "the report's script to finish")
        assert driver.execute_script("return document.querySelector(':target').id") == "E10000016"
        top = driver.execute_script("return document.getElementById('E10000016').getBoundingClientRect().top")
        assert abs(top) < 5, top

        # Printed to PDF: the front matter, then exactly one board per page, every board.
        pdf = PdfReader(io.BytesIO(base64.b64decode(driver.print_page(PrintOptions()))))
        # NFKC: Chromium's fonts set "ff", "fi" and "ffi" as ligatures (Trafford, Wakefield, Sheffield).
        pages = [re.sub(r"\s+", " ", unicodedata.normalize("NFKC", page.extract_text())) for page in pdf.pages]
    names = load_boards().boards
    heading = {code: f"{names[code].name} {code}" for code in plans}
    page_of = {code: [i for i, text in enumerate(pages) if text.lstrip().startswith(heading[code])]
               for code in plans}
    assert all(len(found) == 1 for found in page_of.values()), {c: p for c, p in page_of.items() if len(p) != 1}
    first = min(found[0] for found in page_of.values())
    assert sorted(found[0] for found in page_of.values()) == list(range(first, first + 151))
    assert len(pages) == first + 151  # nothing after the last board: each board fits its page


def test_one_board_page_html_and_png(analysed):
    folder, plans, result = analysed
    page = write_report(result, plans, PLAN_YEAR, folder / "birmingham.html", board="E08000025").read_text()
    assert page.count('<section class="board"') == 1 and 'id="E08000025"' in page
    assert "National roll-up" not in page
    png = write_report(result, plans, PLAN_YEAR, folder / "birmingham.png", board="E08000025").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="--board"):
        write_report(result, plans, PLAN_YEAR, folder / "none.png")
