"""Lines as byte spans: :func:`gather` copies the chosen lines one after another, each ended by a newline,
whether they are every line of the chunk (returned without a copy) or some of them."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from producers.eventlog.byte_lines import gather
from producers.eventlog.logformat import line_spans

LINES = st.lists(st.binary(max_size=6).map(lambda raw: raw.replace(b"\n", b"")), max_size=8)


@given(lines=LINES, endings=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=8, max_size=8),
       final_newline=st.booleans(), data=st.data())
def test_gather_copies_the_chosen_lines_each_ended_by_a_newline(lines, endings, final_newline, data):
    chunk = b"".join(line + ending for line, ending in zip(lines, endings, strict=False))
    if lines and not final_newline:
        chunk = chunk[:-len(endings[len(lines) - 1])]
    starts, ends = line_spans(chunk)
    chosen = np.array(sorted(data.draw(st.sets(st.integers(0, max(len(starts) - 1, 0))))) if len(starts) else [],
                      dtype=np.int64)
    copy, new_starts, new_ends = gather(chunk, starts[chosen], ends[chosen])
    expected = [chunk[starts[i]:ends[i]] for i in chosen]
    assert copy == b"".join(line + b"\n" for line in expected)
    assert [copy[s:e] for s, e in zip(new_starts, new_ends, strict=True)] == expected
