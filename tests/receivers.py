"""Real local receivers for tests: a plain JSON endpoint (for Alertmanager) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller

from bcfwatch.demo.webhook_receiver import LoopbackServer


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
