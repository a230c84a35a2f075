"""The command line: clear errors, non-zero exits, no tracebacks for user mistakes."""

import subprocess
import sys

import pytest


def bcfwatch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "bcfwatch.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


COMMANDS = [[], ["kafka"], ["generate"], ["replay"], ["boards"], ["worker"], ["counts", "export"], ["monitor"],
            ["notify"], ["plan"], ["plan", "check"], ["backtest"], ["report"], ["demo"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_on_every_command(command):
    result = bcfwatch(*command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "/nonexistent/log.jsonl"], "does not exist"),
        (["replay", "README.md", "--speed", "fast"], "neither 'max' nor a positive number"),
        (["replay", "README.md", "--packers", "2"], "add --packed"),
        (["replay", "README.md", "--packed", "--packers", "0"], "'--packers': 0 is not in the range x>=1"),
        (["generate", "--out", "x.jsonl", "--from", "2015-13-01"], "not a date like"),
        (["generate", "--out", "x.jsonl", "--drift", "Hackney:lots"], "is not BOARD:+N%"),
        (["generate", "--out", "x.jsonl", "--scale", "0"], "--scale"),
        (["report", "README.md", "--out", "x.png"], "add --board CODE"),
        (["report", "README.md", "--board", "E99999999"], "is not a plan board code"),
        (["backtest", "README.md", "--plan", "/nonexistent/plan.csv"], "cannot read the file"),
        (["notify", "--subscriptions", "/nonexistent.toml"], "does not exist"),
    ],
)
def test_user_mistakes_get_clear_errors(args, message):
    result = bcfwatch(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_replay_without_a_key_says_how_to_set_one(tmp_path):
    log = tmp_path / "one.jsonl"
    log.write_text("{}\n")
    result = bcfwatch("replay", str(log), env={"BCFWATCH_PSEUDONYM_KEY": ""})
    assert result.returncode == 1
    assert "BCFWATCH_PSEUDONYM_KEY" in result.stderr and "Traceback" not in result.stderr


def test_replay_with_no_broker_says_how_to_start_one(tmp_path):
    log = tmp_path / "one.jsonl"
    log.write_text("{}\n")
    result = bcfwatch("replay", str(log), "--bootstrap", "127.0.0.1:1")
    assert result.returncode == 1
    assert "bcfwatch kafka start" in result.stderr and "Traceback" not in result.stderr


def test_boards_lists_151_plans():
    result = bcfwatch("boards")
    assert result.returncode == 0
    assert result.stdout.count("E0") + result.stdout.count("E1") >= 151


def test_every_command_group_is_registered():
    listed = bcfwatch("--help").stdout
    commands = {line.split()[0] for line in listed.split("Commands:", 1)[1].splitlines() if line.strip()}
    assert commands == {"backtest", "boards", "counts", "demo", "evaluate", "generate", "kafka", "monitor", "notify",
                        "plan", "replay", "report", "worker"}


def test_a_bad_setting_in_the_environment_names_the_variable():
    result = bcfwatch("replay", "README.md", env={"BCFWATCH_PARTITIONS": "abc"})
    assert result.returncode == 1
    assert "BCFWATCH_PARTITIONS='abc' is not a whole number (default 8)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
