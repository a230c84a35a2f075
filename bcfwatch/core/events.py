"""The event contract: Faust records for the three event types, declared once.

Producers validate log rows into these records and put them on Kafka as JSON;
the worker validates every message again on the way in (anything can be written
to a topic), so :func:`parse_event` is the single validator for both sides.
"""

from __future__ import annotations

import builtins
import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, overload

import faust
import orjson

from bcfwatch.core import codes
from bcfwatch.core.boards import BoardList, load_boards
from bcfwatch.core.nhs_number import contains_nhs_number, may_contain_nhs_number, redact
from bcfwatch.core.settings import current
from bcfwatch.core.topics import EVENT_TYPES

PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"[0-9a-f]*")  # (fullmatch of 64 characters: a plain pseudonym, no trailing newline unlike ``$``)
MAX_AGE = 120


def earliest_date() -> date:
    """Events before this day are rejected (``BCFWATCH_EARLIEST_DATE``, default the plans' first baseline year)."""
    return current().earliest_date


def earliest_moment() -> datetime:
    return _midnight(earliest_date())


@functools.lru_cache(maxsize=8)
def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class Reason(StrEnum):
    """Why a line or message was rejected: the dead-letter ``reason_code`` and the metric label."""

    NOT_JSON = "not_json"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_BOARD = "unknown_board"
    MISSING_FIELD = "missing_field"
    INVALID_VALUE = "invalid_value"
    INVALID_NHS_NUMBER = "invalid_nhs_number"
    INVALID_TIMESTAMP = "invalid_timestamp"
    BEFORE_EARLIEST_DATE = "before_earliest_date"
    IN_THE_FUTURE = "in_the_future"
    MALFORMED_ROW = "malformed_row"


class InvalidEvent(ValueError):
    """An event that breaks the contract; the message is the dead-letter reason, ``reason`` its kind."""

    def __init__(self, message: str, reason: Reason = Reason.INVALID_VALUE) -> None:
        super().__init__(redact(message))  # a reason never quotes an NHS number (docs/security.md)
        self.reason = reason

    @property
    def reason_code(self) -> Reason:
        """The dead-letter ``reason_code`` (as :attr:`bcfwatch.core.messages.InvalidMessage.reason_code`)."""
        return self.reason

    def __reduce__(self) -> tuple[type[InvalidEvent], tuple[str, Reason]]:
        """Pickled with its reason (the bulk replay's packing processes send rejections back)."""
        return InvalidEvent, (str(self), self.reason)


class Event(faust.Record, abstract=True, serializer="json", include_metadata=False, isodates=True):
    event_id: str
    board: str
    occurred_at: datetime
    patient: str
    age: int

    type: str = ""
    key_id: str | None = None  # id of the pseudonymisation key (optional: older messages have none)

    def to_wire(self) -> bytes:
        payload = self.asdict()
        payload["type"] = self.type
        payload["occurred_at"] = self.occurred_at.isoformat()
        return orjson.dumps(payload)


class Admission(Event):
    admission_method: str
    provider: str
    type: str = "admission"


class Discharge(Event):
    discharge_destination: str
    discharge_method: str
    delayed_days: int
    delay_attributable_to: str | None
    into_reablement: bool
    admission_id: str | None = None
    type: str = "discharge"


class CareHomePlacement(Event):
    setting: str
    permanent: bool
    type: str = "care_home_placement"


RECORDS: dict[str, type[Event]] = dict(zip(EVENT_TYPES, (Admission, Discharge, CareHomePlacement), strict=True))


@overload
def _text(payload: dict[str, Any], field: str, *, required: Literal[True] = ...) -> str: ...
@overload
def _text(payload: dict[str, Any], field: str, *, required: bool) -> str | None: ...
def _text(payload: dict[str, Any], field: str, *, required: bool = True) -> str | None:
    value = payload.get(field)
    if type(value) is str and value:  # nearly always: the checks below in one step (the worker's hot path)
        return value.strip()
    if value is None or value == "":
        if required:
            raise InvalidEvent(f"missing field {field}", Reason.MISSING_FIELD)
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidEvent(f"{field} must be text, got {type(value).__name__}")
    return str(value).strip()


