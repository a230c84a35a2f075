"""The compose stack's webhook receiver (service `webhook-receiver` in compose/check.yml): a stand-in subscriber
endpoint for a trial or the end-to-end test. It serves https with the certificate compose/receiver/make-certs.sh
makes (the notifier verifies it against that CA: `ca_file` in subscriptions.toml), verifies each delivery's
Standard Webhooks signature with the `webhook_secret` compose secret (401 when it is wrong), keeps the verified
ones, and lists them at GET /deliveries. Runs on the bcfwatch image: `python /opt/receiver/receiver.py`."""

from __future__ import annotations

import os
import signal
import ssl
import threading
from pathlib import Path

from bcfwatch.demo.webhook_receiver import WebhookReceiver

SECRETS = Path(os.environ.get("RECEIVER_SECRETS", "/run/secrets"))
PORT = int(os.environ.get("RECEIVER_PORT", "8443"))


def main() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(SECRETS / "receiver_tls_cert", SECRETS / "receiver_tls_key")
    secret = (SECRETS / "webhook_secret").read_text().strip()
    receiver = WebhookReceiver(secret, PORT, host="0.0.0.0", ssl_context=context).start()
    print(f"webhook receiver: POST https://0.0.0.0:{PORT}/hook, GET /deliveries", flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    receiver.stop()


if __name__ == "__main__":
    main()
