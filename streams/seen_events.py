"""The event ids a partition has seen (the duplicate rule of ``streams/board_state.py``), in bounded memory
and with snapshots that do not grow with them.

The duplicate rule holds for ever ("whatever its age": a re-sent event from last year is a duplicate, not a
late event), so a partition must remember every id it has counted, tallied late or held. Kept as a dict of
``type|event_id`` keys that costs ~100 bytes an id in memory and ~30 in every snapshot: at national scale
(12M events a year) that was 3 GiB of worker RSS and whole-partition snapshots past Kafka's 64 MiB record
limit (bench/RESULTS.md). So two tiers:

* **recent** ids, as their keys (a dict, in the snapshot as before, ``seen_events``);
* **sealed** ids: every :data:`SEAL_AFTER` recent ids are *sealed*: digested to 128 bits (BLAKE2b), sorted,
  written once to the partition's seen-events topic (``APP-seen``, compacted) as an immutable **segment** keyed
  ``partition:sequence``, and kept in memory as two sorted ``uint64`` arrays, 16 bytes an id.

A snapshot names how many segments it covers (``seen_segments``); segments are written (acks=all) before the
snapshot that counts them, and never rewritten, so a snapshot stays the size of the recent tier whatever the
partition has seen. A segment written by an owner that died before its snapshot landed is ignored by the next
owner (its count says so), and overwritten when that owner seals its own segment under the same sequence.

Two different ids share a 128-bit digest with probability about n²/2¹²⁹: 2·10⁻²⁵ for a national year, far below
any hardware error rate, so the rule stays exact in practice.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

import numpy as np

from bcfwatch.core.settings import DEFAULTS

SEAL_AFTER = DEFAULTS.seen_seal_after  # recent ids per partition before they are sealed (50,000: a segment of ~800 KB)
DIGEST_BYTES = 16
_DIGEST_DTYPE = np.dtype([("high", "<u8"), ("low", "<u8")])


def digest(key: str) -> tuple[int, int]:
    """The 128-bit digest of an id key, as two unsigned 64-bit halves."""
    value = digests_of([key])
    return int.from_bytes(value[:8], "little"), int.from_bytes(value[8:], "little")


def digests_of(keys: list[str]) -> bytes:
    """The digests of many keys, 16 bytes each (high then low half, each little-endian: :func:`digest`'s)."""
    return b"".join([blake2b(key.encode(), digest_size=DIGEST_BYTES).digest() for key in keys])


def segment_key(partition: int, sequence: int) -> bytes:
    return f"{partition}:{sequence}".encode()


def parse_segment_key(key: bytes | None) -> tuple[int, int] | None:
    """(partition, sequence) of a segment's key; None for anything else."""
    try:
        partition, sequence = (key or b"").decode().split(":")
        return int(partition), int(sequence)
    except ValueError:
        return None


class SeenEvents:
    """A set of id keys with the dict interface ``board_state`` uses (``key in seen``, ``seen[key] = day``,
    ``len``), recent ids as keys and older ones as sorted 128-bit digests."""

    def __init__(self, recent: dict[str, int] | None = None, segments: Iterable[bytes] = ()) -> None:
        self.recent: dict[str, int] = dict(recent or {})
        self._high = np.empty(0, np.uint64)
        self._low = np.empty(0, np.uint64)
        self._looked_up: dict[str, bool] = {}  # keys of the batch in hand -> sealed? (look_up)
        self._merge([np.frombuffer(segment, _DIGEST_DTYPE) for segment in segments])

    def __contains__(self, key: object) -> bool:
        if key in self.recent:
            return True
        if not self._high.size or not isinstance(key, str):
            return False
        sealed = self._looked_up.get(key)
        if sealed is not None:
            return sealed
        high, low = digest(key)
        return self._sealed_from(int(np.searchsorted(self._high, np.uint64(high))), high, low)

    def _sealed_from(self, index: int, high: int, low: int) -> bool:
        """Whether the digest (high, low) is sealed at ``index`` or after it, among the equal high halves there
        (~never more than one)."""
        while index < self._high.size and int(self._high[index]) == high:
            if int(self._low[index]) == low:
                return True
            index += 1
        return False

    def __setitem__(self, key: str, day: int) -> None:
        self.recent[key] = day

    def __len__(self) -> int:
        return len(self.recent) + int(self._high.size)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SeenEvents):
            return (self.recent == other.recent and np.array_equal(self._high, other._high)
                    and np.array_equal(self._low, other._low))
        return isinstance(other, dict) and not self._high.size and self.recent == other

    __hash__ = None  # type: ignore[assignment]  # mutable (typeshed types object.__hash__ as a method only)

    def look_up(self, keys: list[str]) -> None:
        """Find a batch of keys (a packed record's) in the sealed tier at once, so that ``key in seen`` for them
        needs no digest and no search of its own; until the next batch or seal."""
        self._looked_up = {}
        if not self._high.size or not keys:
            return
        digests = np.frombuffer(digests_of(keys), _DIGEST_DTYPE)
        at = np.searchsorted(self._high, digests["high"])
        found = at < self._high.size
        candidates = at[found]
        found[found] = ((self._high[candidates] == digests["high"][found])
                        & (self._low[candidates] == digests["low"][found]))
        self._looked_up = dict(zip(keys, found.tolist(), strict=True))
        for index in np.flatnonzero(~found).tolist():  # an equal high with another low first (~never): look on
            if self._sealed_from(int(at[index]) + 1, int(digests["high"][index]), int(digests["low"][index])):
                self._looked_up[keys[index]] = True

    @property
    def sealed(self) -> int:
        return int(self._high.size)

    def due_for_sealing(self, seal_after: int = SEAL_AFTER) -> bool:
        return len(self.recent) >= seal_after

    def seal(self) -> bytes:
        """Move the recent ids to the sealed tier; returns them as a segment (sorted digests)."""
        digests = np.frombuffer(digests_of(list(self.recent)), _DIGEST_DTYPE).copy()
        digests.sort(order=("high", "low"))
        self.recent = {}
        self._looked_up = {}
        self._merge([digests])
        return digests.tobytes()

    def _merge(self, runs: list[np.ndarray]) -> None:
        runs = [run for run in runs if run.size]
        if not runs:
            return
        high = np.concatenate([self._high, *(run["high"] for run in runs)])
        low = np.concatenate([self._low, *(run["low"] for run in runs)])
        order = np.argsort(high, kind="stable")
        self._high, self._low = high[order], low[order]


def check_segment(value: bytes | None) -> bytes:
    """A segment's value, checked for shape; raises ValueError."""
    if value is None or len(value) % DIGEST_BYTES:
        raise ValueError(f"a seen-events segment must be a whole number of {DIGEST_BYTES}-byte digests")
    return value