@overload
def _free_text(payload: dict[str, Any], field: str, *, required: Literal[True] = ..., repeated: bool = ...) -> str: ...
@overload
def _free_text(payload: dict[str, Any], field: str, *, required: bool, repeated: bool = ...) -> str | None: ...
def _free_text(payload: dict[str, Any], field: str, *, required: bool = True, repeated: bool = False) -> str | None:
    """A free-text identifier (event_id, provider, admission_id): never quoted, and never an NHS number.
    ``repeated``: the field takes few distinct values (a provider), so each is looked at once."""
    value = _text(payload, field, required=required)
    if value is not None and (_holds_nhs_number(value) if repeated else contains_nhs_number(value)):
        raise InvalidEvent(f"{field} contains what looks like an NHS number (not allowed in free-text fields)")
    return value


@functools.lru_cache(maxsize=4_096)
def _holds_nhs_number(value: str) -> bool:
    """:func:`contains_nhs_number`, remembered for the values of a field with few distinct ones."""
    return contains_nhs_number(value)


@functools.lru_cache(maxsize=256)
def _is_key_id(value: str) -> bool:
    """Whether a key id is well formed (a log holds one or a few: each is looked at once)."""
    return bool(KEY_ID.match(value))


def _integer(payload: dict[str, Any], field: str) -> int:
    value = payload.get(field)
    if isinstance(value, bool):
        raise InvalidEvent(f"{field} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        try:
            return int(value)
        except ValueError:  # more digits than Python converts (4,300): no age or day count is that long
            pass
    raise InvalidEvent(f"{field} must be a whole number, got {value!r}")


def _flag(payload: dict[str, Any], field: str) -> bool:
    value = payload.get(field)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0"}:
        return value.strip().lower() in {"true", "1"}
    if value in (0, 1):
        return bool(value)
    raise InvalidEvent(f"{field} must be true or false, got {value!r}")


@dataclass(frozen=True, slots=True)
class Window:
    """The moments an event may fall between: from the earliest date (``BCFWATCH_EARLIEST_DATE``) to a day
    after the check. Taken once per packed record, so its events are checked against one moment."""

    earliest: datetime
    latest: datetime

    @classmethod
    def at(cls, now: datetime | None = None) -> Window:
        return cls(earliest_moment(), (now or datetime.now(UTC)) + timedelta(days=1))


def parse_timestamp(value: Any, now: datetime | None = None, window: Window | None = None) -> datetime:
    """An ISO 8601 timestamp with an explicit offset, converted to UTC (and inside ``window``, by default the
    one at ``now``)."""
    if not isinstance(value, str):
        raise InvalidEvent(f"occurred_at must be an ISO 8601 timestamp, got {value!r}", Reason.INVALID_TIMESTAMP)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"occurred_at is not a valid ISO 8601 timestamp: {value!r}",
                           Reason.INVALID_TIMESTAMP) from None
    if moment.tzinfo is None:
        raise InvalidEvent(f"occurred_at has no timezone offset: {value!r}", Reason.INVALID_TIMESTAMP)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before the first moment a datetime can hold, in UTC
        raise InvalidEvent(f"occurred_at is out of range in UTC: {value!r}", Reason.INVALID_TIMESTAMP) from None
    window = window or Window.at(now)
    if moment < window.earliest:
        raise InvalidEvent(f"occurred_at {value!r} is before the earliest date {window.earliest.date()} "
                           "(BCFWATCH_EARLIEST_DATE)", Reason.BEFORE_EARLIEST_DATE)
    if moment > window.latest:
        raise InvalidEvent(f"occurred_at {value!r} is after tomorrow", Reason.IN_THE_FUTURE)
    return moment


