"""Issue 11: every command in `bcfwatch --help` has an end-to-end test on a real input, and no input tried
here produces a traceback.

``E2E_TESTS`` maps every command path of the click tree (sub-commands of groups included) to the test that
runs it; ``test_every_command_has_an_e2e_test`` fails when a command is added without one (or when the named
test does not run that command). Short-lived commands run in-process through click's CliRunner; the
long-running ones (kafka start, worker, monitor, notify, demo) run as subprocesses of the installed
``bcfwatch`` script and are stopped by the test.

One small generated log (two financial years at scale 0.003, Birmingham drifting +40%, 0.2% malformed
lines) feeds the offline tools and the live path; the live counts, the alerts on the topic and the
backtest's files must agree exactly.
"""

from __future__ import annotations

import base64
import csv
import inspect
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import traceback
import urllib.request
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner, Result

from bcfwatch.cli import main
from bcfwatch.core.settings import cache_dir
from bcfwatch.core.topics import EVENT_TYPES
from bcfwatch.demo.webhook_receiver import WebhookReceiver
from bcfwatch.infra.broker import Broker
from tests.support import free_port, read_topic, wait_for
from tests.support.receivers import smtp_server

SCALE = "0.003"
BIRMINGHAM = "E08000025"
COUNTS_HEADER = ("board,date,emergency_admissions,other_admissions,delayed_days_nhs,delayed_days_social_care,"
                 "delayed_days_both,care_home_admissions_65,reablement_discharges_65,at_home_91d,late_events")
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"e" * 32).decode()
# Fixed ports `bcfwatch demo` binds (bcfwatch/demo.py: worker web view and metrics, monitor metrics, webhook).

# Every command path of `bcfwatch --help` -> the test below that runs it end to end.
E2E_TESTS = {
    "kafka fetch": "test_kafka_fetch_start_status_stop",
    "kafka start": "test_kafka_fetch_start_status_stop",
    "kafka status": "test_kafka_fetch_start_status_stop",
    "kafka stop": "test_kafka_fetch_start_status_stop",
    "kafka env": "test_kafka_env",
    "boards": "test_boards",
    "generate": "test_generate",
    "plan check": "test_plan_sample_check_summary",
    "plan summary": "test_plan_sample_check_summary",
    "plan sample": "test_plan_sample_check_summary",
    "backtest": "test_backtest",
    "evaluate": "test_evaluate",
    "report": "test_report_html_and_board_png",
    "replay": "test_replay_worker_counts_export_monitor_notify",
    "worker": "test_replay_worker_counts_export_monitor_notify",
    "counts export": "test_replay_worker_counts_export_monitor_notify",
    "monitor": "test_replay_worker_counts_export_monitor_notify",
    "notify": "test_replay_worker_counts_export_monitor_notify",
    "demo": "test_demo",
}


# -- running commands -------------------------------------------------------------------------------
def _script() -> list[str]:
    """The installed console script next to this interpreter (``.venv/bin/bcfwatch``), else ``-m``."""
    script = Path(sys.executable).with_name("bcfwatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bcfwatch.cli"]


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text[-4000:]


def cli(*args: str, exit_code: int | None = 0, env: dict | None = None) -> Result:
    """Run a short-lived command in-process; fail on an unexpected exception (what would be a traceback)."""
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail(f"`bcfwatch {' '.join(args)}` raised:\n"
                    + "".join(traceback.format_exception(*result.exc_info))[-4000:])
    no_traceback(result.output)
    if exit_code is not None:
        assert result.exit_code == exit_code, f"`bcfwatch {' '.join(args)}` exited {result.exit_code}:\n" \
                                              f"{result.output[-4000:]}"
    return result


