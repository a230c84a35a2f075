"""The replay's options and the parts of a Replayer that need no broker."""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path

import pytest

from bcfwatch.core.topics import Topics
from producers.pseudonym import Pseudonymiser
from producers.replay import (
    DEFAULT_DELIVERY_TIMEOUT,
    LogIdentity,
    Replayer,
    ReplayOptions,
    checkpoint_path,
    replay,
    write_checkpoint,
)

NO_BROKER = "127.0.0.1:1"  # nothing listens there: a test that reached the broker would fail


def test_defaults_are_an_unpaced_fresh_single_event_replay():
    options = ReplayOptions(partitions=4)
    assert options.events_per_second is None
    assert options.resume is False and options.packed is False
    assert options.delivery_timeout == DEFAULT_DELIVERY_TIMEOUT
    assert options.checkpoints is None
    assert options.on_progress is options.on_produced is options.on_warning is None


def test_replay_function_takes_every_option_with_the_same_defaults():
    """``replay(...)`` is ReplayOptions spelled as arguments: the same names and the same defaults."""
    parameters = inspect.signature(replay).parameters
    fields = {f.name: f.default for f in dataclasses.fields(ReplayOptions)}
    assert set(fields) <= set(parameters)
    for name, default in fields.items():
        expected = inspect.Parameter.empty if default is dataclasses.MISSING else default
        assert parameters[name].default == expected, name


def test_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ReplayOptions(partitions=4).packed = True  # type: ignore[misc]


@pytest.mark.parametrize("changes", [
    {"partitions": 0},
    {"partitions": -2},
    {"events_per_second": 0.0},
    {"events_per_second": -100.0},
    {"events_per_second": math.nan},
    {"delivery_timeout": 0.0},
    {"delivery_timeout": -1.0},
    {"delivery_timeout": math.nan},
    {"processes": 0},
])
def test_options_that_cannot_work_are_refused(changes):
    with pytest.raises(ValueError):
        ReplayOptions(**{"partitions": 4, **changes})


def test_sensible_options_are_accepted():
    options = ReplayOptions(partitions=1, events_per_second=0.5, delivery_timeout=1.0, resume=True, packed=True)
    assert options.events_per_second == 0.5 and options.packed


def _log(tmp_path: Path) -> Path:
    log = tmp_path / "events.jsonl"
    log.write_text('{"type": "admission"}\n')
    return log


def test_a_completely_replayed_log_is_not_sent_again_and_needs_no_broker(tmp_path):
    log, checkpoints, topics = _log(tmp_path), tmp_path / "checkpoints", Topics("unit")
    identity = LogIdentity.of(log, topics.prefix, NO_BROKER)
    write_checkpoint(checkpoint_path(log, topics.prefix, NO_BROKER, checkpoints), identity, 1, complete=True)
    pseudonymiser = Pseudonymiser(b"k" * 32)

    replayer = Replayer(log, NO_BROKER, topics, pseudonymiser,
                        ReplayOptions(partitions=1, resume=True, checkpoints=checkpoints, delivery_timeout=1.0))
    report = replayer.run()
    assert report.already_complete and report.lines == 0
    assert report.resumed_after_line == report.acknowledged_through_line == 1
    with pytest.raises(RuntimeError, match="runs once"):
        replayer.run()

    # The function passes resume and the checkpoint folder through.
    report = replay(log, NO_BROKER, topics, pseudonymiser, 1, resume=True, checkpoints=checkpoints, delivery_timeout=1)
    assert report.already_complete and report.checkpoint is not None and report.checkpoint.parent == checkpoints


def test_without_resume_the_checkpoint_is_not_read(tmp_path):
    log, checkpoints, topics = _log(tmp_path), tmp_path / "checkpoints", Topics("unit")
    identity = LogIdentity.of(log, topics.prefix, NO_BROKER)
    write_checkpoint(checkpoint_path(log, topics.prefix, NO_BROKER, checkpoints), identity, 1, complete=True)
    replayer = Replayer(log, NO_BROKER, topics, Pseudonymiser(b"k" * 32),
                        ReplayOptions(partitions=1, checkpoints=checkpoints))
    assert not replayer.report.already_complete and replayer.report.resumed_after_line == 0
