"""Replay a generated log with bad lines into the real broker and read every topic back."""

from collections import Counter
from datetime import date

import orjson
import pytest
from kafka.partitioner.default import murmur2

from bcfwatch.core.topics import EVENT_TYPES, Topics
from bcfwatch.infra.broker import Broker
from producers.generate import GeneratorSpec, generate_frame, write_log
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from tests.support import read_topic

pytestmark = pytest.mark.kafka
PARTITIONS = 4


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_replay_delivers_every_good_event_once_and_dead_letters_bad_lines(broker: Broker, topic_prefix, tmp_path,
                                                                          suffix):
    spec = GeneratorSpec(date(2015, 4, 1), date(2015, 5, 31), scale=0.01, seed=7, malformed_share=0.01)
    frame = generate_frame(spec)
    log = tmp_path / f"events{suffix}"
    write_log(frame, log)
    topics = Topics(topic_prefix)
    report = replay(log, broker.bootstrap, topics, Pseudonymiser(load_key()), PARTITIONS)

    good = frame[frame["malformed"].isna()]
    bad = frame[frame["malformed"].notna()]
    assert len(bad) > 50 and set(bad["malformed"]) >= {"not_json", "bad_nhs_number", "unknown_board"}

    # Every good line arrived exactly once (duplicated lines in the log arrive as often as they were written),
    # on the partition of its board, on the topic of its type.
    for event_type in EVENT_TYPES:
        records = read_topic(broker.bootstrap, topics.event(event_type))
        expected = Counter(good.loc[good["type"] == event_type, "event_id"])
        arrived = Counter(orjson.loads(r.value)["event_id"] for r in records)
        assert arrived == expected
        for record in records:
            payload = orjson.loads(record.value)
            assert record.key == payload["board"].encode()
            assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % PARTITIONS

    # Every bad line is on the dead-letter topic with its line number and a reason.
    dead = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, topics.dead_letter)]
    assert len(dead) == len(bad) == len(report.rejected)
    assert all(d["reason"] and d["line"] > 0 and d["source"] == "replay" for d in dead)
    reasons = " ".join(d["reason"] for d in dead)
    unparseable = "not valid JSON" if suffix == ".jsonl" else "fields, header has"
    for expected_reason in (unparseable, "Modulus 11", "unknown board", "impossible", "no timezone",
                            "unknown event type", "whole number"):
        assert expected_reason in reasons

    # No raw NHS number anywhere on any topic.
    raw_numbers = set(frame["nhs_number"].astype(str))
    for topic in [*topics.events, topics.dead_letter]:
        for record in read_topic(broker.bootstrap, topic):
            text = record.value.decode()
            assert not any(number in text for number in _ten_digit_runs(text) if number in raw_numbers)


def _ten_digit_runs(text: str) -> list[str]:
    import re

    return re.findall(r"\d{10}", text)