def run(*args: str, exit_code: int | None = 0, timeout: float = 120, env: dict | None = None):
    """Run a command as a subprocess of the installed script, to completion."""
    done = subprocess.run([*_script(), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    no_traceback(done.stdout + done.stderr)
    if exit_code is not None:
        assert done.returncode == exit_code, f"`bcfwatch {' '.join(args)}` exited {done.returncode}:\n" \
                                             f"{(done.stdout + done.stderr)[-4000:]}"
    return done


def start(*args: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start a long-running command as a subprocess; its stdout and stderr go to ``log``."""
    with open(log, "wb") as handle:
        return subprocess.Popen([*_script(), *args], stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    """Stop a subprocess started by ``start`` with ``sig`` and return its exit code (SIGKILL as a last resort)."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
            raise AssertionError(f"{process.args[1:]} did not stop within {timeout} s of signal {sig}") from None
    return process.returncode


def command_paths(group: click.Group = main, prefix: tuple[str, ...] = ()) -> set[str]:
    """Every runnable command of the click tree, as it is typed after `bcfwatch`."""
    paths = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths |= command_paths(command, (*prefix, name))
        else:
            paths.add(" ".join((*prefix, name)))
    return paths


def test_every_command_has_an_e2e_test():
    commands = command_paths()
    assert {"kafka start", "counts export", "plan check", "boards", "demo"} <= commands  # the walk sees groups
    missing = sorted(commands - set(E2E_TESTS))
    assert not missing, f"commands without an end-to-end test (add one and list it in E2E_TESTS): {missing}"
    stale = sorted(set(E2E_TESTS) - commands)
    assert not stale, f"E2E_TESTS names commands the CLI no longer has: {stale}"
    for path, test_name in E2E_TESTS.items():
        test = globals().get(test_name)
        assert callable(test), f"{path}: {test_name} is not a test in this file"
        # The named test really runs that command: its words appear as consecutive string arguments.
        invocation = ", ".join(f'"{word}"' for word in path.split())
        assert invocation in inspect.getsource(test), f"{test_name} never runs `bcfwatch {path}`"


# -- shared inputs ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A plan and a two-year log at the same small scale; Birmingham drifts far enough to alert."""
    folder = tmp_path_factory.mktemp("e2e")
    plan, log = folder / "plan.csv", folder / "events.jsonl"
    cli("plan", "sample", "--out", str(plan), "--scale", SCALE)
    cli("generate", "--out", str(log), "--from", "2014-04-01", "--to", "2016-03-31", "--scale", SCALE,
        "--seed", "3", "--drift", f"{BIRMINGHAM}:+40%", "--malformed-share", "0.002")
    return {"folder": folder, "plan": plan, "log": log}


@pytest.fixture(scope="module")
def backtested(inputs) -> Path:
    """`bcfwatch backtest` of the shared log (the test of backtest checks it; the live test compares with it)."""
    out = inputs["folder"] / "backtest"
    result = cli("backtest", str(inputs["log"]), "--plan", str(inputs["plan"]), "--out", str(out))
    assert "E08000025" in result.output and "valid events" in result.output
    return out


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def counts_differences(live: Path, offline: Path, first: int = 12) -> list[str]:
    """The first cells where two counts.csv files differ, as `board date column: live != offline`."""
    with live.open() as a, offline.open() as b:
        left, right = list(csv.DictReader(a)), list(csv.DictReader(b))
    if len(left) != len(right):
        return [f"{len(left)} rows live, {len(right)} offline"]
    found = []
    for one, two in zip(left, right, strict=True):
        found += [f"{one['board']} {one['date']} {column}: live {one[column]} != offline {two.get(column)}"
                  for column in one if one[column] != two.get(column)]
    return found[:first] + ([f"... {len(found) - first} more"] if len(found) > first else [])


# -- reference data, generator, plans -------------------------------------------------------------------
def test_kafka_env(tmp_path):
    """Plaintext settings by default; with --secure, a service's settings, or a clear error without a broker."""
    port = str(free_port())
    plain = cli("kafka", "env", "--port", port).output
    assert f"export BCFWATCH_BOOTSTRAP=127.0.0.1:{port}" in plain
    assert "BCFWATCH_KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in plain
    missing = cli("kafka", "env", "--secure", "--service", "replay", "--port", port, exit_code=1,
                  env={"XDG_CACHE_HOME": str(tmp_path)}).output
    assert "bcfwatch kafka start --secure" in missing


def test_boards():
    output = cli("boards").output
    codes = set(re.findall(r"\bE0[6-9]\d{6}\b|\bE10\d{6}\b", output))
    assert len(codes) == 151
    assert "E06000053" not in codes  # the Isles of Scilly plan with Cornwall
    assert "Birmingham" in output and "E08000025" in output


def test_generate(tmp_path):
    args = ["--from", "2014-04-01", "--to", "2014-04-20", "--scale", "0.002", "--seed", "11",
            "--drift", "E08000025:+10%", "--malformed-share", "0.01"]
    first, again, other = tmp_path / "first.jsonl", tmp_path / "again.jsonl", tmp_path / "other.jsonl"
    output = cli("generate", "--out", str(first), *args).output
    lines = _lines(first)
    assert f"wrote {len(lines):,} lines" in output and len(lines) > 1000
    cli("generate", "--out", str(again), *args)
    assert again.read_bytes() == first.read_bytes()  # same seed, same file
    cli("generate", "--out", str(other), *args[:-4], "--seed", "12")
    assert other.read_bytes() != first.read_bytes()

    parsed, malformed = [], 0
    for line in lines:
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            malformed += 1
    assert malformed > 0  # --malformed-share mixes in bad lines (some of them still JSON)
    events = [e for e in parsed if isinstance(e, dict) and e.get("type") in EVENT_TYPES]
    assert {e["type"] for e in events} == set(EVENT_TYPES)
    assert min(e["occurred_at"] for e in events if isinstance(e.get("occurred_at"), str)) >= "2014-04-01"
    assert len({e["board"] for e in events}) > 100

    as_csv = tmp_path / "first.csv"
    cli("generate", "--out", str(as_csv), *args)
    header = _lines(as_csv)[0].split(",")
    assert {"type", "event_id", "board", "occurred_at", "nhs_number", "age"} <= set(header)
    assert len(_lines(as_csv)) > 1000

    # Bad input: a clear error, no traceback, no file.
    bad = tmp_path / "bad.jsonl"
    result = cli("generate", "--out", str(bad), "--from", "2016-01-01", "--to", "2015-01-01", exit_code=1)
    assert "--to" in result.output and not bad.exists()


def test_plan_sample_at_small_scale_passes_plan_check(tmp_path):
    plan = tmp_path / "plan.csv"
    cli("plan", "sample", "--out", str(plan), "--scale", "0.002")
    cli("plan", "check", str(plan))


def test_plan_sample_check_summary(tmp_path):
    plan = tmp_path / "plan.csv"
    assert str(plan) in cli("plan", "sample", "--out", str(plan), "--scale", "0.5", "--seed", "7").output
    rows = list(csv.DictReader(line for line in plan.open() if not line.startswith("#")))
    assert len({r["board"] for r in rows}) == len(rows) == 151

    checked = cli("plan", "check", str(plan)).output
    assert "OK" in checked and "151" in checked
    summary = cli("plan", "summary", str(plan)).output
    assert "151" in summary and "3.07%" in summary and "pooled funds" in summary

    # Bad plans: exit 1 with the problem named, never a traceback.
    broken = tmp_path / "broken.csv"
    broken.write_text("".join(plan.read_text().splitlines(keepends=True)[:-5]))  # five boards missing
    for command in ("check", "summary"):
        result = cli("plan", command, str(broken), exit_code=1)
        assert "broken.csv" in result.output
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    assert "junk.csv" in cli("plan", "check", str(junk), exit_code=1).output
    cli("plan", "check", str(tmp_path / "missing.csv"), exit_code=1)


# -- offline analyst tools ------------------------------------------------------------------------------------
def test_backtest(inputs, backtested, tmp_path):
    counts = _lines(backtested / "counts.csv")
    assert counts[0] == COUNTS_HEADER
    days = 366 + 365  # 2014-04-01 .. 2016-03-31, every board every day
    assert len(counts) == 1 + 151 * days
    alerts = [orjson.loads(line) for line in _lines(backtested / "alerts.jsonl")]
    assert BIRMINGHAM in {a["board"] for a in alerts if a["state"] == "raised"}
    assert all(a["metric"] == "emergency_admissions" and a["money_at_risk_gbp"] >= 0 for a in alerts)
    rejected = backtested / "rejected.jsonl"
    if rejected.exists():  # rejected-line reporting: the malformed lines, each with a reason
        assert [orjson.loads(line) for line in _lines(rejected)]

    # Odd logs: an empty one, one of pure junk and a CSV with the wrong header are refused (exit 1) with a
    # message naming the log, never a traceback.
    empty, junk, wrong = tmp_path / "empty.jsonl", tmp_path / "junk.jsonl", tmp_path / "wrong.csv"
    empty.write_text("")
    junk.write_text("garbage\n{\"type\": \"admission\"\n\n")
    wrong.write_text("a,b\n1,2\n")
    for log in (empty, junk):
        result = cli("backtest", str(log), "--plan", str(inputs["plan"]), "--out", str(tmp_path / log.stem),
                     exit_code=1)
        assert log.name in result.output
    result = cli("backtest", str(wrong), "--plan", str(inputs["plan"]), "--out", str(tmp_path / "w"), exit_code=1)
    assert "header" in result.output


def test_report_html_and_board_png(inputs, tmp_path):
    html = tmp_path / "report.html"
    # This used to crash on every run (TypeError: settings.lateness_days passed uncalled).
    output = cli("report", str(inputs["log"]), "--plan", str(inputs["plan"]), "--out", str(html)).output
    assert str(html.resolve()) in output.replace("\n", "")
    text = html.read_text()
    assert len(re.findall(r'<section class="board" id="E\d{8}"', text)) == 151
    assert "Needs attention" in text and "National roll-up" in text and 'id="board-table"' in text
    assert f'<li data-board="{BIRMINGHAM}" data-metric="emergency_admissions">' in text  # heads the page

    png = tmp_path / "birmingham.png"
    cli("report", str(inputs["log"]), "--plan", str(inputs["plan"]), "--board", BIRMINGHAM, "--out", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = tmp_path / "birmingham.html"
    cli("report", str(inputs["log"]), "--plan", str(inputs["plan"]), "--board", BIRMINGHAM, "--out", str(page))
    assert page.read_text().count('<section class="board"') == 1

    # Logs with nothing to chart (empty, or ending before the plan year) used to crash the report's
    # arithmetic (ValueError, ZeroDivisionError, KeyError); now a clear error (exit 1).
    empty, early = tmp_path / "empty.jsonl", tmp_path / "early.jsonl"
    empty.write_text("")
    cli("generate", "--out", str(early), "--from", "2014-04-01", "--to", "2014-05-31", "--scale", "0.002")
    nothing, nothing_png = str(tmp_path / "nothing.html"), str(tmp_path / "e.png")
    for log, args in ((empty, ["--out", nothing]), (early, ["--out", nothing]),
                      (empty, ["--board", BIRMINGHAM, "--out", nothing_png]),
                      (inputs["log"], ["--plan-year", "2030-04-01", "--out", nothing])):
        result = cli("report", str(log), "--plan", str(inputs["plan"]), *args, exit_code=1)
        assert "plan year" in result.output or "was accepted" in result.output, result.output
    assert not (tmp_path / "nothing.html").exists() and not (tmp_path / "e.png").exists()


def test_evaluate(tmp_path):
    markdown = tmp_path / "evaluation.md"
    output = cli("evaluate", "--years", "1", "--setting", "mild", "--setting", "slow", "--seed", "3",
                 "--markdown", str(markdown)).output
    assert "mild" in output and "false" in output.lower()
    table = markdown.read_text()
    assert table.count("|") > 20 and "mild" in table and "| slow |" in table  # a held-out shape by name
    assert "share of the ideal" in table and "underlying_ideal_pct" in table  # both questions, beside their ideal
    assert "+8% sustained" in table
    assert "choose from" in cli("evaluate", "--years", "1", "--setting", "nonsense", exit_code=2).output


def test_evaluate_another_plan_metric(tmp_path):
    markdown = tmp_path / "metrics.md"
    output = cli("evaluate", "--metric", "care_home_admissions_65", "--metric", "reablement_91d", "--years", "1",
                 "--setting", "typical", "--markdown", str(markdown)).output
    assert "Against the targets" in output
    table = markdown.read_text()
    assert "| care_home_admissions_65 | typical | on plan |" in table and "| reablement_91d | typical |" in table
    assert "delayed_days" not in table and "heavy" not in table  # only what was asked
    assert "false_alerts_per_100" in table and "+15% over plan" in table
    assert "choose from" in cli("evaluate", "--metric", "bed_days", exit_code=2).output
    assert "with --metric" in cli("evaluate", "--metric", "all", "--setting", "mild", exit_code=2).output


# -- the live path on the real broker ---------------------------------------------------------------------
@pytest.mark.kafka
def test_replay_worker_counts_export_monitor_notify(broker, topic_prefix, inputs, backtested, tmp_path):
    bootstrap = ["--bootstrap", broker.bootstrap, "--topic-prefix", topic_prefix]
    web_port, metrics_port = free_port(), free_port()
    worker = start("worker", *bootstrap, "--partitions", "8", "--web-port", str(web_port),
                   "--metrics-port", str(metrics_port), "--datadir", str(tmp_path / "worker"),
                   "--snapshot-seconds", "0.5", log=tmp_path / "worker.log")
    notifier = receiver = smtp = None
    try:
        # replay (the pseudonym key comes from BCFWATCH_PSEUDONYM_KEY, set by conftest)
        replayed = cli("replay", str(inputs["log"]), *bootstrap, "--partitions", "8").output
        for event_type in EVENT_TYPES:
            assert re.search(rf"produced to {topic_prefix}\.{event_type}\s*│\s*[1-9][\d,]*", replayed), replayed
        dead = re.search(rf"dead-lettered to {topic_prefix}\.dead_letter\s*│\s*([\d,]+)", replayed)
        assert dead and int(dead.group(1).replace(",", "")) > 0  # the 0.2% malformed lines
        assert "Rejected lines" in replayed

        # worker + counts export: the live counts equal the offline backtest's byte for byte
        counts = tmp_path / "counts.csv"
        exported = cli("counts", "export", "--out", str(counts), *bootstrap, "--timeout", "300").output
        assert "for 151 boards" in exported
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-4000:]
        assert counts_differences(counts, backtested / "counts.csv") == []
        assert counts.read_text() == (backtested / "counts.csv").read_text()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert re.search(r'bcf_events_processed_total\{outcome="counted",type="admission"\} [1-9]', metrics)
        board = orjson.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{web_port}/boards/{BIRMINGHAM}/metrics", timeout=10).read())
        assert board["windows"]["financial_year_to_date"]["actual"]["emergency_admissions"] > 0

        # monitor --once: Birmingham alerts, and the alerts topic holds the backtest's alert timeline
        monitored = run("monitor", "--once", "--plan", str(inputs["plan"]), *bootstrap,
                        "--metrics-port", "0", timeout=180)
        assert re.search(rf"raised .*{BIRMINGHAM}", monitored.stdout), monitored.stdout
        alerts = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, f"{topic_prefix}.alerts")]
        offline = [orjson.loads(line) for line in _lines(backtested / "alerts.jsonl")]

        def timeline_key(e: dict) -> tuple:  # the wire form of monitors.analysis.backtest.timeline_key
            return e["as_of"], e["board"], e["event_id"]

        def timeline(events: list[dict]) -> list[tuple]:
            return [(*timeline_key(e), e["state"], e["severity"]) for e in sorted(events, key=timeline_key)]

        assert timeline(alerts) == timeline(offline) and alerts
        assert sorted(alerts, key=timeline_key) == sorted(offline, key=timeline_key)

        # notify: every alert (both questions) as a signed webhook to all, Birmingham's plan-number alerts (the
        # default question) also by e-mail to its lead
        receiver = WebhookReceiver(WEBHOOK_SECRET, free_port()).start()
        smtp_port = free_port()
        smtp, sink = smtp_server(smtp_port)
        subscriptions = tmp_path / "subscriptions.toml"
        subscriptions.write_text(
            f'[[subscriber]]\nname = "e2e-hook"\nboards = "all"\nquestions = "all"\nchannel = "webhook"\n'
            f'url = "{receiver.url}"\n'
            f'secret_env = "BCF_E2E_HOOK_SECRET"\n\n'
            f'[[subscriber]]\nname = "birmingham-lead"\nboards = ["{BIRMINGHAM}"]\nchannel = "email"\n'
            f'to = ["lead@example.nhs.uk"]\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nsmtp_tls = "none"\n')
        notify_log = tmp_path / "notify.log"
        notifier = start("notify", "--subscriptions", str(subscriptions), *bootstrap, log=notify_log,
                         env={"BCF_E2E_HOOK_SECRET": WEBHOOK_SECRET})
        birmingham = [a for a in alerts if a["board"] == BIRMINGHAM and a["question"] == "plan_number"]
        assert birmingham
        wait_for(lambda: len(receiver.accepted) >= len(alerts) and len(sink.messages) >= len(birmingham), 120,
                 "every alert delivered by `bcfwatch notify`")
        wait_for(lambda: notify_log.read_text().count("-> birmingham-lead") >= len(birmingham), 60,
                 "the notifier to report its deliveries")
        assert stop(notifier, signal.SIGINT) == 0  # Ctrl-C: a clean stop
        output = notify_log.read_text()
        no_traceback(output)
        assert "delivering" in output and "2 subscriber" in output
        assert [payload["event_id"] for _, payload in receiver.accepted] == [a["event_id"] for a in alerts]
        assert receiver.bad_signatures == 0 and len(sink.messages) == len(birmingham)
        deliveries = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, f"{topic_prefix}.deliveries")]
        assert len(deliveries) == len(alerts) + len(birmingham)
        assert {d["outcome"] for d in deliveries} == {"delivered"}
    finally:
        if notifier is not None:
            stop(notifier, signal.SIGINT)
        if receiver is not None:
            receiver.stop()
        if smtp is not None:
            smtp.stop()
        worker_exit = stop(worker)
    worker_output = (tmp_path / "worker.log").read_text()
    no_traceback(worker_output)
    assert worker_exit == 0, worker_output[-4000:]

    # The same commands on bad inputs: clear errors, no tracebacks.
    (tmp_path / "bad.toml").write_text("[[subscriber\n")
    assert "TOML" in cli("notify", "--subscriptions", str(tmp_path / "bad.toml"), *bootstrap, exit_code=1).output
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    assert "header" in cli("replay", str(wrong), *bootstrap, exit_code=1).output
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    assert "junk.csv" in run("monitor", "--once", "--plan", str(junk), *bootstrap, "--metrics-port", "0",
                             exit_code=1).stderr


