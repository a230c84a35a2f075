"""Subscriptions files: the documented examples load; every mistake seen in issue 11 is caught at load with
the subscriber, the key and the reason, never a traceback and never a secret in the message."""

import base64
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from standardwebhooks.webhooks import Webhook

from monitors.alerting import subscriptions
from monitors.alerting.alerts import Alert, AlertState
from monitors.alerting.subscriptions import Subscriber, SubscriptionError, load_subscriptions
from monitors.rules.drift import Question, Severity
from monitors.rules.spc import Assurance, Variation
from tests.support import REPO

ROOT = REPO
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
WEBHOOK = '''
[[subscriber]]
name = "ops"
channel = "webhook"
url = "{url}"
secret_env = "BCF_TEST_HOOK_SECRET"
'''
EMAIL = '''
[[subscriber]]
name = "commissioners"
boards = "all"
channel = "email"
to = {to}
smtp_host = "127.0.0.1"
smtp_port = {port}
from = "bcfwatch@example.nhs.uk"
'''


@pytest.fixture(autouse=True)
def hook_secret(monkeypatch):
    monkeypatch.setenv("BCF_TEST_HOOK_SECRET", SECRET)
    monkeypatch.setenv("BIRMINGHAM_HOOK_SECRET", SECRET)


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "subscriptions.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def problems(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(SubscriptionError) as error:
        load_subscriptions(path)
    assert str(path) in str(error.value)
    return error.value.problems


def only_problem(path: Path) -> tuple[str, str]:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


# -- valid files still load ----------------------------------------------------------------------------------
def test_the_documented_example_loads(tmp_path):
    docs = (ROOT / "docs" / "subscriptions.md").read_text()
    example = re.search(r"```toml\n(.*?)```", docs, re.S).group(1)
    loaded = load_subscriptions(write(tmp_path, example))
    assert [(s.name, s.channel) for s in loaded] == [("birmingham-lead", "webhook"), ("commissioners", "email")]
    lead, commissioners = loaded
    assert lead.boards == {"E08000025"} and lead.metrics is None and lead.secret == SECRET
    assert lead.url == "https://example.nhs.uk/bcf-hook"
    assert commissioners.boards is None and commissioners.to == ("bcf-ops@example.nhs.uk",)
    assert (commissioners.smtp_host, commissioners.smtp_port, commissioners.sender) == \
        ("127.0.0.1", 25, "bcfwatch@example.nhs.uk")


def test_the_module_docstring_example_loads(tmp_path):
    example = "\n".join(line[4:] for line in subscriptions.__doc__.splitlines() if line.startswith("    "))
    assert [s.name for s in load_subscriptions(write(tmp_path, example))] == ["birmingham-lead", "commissioners"]


