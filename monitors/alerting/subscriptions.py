"""Who hears about which alerts: the subscriptions file (TOML, docs/subscriptions.md).

    [[subscriber]]
    name = "birmingham-lead"
    boards = ["E08000025"]          # or "all"
    metrics = "all"                 # or a list, e.g. ["emergency_admissions"]
    questions = ["plan_number"]     # the default; "all" adds the underlying-rate finding (docs/drift.md)
    channel = "webhook"
    url = "https://example.nhs.uk/bcf-hook"
    secret_env = "BIRMINGHAM_HOOK_SECRET"   # a Standard Webhooks secret (whsec_...), from the environment

    [[subscriber]]
    name = "commissioners"
    boards = "all"
    channel = "email"
    to = ["bcf-ops@example.nhs.uk"]
    smtp_host = "127.0.0.1"
    smtp_port = 25

Secrets are read from the environment (``secret_env``) or a file
(``secret_file``), never from the subscriptions file itself, and never logged.

Everything is checked when the file is loaded, so a subscriber that could never
be reached stops ``bcfwatch notify`` at start-up instead of failing every
delivery after minutes of retries. Every problem is reported, each with the
subscriber (number, name and line) and the key.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import os
import re
import ssl
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from standardwebhooks.webhooks import Webhook

from bcfwatch.core.boards import BoardList, load_boards
from monitors.rules.drift import METRIC
from monitors.rules.plan_metrics import PlanMetric

if TYPE_CHECKING:
    from monitors.alerting.alerts import Alert

TABLE = "subscriber"
CHANNELS = ("webhook", "email")
COMMON_KEYS = ("name", "boards", "metrics", "questions", "channel")
CHANNEL_KEYS = {"webhook": ("url", "secret_env", "secret_file", "ca_file"),
                "email": ("to", "smtp_host", "smtp_port", "from", "smtp_tls", "smtp_username", "smtp_password_file")}
SMTP_TLS_MODES = ("starttls", "implicit", "none")  # "none": plaintext, loopback hosts only (local tests)
# The metrics alerts are raised on: monitors.rules.drift.METRIC and monitors.rules.plan_metrics.PlanMetric.
METRICS = (METRIC, *(metric.value for metric in PlanMetric))
# Which question an alert answers (monitors.rules.drift.Question); by default a subscriber hears the primary
# one (will the board miss its plan number?); the underlying-rate finding is the analyst's diagnostic.
QUESTIONS = ("plan_number", "underlying_rate")
DEFAULT_QUESTIONS = frozenset({"plan_number"})
WEBHOOK_SECRET_PREFIX = "whsec_"
MIN_WEBHOOK_SECRET_BYTES = 24  # 192 bits, the Standard Webhooks minimum
LOOPBACK_NAMES = ("localhost",)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EMAIL = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>localhost|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9])")
_HOST = re.compile(r"[A-Za-z0-9.:\[\]_-]+")


class SubscriptionError(ValueError):
    """A subscriptions file that cannot be used; ``problems`` lists (where, reason), where naming the
    subscriber and key or the line and column."""

    def __init__(self, path: Path, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        if len(problems) == 1:
            where, reason = problems[0]
            message = f"{path}: {where}: {reason}" if where else f"{path}: {reason}"
        else:
            lines = [f"{path}: {len(problems)} problems"]
            lines += [f"  {where}: {reason}" if where else f"  {reason}" for where, reason in problems]
            message = "\n".join(lines)
        super().__init__(message)


@dataclass(frozen=True)
class Subscriber:
    name: str
    boards: frozenset[str] | None  # None: all boards
    metrics: frozenset[str] | None  # None: all metrics
    channel: str  # webhook | email
    questions: frozenset[str] | None = DEFAULT_QUESTIONS  # None: every question
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # an https webhook's certificate is verified against this CA, not the system's
    to: tuple[str, ...] = ()
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    sender: str = "bcfwatch@localhost"
    smtp_tls: str = "starttls"  # starttls | implicit | none (loopback only)
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)

    def wants(self, alert: Alert) -> bool:
        return (self.boards is None or alert.board in self.boards) and \
            (self.metrics is None or alert.metric in self.metrics) and \
            (self.questions is None or alert.question.value in self.questions)


def load_subscriptions(path: Path, boards: BoardList | None = None) -> list[Subscriber]:
    """Read and check a subscriptions file; raise SubscriptionError listing every problem found."""
    text, document = _read_document(path)
    problems: list[tuple[str, str]] = []
    for key, value in document.items():
        if key != TABLE:
            problems.append(("", _unknown(key, (TABLE,), _kind(value))))
    entries = document.get(TABLE, [])
    if isinstance(entries, dict):  # [subscriber], a single table
        problems.append((f"[{TABLE}]", f"write [[{TABLE}]] (double brackets), once for each subscriber"))
        raise SubscriptionError(path, problems)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.append((TABLE, f"must be [[{TABLE}]] tables, one for each subscriber"))
        raise SubscriptionError(path, problems)
    if not entries and not problems:
        problems.append(("", f"no [[{TABLE}]] tables: there is nobody to deliver alerts to"))
    lines = _table_lines(text, len(entries))
    checker = _EntryChecker(boards or load_boards(), problems)
    subscribers = []
    for number, entry in enumerate(entries, start=1):
        subscriber = checker.check(entry, number, lines[number - 1] if lines else None)
        if subscriber is not None:
            subscribers.append(subscriber)
    if problems:
        raise SubscriptionError(path, problems)
    return subscribers


def check_webhook_secret(secret: str) -> str | None:
    """Why a Standard Webhooks secret cannot sign (without echoing it), or None when it can."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        return f"does not start with {WEBHOOK_SECRET_PREFIX} (a Standard Webhooks secret is whsec_ then base64)"
    encoded = secret[len(WEBHOOK_SECRET_PREFIX):]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        return f"is not valid base64 after {WEBHOOK_SECRET_PREFIX}"
    if len(key) < MIN_WEBHOOK_SECRET_BYTES:
        return f"is {len(key)} bytes long; a webhook secret needs at least {MIN_WEBHOOK_SECRET_BYTES} random bytes"
    try:
        Webhook(secret)  # the way monitors.alerting.delivery signs: whatever passes here signs there
    except Exception as error:  # any refusal by the library is the reason
        return f"is refused by standardwebhooks: {type(error).__name__}"
    return None