METRIC_DRIFTS = {("E10000016", "delayed_days"): "E10000016:delayed_days+40%",  # Kent
                 ("E08000025", "care_home_admissions_65"): "E08000025:care_home_admissions_65+60%",  # Birmingham
                 ("E10000014", "reablement_91d"): "E10000014:reablement-15pt"}  # Hampshire


@pytest.mark.kafka
def test_every_plan_metric_alerts_live_as_in_the_backtest(broker, topic_prefix, tmp_path):
    """Issue 24: a drift on each of the other plan metrics raises its alert, live exactly as in the backtest,
    and a subscriber to one metric gets that metric's alerts only, through the notifier. Scale 0.03: at the
    e2e log's 0.003 no board has enough delay episodes, care-home admissions or settled reablement cohorts to
    be judged."""
    plan, log, offline = tmp_path / "plan.csv", tmp_path / "events.jsonl", tmp_path / "backtest"
    cli("plan", "sample", "--out", str(plan), "--scale", "0.03")
    cli("generate", "--out", str(log), "--from", "2014-04-01", "--to", "2016-03-31", "--scale", "0.03",
        "--seed", "5", *[arg for drift in METRIC_DRIFTS.values() for arg in ("--drift", drift)])
    cli("backtest", str(log), "--plan", str(plan), "--out", str(offline))
    expected = [orjson.loads(line) for line in _lines(offline / "alerts.jsonl")]
    raised = {(a["board"], a["metric"]) for a in expected if a["state"] == "raised"}
    assert set(METRIC_DRIFTS) <= raised
    delayed = next(a for a in expected if (a["board"], a["metric"]) == ("E10000016", "delayed_days"))
    assert delayed["delayed_days_nhs_pct"] + delayed["delayed_days_social_care_pct"] + \
        delayed["delayed_days_both_pct"] == pytest.approx(100, abs=0.2)

    bootstrap = ["--bootstrap", broker.bootstrap, "--topic-prefix", topic_prefix]
    worker = start("worker", *bootstrap, "--partitions", "8", "--web-port", str(free_port()),
                   "--metrics-port", str(free_port()), "--datadir", str(tmp_path / "worker"),
                   "--snapshot-seconds", "0.5", log=tmp_path / "worker.log")
    notifier = one = every = None
    try:
        # one packing process, in the replay's own (the default is one per core; this log has ~16 chunks)
        cli("replay", str(log), *bootstrap, "--partitions", "8", "--packed", "--packers", "1")
        cli("counts", "export", "--out", str(tmp_path / "counts.csv"), *bootstrap, "--timeout", "300")
        assert (tmp_path / "counts.csv").read_text() == (offline / "counts.csv").read_text()
        run("monitor", "--once", "--plan", str(plan), *bootstrap, "--metrics-port", "0", timeout=300)
        alerts = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, f"{topic_prefix}.alerts")]

        def key(event: dict) -> tuple:
            return event["as_of"], event["board"], event["event_id"]

        assert sorted(alerts, key=key) == sorted(expected, key=key)

        one, every = (WebhookReceiver(WEBHOOK_SECRET, free_port()).start() for _ in range(2))
        subscriptions = tmp_path / "subscriptions.toml"
        subscriptions.write_text("".join(
            f'[[subscriber]]\nname = "{name}"\nboards = "all"\nmetrics = {metrics}\nquestions = "all"\n'
            f'channel = "webhook"\nurl = "{receiver.url}"\nsecret_env = "BCF_E2E_HOOK_SECRET"\n\n'
            for name, metrics, receiver in (("delayed-days-only", '["delayed_days"]', one),
                                            ("everything", '"all"', every))))
        notifier = start("notify", "--subscriptions", str(subscriptions), *bootstrap, log=tmp_path / "notify.log",
                         env={"BCF_E2E_HOOK_SECRET": WEBHOOK_SECRET})
        wait_for(lambda: len(every.accepted) >= len(alerts), 120, "every alert delivered to the second subscriber")
        wanted = [a["event_id"] for a in alerts if a["metric"] == "delayed_days"]
        wait_for(lambda: len(one.accepted) >= len(wanted), 60, "the delayed-days alerts")
        assert [payload["event_id"] for _, payload in one.accepted] == wanted and wanted
        assert one.bad_signatures == every.bad_signatures == 0
    finally:
        if notifier is not None:
            stop(notifier, signal.SIGINT)
        for receiver in (one, every):
            if receiver is not None:
                receiver.stop()
        worker_exit = stop(worker)
    assert worker_exit == 0, (tmp_path / "worker.log").read_text()[-4000:]


