import base64
import hashlib
import secrets

import numpy as np
import pytest

from bcfwatch.core.nhs_number import (
    NO_CHECK_DIGIT,
    check_digit,
    check_digits,
    contains_nhs_number,
    is_valid_nhs_number,
    normalise_nhs_number,
    passes_check,
    redact,
    valid_nhs_numbers,
)
from producers.pseudonym import Pseudonymiser, PseudonymKeyError, load_key

VALID = "9434765919"  # the NHS's published example of a valid number
# Every form of one valid number the validator accepts (spaces/hyphens anywhere), and dotted ones.
ACCEPTED_FORMS = ["9434765919", "943 476 5919", "943-476-5919", "943.476.5919", " 943 476 5919 ", "943-4765919",
                  "9 4 3 4 7 6 5 9 1 9", "94-34-76-59-19", "943  476  5919", "943 - 476 - 5919", "943\t476\t5919"]


def _prefix_with_remainder(remainder: int) -> str:
    """A nine-digit prefix whose weighted sum mod 11 is ``remainder`` (found by search, not by hand)."""
    for n in range(100_000_000, 100_100_000):
        digits = str(n).zfill(9)
        if sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11 == remainder:
            return digits
    raise AssertionError("no prefix found")


def test_known_valid_number():
    # 943 476 5919 is the NHS's published example of a valid number.
    assert normalise_nhs_number("943 476 5919") == "9434765919"
    assert is_valid_nhs_number("943-476-5919")


def test_check_digit_worked_by_hand():
    # 9*10 + 4*9 + 3*8 + 4*7 + 7*6 + 6*5 + 5*4 + 9*3 + 1*2 = 299; 299 mod 11 = 2; 11 - 2 = 9
    assert check_digit("943476591") == 9


def test_check_digit_eleven_becomes_zero():
    prefix = _prefix_with_remainder(0)
    assert check_digit(prefix) == 0
    assert is_valid_nhs_number(prefix + "0")
    assert not is_valid_nhs_number(prefix + "1")


def test_check_digit_ten_is_invalid_whatever_the_last_digit():
    prefix = _prefix_with_remainder(1)
    assert check_digit(prefix) is None
    assert not any(is_valid_nhs_number(prefix + str(d)) for d in range(10))
    with pytest.raises(ValueError, match="would be 10"):
        normalise_nhs_number(prefix + "0")


def test_column_check_is_the_one_value_check():
    prefixes = np.concatenate([np.random.default_rng(1).integers(0, 1_000_000_000, 20_000),
                               [0, 943476591, int(_prefix_with_remainder(0)), int(_prefix_with_remainder(1))]])
    expected = [check_digit(str(p).zfill(9)) for p in prefixes]
    assert check_digits(prefixes).tolist() == [NO_CHECK_DIGIT if d is None else d for d in expected]
    numbers = valid_nhs_numbers(prefixes)
    assert numbers.tolist() == [p * 10 + d for p, d in zip(prefixes.tolist(), expected, strict=True) if d is not None]
    assert passes_check(numbers).all()
    assert all(is_valid_nhs_number(str(n).zfill(10)) for n in numbers[:2000])
    wrong = prefixes * 10 + (np.array([0 if d is None else d for d in expected]) + 1) % 10
    assert passes_check(wrong).tolist() == [False] * len(wrong)


@pytest.mark.parametrize("value", ["943476591", "94347659190", "943476591X", "", None, "9434765918"])
def test_malformed_numbers_rejected(value):
    assert not is_valid_nhs_number(value)


def test_pseudonym_is_keyed_and_stable():
    one = Pseudonymiser(b"k" * 32)
    assert one.pseudonym("9434765919") == one.pseudonym("943 476 5919")
    assert one.pseudonym("9434765919") != Pseudonymiser(b"j" * 32).pseudonym("9434765919")
    assert "9434765919" not in one.pseudonym("9434765919")
    assert len(one.pseudonym("9434765919")) == 64
    assert "k" * 32 not in repr(one)


