"""The alert lifecycle: raised -> updated (severity changes) -> resolved, deduplicated.

An :class:`AlertBook` is fed one assessment per board per completed week, in
order, and returns alert events. A board with an open alert gets no second
"raised"; an alert resolves only after ``resolve_after_weeks`` consecutive
weeks back within plan (no flapping). Ids are stable: the alert id comes from
board, metric and the week it was raised, and each event id is the alert id
plus a sequence number, so replays and backtests produce identical records.
The book can be rebuilt from the events it produced (the ``alerts`` topic).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from monitors.drift import Assessment, DriftRules


@dataclass
class OpenAlert:
    alert_id: str
    severity: str
    sequence: int
    weeks_within_plan: int = 0


@dataclass
class AlertBook:
    rules: DriftRules = field(default_factory=DriftRules)
    open: dict[tuple[str, str], OpenAlert] = field(default_factory=dict)
    last_evaluated: dict[tuple[str, str], str] = field(default_factory=dict)

    def judged(self, board: str, metric: str, as_of: str) -> bool:
        """True when the week ending ``as_of`` (ISO date) was already evaluated for this board."""
        return self.last_evaluated.get((board, metric), "") >= as_of

    def evaluate(self, assessment: Assessment) -> list[dict[str, Any]]:
        """The alert events (0 or 1) that this week's assessment causes."""
        key = (assessment.board, assessment.metric)
        as_of = assessment.as_of.isoformat()
        if self.last_evaluated.get(key, "") >= as_of:
            return []  # this week was already evaluated (a replay, or a second look at the same data)
        self.last_evaluated[key] = as_of
        current = self.open.get(key)
        if assessment.drifting:
            if current is None:
                alert_id = hashlib.sha256(f"{key[0]}|{key[1]}|{as_of}".encode()).hexdigest()[:16]
                self.open[key] = OpenAlert(alert_id, assessment.severity, 1)
                return [alert_event("raised", self.open[key], assessment)]
            current.weeks_within_plan = 0
            if assessment.severity != current.severity:
                current.severity = assessment.severity
                current.sequence += 1
                return [alert_event("updated", current, assessment)]
            return []
        if current is None:
            return []
        current.weeks_within_plan += 1
        if current.weeks_within_plan < self.rules.resolve_after_weeks:
            return []
        current.sequence += 1
        del self.open[key]
        return [alert_event("resolved", current, assessment)]

    def restore(self, events: Iterable[dict[str, Any]]) -> None:
        """Rebuild the open alerts (and what was already evaluated) from earlier events."""
        for event in events:
            key = (event["board"], event["metric"])
            self.last_evaluated[key] = max(self.last_evaluated.get(key, ""), event["as_of"])
            if event["state"] == "resolved":
                self.open.pop(key, None)
            else:
                self.open[key] = OpenAlert(event["alert_id"], event["severity"], event["sequence"])


def alert_event(state: str, alert: OpenAlert, assessment: Assessment) -> dict[str, Any]:
    return {
        "event_id": f"{alert.alert_id}-{alert.sequence}",
        "alert_id": alert.alert_id,
        "sequence": alert.sequence,
        "state": state,
        "severity": alert.severity,
        "board": assessment.board,
        "metric": assessment.metric,
        "as_of": assessment.as_of.isoformat(),
        "actual": round(assessment.actual_ytd, 3),
        "planned": round(assessment.planned_ytd, 3),
        "variance_pct": round(assessment.variance_pct, 3),
        "z": round(assessment.z, 3),
        "spc_rules": assessment.rules_fired,
        "spc_variation": assessment.variation,
        "assurance": assessment.assurance,
        "projected_year_end": round(assessment.projected_year_end, 1),
        "planned_year_end": round(assessment.planned_year_end, 1),
        "money_at_risk_gbp": round(assessment.money_at_risk_gbp, 2),
    }
