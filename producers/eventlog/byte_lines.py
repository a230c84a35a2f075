"""A log's bytes as lines: cut into blocks and chunks of whole lines, and lines handled as byte spans.

The readers never split a log into Python strings: a worker reads a block of whole lines (:func:`blocks`),
a chunk of it at a time (:func:`chunks`), finds its lines as (start, end) offsets
(:func:`producers.eventlog.logformat.line_spans`, the format's line endings) and works on those spans with numpy and
Arrow: counting bytes of a kind in each line (:func:`count_in`), an Arrow array of the lines
(:func:`lines_array`) and a copy of some lines one after another (:func:`gather`); :func:`as_numpy` is
the way back from Arrow.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from producers.eventlog.logformat import BOM


def as_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow array (or chunked array) as a numpy array."""
    return array.to_numpy(zero_copy_only=False) if isinstance(array, pa.Array) else np.asarray(array)


def count_in(mask: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many of ``mask`` are set in each [start, end)."""
    where = np.flatnonzero(mask)
    return np.searchsorted(where, ends) - np.searchsorted(where, starts)


def lines_array(chunk: bytes, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The lines (given by offsets, in order) as an Arrow binary array over the chunk's bytes."""
    offsets = np.empty(2 * len(starts), dtype=np.int32)
    offsets[0::2], offsets[1::2] = starts, ends
    every = pa.Array.from_buffers(pa.binary(), max(2 * len(starts) - 1, 0),
                                  [None, pa.py_buffer(offsets), pa.py_buffer(chunk)])
    return every.take(pa.array(np.arange(0, 2 * len(starts), 2)))


def gather(chunk: bytes, starts: np.ndarray, ends: np.ndarray) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The given lines copied one after another, each ended by ``\\n``, and their offsets in the copy."""
    lengths = ends - starts
    if not len(starts):
        return b"", starts, ends
    if (len(starts) and starts[0] == 0 and (starts[1:] == ends[:-1] + 1).all()
            and (ends[-1] == len(chunk) or (ends[-1] == len(chunk) - 1 and chunk.endswith(b"\n")))):
        # every line of the chunk, each ended by a bare newline (the common case): the chunk is the copy
        return (chunk if ends[-1] < len(chunk) else chunk + b"\n"), starts, ends
    new_starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
    new_ends = new_starts + lengths
    view = memoryview(chunk)
    copy = b"\n".join([view[start:end] for start, end in zip(starts.tolist(), ends.tolist(), strict=True)]) + b"\n"
    return copy, new_starts, new_ends


def chunks(block: bytes, size: int) -> Iterable[tuple[int, int]]:
    """Byte ranges of about ``size`` of a block, each of whole lines."""
    start = 0
    while start < len(block):
        cut = block.find(b"\n", start + size - 1) if start + size < len(block) else -1
        stop = len(block) if cut < 0 else cut + 1
        yield start, stop
        start = stop


def blocks(path: Path, block_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``block_bytes``, each starting at a line start (after a byte-order mark)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        cuts = [len(BOM) if handle.read(len(BOM)) == BOM else 0]
        while cuts[-1] + block_bytes < size:
            handle.seek(cuts[-1] + block_bytes)
            handle.readline()
            cuts.append(handle.tell())
    if cuts[-1] < size:
        cuts.append(size)
    return list(itertools.pairwise(cuts))