def validated_fields(payload: dict[str, Any], boards: BoardList | None = None,
                     window: Window | None = None) -> tuple[type[Event], dict[str, Any]]:
    """Check a decoded event against the contract; return its record class and normalised fields.

    The single validator: :func:`parse_event` builds the Faust record from it, the worker's counting reads
    :class:`EventFacts` of it, and the batch oracle uses the fields directly (building records is the slow part).
    ``window``: when its timestamp may fall (by default, as of now).
    """
    if not isinstance(payload, dict):
        raise InvalidEvent("event is not a JSON object", Reason.NOT_JSON)
    event_type = payload.get("type")
    record = RECORDS.get(event_type) if isinstance(event_type, str) else None
    if record is None:
        raise InvalidEvent(f"unknown event type {event_type!r}; expected one of {', '.join(RECORDS)}",
                           Reason.UNKNOWN_TYPE)
    boards = boards or load_boards()
    board_code = _text(payload, "board")
    board = boards.resolve(board_code)
    if board is None:
        raise InvalidEvent(f"unknown board {board_code!r}: not an English health and wellbeing board code",
                           Reason.UNKNOWN_BOARD)
    key_id = payload.get("key_id")
    if key_id is not None and not (isinstance(key_id, str) and _is_key_id(key_id)):
        raise InvalidEvent("key_id must be 1-32 letters, digits, '.', '_' or '-'")
    patient = _text(payload, "patient")
    if not PSEUDONYM.match(patient):
        raise InvalidEvent("patient is not a pseudonym (64 lower-case hex characters)")
    age = _integer(payload, "age")
    if not 0 <= age <= MAX_AGE:
        raise InvalidEvent(f"age {age} is impossible (0-{MAX_AGE})")
    fields: dict[str, Any] = {
        "event_id": _free_text(payload, "event_id"),
        "board": board,
        "occurred_at": parse_timestamp(payload.get("occurred_at"), window=window),
        "patient": patient,
        "age": age,
    }
    if record is Admission:
        method = _text(payload, "admission_method").upper()
        if method not in codes.ADMISSION_METHODS:
            raise InvalidEvent(f"admission_method {method!r} is not a HES admission method code")
        fields.update(admission_method=method, provider=_free_text(payload, "provider", repeated=True))
    elif record is Discharge:
        destination = _text(payload, "discharge_destination")
        if destination not in codes.DISCHARGE_DESTINATIONS:
            raise InvalidEvent(f"discharge_destination {destination!r} is not a HES destination code")
        method = _text(payload, "discharge_method", required=False) or "1"
        if method not in codes.DISCHARGE_METHODS:
            raise InvalidEvent(f"discharge_method {method!r} is not a HES discharge method code")
        delayed_days = _integer(payload, "delayed_days") if payload.get("delayed_days") not in (None, "") else 0
        if not 0 <= delayed_days <= 366:
            raise InvalidEvent(f"delayed_days {delayed_days} is impossible (0-366)")
        attribution = _text(payload, "delay_attributable_to", required=delayed_days > 0)
        if attribution is not None and attribution not in codes.DELAY_ATTRIBUTIONS:
            raise InvalidEvent(
                f"delay_attributable_to {attribution!r} must be one of {', '.join(codes.DELAY_ATTRIBUTIONS)}"
            )
        fields.update(discharge_destination=destination, discharge_method=method, delayed_days=delayed_days,
                      delay_attributable_to=attribution, into_reablement=_flag(payload, "into_reablement"),
                      admission_id=_free_text(payload, "admission_id", required=False))
    else:
        setting = _text(payload, "setting")
        if setting not in codes.CARE_HOME_SETTINGS:
            raise InvalidEvent(f"setting {setting!r} must be residential or nursing")
        fields.update(setting=setting, permanent=_flag(payload, "permanent"))
    return record, fields


def parse_event(payload: dict[str, Any], boards: BoardList | None = None) -> Event:
    """Validate a decoded event (patient already pseudonymised) into its record."""
    record, fields = validated_fields(payload, boards)
    return record(**fields)


def parse_wire(message: bytes, boards: BoardList | None = None) -> Event:
    """Decode and validate one Kafka message value."""
    return parse_event(decoded(message), boards)


def decoded(message: bytes) -> Any:
    """One Kafka message value's JSON, decoded (:class:`InvalidEvent` ``not_json`` if it is not JSON)."""
    try:
        return orjson.loads(message)
    except orjson.JSONDecodeError as error:
        raise InvalidEvent(f"not valid JSON: {error}", Reason.NOT_JSON) from None


@dataclass(slots=True, eq=False)
class EventFacts:
    """A valid event as the counting rules read it (``streams/board_state.py``): plain attributes and the
    normalised fields, made straight from :func:`validated_fields` with no Faust record. (A record is slow to
    build and each attribute read goes through a descriptor: together a third of the worker's time.)"""

    record: builtins.type[Event]  # (``type`` is the event type's name here)
    fields: dict[str, Any]  # validated_fields' (the type's own fields included)
    type: str
    event_id: str
    board: str
    occurred_at: datetime
    occurred_seconds: float
    patient: str
    age: int
    key_id: str | None = None

    @classmethod
    def of(cls, record: builtins.type[Event], fields: dict[str, Any], key_id: str | None = None) -> EventFacts:
        """The facts of :func:`validated_fields`' result (``key_id``: as :func:`parse_event`, none)."""
        occurred_at = fields["occurred_at"]
        return cls(record, fields, _TYPE_OF[record], fields["event_id"], fields["board"], occurred_at,
                   occurred_at.timestamp(), fields["patient"], fields["age"], key_id)

    @classmethod
    def of_event(cls, event: Event) -> EventFacts:
        """The facts of a record already built."""
        record = type(event)
        fields = {name: getattr(event, name) for name in wire_order(record)  # type: ignore[arg-type]  # mypy#20409
                  if name not in ("type", "key_id")}
        return cls.of(record, fields, event.key_id)

    def to_wire(self) -> bytes:
        """Byte for byte the record's :meth:`Event.to_wire`."""
        return wire_fields(self.record, self.fields, self.patient, self.key_id)


