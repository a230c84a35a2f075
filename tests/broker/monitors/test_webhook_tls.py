"""A webhook subscriber's own CA (`ca_file`): an https endpoint signed by a private CA (an NHS relay behind a
local PKI, or the compose stack's receiver) is verified against that CA, and refused without it."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from bcfwatch.demo.webhook_receiver import WebhookReceiver
from monitors.alerting.delivery import DeliveryFailed, send_webhook
from monitors.alerting.subscriptions import Subscriber, SubscriptionError, load_subscriptions
from tests.support import REPO, free_port
from tests.support.receivers import SAMPLE_ALERT

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Path:
    """The compose receiver's CA and certificate (names webhook-receiver, localhost, 127.0.0.1)."""
    folder = tmp_path_factory.mktemp("receiver-tls")
    made = subprocess.run(["bash", str(REPO / "compose/receiver/make-certs.sh"), str(folder)], capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    return folder


@pytest.fixture
def receiver(certificates):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates / "receiver_tls_cert.pem", certificates / "receiver_tls_key.pem")
    server = WebhookReceiver(SECRET, free_port(), ssl_context=context).start()
    yield server
    server.stop()


def subscriber(url: str, ca_file: Path | None) -> Subscriber:
    return Subscriber("relay", None, None, "webhook", questions=None, url=url, secret=SECRET,
                      ca_file=str(ca_file) if ca_file else None)


def test_the_subscribers_ca_verifies_its_endpoint(receiver, certificates, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert receiver.url.startswith("https://")
    send_webhook(subscriber(receiver.url, certificates / "receiver_ca.pem"), SAMPLE_ALERT)
    assert [payload["event_id"] for _, payload in receiver.accepted] == [SAMPLE_ALERT.event_id]
    with pytest.raises(DeliveryFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        send_webhook(subscriber(receiver.url, None), SAMPLE_ALERT)  # the system's CAs do not know it
    assert len(receiver.accepted) == 1


def subscriptions(tmp_path: Path, url: str, ca_file: str) -> Path:
    path = tmp_path / "subscriptions.toml"
    path.write_text(f'[[subscriber]]\nname = "relay"\nboards = "all"\nmetrics = "all"\nchannel = "webhook"\n'
                    f'url = "{url}"\nsecret_env = "BCF_TLS_TEST_SECRET"\nca_file = "{ca_file}"\n')
    return path


def test_ca_file_is_checked_at_load(tmp_path, certificates, monkeypatch):
    monkeypatch.setenv("BCF_TLS_TEST_SECRET", SECRET)
    ca = certificates / "receiver_ca.pem"
    [loaded] = load_subscriptions(subscriptions(tmp_path, "https://relay.example.nhs.uk/bcf", str(ca)))
    assert loaded.ca_file == str(ca)
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    for url, ca_file, problem in (("https://relay.example.nhs.uk/bcf", str(tmp_path / "missing.pem"),
                                   "cannot read"),
                                  ("https://relay.example.nhs.uk/bcf", str(not_pem), "holds no PEM certificate"),
                                  ("http://127.0.0.1:9/bcf", str(ca), "applies to an https:// url only")):
        with pytest.raises(SubscriptionError, match=problem):
            load_subscriptions(subscriptions(tmp_path, url, ca_file))
