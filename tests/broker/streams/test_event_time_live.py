"""The event-time property through the real broker: replay -> worker -> export == backtest, on logs hypothesis makes."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from bcfwatch.core.topics import Topics
from bcfwatch.demo.worker_process import WorkerProcess
from producers.eventlog.reader import read_events
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from streams.app import WorkerConfig
from streams.daily_table import from_state
from streams.oracle import daily_counts
from streams.state_reader import day_counts, wait_until_caught_up
from tests.support import free_port
from tests.unit.streams.test_event_time_properties import LATENESS, event_lines

# --- the same property through the real broker: replay -> worker -> export == backtest ------------------

@pytest.mark.kafka
@pytest.mark.timeout(900)
def test_replay_worker_export_equals_backtest_on_generated_logs(broker, topic_prefix, tmp_path):
    """Hypothesis makes a few logs of every kind of line; each is replayed, in turn, into one live worker
    on one prefix, and after each the exported counts equal the backtest of everything replayed so far."""
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topic_prefix, partitions=4,
                          datadir=tmp_path / "worker", web_port=free_port(), snapshot_seconds=0.2)
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    so_far = tmp_path / "so-far.jsonl"
    so_far.write_text("")
    examples = []

    @settings(max_examples=4, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(lines=event_lines())
    def replay_and_compare(lines):
        n = len(examples)
        examples.append(n)
        lines = [line.replace('"event_id": "e', f'"event_id": "x{n}-e') for line in lines]  # new ids per log
        log = tmp_path / f"log{n}.jsonl"
        log.write_text("\n".join(lines) + "\n")
        with open(so_far, "a") as handle:
            handle.write("\n".join(lines) + "\n")
        replay(log, broker.bootstrap, Topics(topic_prefix), Pseudonymiser(load_key()), 4)
        live = from_state(day_counts(wait_until_caught_up(config, 300)))
        expected = daily_counts(read_events(so_far, processes=1), LATENESS)
        pd.testing.assert_frame_equal(live.reset_index(drop=True), expected.reset_index(drop=True),
                                      check_dtype=False)

    try:
        replay_and_compare()
    finally:
        worker.stop()
    assert len(examples) == 4