def event_facts(payload: Any, boards: BoardList | None = None, window: Window | None = None) -> EventFacts:
    """Validate a decoded event (as :func:`parse_event`) into the facts the counting rules read."""
    return EventFacts.of(*validated_fields(payload, boards, window))


def event_facts_batch(elements: list[Any], boards: BoardList | None = None,
                      window: Window | None = None) -> list[EventFacts | InvalidEvent]:
    """:func:`event_facts` of each element (a packed record's events, or one event), in order: its facts, or the
    :class:`InvalidEvent` it raised. The same decisions and the same facts, found faster.

    An element whose every value is *plainly* valid (each of the right JSON type, codes spelt exactly, no
    surrounding space) is read straight into its facts (a board is one dict look-up; key ids and providers,
    few distinct values, are remembered once checked); the batch's pseudonyms are checked in one match of their
    joined characters and its free-text identifiers searched for NHS numbers in one pass. Every other element
    goes through :func:`event_facts` itself, which decides it (normalising what is valid but not plain, or giving
    the rejection and its reason). ``tests/unit/core/test_event_facts_batch.py``
    holds the two equal on arbitrary elements.
    """
    boards = boards or load_boards()
    window = window or Window.at()
    found: list[EventFacts | None] = [_plain_facts(element, boards.plan_board_of, window) for element in elements]
    if not _HEX.fullmatch("".join([facts.patient for facts in found if facts is not None])):  # (each is 64 long)
        found = [facts if facts is None or _HEX.fullmatch(facts.patient) else None for facts in found]
    identifiers = [text for facts in found if facts is not None for text in _free_texts(facts)]
    if may_contain_nhs_number(identifiers):  # rare: then the elements that do are decided one by one
        found = [None if facts is not None and any(map(contains_nhs_number, _free_texts(facts))) else facts
                 for facts in found]
    decided: list[EventFacts | InvalidEvent] = []
    for element, facts in zip(elements, found, strict=True):
        if facts is None:
            try:
                facts = event_facts(element, boards, window)
            except InvalidEvent as error:
                decided.append(error)
                continue
        decided.append(facts)
    return decided


def _free_texts(facts: EventFacts) -> list[str]:
    """The free-text identifiers of plain facts that may not hold an NHS number (the provider is looked at on its
    own: it takes few values)."""
    admission_id = facts.fields.get("admission_id")
    return [facts.event_id] if admission_id is None else [facts.event_id, admission_id]


def _plain_facts(element: Any, plan_board_of: dict[str, str], window: Window) -> EventFacts | None:
    """The facts of an element whose values are all plainly valid (see :func:`event_facts_batch`), else None
    (undecided: it may be valid but not plain, or invalid). Free-text identifiers are not searched here, nor the
    pseudonym's characters (only its length)."""
    if type(element) is not dict:
        return None
    get = element.get
    event_type, board_code, key_id, patient, age, event_id, occurred_at = (
        get("type"), get("board"), get("key_id"), get("patient"), get("age"), get("event_id"), get("occurred_at"))
    record = RECORDS.get(event_type) if type(event_type) is str else None
    board = plan_board_of.get(board_code) if type(board_code) is str else None
    if (record is None or board is None or (key_id is not None and not (type(key_id) is str and _is_key_id(key_id)))
            or type(patient) is not str or len(patient) != 64  # (its characters: for the batch at once)
            or type(age) is not int or not 0 <= age <= MAX_AGE
            or type(event_id) is not str or not event_id or type(occurred_at) is not str):
        return None
    try:
        moment = parse_timestamp(occurred_at, window=window)
    except InvalidEvent:  # (decided by event_facts, with its reason)
        return None
    fields: dict[str, Any] = {"event_id": event_id.strip(), "board": board, "occurred_at": moment,
                              "patient": patient, "age": age}
    own = _plain_own_fields(record, get)
    if own is None:
        return None
    fields.update(own)
    return EventFacts(record, fields, _TYPE_OF[record], fields["event_id"], board, moment, moment.timestamp(), patient,
                      age)


