"""E-mail delivery is encrypted and authenticated: STARTTLS or implicit TLS with a verified certificate, AUTH
from a password file, and plaintext only when explicitly allowed for a loopback host (real aiosmtpd servers)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from monitors.alerting.delivery import DeliveryFailed, send_email
from monitors.alerting.subscriptions import Subscriber, SubscriptionError, load_subscriptions
from tests.support import free_port
from tests.support.receivers import SAMPLE_ALERT, MailSink

ALERT = SAMPLE_ALERT


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the tests trust it through SSL_CERT_FILE)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    return context


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"bcf", b"s3cret-pw")
    return AuthResult(success=ok)


def serve(sink: MailSink, **options) -> tuple[Controller, int]:
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, **options)
    controller.start()
    return controller, port


def subscriber(port: int, **fields) -> Subscriber:
    return Subscriber("lead", None, None, "email", to=("lead@example.nhs.uk",), smtp_host="127.0.0.1",
                      smtp_port=port, **fields)


def test_starttls_with_auth_delivers(certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    sink = MailSink()
    controller, port = serve(sink, tls_context=server_context(certificate), require_starttls=True,
                             authenticator=authenticator, auth_require_tls=True)
    try:
        send_email(subscriber(port, smtp_username="bcf", smtp_password="s3cret-pw"), ALERT)
        assert len(sink.messages) == 1
        with pytest.raises(DeliveryFailed, match="SMTP delivery failed"):  # a wrong password is refused
            send_email(subscriber(port, smtp_username="bcf", smtp_password="wrong"), ALERT)
    finally:
        controller.stop()


def test_an_unverified_certificate_is_refused(certificate, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    sink = MailSink()
    controller, port = serve(sink, tls_context=server_context(certificate), require_starttls=True)
    try:
        with pytest.raises(DeliveryFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            send_email(subscriber(port), ALERT)
        assert sink.messages == []
    finally:
        controller.stop()


def test_a_server_without_starttls_gets_nothing_in_plaintext():
    sink = MailSink()
    controller, port = serve(sink)
    try:
        with pytest.raises(DeliveryFailed, match="refusing to send in plaintext"):
            send_email(subscriber(port), ALERT)  # the default is STARTTLS
        assert sink.messages == []
        send_email(subscriber(port, smtp_tls="none"), ALERT)  # explicitly allowed, loopback
        assert len(sink.messages) == 1
    finally:
        controller.stop()


def email_file(tmp_path: Path, extra: str, host: str = "127.0.0.1") -> Path:
    path = tmp_path / "subscriptions.toml"
    path.write_text(f'[[subscriber]]\nname = "lead"\nboards = "all"\nchannel = "email"\n'
                    f'to = "lead@example.nhs.uk"\nsmtp_host = "{host}"\nsmtp_port = 587\n{extra}')
    return path


@pytest.mark.parametrize(("extra", "host", "problem"), [
    ('smtp_tls = "none"\n', "mail.example.nhs.uk", "plaintext SMTP is allowed only to a loopback host"),
    ('smtp_tls = "ssl"\n', "127.0.0.1", "must be one of: starttls, implicit, none"),
    ('smtp_username = "bcf"\n', "127.0.0.1", "give smtp_username and smtp_password_file together"),
])
def test_smtp_settings_are_checked_at_load(tmp_path, extra, host, problem):
    with pytest.raises(SubscriptionError, match=problem):
        load_subscriptions(email_file(tmp_path, extra, host))


def test_the_smtp_password_file_must_be_owner_only(tmp_path):
    password = tmp_path / "smtp-password"
    password.write_text("s3cret-pw\n")
    password.chmod(0o644)
    extra = f'smtp_username = "bcf"\nsmtp_password_file = "{password}"\n'
    with pytest.raises(SubscriptionError, match="chmod 600"):
        load_subscriptions(email_file(tmp_path, extra))
    password.chmod(0o600)
    (loaded,) = load_subscriptions(email_file(tmp_path, extra))
    assert (loaded.smtp_tls, loaded.smtp_username, loaded.smtp_password) == ("starttls", "bcf", "s3cret-pw")
    assert "s3cret" not in repr(loaded)
