"""The worker's metrics helpers (``streams/metrics.py``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from streams.metrics import processing_latency

LATENCY = st.one_of(st.sampled_from([0.0, 0.005, 0.01, 1, 2.5, 300, 300.01]),
                    st.floats(min_value=0, max_value=1_000, allow_nan=False))


@given(observations=st.lists(st.tuples(LATENCY, st.integers(min_value=0, max_value=50)), max_size=8))
def test_observing_a_record_at_once_is_observing_each_event(observations):
    at_once, one_by_one = CollectorRegistry(), CollectorRegistry()
    record_histogram, event_histogram = processing_latency(at_once), processing_latency(one_by_one)
    for latency, events in observations:
        record_histogram.observe_times(latency, events)
        for _ in range(events):
            event_histogram.observe(latency)
    (at_once_lines, at_once_sum), (one_by_one_lines, one_by_one_sum) = _samples(at_once), _samples(one_by_one)
    assert at_once_lines == one_by_one_lines
    # many additions of one value and one multiplication differ in the last bits
    assert at_once_sum == pytest.approx(one_by_one_sum, rel=1e-12, abs=1e-9)


def _samples(registry: CollectorRegistry) -> tuple[list[str], float]:
    """The exposition without the creation time and the sum; the sum."""
    lines, total = [], float("nan")
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("bcf_processing_latency_seconds_created"):
            continue
        if line.startswith("bcf_processing_latency_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
            continue
        lines.append(line)
    return lines, total
