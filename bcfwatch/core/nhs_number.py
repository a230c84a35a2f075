"""NHS numbers: the Modulus 11 check (one value or a whole column) and redaction from free text.

The check lives here only: :func:`check_digit` for one number written as text (the contract, replay),
:func:`check_digits` / :func:`passes_check` for whole columns of numbers (the columnar log reader) and
:func:`valid_nhs_numbers` to turn nine-digit prefixes into valid numbers (the synthetic log generator).

Raw NHS numbers stop at the producers; :func:`redact` scrubs them from text that must be kept (dead-letter
records, rejection reasons) and :func:`contains_nhs_number` finds them in free-text identifiers.
"""

from __future__ import annotations

import operator
import re

import numpy as np

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)  # of the first nine digits, most significant first
_WEIGHTS_ARRAY = np.array(_WEIGHTS, dtype=np.int64)
_NINE_PLACES = 10 ** np.arange(8, -1, -1, dtype=np.int64)
NO_CHECK_DIGIT = 10  # what check_digits gives for nine digits no valid NHS number starts with


# Characters the validator (and redaction) treat as separators inside an NHS number. normalise_nhs_number
# accepts spaces and hyphens anywhere; redaction also covers dots and other white space.
_VALIDATOR_SEPARATORS = " -"


# Ten digits written plainly or 3-3-4 with a space, dot or hyphen (redacted whatever their check digit).
_NHS_LIKE = re.compile(r"(?<!\d)\d{3}[\s.\-]?\d{3}[\s.\-]?\d{4}(?!\d)")


# Eleven or more digits (an NHS number with a digit too many, a number glued to another): redacted too.
_LONG_DIGITS = re.compile(r"(?<!\d)\d(?:[\s.\-]{0,3}\d){10,}(?!\d)")


# Ten digits with separators anywhere between them (any form the validator accepts, and dotted ones):
# redacted when they pass the Modulus 11 check, i.e. when they are a valid NHS number.
_SEPARATED_TEN = re.compile(r"(?<!\d)\d(?:[\s.\-]{0,3}\d){9}(?![\d])")


_ASCII_ZERO_TIMES_WEIGHTS = ord("0") * sum(_WEIGHTS)


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits, or None when it would be 10 (invalid)."""
    total: int = sum(map(operator.mul, _WEIGHTS, first_nine.encode())) - _ASCII_ZERO_TIMES_WEIGHTS
    digit = 11 - total % 11
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


def check_digits(first_nine: np.ndarray) -> np.ndarray:
    """:func:`check_digit` of a column: the first nine digits of each number as one integer
    (0..999_999_999) -> its Modulus 11 check digit, :data:`NO_CHECK_DIGIT` (10) where it would be 10."""
    digits = (np.asarray(first_nine, dtype=np.int64)[:, None] // _NINE_PLACES) % 10
    digit = 11 - (digits @ _WEIGHTS_ARRAY) % 11
    check: np.ndarray = np.where(digit == 11, 0, digit)
    return check


def passes_check(numbers: np.ndarray) -> np.ndarray:
    """Whether each ten-digit integer passes the Modulus 11 check (a check digit of 10 never does)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    passes: np.ndarray = check_digits(numbers // 10) == numbers % 10
    return passes


def valid_nhs_numbers(first_nine: np.ndarray) -> np.ndarray:
    """The valid NHS numbers (ten-digit integers) the given nine-digit prefixes start, in order; a prefix
    whose check digit would be 10 gives none and is left out."""
    first_nine = np.asarray(first_nine, dtype=np.int64)
    check = check_digits(first_nine)
    good = check != NO_CHECK_DIGIT
    numbers: np.ndarray = first_nine[good] * 10 + check[good]
    return numbers


def normalise_nhs_number(value: object) -> str:
    """The ten digits of a valid NHS number; ValueError with the reason otherwise (never quoting the value)."""
    text = str(value if value is not None else "").strip()
    for separator in _VALIDATOR_SEPARATORS:
        text = text.replace(separator, "")
    if len(text) != 10 or not text.isascii() or not text.isdigit():
        raise ValueError("NHS number must be 10 digits")
    expected = check_digit(text[:9])
    if expected is None:
        raise ValueError("NHS number is invalid: its Modulus 11 check digit would be 10")
    if int(text[9]) != expected:
        raise ValueError("NHS number fails the Modulus 11 check")
    return text


def is_valid_nhs_number(value: object) -> bool:
    try:
        normalise_nhs_number(value)
    except ValueError:
        return False
    return True


def _valid_if_separated(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[redacted]" if is_valid_nhs_number(digits) else match.group()


def redact(text: str) -> str:
    """Replace anything that looks like an NHS number with [redacted].

    Eleven or more digits, and ten written plainly or 3-3-4 (space, dot or hyphen), are redacted whatever
    their check digit;
    ten digits with spaces, dots or hyphens anywhere between them (every form the validator accepts) are
    redacted when they are a valid NHS number.
    """
    text = _NHS_LIKE.sub("[redacted]", _LONG_DIGITS.sub("[redacted]", text))
    return _SEPARATED_TEN.sub(_valid_if_separated, text)


# In free-text identifiers hyphens commonly join a prefix to a sequence number ("g1-000000123"), so there a
# number is looked for written plainly, 3-3-4 (runs of spaces, dots or hyphens) or with spaces/dots anywhere.
_FREE_TEXT_NHS = (re.compile(r"(?<!\d)\d{3}[\s.\-]*\d{3}[\s.\-]*\d{4}(?!\d)"),
                  re.compile(r"(?<!\d)\d(?:[\s.]{0,3}\d){9}(?!\d)"))


# Either pattern anywhere: most identifiers hold neither, and one search says so (the worker checks every event's).
# The two written with their common first digit taken out (the same matches; a third faster on identifiers full
# of digits, tests/unit/core/test_nhs_number.py holds them equal).
_FREE_TEXT_CANDIDATE = re.compile(r"(?<!\d)\d(?:\d{2}[\s.\-]*\d{3}[\s.\-]*\d{4}|(?:[\s.]{0,3}\d){9})(?!\d)")


def may_contain_nhs_number(texts: list[str]) -> bool:
    """Whether any of ``texts`` might hold an NHS number: one search over them all, joined by a character that is
    neither a digit nor a separator (so no candidate spans two). False means :func:`contains_nhs_number` is False
    for every one of them (the worker asks it of a packed record's identifiers at once)."""
    return _FREE_TEXT_CANDIDATE.search("|".join(texts)) is not None


def contains_nhs_number(text: str) -> bool:
    """Whether free text holds a valid NHS number written plainly, 3-3-4, or with spaces or dots anywhere."""
    if not _FREE_TEXT_CANDIDATE.search(text):
        return False
    for match in (m for pattern in _FREE_TEXT_NHS for m in pattern.finditer(text)):
        if is_valid_nhs_number(re.sub(r"\D", "", match.group())):
            return True
    return False
