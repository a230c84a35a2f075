"""`bcfwatch monitor`: evaluate every board against its plan from the live counts; alerts to Kafka.

Each round reads what the workers published since the last round
(``monitors/board_days.py``: day counts and stream times, each durable), and
re-evaluates the boards whose settled day moved: every week that is *settled*
(its admission stream time, less the lateness, has passed the week's end), so a
week is judged once, on final data, exactly as the offline backtest judges it. New alert events go
to the ``PREFIX.alerts`` topic (keyed by board), which is also the durable
record the monitor rebuilds its open alerts from when it restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date

import orjson
from kafka import KafkaProducer

from bcfwatch.kafka_security import kafka_python_options
from monitors import exporter
from monitors.alerts import AlertBook
from monitors.board_days import BoardDays
from monitors.drift import DriftRules
from monitors.plans import BoardPlan
from monitors.timeline import alert_timeline, settled_through
from streams.app import WorkerConfig


def read_alert_events(config: WorkerConfig) -> list[dict]:
    from bcfwatch.kafka_admin import ensure_topics
    from streams.state_reader import read_topic_values

    ensure_topics(config.bootstrap, [config.topics.alerts], 1)  # one partition: one order for the notifier
    return [orjson.loads(value) for value in read_topic_values(config.bootstrap, config.topics.alerts)]


class Monitor:
    def __init__(self, config: WorkerConfig, plans: dict[str, BoardPlan], plan_year_start: date,
                 rules: DriftRules | None = None) -> None:
        self.config = config
        self.plans = plans
        self.plan_year_start = plan_year_start
        self.rules = rules or DriftRules()
        self.book = AlertBook(self.rules)
        self.book.restore(read_alert_events(config))
        exporter.initialise(sorted(plans))
        self.producer = KafkaProducer(bootstrap_servers=config.bootstrap, acks="all", enable_idempotence=True,
                                      client_id="bcfwatch-monitor", **kafka_python_options())
        self.live = BoardDays(config.bootstrap, config.topics.board_days)
        self.judged_through: dict = {}  # board -> settled day of its last evaluation

    def evaluate(self) -> list[dict]:
        """One round: alert events for every newly settled week, produced to the alerts topic."""
        self.live.refresh()
        settled = settled_through(self.live.stream_times, self.config.lateness_days)
        through = {board: day for board, day in settled.items() if self.judged_through.get(board) != day}
        if not through:
            exporter.mark_evaluated()
            return []
        daily = self.live.daily_emergency_admissions()
        latest: dict = {}
        events = alert_timeline(self.plans, daily, self.plan_year_start, through, self.rules, self.book, latest)
        exporter.update({board: self.plans[board] for board in through if board in self.plans}, daily, through,
                        latest, {board for board, _ in self.book.open}, self.plan_year_start)
        self.judged_through.update(through)
        for event in events:
            self.producer.send(self.config.topics.alerts, key=event["board"].encode(), value=orjson.dumps(event))
        self.producer.flush()
        return events

    def run(self, interval: float, on_round: Callable[[list[dict]], None] | None = None,
            rounds: int | None = None) -> None:
        done = 0
        while rounds is None or done < rounds:
            events = self.evaluate()
            if on_round is not None:
                on_round(events)
            done += 1
            if rounds is None or done < rounds:
                time.sleep(interval)  # the schedule between evaluation rounds

    def close(self) -> None:
        self.producer.close()
        self.live.close()