def _plain_own_fields(record: builtins.type[Event], get: Any) -> dict[str, Any] | None:
    """The plainly valid fields of an element's own type (``get``: its dict's ``get``), else None."""
    if record is Admission:
        method, provider = get("admission_method"), get("provider")
        if (type(method) is not str or method not in codes.ADMISSION_METHODS or type(provider) is not str
                or not provider or _holds_nhs_number(provider := provider.strip())):
            return None
        return {"admission_method": method, "provider": provider}
    if record is Discharge:
        destination, method, delayed_days, attribution, into_reablement, admission_id = (
            get("discharge_destination"), get("discharge_method"), get("delayed_days"), get("delay_attributable_to"),
            get("into_reablement"), get("admission_id"))
        if method is None:
            method = "1"
        if delayed_days is None:
            delayed_days = 0
        if (type(destination) is not str or destination not in codes.DISCHARGE_DESTINATIONS
                or type(method) is not str or method not in codes.DISCHARGE_METHODS
                or type(delayed_days) is not int or not 0 <= delayed_days <= 366
                or not ((attribution is None and delayed_days == 0)
                        or (type(attribution) is str and attribution in codes.DELAY_ATTRIBUTIONS))
                or type(into_reablement) is not bool
                or not (admission_id is None or (type(admission_id) is str and admission_id))):
            return None
        return {"discharge_destination": destination, "discharge_method": method, "delayed_days": delayed_days,
                "delay_attributable_to": attribution, "into_reablement": into_reablement,
                "admission_id": None if admission_id is None else admission_id.strip()}
    setting, permanent = get("setting"), get("permanent")
    if type(setting) is not str or setting not in codes.CARE_HOME_SETTINGS or type(permanent) is not bool:
        return None
    return {"setting": setting, "permanent": permanent}


# -- packed records: many events of one board and type in one Kafka record (docs/wire-format.md) -------------
PACKED_CONTENT_TYPE = "application/vnd.bcfwatch.events+json"
CONTENT_TYPE_HEADER = "content-type"
MAX_PACKED_EVENTS = 1_000  # events in one packed record, at most
MAX_PACKED_BYTES = 256 * 1024  # bytes of one packed record's value, at most (a single larger event goes alone)
PACKED_HEADERS: list[tuple[str, bytes]] = [(CONTENT_TYPE_HEADER, PACKED_CONTENT_TYPE.encode())]
_TYPE_OF = {record: event_type for event_type, record in RECORDS.items()}


def is_packed(headers: Any) -> bool:
    """Whether a record's headers (a mapping or (key, value) pairs, as Faust or kafka-python give them) say
    its value is a packed array of events. Without the header a value is one event, as always."""
    if not headers:
        return False
    pairs = headers.items() if hasattr(headers, "items") else headers
    for key, value in pairs:
        if str(key).lower() == CONTENT_TYPE_HEADER:
            text = value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)
            return text.split(";", 1)[0].strip().lower() == PACKED_CONTENT_TYPE
    return False


def unpack(value: bytes) -> list[Any]:
    """The elements of a packed record's value, in order (each still to be checked with :func:`parse_event`).

    Raises :class:`InvalidEvent` (``not_json``) when the value is not a JSON array: the whole record is bad.
    """
    try:
        elements = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise InvalidEvent(f"packed record is not valid JSON: {error}", Reason.NOT_JSON) from None
    if not isinstance(elements, list):
        raise InvalidEvent("packed record is not a JSON array of events", Reason.NOT_JSON)
    return elements


def pack(wires: list[bytes]) -> bytes:
    """A packed record's value from events already on the wire (:meth:`Event.to_wire`), in order."""
    return b"[" + b",".join(wires) + b"]"


def wire_fields(record: type[Event], fields: dict[str, Any], patient: str, key_id: str | None) -> bytes:
    """The wire form of validated fields (:func:`validated_fields`), byte for byte what building the record
    and calling :meth:`Event.to_wire` gives, without building the record (the producers' fast path)."""
    payload = {**fields, "patient": patient, "type": _TYPE_OF[record], "key_id": key_id}
    payload["occurred_at"] = fields["occurred_at"].isoformat()
    # mypy#20409: mypy does not see that a type[...] variable is Hashable
    return orjson.dumps({name: payload.get(name) for name in wire_order(record)})  # type: ignore[arg-type]


@functools.cache
def wire_order(record: type[Event]) -> tuple[str, ...]:
    """The fields of a record's wire JSON, in their order."""
    return tuple(record._options.fields)


KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
