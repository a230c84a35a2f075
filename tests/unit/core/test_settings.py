"""One Settings object: the BCFWATCH_* environment settings, their defaults declared once, read and validated."""

import subprocess
import sys
from datetime import date

import click
import pytest
from click.testing import CliRunner

from bcfwatch.cli import main
from bcfwatch.cli.common import SettingDefault
from bcfwatch.core.settings import DEFAULTS, ENV_NAMES, Settings, SettingsError, current, shown

DOCUMENTED = {  # README "Settings", docs/operations.md, docs/security.md
    "BCFWATCH_BOOTSTRAP": "127.0.0.1:9092",
    "BCFWATCH_TOPIC_PREFIX": "bcf",
    "BCFWATCH_PARTITIONS": "8",
    "BCFWATCH_LATENESS_DAYS": "14",
    "BCFWATCH_MAX_AHEAD_DAYS": "31",
    "BCFWATCH_EARLIEST_DATE": "2014-04-01",
    "BCFWATCH_STOP_SECONDS": "10",
    "BCFWATCH_BIND_ADDRESS": "127.0.0.1",
    "BCFWATCH_EVENT_RETENTION_DAYS": "30",
    "BCFWATCH_SEEN_SEAL_AFTER": "50000",
    "BCFWATCH_REPLICATION_FACTOR": "0",  # 0: from the cluster's size (bcfwatch/infra/kafka.py)
    "BCFWATCH_MIN_INSYNC_REPLICAS": "0",
    "BCFWATCH_REPLAY_CHUNK_BYTES": "16777216",
    "BCFWATCH_BED_DAY_COST_GBP": "300",  # docs/drift.md, "The other plan metrics"
}


