"""The schemas of the topics the monitor and the notifier own: ``PREFIX.alerts`` and ``PREFIX.deliveries``.

Every topic a bcfwatch service reads has one schema and one parse function, and what fails goes to a
dead-letter topic (:mod:`bcfwatch.core.messages` has the error type and the dead-letter record):

========================  ==========================================  ==============================
topic                     parse                                       what fails goes to
========================  ==========================================  ==============================
event topics              :func:`bcfwatch.core.events.parse_wire`     ``PREFIX.dead_letter``
``PREFIX.board_days``     :func:`streams.published.parse_board_day`   ``PREFIX.dead_letter``
``bcfwatch-PREFIX-state`` :func:`streams.published.parse_snapshot`    ``PREFIX.dead_letter``
``PREFIX.alerts``         :func:`parse_alert` -> Alert                ``PREFIX.delivery_dead_letter``
``PREFIX.deliveries``     :func:`parse_delivery` -> DeliveryRecord    ``PREFIX.delivery_dead_letter``
========================  ==========================================  ==============================

Invalid alerts are never delivered.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from bcfwatch.core.messages import (
    InvalidMessage,
    SchemaReason,
    board_field,
    integer_field,
    iso_date_field,
    json_object,
    number_field,
    require_fields,
    string_field,
)
from monitors.alerting.alerts import Alert, AlertState
from monitors.rules.drift import Question, Severity
from monitors.rules.plan_metrics import PlanMetric
from monitors.rules.spc import Assurance, Variation

log = logging.getLogger(__name__)


# -- PREFIX.alerts ---------------------------------------------------------------------------------------
ALERT_STATES = frozenset(AlertState)
SEVERITIES = frozenset(Severity)
METRICS = frozenset({"emergency_admissions", *PlanMetric})
ALERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
RULE = re.compile(r"[A-Za-z0-9 _:,.()+'-]{1,80}")  # includes "baseline year (board's own shape)"
ALERT_NUMBERS = ("actual", "planned", "variance_pct", "z", "projected_year_end", "planned_year_end",
                 "money_at_risk_gbp")
ALERT_REQUIRED = {"event_id", "alert_id", "sequence", "state", "severity", "board", "metric", "question", "as_of",
                  "spc_rules",
                  "spc_variation", "assurance", *ALERT_NUMBERS}
# What an assessment adds (``monitors/alerting/alerts.py``, alert_event): optional, checked when present.
ALERT_OPTIONAL_NUMBERS = ("projected_year_end_low", "projected_year_end_high", "window_z", "window_variance_pct",
                          "threshold_z", "dispersion", "delayed_days_nhs_pct", "delayed_days_social_care_pct",
                          "delayed_days_both_pct")
ALERT_OPTIONAL_TEXT = ("expected_pattern", "noise_source")
ALERT_OPTIONAL = frozenset({*ALERT_OPTIONAL_NUMBERS, *ALERT_OPTIONAL_TEXT, "window_weeks"})


def parse_alert(value: bytes | None) -> Alert:
    """One ``PREFIX.alerts`` message as an :class:`~monitors.alerting.alerts.Alert` (the type the alert book produces);
    raises :class:`InvalidMessage`. Numbers keep the value they have on the wire (checked, not converted)."""
    document = json_object(value, "alert")
    require_fields(document, "alert", ALERT_REQUIRED, ALERT_OPTIONAL)
    alert_id = string_field(document["alert_id"], "alert: alert_id", ALERT_ID)
    sequence = integer_field(document["sequence"], "alert: sequence", 1)
    event_id = string_field(document["event_id"], "alert: event_id")
    if event_id != f"{alert_id}-{sequence}":
        raise InvalidMessage(SchemaReason.INVALID_VALUE, "alert: event_id is not alert_id-sequence")
    state = AlertState(string_field(document["state"], "alert: state", choices=ALERT_STATES))
    severity = Severity(string_field(document["severity"], "alert: severity", choices=SEVERITIES))
    board = board_field(document["board"], "alert: board")
    metric = string_field(document["metric"], "alert: metric", choices=METRICS)
    question = Question(string_field(document["question"], "alert: question", choices=frozenset(Question)))
    as_of = iso_date_field(document["as_of"], "alert: as_of")
    numbers: dict[str, Any] = {name: _number(document, name) for name in ALERT_NUMBERS}
    rules = document["spc_rules"]
    if not isinstance(rules, list):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, "alert: spc_rules is not a list")
    spc_rules = tuple(string_field(rule, "alert: spc_rules item", RULE) for rule in rules)
    variation = Variation(string_field(document["spc_variation"], "alert: spc_variation",
                                       choices=frozenset(Variation)))
    assurance = Assurance(string_field(document["assurance"], "alert: assurance", choices=frozenset(Assurance)))
    optional: dict[str, Any] = {name: _number(document, name) for name in ALERT_OPTIONAL_NUMBERS if name in document}
    for name in ALERT_OPTIONAL_TEXT:
        if name in document:
            optional[name] = string_field(document[name], f"alert: {name}", RULE)
    if "window_weeks" in document:
        optional["window_weeks"] = integer_field(document["window_weeks"], "alert: window_weeks", 0)
    return Alert(event_id=event_id, alert_id=alert_id, sequence=sequence, state=state, severity=severity,
                 board=board, metric=metric, question=question, as_of=as_of, spc_rules=spc_rules,
                 spc_variation=variation, assurance=assurance, **numbers, **optional)


def _number(document: dict[str, Any], name: str) -> float:
    """A number field, checked, as it is on the wire (an integer stays one, so it serialises back the same)."""
    number_field(document[name], f"alert: {name}")
    return document[name]


# -- PREFIX.deliveries -----------------------------------------------------------------------------------
DELIVERY_OUTCOMES = frozenset({"delivered", "dead_lettered"})


@dataclass(frozen=True)
class DeliveryRecord:
    """One line of the notifier's ledger: ``subscriber:event_id`` and what became of it."""

    key: str
    outcome: str
    attempts: int
    at: str


def parse_delivery(value: bytes | None) -> DeliveryRecord:
    """One ``PREFIX.deliveries`` message; raises :class:`InvalidMessage`."""
    document = json_object(value, "delivery")
    require_fields(document, "delivery", {"key", "outcome", "attempts", "at"})
    key = string_field(document["key"], "delivery: key")
    if ":" not in key:
        raise InvalidMessage(SchemaReason.INVALID_VALUE, "delivery: key is not subscriber:event_id")
    return DeliveryRecord(key, string_field(document["outcome"], "delivery: outcome", choices=DELIVERY_OUTCOMES),
                          integer_field(document["attempts"], "delivery: attempts", 0),
                          string_field(document["at"], "delivery: at"))
