"""NHS number validation (Modulus 11) and keyed pseudonymisation (HMAC-SHA256).

Raw NHS numbers stop here: producers turn them into pseudonyms before anything
reaches Kafka, and :func:`redact` scrubs them from text that must be kept
(dead-letter records of lines that could not be parsed).
"""

from __future__ import annotations

import hashlib
import hmac
import operator
import os
import re
import secrets
from pathlib import Path

KEY_ENV = "BCFWATCH_PSEUDONYM_KEY"
KEY_FILE_ENV = "BCFWATCH_PSEUDONYM_KEY_FILE"
_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
# Ten digits, optionally written 3-3-4 with spaces or hyphens.
_NHS_LIKE = re.compile(r"(?<!\d)\d{3}[ -]?\d{3}[ -]?\d{4}(?!\d)")


class PseudonymKeyError(RuntimeError):
    """No usable pseudonymisation key was configured."""


_ASCII_ZERO_TIMES_WEIGHTS = ord("0") * sum(_WEIGHTS)


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits, or None when it would be 10 (invalid)."""
    total = sum(map(operator.mul, _WEIGHTS, first_nine.encode())) - _ASCII_ZERO_TIMES_WEIGHTS
    digit = 11 - total % 11
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


def normalise_nhs_number(value: object) -> str:
    """The ten digits of a valid NHS number; ValueError with the reason otherwise."""
    text = str(value if value is not None else "").strip().replace(" ", "").replace("-", "")
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


class Pseudonymiser:
    """Keyed HMAC-SHA256 of the normalised NHS number, as 64 hex characters."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise PseudonymKeyError("the pseudonymisation key must be at least 16 bytes")
        self._key = key

    @property
    def key(self) -> bytes:
        return self._key

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymiser(key=<hidden>)"

    def pseudonym(self, nhs_number: object) -> str:
        digits = normalise_nhs_number(nhs_number)
        return hmac.new(self._key, digits.encode(), hashlib.sha256).hexdigest()


def dev_key_path() -> Path:
    from bcfwatch.broker import cache_dir

    return cache_dir() / "dev-pseudonym.key"


def load_key(dev: bool = False) -> bytes:
    """The key from BCFWATCH_PSEUDONYM_KEY or BCFWATCH_PSEUDONYM_KEY_FILE.

    With ``dev=True`` (the demo and tests) a random key is generated once and kept
    in the cache directory when none is configured.
    """
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode()
    if os.environ.get(KEY_FILE_ENV):
        path = Path(os.environ[KEY_FILE_ENV])
        try:
            return path.read_bytes().strip()
        except OSError as error:
            raise PseudonymKeyError(f"cannot read the pseudonymisation key file {path}: {error.strerror}") from None
    if dev:
        path = dev_key_path()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_bytes().strip()
    raise PseudonymKeyError(
        f"no pseudonymisation key: set {KEY_ENV} or {KEY_FILE_ENV} "
        "(or pass --dev-key to use a generated development key)"
    )


def redact(text: str) -> str:
    """Replace anything that looks like an NHS number with [redacted]."""
    return _NHS_LIKE.sub("[redacted]", text)
