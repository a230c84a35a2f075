"""The national report's size and how long it takes to open in Chromium (issue 27): a generated two-year log at
``--scale`` (1.0: England; the first year is the baseline), `bcfwatch report` on it, then Debian's headless
Chromium opens the file and prints it to PDF. Writes the "The report" section of bench/RESULTS.md (the rest
of the file is left alone) and prints the table.

    python -m bench.report_bench --scale 1.0 --work /tmp/report-bench
"""

from __future__ import annotations

import argparse
import base64
import io
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pypdf import PdfReader
from selenium.webdriver.common.by import By
from selenium.webdriver.common.print_page_options import PrintOptions

from tests.support import wait_for
from tests.support.browser import chromium, page_ready

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- report bench: begin -->", "<!-- report bench: end -->"
BCFWATCH = str(Path(sys.executable).with_name("bcfwatch"))


def _run(*args: str) -> float:
    started = time.monotonic()
    subprocess.run([BCFWATCH, *args], check=True)
    return time.monotonic() - started


def open_in_chromium(report: Path, runs: int = 3) -> tuple[list[float], list[int], int, float]:
    """Seconds from navigation to every chart drawn and the table wired (each run a fresh browser), the page's
    own drawing time, the printed PDF's page count and how long printing took."""
    opened, drawn = [], []
    for _ in range(runs):
        with chromium() as driver:
            started = time.monotonic()
            driver.get(report.as_uri())
            wait_for(lambda: page_ready(driver), 120, "the report to finish drawing", interval=0.02)
            opened.append(time.monotonic() - started)
            drawn.append(int(driver.execute_script("return +document.documentElement.dataset.renderMs")))
    with chromium() as driver:
        driver.get(report.as_uri())
        wait_for(lambda: page_ready(driver), 120, "the report to finish drawing", interval=0.05)
        started = time.monotonic()
        pdf = PdfReader(io.BytesIO(base64.b64decode(driver.print_page(PrintOptions()))))
        printing = time.monotonic() - started
    return opened, drawn, len(pdf.pages), printing


def screenshots(report: Path, folder: Path, board: str) -> list[Path]:
    """The overview (the page's first screen) and one board's section, as PNGs for the docs."""
    overview, section = folder / "report-overview.png", folder / "report-board.png"
    for path, height in ((overview, 1500), (section, 2600)):  # the section whole: taller than it
        with chromium(1300, height) as driver:
            driver.get(report.as_uri())
            wait_for(lambda: page_ready(driver), 120, "the report to finish drawing", interval=0.05)
            if path is overview:
                driver.save_screenshot(str(path))
            else:
                driver.find_element(By.ID, board).screenshot(str(path))
    return [overview, section]


def write_section(lines: list[str]) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# bcfwatch benchmark results\n"
    section = "\n".join([BEGIN, *lines, END])
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bcfwatch-report-bench"))
    parser.add_argument("--runs", type=int, default=3, help="Fresh browsers opening the report.")
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="Also save report-overview.png and report-board.png (Birmingham) here (docs/).")
    parser.add_argument("--reuse", action="store_true", help="Only take the screenshots of the report in --work.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    log, plan, report = args.work / "two-years.jsonl", args.work / "plan.csv", args.work / "report.html"
    if args.reuse and report.exists():
        print("screenshots:", *screenshots(report, args.screenshots or args.work, "E08000025"))
        return
    if not log.exists():
        _run("generate", "--out", str(log), "--from", "2014-04-01", "--to", "2016-03-31", "--scale",
             str(args.scale), "--seed", "27", "--drift", "E08000025:+6%", "--drift", "E10000016:creep+8%")
    _run("plan", "sample", "--out", str(plan), "--scale", str(args.scale))
    report_seconds = _run("report", str(log), "--plan", str(plan), "--out", str(report))
    opened, drawn, pages, printing = open_in_chromium(report, args.runs)
    size = report.stat().st_size
    lines = [
        "## The report (issue 27; `python -m bench.report_bench`)", "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: a generated two-year log at scale {args.scale} "
        f"({sum(1 for _ in log.open('rb')):,} lines), `bcfwatch report` (backtest included), then Debian's headless "
        f"Chromium, a fresh browser per run.", "",
        "| what | figure | target |", "|---|---:|---|",
        f"| national report size | {size / 1e6:.2f} MB | <= 5 MB |",
        f"| `bcfwatch report` (backtest + page) | {report_seconds:.0f} s | |",
        f"| open in Chromium: navigation to every chart drawn, median of {len(opened)} | "
        f"{sorted(opened)[len(opened) // 2]:.2f} s (runs: {', '.join(f'{s:.2f}' for s in opened)}) | < 3 s |",
        f"| of which the page's script drawing every chart | {sorted(drawn)[len(drawn) // 2]} ms | |",
        f"| print to PDF | {pages} pages in {printing:.1f} s | one board per page |",
    ]
    write_section(lines)
    print("\n".join(lines))
    if args.screenshots is not None:
        print("screenshots:", *screenshots(report, args.screenshots, "E08000025"))


if __name__ == "__main__":
    main()
