"""Real local receivers for tests: a plain JSON endpoint (for Alertmanager) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller

from bcfwatch.demo.webhook_receiver import LoopbackServer
from monitors.alerting.topic_schemas import parse_alert

# An alert as the notifier reads it from the topic (typed), for delivery tests.
SAMPLE_ALERT = parse_alert(orjson.dumps({
    "event_id": "e08000025-a1-1", "alert_id": "e08000025-a1", "sequence": 1, "state": "raised",
    "severity": "critical", "board": "E08000025", "metric": "emergency_admissions",
    "question": "plan_number", "as_of": "2015-06-28",
    "actual": 11_000.0, "planned": 10_000.0, "variance_pct": 10.0, "z": 10.0, "spc_rules": ["shift"],
    "spc_variation": "special cause: concern", "assurance": "consistently missed",
    "projected_year_end": 44_000.0, "planned_year_end": 40_000.0, "money_at_risk_gbp": 6_200_000.0}))


class JsonReceiver(LoopbackServer):
    """Keeps every JSON body POSTed to it (Alertmanager's webhooks are unsigned)."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.received: list[tuple[str, dict]] = []  # (path, body)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, orjson.loads(await request.read())))
        return web.Response(status=200)


class MailSink:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(envelope)
        return "250 OK"


def smtp_server(port: int) -> tuple[Controller, MailSink]:
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, sink