def check_webhook_url(url: str) -> str | None:
    """Why a webhook URL is not acceptable, or None: https, or http to a loopback host only."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return "contains spaces or control characters"
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        return f"{url!r} must start with https:// (or http:// to a loopback host)"
    try:
        host, _ = parts.hostname, parts.port
    except ValueError as error:
        return f"{url!r} has a bad port or host: {error}"
    if not host:
        return f"{url!r} has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password; the signature authenticates the sender"
    if scheme == "http" and not is_loopback(host):
        return (f"{url!r} uses http to {host}, which is not a loopback host; use https "
                "(http is allowed only for 127.0.0.0/8, ::1 and localhost)")
    return None


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_document(path: Path) -> tuple[str, dict]:
    """The file's text and its TOML document."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SubscriptionError(path, [("", f"cannot read the file: {error.strerror}")]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - data.rfind(b"\n", 0, error.start)
        raise SubscriptionError(path, [(f"line {line}, column {column}", f"not valid UTF-8 (byte "
                                        f"0x{data[error.start]:02x}); TOML files are UTF-8")]) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SubscriptionError(path, [("", f"not valid TOML: {error}")]) from None


def _table_lines(text: str, count: int) -> list[int] | None:
    """The line of each [[subscriber]] header, when they can be told apart from the text alone."""
    header = re.compile(rf"\s*\[\[\s*{TABLE}\s*\]\]\s*(#.*)?$")
    lines = [number for number, line in enumerate(text.splitlines(), start=1) if header.match(line)]
    return lines if len(lines) == count else None


def _kind(value: object) -> str:
    """How a TOML value was written: a table ([x] or [[x]]) or a key (x = ...)."""
    tables = isinstance(value, dict) or (isinstance(value, list) and bool(value)
                                         and all(isinstance(v, dict) for v in value))
    return "table" if tables else "key"


def _unknown(key: str, known: tuple[str, ...], kind: str) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
    return f"unknown {kind} {key!r}{hint}"


