import pytest

from producers.pseudonym import (
    Pseudonymiser,
    PseudonymKeyError,
    check_digit,
    is_valid_nhs_number,
    load_key,
    normalise_nhs_number,
    redact,
)


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