def test_a_loaded_secret_signs_the_way_delivery_signs(tmp_path):
    (subscriber,) = load_subscriptions(write(tmp_path, WEBHOOK.format(url="http://127.0.0.1:8080/hook")))
    now = datetime.now(UTC)
    signature = Webhook(subscriber.secret).sign("ops:1", now, "{}")
    headers = {"webhook-id": "ops:1", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    assert Webhook(SECRET).verify("{}", headers) == {}


def test_secret_from_a_file_and_unpadded_base64(tmp_path):
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(SECRET.rstrip("=") + "\n")
    text = WEBHOOK.format(url="https://example.nhs.uk/hook").replace(
        'secret_env = "BCF_TEST_HOOK_SECRET"', f'secret_file = "{secret_file}"')
    (subscriber,) = load_subscriptions(write(tmp_path, text))
    assert subscriber.secret == SECRET.rstrip("=")


@pytest.mark.parametrize("url", ["https://example.nhs.uk/hook", "HTTPS://example.nhs.uk:8443/hook?x=1",
                                 "http://127.0.0.1:9000/hook", "http://127.5.6.7/hook", "http://[::1]:8080/hook",
                                 "http://localhost:8080/hook", "http://LOCALHOST/hook"])
def test_webhook_urls_that_load(tmp_path, url):
    (subscriber,) = load_subscriptions(write(tmp_path, WEBHOOK.format(url=url)))
    assert subscriber.url == url


def test_a_board_list_and_metrics_load(tmp_path):
    text = WEBHOOK.format(url="https://example.nhs.uk/hook").replace(
        'channel = "webhook"', 'channel = "webhook"\nboards = ["E08000025", "E09000012"]\n'
                               'metrics = ["emergency_admissions", "delayed_days"]')
    (subscriber,) = load_subscriptions(write(tmp_path, text))
    assert subscriber.boards == {"E08000025", "E09000012"}
    assert subscriber.metrics == {"emergency_admissions", "delayed_days"}
    assert subscriber.wants(_alert("E09000012", "delayed_days"))
    assert not subscriber.wants(_alert("E08000026", "delayed_days"))
    assert not subscriber.wants(_alert("E09000012", "care_home_admissions_65"))


def test_questions_default_to_the_plan_number_and_all_adds_the_underlying_rate(tmp_path):
    plain = WEBHOOK.format(url="https://example.nhs.uk/hook")
    (default,) = load_subscriptions(write(tmp_path, plain))
    assert default.wants(_alert("E09000012", "emergency_admissions"))
    assert not default.wants(_alert("E09000012", "emergency_admissions", Question.UNDERLYING_RATE))
    (every,) = load_subscriptions(write(tmp_path, plain.replace('channel = "webhook"',
                                                                'channel = "webhook"\nquestions = "all"')))
    assert every.wants(_alert("E09000012", "emergency_admissions", Question.UNDERLYING_RATE))
    with pytest.raises(SubscriptionError, match=r"questions.*underlying_rates"):
        load_subscriptions(write(tmp_path, plain.replace(
            'channel = "webhook"', 'channel = "webhook"\nquestions = ["underlying_rates"]')))


def _alert(board: str, metric: str, question: Question = Question.PLAN_NUMBER) -> Alert:
    return Alert(event_id="a1-1", alert_id="a1", sequence=1, state=AlertState.RAISED, severity=Severity.WARNING,
                 board=board, metric=metric, question=question, as_of=date(2015, 6, 28), actual=0.0, planned=0.0,
                 variance_pct=0.0, z=0.0, spc_rules=(), spc_variation=Variation.COMMON_CAUSE,
                 assurance=Assurance.HIT_AND_MISS, projected_year_end=0.0, planned_year_end=0.0, money_at_risk_gbp=0.0)


def test_known_metrics_are_the_ones_alerts_are_raised_on():
    from monitors.alerting.topic_schemas import METRICS
    from monitors.rules.drift import METRIC
    from monitors.rules.plan_metrics import PlanMetric

    assert set(subscriptions.METRICS) == {METRIC, *PlanMetric} == set(METRICS)  # reablement_91d among them


# -- the cases seen in issue 11 ------------------------------------------------------------------------------
def test_to_as_a_string_is_one_address(tmp_path):
    (subscriber,) = load_subscriptions(write(tmp_path, EMAIL.format(to='"lead@example.nhs.uk"', port=25)))
    assert subscriber.to == ("lead@example.nhs.uk",)


def test_to_a_at_b_is_reported_as_one_implausible_address_not_split(tmp_path):
    where, reason = only_problem(write(tmp_path, EMAIL.format(to='"a@b"', port=25)))
    assert where == "subscriber 1 'commissioners' (line 2), to"
    assert reason == "'a@b' is not an e-mail address (name@example.nhs.uk)"


def test_a_single_subscriber_table_is_a_typo_for_an_array_of_tables(tmp_path):
    text = EMAIL.format(to='"lead@example.nhs.uk"', port=25).replace("[[subscriber]]", "[subscriber]")
    assert only_problem(write(tmp_path, text)) == \
        ("[subscriber]", "write [[subscriber]] (double brackets), once for each subscriber")


@pytest.mark.parametrize("table", ["[subscribers]", "[[subscribers]]", "[[Subscriber]]"])
def test_unknown_top_level_tables_are_named_with_a_suggestion(tmp_path, table):
    text = EMAIL.format(to='"lead@example.nhs.uk"', port=25).replace("[[subscriber]]", table)
    name = table.strip("[]")
    assert ("", f"unknown table {name!r}; did you mean 'subscriber'?") in problems(write(tmp_path, text))


def test_unknown_top_level_key(tmp_path):
    text = "smtp_port = 25\n" + EMAIL.format(to='"lead@example.nhs.uk"', port=25)
    assert only_problem(write(tmp_path, text)) == ("", "unknown key 'smtp_port'; known: subscriber")


@pytest.mark.parametrize(("port", "reason"), [
    ('"twenty-five"', "must be a whole number from 1 to 65535, not 'twenty-five' (a string) "
                      "(write the number without quotes)"),
    ('"25"', "must be a whole number from 1 to 65535, not '25' (a string) (write the number without quotes)"),
    ("0", "must be a whole number from 1 to 65535, not 0 (a number)"),
    ("65536", "must be a whole number from 1 to 65535, not 65536 (a number)"),
    ("25.0", "must be a whole number from 1 to 65535, not 25.0 (a number)"),
    ("true", "must be a whole number from 1 to 65535, not True (true/false)"),
])
def test_smtp_port_must_be_a_port_number(tmp_path, port, reason):
    where, why = only_problem(write(tmp_path, EMAIL.format(to='"lead@example.nhs.uk"', port=port)))
    assert (where, why) == ("subscriber 1 'commissioners' (line 2), smtp_port", reason)


def test_a_file_that_is_not_utf8_names_line_and_column(tmp_path):
    text = EMAIL.format(to='"lead@example.nhs.uk"', port=25).encode().replace(b'"commissioners"', b'"comm\xe9"')
    assert only_problem(write(tmp_path, text)) == \
        ("line 3, column 13", "not valid UTF-8 (byte 0xe9); TOML files are UTF-8")  # name = "comm<here>


def test_invalid_toml_names_the_position(tmp_path):
    where, reason = only_problem(write(tmp_path, '[[subscriber]]\nname = "ops\n'))
    assert where == "" and reason.startswith("not valid TOML: ") and "line 2" in reason


def test_a_byte_order_mark_is_ignored(tmp_path):
    text = b"\xef\xbb\xbf" + EMAIL.format(to='"lead@example.nhs.uk"', port=25).encode()
    assert [s.name for s in load_subscriptions(write(tmp_path, text))] == ["commissioners"]


@pytest.mark.parametrize(("secret", "reason"), [
    ("whsec_not base64!!", "is not valid base64 after whsec_"),
    ("whsec_abcde", "is not valid base64 after whsec_"),
    ("whsec_" + base64.b64encode(b"k" * 16).decode(), "is 16 bytes long; a webhook secret needs at least 24"),
    (base64.b64encode(b"k" * 32).decode(), "does not start with whsec_"),
    ("whsec_", "is 0 bytes long"),
])
def test_webhook_secrets_are_decoded_and_checked_at_load(tmp_path, monkeypatch, secret, reason):
    monkeypatch.setenv("BCF_TEST_HOOK_SECRET", secret)
    with pytest.raises(SubscriptionError) as error:
        load_subscriptions(write(tmp_path, WEBHOOK.format(url="https://example.nhs.uk/hook")))
    (where, why), = error.value.problems
    assert where == "subscriber 1 'ops' (line 2), secret_env"
    assert why.startswith("the secret in the environment variable BCF_TEST_HOOK_SECRET ") and reason in why
    assert secret[6:] not in str(error.value) or not secret[6:]


def test_a_secret_that_was_accepted_before_and_failed_every_send(tmp_path, monkeypatch):
    secret = "whsec_abcde"  # standardwebhooks raises binascii.Error on every sign: minutes of retries
    with pytest.raises(Exception):  # noqa: B017 - whatever the library raises at send time
        Webhook(secret).sign("ops:1", datetime.now(UTC), "{}")
    monkeypatch.setenv("BCF_TEST_HOOK_SECRET", secret)
    with pytest.raises(SubscriptionError, match="not valid base64"):
        load_subscriptions(write(tmp_path, WEBHOOK.format(url="https://example.nhs.uk/hook")))


@pytest.mark.parametrize(("url", "reason"), [
    ("http://example.nhs.uk/hook", "uses http to example.nhs.uk, which is not a loopback host; use https"),
    ("http://10.0.0.1/hook", "which is not a loopback host"),
    ("http://128.0.0.1/hook", "which is not a loopback host"),
    ("http://localhost.example.com/hook", "which is not a loopback host"),
    ("ftp://example.nhs.uk/hook", "must start with https://"),
    ("example.nhs.uk/hook", "must start with https://"),
    ("https:///hook", "has no host"),
    ("https://example.nhs.uk:99999/hook", "has a bad port or host"),
    ("https://user:pass@example.nhs.uk/hook", "must not carry a user name or password"),
    ("https://example.nhs.uk/bcf hook", "contains spaces"),
])
def test_webhook_url_schemes_are_restricted(tmp_path, url, reason):
    where, why = only_problem(write(tmp_path, WEBHOOK.format(url=url)))
    assert where == "subscriber 1 'ops' (line 2), url" and reason in why
    assert "pass" not in why or "password" in why


def test_unknown_and_misplaced_keys_in_a_subscriber(tmp_path):
    text = EMAIL.format(to='"lead@example.nhs.uk"', port=25) + 'smtp-port = 26\nurl = "https://x.nhs.uk"\n'
    found = problems(write(tmp_path, text))
    assert ("subscriber 1 'commissioners' (line 2)", "unknown key 'smtp-port'; did you mean 'smtp_port'?") in found
    assert ("subscriber 1 'commissioners' (line 2), url", "does not apply to an email subscriber") in found


def test_board_codes_must_be_known(tmp_path):
    text = WEBHOOK.format(url="https://example.nhs.uk/hook") + 'boards = ["E08000025", "E99999999", "E06000053"]\n'
    found = problems(write(tmp_path, text))
    where = "subscriber 1 'ops' (line 2), boards"
    assert found == [
        (where, "E06000053 plans jointly under E06000052; use E06000052"),
        (where, "'E99999999' is not a health and wellbeing board code (`bcfwatch boards` lists them)"),
    ]


@pytest.mark.parametrize(("line", "reason"), [
    ('boards = "E08000025"', 'must be "all" or a list of board codes'),
    ("boards = []", "is an empty list"),
    ("boards = [25]", 'must be "all" or a list of board codes'),
    ('metrics = ["emergency_admision"]', "unknown metric 'emergency_admision'; did you mean 'emergency_admissions'?"),
    ('metrics = "everything"', 'must be "all" or a list of metrics'),
])
def test_board_and_metric_selections_are_typed(tmp_path, line, reason):
    where, why = only_problem(write(tmp_path, WEBHOOK.format(url="https://example.nhs.uk/hook") + line + "\n"))
    assert where.startswith("subscriber 1 'ops' (line 2), ") and reason in why


@pytest.mark.parametrize(("edit", "key", "reason"), [
    (("bcfwatch@example.nhs.uk", "bcfwatch at example"), "from", "is not an e-mail address"),
    (('"127.0.0.1"', '"mail host"'), "smtp_host", "must be a host name or IP address"),
    (('to = "lead@example.nhs.uk"', "to = []"), "to", "must be an address or a non-empty list"),
    (('to = "lead@example.nhs.uk"', "to = 5"), "to", "must be an address or a non-empty list"),
    (('to = "lead@example.nhs.uk"', 'to = ["ok@example.nhs.uk", "lead @example.nhs.uk"]'), "to",
     "'lead @example.nhs.uk' is not an e-mail address"),
    (('to = "lead@example.nhs.uk"', ""), "to", "is missing"),
    (('channel = "email"', 'channel = "sms"'), "channel", "must be one of: webhook, email, not 'sms'"),
    (('name = "commissioners"', 'name = "comm issioners"'), "name", "must be letters, digits"),
])
def test_email_fields_are_typed(tmp_path, edit, key, reason):
    text = EMAIL.format(to='"lead@example.nhs.uk"', port=25).replace(*edit)
    found = problems(write(tmp_path, text))
    assert any(where.endswith(f", {key}") and reason in why for where, why in found), found


def test_every_problem_in_every_subscriber_is_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("BCF_TEST_HOOK_SECRET")
    text = (WEBHOOK.format(url="http://example.nhs.uk/hook") + EMAIL.format(to='"a@b"', port='"x"')
            + EMAIL.format(to='"c@example.nhs.uk"', port=25))
    with pytest.raises(SubscriptionError) as error:
        load_subscriptions(write(tmp_path, text))
    assert [where for where, _ in error.value.problems] == [
        "subscriber 1 'ops' (line 2), url", "subscriber 1 'ops' (line 2), secret_env",
        "subscriber 2 'commissioners' (line 8), to", "subscriber 2 'commissioners' (line 8), smtp_port",
        "subscriber 3 'commissioners' (line 17), name"]
    assert "already used by subscriber 2 'commissioners' (line 8)" in error.value.problems[-1][1]
    assert str(error.value).startswith(f"{tmp_path / 'subscriptions.toml'}: 5 problems\n  subscriber 1 'ops'")


def test_webhook_needs_exactly_one_secret_source(tmp_path):
    text = WEBHOOK.format(url="https://example.nhs.uk/hook")
    assert only_problem(write(tmp_path, text.replace('secret_env = "BCF_TEST_HOOK_SECRET"', ""))) == \
        ("subscriber 1 'ops' (line 2)", "a webhook needs secret_env or secret_file")
    assert only_problem(write(tmp_path, text + 'secret_file = "/x"\n')) == \
        ("subscriber 1 'ops' (line 2), secret_file", "give secret_env or secret_file, not both")
    where, why = only_problem(write(tmp_path, text.replace("BCF_TEST_HOOK_SECRET", "BCF_TEST_UNSET_SECRET")))
    assert why == "the environment variable BCF_TEST_UNSET_SECRET is not set"
    binary = tmp_path / "binary.secret"
    binary.write_bytes(b"\xff\xfe")
    where, why = only_problem(write(tmp_path, text.replace('secret_env = "BCF_TEST_HOOK_SECRET"',
                                                           f'secret_file = "{binary}"')))
    assert where.endswith("secret_file") and "not a text file" in why


def test_an_empty_file_has_nobody_to_deliver_to(tmp_path):
    assert only_problem(write(tmp_path, "# nothing yet\n")) == \
        ("", "no [[subscriber]] tables: there is nobody to deliver alerts to")


def test_an_unreadable_file(tmp_path):
    assert only_problem(tmp_path / "missing.toml") == ("", "cannot read the file: No such file or directory")


def test_subscription_error_is_still_a_value_error_and_keeps_one_line_for_one_problem(tmp_path):
    error = SubscriptionError(tmp_path / "s.toml", [("subscriber 1, url", "has no host")])
    assert isinstance(error, ValueError) and str(error) == f"{tmp_path / 's.toml'}: subscriber 1, url: has no host"


def test_notify_prints_the_problems_and_exits_1_without_a_traceback(tmp_path, monkeypatch):
    from bcfwatch import cli
    from bcfwatch.infra import kafka as infra_kafka

    monkeypatch.setattr(infra_kafka, "require_broker", lambda bootstrap: None)  # no broker needed to fail early
    path = write(tmp_path, EMAIL.format(to='"a@b"', port='"twenty-five"'))
    result = CliRunner().invoke(cli.main, ["notify", "--subscriptions", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "'a@b' is not an e-mail address" in result.output and "smtp_port" in result.output
    assert "Traceback" not in result.output


def test_subscriber_is_unchanged_for_callers_that_build_one():
    subscriber = Subscriber("demo-ops", None, None, "webhook", url="http://127.0.0.1:1/", secret=SECRET)
    assert SECRET not in repr(subscriber)
