"""A real local SMTP server (aiosmtpd) for delivery tests."""

from __future__ import annotations

import asyncio
import threading

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller


class JsonReceiver:
    """A plain HTTP endpoint that keeps every JSON body POSTed to it (Alertmanager's webhooks are unsigned)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, dict]] = []  # (path, body)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, orjson.loads(await request.read())))
        return web.Response(status=200)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> JsonReceiver:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


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
