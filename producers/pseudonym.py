"""NHS number validation (Modulus 11) and keyed pseudonymisation (HMAC-SHA256).

Raw NHS numbers stop here: producers turn them into pseudonyms before anything
reaches Kafka, and :func:`redact` scrubs them from text that must be kept
(dead-letter records of lines that could not be parsed, rejection reasons).

Keys (docs/security.md): at least 32 random bytes written as hex or base64, from
``BCFWATCH_PSEUDONYM_KEY`` or a file named by ``BCFWATCH_PSEUDONYM_KEY_FILE`` that
only its owner can read. Placeholders and low-entropy strings are refused
(:class:`PseudonymKeyError`). Every event carries the key's id (``key_id``: the first
8 hex digits of SHA-256 of the key, or ``BCFWATCH_PSEUDONYM_KEY_ID``) so a rotated
key's pseudonyms can be told apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import stat
import zlib
from collections.abc import Iterable
from pathlib import Path

from bcfwatch.core.events import KEY_ID
from bcfwatch.core.nhs_number import normalise_nhs_number

KEY_ENV = "BCFWATCH_PSEUDONYM_KEY"
KEY_FILE_ENV = "BCFWATCH_PSEUDONYM_KEY_FILE"
KEY_ID_ENV = "BCFWATCH_PSEUDONYM_KEY_ID"
MIN_KEY_BYTES = 32
# Example and placeholder values that must never be used as keys (compared case-insensitively).
PLACEHOLDER_KEYS = frozenset({"change-me-to-a-long-random-secret", "change-me", "changeme", "secret", "..."})
GENERATE_HINT = "generate one with: python3 -c 'import secrets; print(secrets.token_hex(32))'"


class PseudonymKeyError(RuntimeError):
    """No usable pseudonymisation key was configured."""










def key_id_for(key: bytes) -> str:
    """The key's id: ``BCFWATCH_PSEUDONYM_KEY_ID`` if set, else the first 8 hex digits of SHA-256 of the key."""
    explicit = os.environ.get(KEY_ID_ENV, "").strip()
    if explicit:
        if not KEY_ID.match(explicit):
            raise PseudonymKeyError(f"{KEY_ID_ENV} must be 1-32 letters, digits, '.', '_' or '-'")
        return explicit
    return hashlib.sha256(key).hexdigest()[:8]


class Pseudonymiser:
    """Keyed HMAC-SHA256 of the normalised NHS number, as 64 hex characters."""

    def __init__(self, key: bytes, key_id: str | None = None) -> None:
        if len(key) < 16:
            raise PseudonymKeyError("the pseudonymisation key must be at least 16 bytes")
        self._key = key
        self.key_id = key_id or key_id_for(key)

    @property
    def key(self) -> bytes:
        return self._key

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymiser(key=<hidden>)"

    def pseudonym(self, nhs_number: object) -> str:
        return self.pseudonyms_of_digits([normalise_nhs_number(nhs_number)])[0]

    def pseudonyms_of_digits(self, numbers: Iterable[str]) -> list[str]:
        """The pseudonyms of NHS numbers already normalised to their ten digits (the bulk replay's way)."""
        key = self._key
        return [hmac.digest(key, digits.encode(), "sha256").hex() for digits in numbers]


def dev_key_path() -> Path:
    from bcfwatch.core.settings import cache_dir

    return cache_dir() / "dev-pseudonym.key"


def key_material(text: str) -> bytes:
    """The random bytes a key's text encodes (hex or base64, standard or URL-safe); PseudonymKeyError if neither."""
    compact = text.strip()
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", compact):
        return bytes.fromhex(compact)
    if re.fullmatch(r"[A-Za-z0-9+/_-]+={0,2}", compact):
        padded = compact + "=" * (-len(compact) % 4)
        try:
            return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            pass
    raise PseudonymKeyError(f"the pseudonymisation key is neither hex nor base64: it must encode at least "
                            f"{MIN_KEY_BYTES} random bytes; {GENERATE_HINT}")


def check_key(key: bytes) -> bytes:
    """Refuse placeholder, short or low-entropy keys; return the key unchanged when it is usable."""
    text = key.decode("utf-8", errors="replace").strip()
    if text.lower() in PLACEHOLDER_KEYS or "change-me" in text.lower() or "changeme" in text.lower():
        raise PseudonymKeyError(f"the pseudonymisation key is the example placeholder; {GENERATE_HINT}")
    material = key_material(text)
    if len(material) < MIN_KEY_BYTES:
        raise PseudonymKeyError(f"the pseudonymisation key encodes {len(material)} bytes; at least {MIN_KEY_BYTES} "
                                f"random bytes are required; {GENERATE_HINT}")
    # Random bytes neither repeat much nor compress; a typed or patterned "key" does one or the other.
    if len(set(material)) < len(material) // 2 or len(zlib.compress(material, 9)) < len(material) * 0.9:
        raise PseudonymKeyError(f"the pseudonymisation key has too little entropy (repeated or patterned bytes); "
                                f"{GENERATE_HINT}")
    return key


def check_key_file(path: Path) -> None:
    """A key file must belong to its reader alone: refuse one its group or others may read."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise PseudonymKeyError(f"cannot read the pseudonymisation key file {path}: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PseudonymKeyError(f"the pseudonymisation key file {path} is readable by its group or others "
                                f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`")


def load_key(dev: bool = False) -> bytes:
    """The key from BCFWATCH_PSEUDONYM_KEY or BCFWATCH_PSEUDONYM_KEY_FILE, checked (:func:`check_key`).

    With ``dev=True`` (the demo and tests) a random key is generated once and kept
    in the cache directory (mode 0600) when none is configured.
    """
    if os.environ.get(KEY_ENV):
        return check_key(os.environ[KEY_ENV].strip().encode())
    if os.environ.get(KEY_FILE_ENV):
        path = Path(os.environ[KEY_FILE_ENV])
        check_key_file(path)
        try:
            return check_key(path.read_bytes().strip())
        except OSError as error:
            raise PseudonymKeyError(f"cannot read the pseudonymisation key file {path}: {error.strerror}") from None
    if dev:
        path = dev_key_path()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
        check_key_file(path)
        return check_key(path.read_bytes().strip())
    raise PseudonymKeyError(
        f"no pseudonymisation key: set {KEY_ENV} or {KEY_FILE_ENV} "
        "(or pass --dev-key to use a generated development key)"
    )