def test_missing_key_in_production_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("BCFWATCH_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("BCFWATCH_PSEUDONYM_KEY_FILE", raising=False)
    with pytest.raises(PseudonymKeyError, match="BCFWATCH_PSEUDONYM_KEY"):
        load_key(dev=False)


def test_dev_key_generated_once(monkeypatch, tmp_path):
    monkeypatch.delenv("BCFWATCH_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert load_key(dev=True) == load_key(dev=True)
    assert len(load_key(dev=True)) >= 32


def test_redact_hides_nhs_numbers_in_text():
    assert redact('{"nhs_number": "9434765919", "x": "943 476 5919"}') == \
        '{"nhs_number": "[redacted]", "x": "[redacted]"}'


@pytest.mark.parametrize("form", ACCEPTED_FORMS)
def test_redaction_covers_every_accepted_form(form):
    if "." not in form and "\t" not in form:
        assert normalise_nhs_number(form) == VALID  # the validator accepts it ...
    for text in (form, f"id-{form}", f'{{"event_id": "adm{form}x"}}', f"RX{form}"):
        redacted = redact(text)
        assert "[redacted]" in redacted  # ... and redaction removes it
        assert VALID not in redacted.replace(" ", "").replace("-", "").replace(".", "").replace("\t", "")
        if "-" not in form.strip() or form.count("-") == 2 or "4765919" in form:
            assert contains_nhs_number(text)  # free-text detection: plain, 3-3-4, spaces/dots anywhere


def test_redaction_leaves_other_identifiers_alone():
    assert redact("g1-000000123") == "g1-000000123"
    assert not contains_nhs_number("g1-000000123") and not contains_nhs_number("RX1")
    assert not any(contains_nhs_number(f"g{seed}-{n:09d}") for seed in range(10) for n in range(2000))
    assert not contains_nhs_number("9434765918")  # ten digits failing the check are not an NHS number ...
    assert redact("9434765918") == "[redacted]"  # ... but are still redacted from text that is kept
    assert redact('"nhs_number": "94347659190"') == '"nhs_number": "[redacted]"'  # a digit too many
    assert redact('"nhs_number": "943  476  59190"') == '"nhs_number": "[redacted]"'
    assert redact("2015-06-01T10:00:00+00:00") == "2015-06-01T10:00:00+00:00"


def _clear_key_env(monkeypatch):
    for name in ("BCFWATCH_PSEUDONYM_KEY", "BCFWATCH_PSEUDONYM_KEY_FILE", "BCFWATCH_PSEUDONYM_KEY_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("key", [
    "change-me-to-a-long-random-secret",  # the example value
    "test-key-" + "k" * 32,  # long but low-entropy
    "k" * 64,
    "0" * 64,  # hex of 32 zero bytes
    "ab" * 32,  # hex of a repeated byte
    secrets.token_hex(16),  # random but only 16 bytes
    base64.b64encode(b"changeme" * 5).decode(),  # base64 of a repeated word
    "correct horse battery staple and then some more words",  # neither hex nor base64
])
def test_weak_or_placeholder_keys_refused(monkeypatch, key):
    _clear_key_env(monkeypatch)
    monkeypatch.setenv("BCFWATCH_PSEUDONYM_KEY", key)
    with pytest.raises(PseudonymKeyError, match="token_hex"):
        load_key()


@pytest.mark.parametrize("key", [secrets.token_hex(32), base64.b64encode(secrets.token_bytes(32)).decode(),
                                 base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")])
def test_random_keys_accepted(monkeypatch, key):
    _clear_key_env(monkeypatch)
    monkeypatch.setenv("BCFWATCH_PSEUDONYM_KEY", key)
    assert load_key() == key.encode()


def test_key_file_must_not_be_group_or_world_readable(monkeypatch, tmp_path):
    _clear_key_env(monkeypatch)
    path = tmp_path / "pseudonym.key"
    path.write_text(secrets.token_hex(32) + "\n")
    monkeypatch.setenv("BCFWATCH_PSEUDONYM_KEY_FILE", str(path))
    path.chmod(0o644)
    with pytest.raises(PseudonymKeyError, match="chmod 600"):
        load_key()
    path.chmod(0o600)
    assert len(load_key()) == 64


def test_key_id_in_every_event_tells_keys_apart(monkeypatch):
    _clear_key_env(monkeypatch)
    key = secrets.token_hex(32).encode()
    assert Pseudonymiser(key).key_id == hashlib.sha256(key).hexdigest()[:8]
    assert Pseudonymiser(secrets.token_hex(32).encode()).key_id != Pseudonymiser(key).key_id
    monkeypatch.setenv("BCFWATCH_PSEUDONYM_KEY_ID", "2025-q3")
    assert Pseudonymiser(key).key_id == "2025-q3"
    monkeypatch.setenv("BCFWATCH_PSEUDONYM_KEY_ID", "not ok!")
    with pytest.raises(PseudonymKeyError, match="KEY_ID"):
        Pseudonymiser(key)


def test_events_carry_the_key_id_and_old_messages_still_validate():
    import orjson

    from bcfwatch.core.boards import load_boards
    from bcfwatch.core.events import parse_wire
    from producers.eventlog.logformat import row_to_event

    pseudonymiser = Pseudonymiser(secrets.token_hex(32).encode(), key_id="k1")
    row = {"type": "admission", "event_id": "a1", "board": "E08000025", "occurred_at": "2015-06-01T10:00:00+00:00",
           "nhs_number": VALID, "age": 70, "admission_method": "21", "provider": "RQX"}
    wire = orjson.loads(row_to_event(row, pseudonymiser, load_boards()).to_wire())
    assert wire["key_id"] == "k1"
    del wire["key_id"]
    assert parse_wire(orjson.dumps(wire)).event_id == "a1"


@pytest.mark.parametrize("field", ["event_id", "provider", "admission_id"])
@pytest.mark.parametrize("form", ["9434765919", "943 476 5919", "943.476.5919", "9 4 3 4 7 6 5 9 1 9"])
def test_nhs_numbers_in_free_text_fields_are_rejected_without_quoting_them(field, form):
    from bcfwatch.core.boards import load_boards
    from bcfwatch.core.events import InvalidEvent
    from producers.eventlog.logformat import check_row

    row = {"type": "discharge" if field == "admission_id" else "admission", "event_id": "e1", "board": "E08000025",
           "occurred_at": "2015-06-01T10:00:00+00:00", "nhs_number": "4010232137", "age": 70,
           "admission_method": "21", "provider": "RQX", "discharge_destination": "19", "into_reablement": False}
    row[field] = f"x{form}"
    with pytest.raises(InvalidEvent, match=f"{field} contains what looks like an NHS number") as caught:
        check_row(row, load_boards())
    assert "9434765919" not in str(caught.value).replace(" ", "").replace("-", "").replace(".", "")


def test_rejection_reasons_never_quote_nhs_numbers():
    from bcfwatch.core.events import InvalidEvent, parse_event

    for payload in ({"type": "admission", "board": "943 476 5919"}, {"type": "9434765919"},
                    {"type": "admission", "board": "E08000025", "patient": "0" * 64, "age": 9434765919}):
        with pytest.raises(InvalidEvent) as caught:
            parse_event(payload)
        assert "943" not in str(caught.value), str(caught.value)