# -- the broker commands ------------------------------------------------------------------------------------
def _free_broker_port() -> int:
    """A free port whose controller port (port + 1000, as `bcfwatch kafka start` uses) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 1000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1000))
            except OSError:
                continue
        return port
    raise AssertionError("no free pair of loopback ports")


@pytest.mark.kafka
def test_kafka_fetch_start_status_stop():
    port = _free_broker_port()
    args = ("--port", str(port))
    home = cache_dir() / f"broker-{port}"
    try:
        fetched = cli("kafka", "fetch").output
        libs = Path(re.search(r"Kafka jars in (\S+)", fetched.replace("\n", "")).group(1))
        assert any(libs.glob("kafka_*.jar")) and any(libs.glob("kafka-clients-*.jar"))

        assert "not running" in run("kafka", "status", *args, exit_code=1).stdout
        started = run("kafka", "start", *args, "--fresh", timeout=180).stdout
        assert f"is up at 127.0.0.1:{port}" in started and str(home) in started.replace("\n", "")
        assert f"running at 127.0.0.1:{port}" in run("kafka", "status", *args).stdout
        assert "already running" in run("kafka", "start", *args).stdout

        # It is a real broker: a topic can be made and read back.
        from bcfwatch.infra.kafka import ensure_topics
        ensure_topics(f"127.0.0.1:{port}", ["e2e.probe"], 1)
        assert read_topic(f"127.0.0.1:{port}", "e2e.probe") == []

        assert "Kafka stopped" in run("kafka", "stop", *args, timeout=90).stdout
        assert "not running" in run("kafka", "status", *args, exit_code=1).stdout
        assert "no bcfwatch broker was running" in run("kafka", "stop", *args).stdout
    finally:
        Broker(port=port).stop()
        shutil.rmtree(home, ignore_errors=True)


# -- the demo ---------------------------------------------------------------------------------------------------
@pytest.mark.kafka
def test_demo(tmp_path):
    port = _free_broker_port()  # the demo's other ports fall back to free ones when their defaults are busy
    out = tmp_path / "demo"
    try:
        done = run("demo", "--port", str(port), "--scale", "0.003", "--out", str(out), timeout=400)
    finally:
        Broker(port=port).stop()
        shutil.rmtree(cache_dir() / f"broker-{port}", ignore_errors=True)
    output = done.stdout.replace("\n", " ")
    assert f"Kafka 3.9.2 is up at 127.0.0.1:{port}" in output
    assert "counts identical to the live export" in output
    assert "alert timeline identical to the live monitor's" in output
    assert "Kafka stopped" in output
    assert _lines(out / "counts.csv")[0] == COUNTS_HEADER and len(_lines(out / "counts.csv")) == 1 + 151 * 731
    report = out / "report.html"
    assert str(report.resolve()) in done.stdout.replace("\n", "")
    assert "<html" in report.read_text()[:500].lower()
    assert (out / "events.jsonl").exists() and (out / "plan.csv").exists()
    no_traceback((out / "worker.log").read_text())
    assert not Broker(port=port).accepts_connections()
