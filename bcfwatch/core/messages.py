"""Messages other than events: the one error type for a message that fails its topic's schema, the field
checkers every topic schema is built from, and the dead-letter record (one shape for every service).

A failure raises :class:`InvalidMessage` with a machine-readable ``reason_code`` and a sentence;
:func:`invalid_message_record` turns it into the dead-letter message, which carries the source topic, partition
and offset (a reader drops repeats by them) and the raw message with anything that looks like an NHS number
redacted. Events that break the contract (:class:`~bcfwatch.core.events.InvalidEvent`, from the replay or the
worker) are dead-lettered in the same shape: :func:`dead_letter_fields` builds every dead-letter record.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import cache
from typing import Any, overload

import orjson

from bcfwatch.core.boards import load_boards
from bcfwatch.core.events import InvalidEvent
from bcfwatch.core.nhs_number import redact

log = logging.getLogger(__name__)


RAW_LIMIT = 4_096  # characters of a bad message kept in its dead-letter record


class SchemaReason(StrEnum):
    NOT_JSON = "not_json"
    INVALID_KEY = "invalid_key"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_BOARD = "unknown_board"


class InvalidMessage(ValueError):
    """A message that breaks its topic's schema; ``reason_code`` says how, ``str()`` says where."""

    def __init__(self, reason_code: SchemaReason, detail: str) -> None:
        super().__init__(redact(detail))  # a bad field may quote what looks like an NHS number
        self.reason_code = reason_code


# -- small checks ----------------------------------------------------------------------------------------
def json_object(value: bytes | None, what: str) -> dict[str, Any]:
    if value is None:
        raise InvalidMessage(SchemaReason.MISSING_FIELD, f"{what}: the message has no value")
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise InvalidMessage(SchemaReason.NOT_JSON, f"{what}: not JSON ({error})") from None
    if not isinstance(decoded, dict):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, f"{what}: expected a JSON object, got {type(decoded).__name__}")
    return decoded


def require_fields(document: dict[str, Any], what: str, required: set[str],
                   optional: frozenset[str] = frozenset()) -> None:
    missing = sorted(required - document.keys())
    if missing:
        raise InvalidMessage(SchemaReason.MISSING_FIELD, f"{what}: missing {', '.join(missing)}")
    unknown = sorted(document.keys() - required - optional)
    if unknown:
        raise InvalidMessage(SchemaReason.UNKNOWN_FIELD, f"{what}: unknown field(s) {', '.join(unknown[:5])}")


def integer_field(value: Any, what: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, f"{what}: expected an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"{what}: {value} is below {minimum}")
    return value


def number_field(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, f"{what}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"{what}: not a finite number")
    return float(value)


def string_field(value: Any, what: str, pattern: re.Pattern[str] | None = None,
            choices: frozenset[str] | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, f"{what}: expected a string, got {type(value).__name__}")
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"{what}: {value[:40]!r} is not of the expected form")
    if choices is not None and value not in choices:
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"{what}: {value[:40]!r} is not one of {sorted(choices)}")
    return value


def iso_date_field(value: Any, what: str) -> date:
    text = string_field(value, what, ISO_DATE)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"{what}: {text!r} is not a calendar date") from None


def board_field(value: Any, what: str) -> str:
    code = string_field(value, what)
    if code not in _plan_boards():
        raise InvalidMessage(SchemaReason.UNKNOWN_BOARD, f"{what}: {code[:40]!r} is not a BCF plan board")
    return code


@cache
def _plan_boards() -> frozenset[str]:
    return frozenset(load_boards().codes)


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# -- dead letters ----------------------------------------------------------------------------------------
@overload
def _shown(raw: bytes) -> str: ...
@overload
def _shown(raw: bytes | None) -> str | None: ...
def _shown(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return redact(raw[:RAW_LIMIT].decode("utf-8", "replace"))


def dead_letter_fields(source: str, error: InvalidEvent | InvalidMessage, raw: str | None,
                       **where: object) -> dict[str, Any]:
    """The one dead-letter shape, for every service and every kind of failure.

    ``source`` is the service that rejected it; ``reason`` the error's sentence and ``reason_code`` its typed
    reason (:class:`~bcfwatch.core.events.Reason` for an event that breaks the contract, :class:`SchemaReason`
    for a message that breaks its topic's schema); ``where`` says where it was (topic, partition, offset and
    key, or file and line; packed records add index and packed), in the order given; ``raw`` is the rejected
    text as it may be kept (NHS numbers already redacted or pseudonymised by the caller).
    """
    return {"source": source, "reason": str(error), "reason_code": str(error.reason_code), **where, "raw": raw,
            "dead_lettered_at": datetime.now(UTC).isoformat()}


def dead_letter_record(source: str, error: InvalidEvent | InvalidMessage, raw: str | None,
                       **where: object) -> bytes:
    """:func:`dead_letter_fields` as the dead-letter message."""
    return orjson.dumps(dead_letter_fields(source, error, raw, **where))


def invalid_message_record(source: str, error: InvalidMessage, record: Any) -> bytes:
    """The dead-letter message for a consumed ``record`` (kafka-python or aiokafka: topic, partition, offset,
    key, value) that failed its topic's schema; key and value shown truncated, NHS-number-like digits redacted."""
    return dead_letter_record(source, error, _shown(record.value), topic=record.topic, partition=record.partition,
                              offset=record.offset, key=_shown(record.key))


class DeadLetters:
    """Sends what fails a schema to a dead-letter topic (kafka-python producer), and counts it."""

    def __init__(self, producer: Any, topic: str, source: str) -> None:
        self.producer = producer
        self.topic = topic
        self.source = source
        self.sent = 0

    def send(self, error: InvalidMessage, record: Any) -> None:
        """``record``: the consumer record that failed (topic, partition, offset, key, value)."""
        log.warning("%s: dead-lettering %s[%d]@%d to %s: %s", self.source, record.topic, record.partition,
                    record.offset, self.topic, error)
        key = None if record.key is None else _shown(record.key).encode()
        self.producer.send(self.topic, key=key, value=invalid_message_record(self.source, error, record))
        self.sent += 1
