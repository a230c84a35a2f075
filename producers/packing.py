"""Packed records for bulk producers: one Kafka record per board (and event type) per batch of events.

The envelope is in docs/wire-format.md: the record's value is a JSON array of the same event objects a
single-event record carries (:meth:`bcfwatch.core.events.Event.to_wire`), in the log's order; its key is the board
(so a board's events stay in order on one partition); its header ``content-type`` is
``application/vnd.bcfwatch.events+json``. A record holds at most ``MAX_PACKED_EVENTS`` events and
``MAX_PACKED_BYTES`` bytes of value. Workers apply every element in order, one event at a time, through the
same rules as a single-event record, and dead-letter a bad element alone.

:class:`BoardBatches` groups events as they are validated and hands each full batch to ``send``;
:meth:`BoardBatches.flush` sends what is left (the replay does so at the end of each chunk of lines, so its
acknowledged-line checkpoint can move on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bcfwatch.core.events import MAX_PACKED_BYTES, MAX_PACKED_EVENTS, pack

SendPacked = Callable[[str, bytes, bytes, list[int]], None]  # (topic, board key, value, line numbers)


@dataclass
class _Batch:
    wires: list[bytes] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    size: int = 2  # the brackets of the JSON array


class BoardBatches:
    """Events waiting to be packed, per (topic, board), in the order they were added."""

    def __init__(self, send: SendPacked, max_events: int = MAX_PACKED_EVENTS,
                 max_bytes: int = MAX_PACKED_BYTES) -> None:
        self._send, self.max_events, self.max_bytes = send, max_events, max_bytes
        self._open: dict[tuple[str, str], _Batch] = {}
        self.records = 0  # packed records handed to ``send``
        self.events = 0  # events in them

    @property
    def waiting(self) -> int:
        """Events added but not yet sent."""
        return sum(len(batch.wires) for batch in self._open.values())

    def add(self, topic: str, board: str, wire: bytes, line: int) -> None:
        """Queue one event (its wire bytes); sends the board's batch first if this event would overflow it."""
        key = (topic, board)
        batch = self._open.get(key)
        if batch is not None and (len(batch.wires) >= self.max_events
                                  or batch.size + len(wire) + 1 > self.max_bytes):
            self._send_batch(key, batch)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch()
        batch.wires.append(wire)
        batch.lines.append(line)
        batch.size += len(wire) + (len(batch.wires) > 1)
        if len(batch.wires) >= self.max_events:
            self._send_batch(key, batch)

    def flush(self) -> None:
        """Send every batch still open, in the order the batches were opened."""
        for key, batch in list(self._open.items()):
            self._send_batch(key, batch)

    def _send_batch(self, key: tuple[str, str], batch: _Batch) -> None:
        del self._open[key]
        topic, board = key
        self.records += 1
        self.events += len(batch.wires)
        self._send(topic, board.encode(), pack(batch.wires), batch.lines)
