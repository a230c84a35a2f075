"""A local webhook endpoint that verifies Standard Webhooks signatures (the demo and the tests use it).

It answers 204 to a correctly signed POST on /hook, 401 to a bad signature and
503 while ``down`` is set, and keeps what it accepted in arrival order.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class LoopbackServer:
    """An aiohttp server on 127.0.0.1 (or ``host``) in a thread of its own; subclasses implement ``handle``."""

    route = "/{tail:.*}"

    def __init__(self, port: int, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.host = host
        self.ssl_context = ssl_context  # https with this server certificate, or plain http
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def handle(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    def add_routes(self, app: web.Application) -> None:
        """Routes besides ``route`` (none by default)."""

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post(self.route, self.handle)
        self.add_routes(app)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def start(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the receiver on port {self.port} did not start")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class WebhookReceiver(LoopbackServer):
    """Verifies Standard Webhooks signatures; answers 503 while ``down``; records accepted deliveries."""

    route = "/hook"

    def __init__(self, secret: str, port: int, host: str = "127.0.0.1",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(port, host, ssl_context)
        self.webhook = Webhook(secret)
        self.down = False
        self.accepted: list[tuple[str, dict]] = []  # (webhook-id, body), in arrival order
        self.arrived_at: list[float] = []  # wall-clock time (time.time()) of each accepted delivery
        self.refused = 0
        self.bad_signatures = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        if self.down:
            self.refused += 1
            return web.Response(status=503, text="down for maintenance")
        try:
            payload = self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        self.accepted.append((request.headers["webhook-id"], payload))
        self.arrived_at.append(time.time())
        return web.Response(status=204)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/deliveries", self.deliveries)

    async def deliveries(self, request: web.Request) -> web.Response:
        """What was accepted, in arrival order: ``[{"webhook_id": ..., "payload": {...}}, ...]``, and counts."""
        return web.json_response({
            "accepted": [{"webhook_id": webhook_id, "payload": payload} for webhook_id, payload in self.accepted],
            "bad_signatures": self.bad_signatures,
            "refused": self.refused,
        })

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}/hook"
