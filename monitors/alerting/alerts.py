"""The alert lifecycle: raised -> updated (severity changes) -> resolved, deduplicated.

An :class:`AlertBook` is fed one assessment per board per completed week and
question, in order, and returns alert events. A board with an open alert gets no
second "raised" for the same question (the plan number, or the underlying rate:
each is its own alert); an alert resolves only after ``resolve_after_weeks``
consecutive weeks back within plan (no flapping). Ids are stable: the alert id
comes from board, metric, question and the week it was raised, and each event id
is the alert id plus a sequence number, so replays and backtests produce
identical records.
The book can be rebuilt from the events it produced (the ``alerts`` topic).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date
from enum import StrEnum
from typing import Any

import orjson

from monitors.rules.drift import Assessment, DriftRules, Question, Severity
from monitors.rules.plan_metrics import MetricAssessment
from monitors.rules.spc import Assurance, Variation

Judged = Assessment | MetricAssessment  # emergency admissions (weekly) or another plan metric (monthly looks)


class AlertState(StrEnum):
    RAISED = "raised"
    UPDATED = "updated"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    """One alert event: what the alert book raises, updates or resolves, and what ``PREFIX.alerts`` carries.

    Typed from the book to the edge: :meth:`to_wire` is its JSON (the ``PREFIX.alerts`` message, the webhook
    body), :func:`monitors.alerting.topic_schemas.parse_alert` reads it back. The fields after ``money_at_risk_gbp``
    are what an assessment adds (``monitors/rules/drift.py``); optional on the wire, left out when None.
    """

    event_id: str
    alert_id: str
    sequence: int
    state: AlertState
    severity: Severity
    board: str
    metric: str
    question: Question  # which question the alert answers (``plan_number``: the primary alert)
    as_of: date
    actual: float
    planned: float
    variance_pct: float
    z: float
    spc_rules: tuple[str, ...]
    spc_variation: Variation
    assurance: Assurance
    projected_year_end: float
    planned_year_end: float
    money_at_risk_gbp: float
    projected_year_end_low: float | None = None
    projected_year_end_high: float | None = None
    window_weeks: int | None = None
    window_z: float | None = None
    window_variance_pct: float | None = None
    threshold_z: float | None = None
    expected_pattern: str | None = None
    noise_source: str | None = None
    dispersion: float | None = None
    # delayed days: the plan year's delayed days to date by attribution, % (NHS, social care, both)
    delayed_days_nhs_pct: float | None = None
    delayed_days_social_care_pct: float | None = None
    delayed_days_both_pct: float | None = None

    def to_document(self) -> dict[str, Any]:
        """The alert as its JSON object (field order as on the wire; enums as their values)."""
        document: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None:
                continue  # an optional field the alert does not carry
            if isinstance(value, StrEnum):
                value = value.value
            elif isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = [str(item) for item in value]
            document[spec.name] = value
        return document

    def to_wire(self) -> bytes:
        """The ``PREFIX.alerts`` message (and the webhook body)."""
        return orjson.dumps(self.to_document())


# Alert field -> (the Assessment attribute it comes from, the decimals it is rounded to)
_MEASURES = {
    "actual": ("actual_ytd", 3), "planned": ("planned_ytd", 3), "variance_pct": ("variance_pct", 3), "z": ("z", 3),
    "projected_year_end": ("projected_year_end", 1), "planned_year_end": ("planned_year_end", 1),
    "money_at_risk_gbp": ("money_at_risk_gbp", 2), "projected_year_end_low": ("projected_year_end_low", 1),
    "projected_year_end_high": ("projected_year_end_high", 1), "window_z": ("window_z", 3),
    "window_variance_pct": ("window_variance_pct", 3), "threshold_z": ("threshold", 3),
    "dispersion": ("dispersion", 3),
}


def alert_event(state: AlertState, alert: OpenAlert, assessment: Judged) -> Alert:
    """The alert event ``state`` of an open alert, with this week's (or month's) assessment."""
    as_of = assessment.as_of
    assert as_of is not None  # alerts are about completed weeks (AlertBook.evaluate)
    measures = {name: round(float(getattr(assessment, attribute)), decimals)  # plain floats (not numpy's)
                for name, (attribute, decimals) in _MEASURES.items()}
    if isinstance(assessment, MetricAssessment) and assessment.attribution:
        measures |= {f"delayed_days_{part}_pct": share for part, share in assessment.attribution.items()}
    return Alert(event_id=f"{alert.alert_id}-{alert.sequence}", alert_id=alert.alert_id, sequence=alert.sequence,
                 state=state, severity=alert.severity, board=assessment.board, metric=str(assessment.metric),
                 question=assessment.question, as_of=as_of, spc_rules=tuple(assessment.rules_fired),
                 spc_variation=assessment.variation, assurance=assessment.assurance,
                 window_weeks=assessment.window_weeks, expected_pattern=assessment.expected_pattern,
                 noise_source=assessment.noise_source, **measures)


AlertKey = tuple[str, str, Question]  # (board, metric, question): one open alert each


def alert_identity(key: AlertKey, raised: date) -> str:
    """The alert's id: the same for the same board, metric, question and week raised, in every process."""
    board, metric, question = key
    return hashlib.sha256(f"{board}|{metric}|{question.value}|{raised.isoformat()}".encode()).hexdigest()[:16]


@dataclass
class OpenAlert:
    alert_id: str
    severity: Severity
    sequence: int
    weeks_within_plan: int = 0


@dataclass
class AlertBook:
    rules: DriftRules = field(default_factory=DriftRules)
    open: dict[AlertKey, OpenAlert] = field(default_factory=dict)
    last_evaluated: dict[AlertKey, date] = field(default_factory=dict)

    def judged(self, board: str, metric: str, as_of: date, question: Question = Question.PLAN_NUMBER) -> bool:
        """True when the week ending ``as_of`` was already evaluated for this board and question."""
        last = self.last_evaluated.get((board, metric, question))
        return last is not None and last >= as_of

    def evaluate(self, assessment: Judged) -> list[Alert]:
        """The alert events (0 or 1) that this week's assessment causes."""
        key = (assessment.board, assessment.metric, assessment.question)
        as_of = assessment.as_of
        assert as_of is not None  # an assessment after at least one complete week
        if self.judged(*key[:2], as_of, key[2]):
            return []  # this week was already evaluated (a replay, or a second look at the same data)
        self.last_evaluated[key] = as_of
        current = self.open.get(key)
        severity = assessment.severity  # None unless drifting
        if severity is not None:
            if current is None:
                self.open[key] = OpenAlert(alert_identity(key, as_of), severity, 1)
                return [alert_event(AlertState.RAISED, self.open[key], assessment)]
            current.weeks_within_plan = 0
            if severity != current.severity:
                current.severity = severity
                current.sequence += 1
                return [alert_event(AlertState.UPDATED, current, assessment)]
            return []
        if current is None:
            return []
        current.weeks_within_plan += 1
        if current.weeks_within_plan < self.rules.resolve_after_weeks:
            return []
        current.sequence += 1
        del self.open[key]
        return [alert_event(AlertState.RESOLVED, current, assessment)]

    def restore(self, events: Iterable[Alert]) -> None:
        """Rebuild the open alerts (and what was already evaluated) from earlier events."""
        for event in events:
            key = (event.board, event.metric, event.question)
            last = self.last_evaluated.get(key)
            self.last_evaluated[key] = event.as_of if last is None else max(last, event.as_of)
            if event.state is AlertState.RESOLVED:
                self.open.pop(key, None)
            else:
                self.open[key] = OpenAlert(event.alert_id, event.severity, event.sequence)