class _EntryChecker:
    """Checks one [[subscriber]] table at a time, adding (where, reason) to ``problems``."""

    def __init__(self, boards: BoardList, problems: list[tuple[str, str]]) -> None:
        self.boards = boards
        self.problems = problems
        self.names: dict[str, str] = {}
        self.where = ""

    def check(self, entry: dict, number: int, line: int | None) -> Subscriber | None:
        before = len(self.problems)
        name = entry.get("name")
        label = f"subscriber {number}" + (f" {name!r}" if isinstance(name, str) and name else "") + \
            (f" (line {line})" if line else "")
        self.where = label
        channel = entry.get("channel")
        if channel is None:
            self._problem("channel", f"is missing; it must be one of: {', '.join(CHANNELS)}")
        elif channel not in CHANNELS:
            self._problem("channel", f"must be one of: {', '.join(CHANNELS)}, not {channel!r}")
            channel = None
        self._keys(entry, channel)
        name = self._name(name, label)
        boards = self._boards(entry.get("boards", "all"))
        metrics = self._metrics(entry.get("metrics", "all"))
        questions = self._questions(entry.get("questions", sorted(DEFAULT_QUESTIONS)))
        if channel == "webhook":
            details = self._webhook(entry)
        elif channel == "email":
            details = self._email(entry)
        else:
            details = {}
        if len(self.problems) > before or channel is None:  # no channel is one of the problems
            return None
        return Subscriber(name=name, channel=channel, boards=boards, metrics=metrics, questions=questions,
                          **details)

    def _problem(self, key: str, reason: str) -> None:
        self.problems.append((f"{self.where}, {key}" if key else self.where, reason))

    def _keys(self, entry: dict, channel: str | None) -> None:
        allowed = COMMON_KEYS + (CHANNEL_KEYS[channel] if channel else sum(CHANNEL_KEYS.values(), ()))
        every = COMMON_KEYS + sum(CHANNEL_KEYS.values(), ())
        for key, value in entry.items():
            if key in allowed:
                continue
            if key in every:
                self._problem(key, f"does not apply to {'an' if channel == 'email' else 'a'} {channel} subscriber")
            else:
                self._problem("", _unknown(key, every, _kind(value)))

    def _name(self, name: object, label: str) -> str:
        if name is None:
            self._problem("name", "is missing")
        elif not isinstance(name, str) or not _NAME.fullmatch(name):
            self._problem("name", f"{name!r} must be letters, digits, '.', '_' or '-' (it is part of the "
                                  "idempotency key subscriber:event_id)")
        elif name in self.names:
            self._problem("name", f"{name!r} is already used by {self.names[name]}; names must be unique")
        else:
            self.names[name] = label
            return name
        return ""

    def _boards(self, value: object) -> frozenset[str] | None:
        codes = self._selection("boards", value, "board codes, e.g. [\"E08000025\"]")
        if not codes:
            return None
        for code in sorted(codes):
            board = self.boards.resolve(code)
            if board is None:
                self._problem("boards", f"{code!r} is not a health and wellbeing board code "
                                        "(`bcfwatch boards` lists them)")
            elif board != code:
                self._problem("boards", f"{code} plans jointly under {board}; use {board}")
        return codes

    def _metrics(self, value: object) -> frozenset[str] | None:
        metrics = self._selection("metrics", value, f"metrics from: {', '.join(METRICS)}")
        for metric in sorted(metrics or ()):
            if metric not in METRICS:
                self._problem("metrics", _unknown(metric, METRICS, "metric"))
        return metrics or None

    def _questions(self, value: object) -> frozenset[str] | None:
        questions = self._selection("questions", value, f"questions from: {', '.join(QUESTIONS)}")
        for question in sorted(questions or ()):
            if question not in QUESTIONS:
                self._problem("questions", _unknown(question, QUESTIONS, "question"))
        return questions

    def _selection(self, key: str, value: object, what: str) -> frozenset[str] | None:
        if value == "all":
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._problem(key, f"must be \"all\" or a list of {what}, not {_shown(value)}")
        elif not value:
            self._problem(key, f"is an empty list; write \"all\" or a list of {what}")
        else:
            return frozenset(value)
        return None

    def _webhook(self, entry: dict) -> dict:
        url = entry.get("url")
        if url is None:
            self._problem("url", "is missing; a webhook needs url = \"https://...\"")
        elif not isinstance(url, str):
            self._problem("url", f"must be a string, not {_shown(url)}")
        elif (reason := check_webhook_url(url)) is not None:
            self._problem("url", reason)
        return dict(url=url, secret=self._secret(entry), ca_file=self._ca_file(entry, url))

    def _ca_file(self, entry: dict, url: object) -> str | None:
        """A private CA (PEM) to verify an https endpoint with: an NHS relay signed by a local PKI."""
        value = entry.get("ca_file")
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self._problem("ca_file", f"must be the path of a PEM file, not {_shown(value)}")
            return None
        if isinstance(url, str) and not url.lower().startswith("https://"):
            self._problem("ca_file", "applies to an https:// url only")
            return None
        try:
            ssl.create_default_context(cafile=value)
        except ssl.SSLError:  # before OSError, of which it is a kind
            self._problem("ca_file", f"{value} holds no PEM certificate")
            return None
        except OSError as error:
            self._problem("ca_file", f"cannot read {value}: {error.strerror}")
            return None
        return value

    def _secret(self, entry: dict) -> str | None:
        sources = [key for key in ("secret_env", "secret_file") if key in entry]
        if not sources:
            self._problem("", "a webhook needs secret_env or secret_file")
            return None
        if len(sources) > 1:
            self._problem("secret_file", "give secret_env or secret_file, not both")
            return None
        key = sources[0]
        value = entry[key]
        if not isinstance(value, str) or not value:
            self._problem(key, f"must be a non-empty string, not {_shown(value)}")
            return None
        if key == "secret_env":
            secret = os.environ.get(value, "").strip()
            source = f"the environment variable {value}"
            if not secret:
                self._problem(key, f"{source} is not set")
                return None
        else:
            source = f"secret_file {value}"
            try:
                secret = Path(value).read_text(encoding="utf-8").strip()
            except OSError as error:
                self._problem(key, f"cannot read {value}: {error.strerror}")
                return None
            except UnicodeDecodeError:
                self._problem(key, f"{value} is not a text file (not valid UTF-8)")
                return None
        if (reason := check_webhook_secret(secret)) is not None:
            self._problem(key, f"the secret in {source} {reason}")
            return None
        return secret

    def _email(self, entry: dict) -> dict:
        to = entry.get("to")
        addresses: tuple[str, ...] = ()
        if to is None:
            self._problem("to", "is missing; an email subscriber needs to = \"address\" or a list of addresses")
        elif isinstance(to, str):
            addresses = (to,)  # one address, not a list of characters
        elif isinstance(to, list) and to and all(isinstance(a, str) for a in to):
            addresses = tuple(to)
        else:
            self._problem("to", f"must be an address or a non-empty list of addresses, not {_shown(to)}")
        for address in addresses:
            if not _EMAIL.fullmatch(address):
                self._problem("to", f"{address!r} is not an e-mail address (name@example.nhs.uk)")
        sender = entry.get("from", Subscriber.sender)
        if not isinstance(sender, str) or not _EMAIL.fullmatch(sender):
            self._problem("from", f"{_shown(sender)} is not an e-mail address (name@example.nhs.uk)")
        host = entry.get("smtp_host", Subscriber.smtp_host)
        if not isinstance(host, str) or not _HOST.fullmatch(host):
            self._problem("smtp_host", f"must be a host name or IP address, not {_shown(host)}")
        port = entry.get("smtp_port", Subscriber.smtp_port)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            hint = " (write the number without quotes)" if isinstance(port, str) else ""
            self._problem("smtp_port", f"must be a whole number from 1 to 65535, not {_shown(port)}{hint}")
        tls = entry.get("smtp_tls", Subscriber.smtp_tls)
        if tls not in SMTP_TLS_MODES:
            self._problem("smtp_tls", f"must be one of: {', '.join(SMTP_TLS_MODES)}, not {_shown(tls)}")
        elif tls == "none" and isinstance(host, str) and not is_loopback(host):
            self._problem("smtp_tls", f"plaintext SMTP is allowed only to a loopback host, not {host}; use "
                                      "\"starttls\" or \"implicit\"")
        username, password = entry.get("smtp_username"), None
        password_file = entry.get("smtp_password_file")
        if (username is None) != (password_file is None):
            self._problem("smtp_username", "give smtp_username and smtp_password_file together (or neither)")
        elif username is not None:
            if not isinstance(username, str) or not username:
                self._problem("smtp_username", f"must be a non-empty string, not {_shown(username)}")
            password = self._password(password_file)
        return dict(to=addresses, smtp_host=host, smtp_port=port, sender=sender, smtp_tls=tls,
                    smtp_username=username, smtp_password=password)

    def _password(self, value: object) -> str | None:
        """The SMTP password from its file: owner-only permissions, read at load, never logged."""
        if not isinstance(value, str) or not value:
            self._problem("smtp_password_file", f"must be a file path, not {_shown(value)}")
            return None
        path = Path(value)
        try:
            mode = path.stat().st_mode
            password = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            self._problem("smtp_password_file", f"cannot read {value}: {error.strerror}")
            return None
        except UnicodeDecodeError:
            self._problem("smtp_password_file", f"{value} is not a text file (not valid UTF-8)")
            return None
        if mode & 0o077:
            self._problem("smtp_password_file", f"{value} is readable by group or others; chmod 600 {value}")
            return None
        if not password:
            self._problem("smtp_password_file", f"{value} is empty")
            return None
        return password


def _shown(value: object) -> str:
    """A value from the file as it reads in TOML terms, for an error message."""
    kinds = {bool: "true/false", str: "a string", int: "a number", float: "a number", list: "a list",
             dict: "a table"}
    kind = next((k for t, k in kinds.items() if isinstance(value, t)), type(value).__name__)
    text = repr(value)
    return f"{text if len(text) <= 40 else text[:37] + '...'} ({kind})"
