"""The seen event ids (``streams/seen_events.py``): a batch looked up in the sealed tier at once answers as one
key at a time does, digest collisions on the high half included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.seen_events import DIGEST_BYTES, SeenEvents, digest, digests_of

_DIGESTS = np.dtype([("high", "<u8"), ("low", "<u8")])


def one_at_a_time(seen: SeenEvents, keys: list[str]) -> list[bool]:
    fresh = SeenEvents(dict(seen.recent), [np.array(list(zip(seen._high.tolist(), seen._low.tolist(), strict=True)),
                                                   _DIGESTS).tobytes()] if seen.sealed else [])
    return [key in fresh for key in keys]


@given(sealed=st.lists(st.text(min_size=1, max_size=12), max_size=40, unique=True),
       recent=st.lists(st.text(min_size=1, max_size=12), max_size=10),
       asked=st.lists(st.text(min_size=1, max_size=12), max_size=40))
@settings(max_examples=100, deadline=None)
def test_a_batch_looked_up_at_once_answers_as_each_key_alone(sealed, recent, asked):
    seen = SeenEvents(dict.fromkeys(sealed, 1))
    seen.seal()
    for key in recent:
        seen[key] = 2
    batch = [*asked, *sealed[:5], *recent[:3]]
    expected = one_at_a_time(seen, batch)
    seen.look_up(batch)
    assert [key in seen for key in batch] == expected
    assert all(key in seen for key in [*sealed, *recent])


def test_keys_whose_digests_share_the_high_half_are_told_apart_by_the_low_half():
    keys = ["admission|a", "admission|b", "admission|c"]
    digests = [digest(key) for key in keys]
    shared = digests[0][0]  # three sealed digests with a's high half: a's own after one with a lower low (so the
    # batch's first look at the leftmost equal high misses it, and the scan along the equal highs must find it)
    crafted = np.array([(shared, 0), (shared, digests[0][1]), (shared, digests[2][1])], _DIGESTS)
    crafted.sort(order=("high", "low"))
    seen = SeenEvents(segments=[crafted.tobytes()])
    seen.look_up(keys)
    assert ["admission|a" in seen, "admission|b" in seen, "admission|c" in seen] == [True, False, False]
    assert len(digests_of(keys)) == 3 * DIGEST_BYTES


def test_sealing_forgets_a_batch_looked_up_before():
    seen = SeenEvents({"admission|old": 1})
    seen.seal()
    seen.look_up(["admission|new"])
    assert "admission|new" not in seen
    seen["admission|new"] = 2
    seen.seal()
    assert "admission|new" in seen and "admission|old" in seen
