"""`bcfwatch monitor`: evaluate every board against its plan from the live counts; alerts to Kafka.

Each round reads what the workers published since the last round
(``monitors/service/board_days.py``: day counts and stream times, each durable), and
re-evaluates the boards whose settled day moved: every week that is *settled*
(its admission stream time, less the lateness, has passed the week's end), so a
week is judged once, on final data, exactly as the offline backtest judges it. The noise each rule judges with
is fitted on every board's baseline year, so no plan-year week is judged before the baseline year is settled for
every planned board (:func:`baseline_waiting`; a sparse or silent board does not hold the others back): with two
workers, or a cluster, one board's counts can run ahead of another's, and a fit on a half-read baseline year
would judge differently from the backtest. New alert events go
to the ``PREFIX.alerts`` topic (keyed by board), which is also the durable
record the monitor rebuilds its open alerts from when it restarts.

What it reads is checked against each topic's schema (``monitors/alerting/topic_schemas.py``): a bad message on
``PREFIX.board_days`` goes to ``PREFIX.dead_letter``, a bad alert met while restoring goes to
``PREFIX.delivery_dead_letter`` (where the notifier also puts it), each with its reason, and is skipped.
Its own alerts are checked against the same schema before they are produced.
``run`` stops between rounds once ``stop`` is set: a SIGTERM finishes the round in hand and exits 0
(``bcfwatch/lifecycle.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date, timedelta

from kafka import KafkaProducer
from kafka.errors import KafkaError

from bcfwatch.core.calendar import year_days
from bcfwatch.core.messages import DeadLetters, InvalidMessage
from bcfwatch.core.plans import BoardPlan
from bcfwatch.infra.kafka_security import kafka_python_options
from monitors.alerting.alerts import Alert, AlertBook
from monitors.alerting.metric_timeline import metric_settled_days, months_settled, plan_metric_timeline
from monitors.alerting.timeline import alert_timeline, last_settled_admission_days
from monitors.alerting.topic_schemas import parse_alert
from monitors.rules.drift import METRIC, Assessment, DriftRules, Question, complete_weeks_by
from monitors.service import exporter
from monitors.service.board_days import BoardDays
from streams.config import WorkerConfig  # the workers' topics, partitions and lateness; no Faust app

log = logging.getLogger(__name__)
# A board behind its partition by this many lateness periods past the baseline year is sparse, not unread.
BASELINE_GRACE_LATENESSES = 2


def read_alert_events(config: WorkerConfig, dead_letters: DeadLetters | None = None) -> list[Alert]:
    """The valid alert events on the alerts topic, in order; invalid ones are dead-lettered (if given)."""
    from bcfwatch.infra.kafka import ensure_topics, read_topic_records

    ensure_topics(config.bootstrap, [config.topics.alerts], 1)  # one partition: one order for the notifier
    events = []
    for record in read_topic_records(config.bootstrap, config.topics.alerts):
        try:
            events.append(parse_alert(record.value))
        except InvalidMessage as error:
            if dead_letters is not None:
                dead_letters.send(error, record)
    return events


def baseline_waiting(plans: dict[str, BoardPlan], settled: dict[str, date], plan_year_start: date,
                     partition_of: Callable[[str], int], grace_days: int) -> list[str]:
    """The planned boards whose baseline year is not yet final, in code order.

    A board is final through the baseline year's last day (the day before the plan year) once its own settled
    day has passed it. A board that stays behind while its partition has moved on, by ``grace_days`` past that
    day (the furthest settled board of the partition), is sparse or silent (a tiny board with no admission for
    weeks, or a board whose feed is down): its partition has read the baseline year, so it is not waited for,
    and one board cannot hold every alert back. What one worker has not read yet is behind partition and all.
    """
    baseline_end = plan_year_start - timedelta(days=1)
    partition_progress: dict[int, date] = {}
    for board, day in settled.items():
        partition = partition_of(board)
        partition_progress[partition] = max(partition_progress.get(partition, date.min), day)
    moved_on = baseline_end + timedelta(days=grace_days)
    return [board for board in sorted(plans) if settled.get(board, date.min) < baseline_end
            and partition_progress.get(partition_of(board), date.min) < moved_on]


class Monitor:
    def __init__(self, config: WorkerConfig, plans: dict[str, BoardPlan], plan_year_start: date,
                 rules: DriftRules | None = None) -> None:
        self.config = config
        self.plans = plans
        self.plan_year_start = plan_year_start
        self.rules = rules or DriftRules()
        self.book = AlertBook(self.rules)
        self.producer = KafkaProducer(bootstrap_servers=config.bootstrap, acks="all", enable_idempotence=True,
                                      client_id="bcfwatch-monitor", **kafka_python_options())
        from bcfwatch.infra.kafka import ensure_topics

        topics = config.topics
        ensure_topics(config.bootstrap, [topics.dead_letter], config.partitions)
        ensure_topics(config.bootstrap, [topics.delivery_dead_letter], 1)
        self.book.restore(read_alert_events(config, DeadLetters(self.producer, topics.delivery_dead_letter,
                                                                "monitor")))
        self.producer.flush()
        exporter.initialise(sorted(plans))
        self.live = BoardDays(config.bootstrap, topics.board_days,
                              DeadLetters(self.producer, topics.dead_letter, "monitor"))
        self.judged_through: dict = {}  # board -> settled day of its last evaluation
        self.weeks_judged: dict[str, int] = {}  # board -> complete plan-year weeks at its last judgement
        self._plan_days = year_days(plan_year_start)
        self.metric_months: dict = {}  # (metric, board) -> plan-year months settled at the last evaluation
        self.stop = threading.Event()  # set (by a SIGTERM handler) to stop after the round in hand
        self.latest: dict[str, Assessment] = {}  # board -> its latest plan-number assessment
        self._waiting: dict[str, int] = {}  # metric -> boards whose baseline year was not settled last round

    def boards_alerted(self) -> set[str]:
        """Boards with an open plan-number alert (the primary question)."""
        return {board for board, _, question in self.book.open if question is Question.PLAN_NUMBER}

    def evaluate(self) -> list[Alert]:
        """One round: alert events for every newly settled week (emergency admissions) or month (the other plan
        metrics), produced to the alerts topic. Emergency admissions' events are produced first: they wait
        neither for the gauges nor for the other metrics' looks."""
        self.live.refresh()
        settled = last_settled_admission_days(self.live.stream_times, self.config.lateness_days)
        through = {board: day for board, day in settled.items() if self.judged_through.get(board) != day}
        if not through or not self._baseline_settled(METRIC, settled):
            exporter.mark_evaluated()
            events = []
        else:
            # A board is judged again once a week more is complete; a day more settled changes only its gauges
            # (the latest assessment is of the same weeks, on final counts). Its latest assessment is then the one
            # of its last judgement, until its next week completes.
            weeks = {board: complete_weeks_by(self._plan_days, day)[1] for board, day in through.items()}
            judge = {board: day for board, day in through.items() if self.weeks_judged.get(board) != weeks[board]}
            daily = self.live.daily_emergency_admissions()
            latest: dict = {}
            events = self._publish(alert_timeline(self.plans, daily, self.plan_year_start, judge, self.rules,
                                                  self.book, latest))
            self.latest.update(latest)
            exporter.update(self.plans, daily, through, self.latest, self.boards_alerted(), self.plan_year_start)
            self.judged_through.update(through)
            self.weeks_judged.update((board, weeks[board]) for board in judge)
        return events + self._publish(self._plan_metric_events())

    def _baseline_settled(self, metric: str, settled: dict[str, date]) -> bool:
        """Whether ``metric``'s baseline year is final for every planned board; says once which boards it
        waits for."""
        waiting = baseline_waiting(self.plans, settled, self.plan_year_start, self.live.partition_of,
                                   BASELINE_GRACE_LATENESSES * self.config.lateness_days)
        if waiting and self._waiting.get(metric) != len(waiting):
            log.info("%s: waiting for the baseline year of %d board(s) to settle before judging the plan year "
                     "(%s%s)", metric, len(waiting), ", ".join(waiting[:5]), ", ..." if len(waiting) > 5 else "")
        self._waiting[metric] = len(waiting)
        return not waiting

    def _publish(self, events: list[Alert]) -> list[Alert]:
        messages = [event.to_wire() for event in events]
        for message in messages:
            parse_alert(message)  # our own alerts meet the schema the notifier holds them to
        for event, message in zip(events, messages, strict=True):
            self.producer.send(self.config.topics.alerts, key=event.board.encode(), value=message)
        self.producer.flush()
        return events

    def _plan_metric_events(self) -> list[Alert]:
        """Alert events of the other plan metrics, for the boards a month newly settled for (a settled month's
        look does not change, so the others are not looked at again)."""
        settled = metric_settled_days(self.live.stream_times, self.config.lateness_days)
        settled = {metric: days if self._baseline_settled(metric.value, days) else {}
                   for metric, days in settled.items()}
        months = {(metric, board): months_settled(self.plan_year_start, day)
                  for metric, days in settled.items() for board, day in days.items() if board in self.plans}
        moved = {key for key, value in months.items() if self.metric_months.get(key) != value}
        self.metric_months = months
        if not moved:
            return []
        due = {metric: {board: day for board, day in days.items() if (metric, board) in moved}
               for metric, days in settled.items()}
        latest: dict = {}
        events = plan_metric_timeline(self.plans, self.live.tables(), self.plan_year_start, due, book=self.book,
                                      latest=latest)
        exporter.update_plan_metrics(latest, {(board, metric) for board, metric, question in self.book.open
                                              if metric != METRIC and question is Question.PLAN_NUMBER})
        return events

    def run(self, interval: float, on_round: Callable[[list[Alert]], None] | None = None,
            rounds: int | None = None) -> None:
        """Evaluate every ``interval`` seconds (``rounds`` times, or until :attr:`stop` is set)."""
        done = 0
        while (rounds is None or done < rounds) and not self.stop.is_set():
            try:
                events = self.evaluate()
            except KafkaError as error:
                if rounds is not None:
                    raise
                # A broker restart or outage: what was read stays applied (board_days holds absolute counts),
                # so the next round carries on. No heartbeat meanwhile: /healthz fails if it lasts.
                log.warning("monitor: Kafka did not answer (%s); evaluating again in %.0f s", error, interval)
                self.stop.wait(interval)
                continue
            if on_round is not None:
                on_round(events)
            done += 1
            if rounds is None or done < rounds:
                self.stop.wait(interval)  # the schedule between evaluation rounds; a stop ends the wait

    def close(self) -> None:
        self.producer.close()
        self.live.close()
