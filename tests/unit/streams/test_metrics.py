"""The worker's metrics helpers (``streams/metrics.py``)."""

from __future__ import annotations

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
    assert _samples(at_once) == _samples(one_by_one)


def _samples(registry: CollectorRegistry) -> list[str]:
    """The exposition, with the sums rounded (many additions of one value and one multiplication differ in the
    last bits) and without the creation time."""
    lines = []
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("bcf_processing_latency_seconds_created"):
            continue
        if line.startswith("bcf_processing_latency_seconds_sum"):
            name, value = line.rsplit(" ", 1)
            line = f"{name} {float(value):.6g}"
        lines.append(line)
    return lines