@pytest.fixture
def clean_env(monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_documented_defaults():
    assert set(ENV_NAMES) == set(DOCUMENTED)
    environment = Settings.environment_variables()
    assert {env: shown(getattr(DEFAULTS, name)) for name, env in environment.items()} == DOCUMENTED
    assert Settings.from_env({}) == DEFAULTS == Settings()
    assert DEFAULTS.earliest_date == date(2014, 4, 1) and DEFAULTS.stop_seconds == 10.0


def test_every_setting_can_be_overridden():
    values = {
        "BCFWATCH_BOOTSTRAP": "kafka-1:9092,kafka-2:9092", "BCFWATCH_TOPIC_PREFIX": "trust.a-1",
        "BCFWATCH_PARTITIONS": "4", "BCFWATCH_LATENESS_DAYS": " 0 ", "BCFWATCH_MAX_AHEAD_DAYS": "60",
        "BCFWATCH_EARLIEST_DATE": "2010-01-01", "BCFWATCH_STOP_SECONDS": "2.5",
        "BCFWATCH_BIND_ADDRESS": "0.0.0.0", "BCFWATCH_EVENT_RETENTION_DAYS": "7.5",
        "BCFWATCH_SEEN_SEAL_AFTER": "1000", "BCFWATCH_REPLICATION_FACTOR": "3", "BCFWATCH_MIN_INSYNC_REPLICAS": "2",
    }
    assert Settings.from_env(values) == Settings(
        bootstrap="kafka-1:9092,kafka-2:9092", topic_prefix="trust.a-1", partitions=4, lateness_days=0,
        max_ahead_days=60, earliest_date=date(2010, 1, 1), stop_seconds=2.5, bind_address="0.0.0.0",
        event_retention_days=7.5, seen_seal_after=1000, replication_factor=3, min_insync_replicas=2)


def test_blank_is_the_default():
    assert Settings.from_env(dict.fromkeys(ENV_NAMES, "  ")) == DEFAULTS


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BCFWATCH_PARTITIONS", "abc", "BCFWATCH_PARTITIONS='abc' is not a whole number (default 8)"),
        ("BCFWATCH_PARTITIONS", "2.5", "is not a whole number"),
        ("BCFWATCH_PARTITIONS", "0", "BCFWATCH_PARTITIONS=0: must be at least 1"),
        ("BCFWATCH_LATENESS_DAYS", "-1", "BCFWATCH_LATENESS_DAYS=-1: must be at least 0"),
        ("BCFWATCH_LATENESS_DAYS", "400", "BCFWATCH_LATENESS_DAYS=400: must be at most 365"),
        ("BCFWATCH_MAX_AHEAD_DAYS", "many", "BCFWATCH_MAX_AHEAD_DAYS='many' is not a whole number"),
        ("BCFWATCH_EARLIEST_DATE", "01/04/2014", "BCFWATCH_EARLIEST_DATE='01/04/2014' is not a date like 2014-04-01"),
        ("BCFWATCH_STOP_SECONDS", "soon", "BCFWATCH_STOP_SECONDS='soon' is not a number (default 10)"),
        ("BCFWATCH_STOP_SECONDS", "0.1", "BCFWATCH_STOP_SECONDS=0.1: must be at least 0.5"),
        ("BCFWATCH_EVENT_RETENTION_DAYS", "0", "BCFWATCH_EVENT_RETENTION_DAYS=0.0: must be a positive number"),
        ("BCFWATCH_EVENT_RETENTION_DAYS", "nan", "BCFWATCH_EVENT_RETENTION_DAYS='nan' is not a number"),
        ("BCFWATCH_SEEN_SEAL_AFTER", "0", "BCFWATCH_SEEN_SEAL_AFTER=0: must be at least 1"),
        ("BCFWATCH_TOPIC_PREFIX", "my topics", "BCFWATCH_TOPIC_PREFIX='my topics': only letters, digits"),
    ],
)
def test_a_bad_value_names_its_variable(name, value, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert message in str(caught.value)


def test_current_reads_once_and_again_when_the_environment_changes(clean_env):
    first = current()
    assert first == DEFAULTS and current() is first  # cached
    clean_env.setenv("BCFWATCH_PARTITIONS", "3")
    assert current().partitions == 3
    clean_env.setenv("BCFWATCH_PARTITIONS", "abc")
    with pytest.raises(SettingsError, match="BCFWATCH_PARTITIONS"):
        current()
    clean_env.delenv("BCFWATCH_PARTITIONS")
    assert current() == DEFAULTS


def test_the_readers_of_the_settings_follow_the_environment(clean_env):
    from bcfwatch.core.events import earliest_date
    from bcfwatch.infra.kafka import event_retention_ms
    from bcfwatch.infra.lifecycle import bind_address, stop_seconds
    from streams.config import WorkerConfig

    config = WorkerConfig()
    assert (config.bootstrap, config.topic_prefix, config.partitions, config.lateness_days, config.max_ahead_days,
            config.web_host) == ("127.0.0.1:9092", "bcf", 8, 14, 31, "127.0.0.1")
    assert (earliest_date(), event_retention_ms(), stop_seconds(), bind_address()) == \
        (date(2014, 4, 1), 30 * 86_400_000, 10.0, "127.0.0.1")
    for name, value in {"BCFWATCH_LATENESS_DAYS": "7", "BCFWATCH_MAX_AHEAD_DAYS": "9", "BCFWATCH_STOP_SECONDS": "3",
                        "BCFWATCH_BIND_ADDRESS": "0.0.0.0", "BCFWATCH_EVENT_RETENTION_DAYS": "1",
                        "BCFWATCH_EARLIEST_DATE": "2012-01-01"}.items():
        clean_env.setenv(name, value)
    config = WorkerConfig(topic_prefix="x")
    assert (config.lateness_days, config.max_ahead_days, config.web_host) == (7, 9, "0.0.0.0")
    assert (earliest_date(), event_retention_ms(), stop_seconds(), bind_address()) == \
        (date(2012, 1, 1), 86_400_000, 3.0, "0.0.0.0")


def test_a_worker_without_a_datadir_gets_its_own(clean_env, tmp_path):
    from streams.config import WorkerConfig

    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert WorkerConfig.for_worker(topic_prefix="p", web_port=7000).datadir == tmp_path / "bcfwatch" / "worker-p-7000"
    assert WorkerConfig.for_worker(tmp_path / "mine", topic_prefix="p").datadir == tmp_path / "mine"


# -- the CLI takes its defaults from Settings ----------------------------------------------------------------------
def _options(group: click.Group = main, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _options(command, (*prefix, name))
        else:
            for param in command.params:
                yield " ".join((*prefix, name)), param


SETTING_OPTIONS = {"--bootstrap": "bootstrap", "--topic-prefix": "topic_prefix", "--partitions": "partitions",
                   "--lateness-days": "lateness_days", "--max-ahead-days": "max_ahead_days",
                   "--stop-timeout": "stop_seconds", "--bind-address": "bind_address"}


def test_cli_option_defaults_are_the_settings_and_show_their_defaults():
    seen = set()
    for command, param in _options():
        setting = next((SETTING_OPTIONS[o] for o in param.opts if o in SETTING_OPTIONS), None)
        if setting is None:
            assert not isinstance(param.default, SettingDefault), (command, param.name)
            continue
        assert isinstance(param.default, SettingDefault) and param.default.name == setting, (command, param.opts)
        assert param.show_default == shown(getattr(DEFAULTS, setting)), (command, param.opts)
        seen.add((command, setting))
    assert {("worker", "partitions"), ("replay", "bootstrap"), ("backtest", "max_ahead_days"),
            ("monitor", "lateness_days"), ("notify", "stop_seconds"), ("kafka start", "topic_prefix")} <= seen


@pytest.mark.parametrize(("command", "shown_default"), [
    (["worker"], "[default: (8);"), (["worker"], "[default: (127.0.0.1:9092)]"), (["worker"], "[default: (10);"),
    (["monitor"], "[default: (14);"), (["backtest"], "[default: (31);"), (["notify"], "[default: (127.0.0.1)]"),
    (["replay"], "[default: (bcf)]"),
])
def test_help_shows_the_settings_defaults(command, shown_default, clean_env):
    clean_env.setenv("BCFWATCH_PARTITIONS", "abc")  # the help never reads the environment
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and shown_default in " ".join(result.output.split())


def test_the_cli_reads_the_environment_when_it_runs(clean_env, tmp_path):
    from bcfwatch.cli import common

    ctx = click.Context(main.commands["worker"])
    partitions = next(p for p in main.commands["worker"].params if p.name == "partitions")
    clean_env.setenv("BCFWATCH_PARTITIONS", "5")
    assert partitions.get_default(ctx) == 5
    assert common.SettingDefault("lateness_days")() == 14


@pytest.mark.parametrize("args", [["backtest", "README.md"], ["replay", "README.md"], ["worker"],
                                  ["counts", "export", "--out", "x.csv"], ["kafka", "start", "--secure"]])
def test_a_bad_environment_value_is_one_clear_line(args, clean_env):
    result = CliRunner().invoke(main, args, env={"BCFWATCH_PARTITIONS": "abc"})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Error: BCFWATCH_PARTITIONS='abc' is not a whole number (default 8)" in result.output
    assert "Traceback" not in result.output


def test_a_bad_environment_value_in_a_real_process_has_no_traceback(tmp_path):
    import os

    done = subprocess.run([sys.executable, "-m", "bcfwatch.cli", "backtest", "README.md"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "BCFWATCH_LATENESS_DAYS": "two weeks"})
    assert done.returncode == 1
    assert "BCFWATCH_LATENESS_DAYS='two weeks' is not a whole number (default 14)" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_the_monitor_does_not_load_the_faust_app():
    code = "import sys, monitors.service.monitor, monitors.service.processes; assert 'streams.app' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
