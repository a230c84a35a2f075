"""Packed records (docs/wire-format.md) without a broker: the envelope and the replay's board batches."""

from __future__ import annotations

from datetime import date

import orjson

from bcfwatch.core.boards import load_boards
from bcfwatch.core.events import PACKED_HEADERS, InvalidEvent, is_packed, pack, unpack, wire_fields
from producers.eventlog.logformat import check_line, parse_json_line, row_to_event
from producers.generate import GeneratorSpec, generate_frame, write_log
from producers.packing import BoardBatches
from producers.pseudonym import Pseudonymiser, load_key


# -- the envelope, without a broker ---------------------------------------------------------------------------
def test_packed_wire_is_the_single_event_wire_byte_for_byte(tmp_path):
    log = tmp_path / "events.jsonl"
    write_log(generate_frame(GeneratorSpec(date(2015, 4, 1), date(2015, 4, 30), scale=0.002, seed=3,
                                           malformed_share=0.02)), log)
    pseudonymiser, boards = Pseudonymiser(load_key(dev=True)), load_boards()
    checked = rejected = 0
    for number, raw in enumerate(log.read_bytes().splitlines(), start=1):
        line = parse_json_line(number, raw)
        try:
            record, fields, digits = check_line(line, boards)
        except InvalidEvent:
            rejected += 1
            continue
        single = row_to_event(line.row, pseudonymiser, boards).to_wire()
        assert wire_fields(record, fields, pseudonymiser.pseudonym(digits), pseudonymiser.key_id) == single
        checked += 1
    assert checked > 500 and rejected > 0


def test_board_batches_keep_order_and_bounds():
    sent: list[tuple[str, bytes, list, list[int]]] = []
    batches = BoardBatches(lambda topic, key, value, lines: sent.append((topic, key, unpack(value), lines)),
                           max_events=3, max_bytes=60)
    for line in range(1, 8):
        batches.add("t.admission", "E1" if line % 2 else "E2", orjson.dumps({"n": line}), line)
    batches.add("t.admission", "E1", orjson.dumps({"n": "x" * 50}), 8)  # would pass 60 bytes: E1 goes first
    batches.flush()
    assert [(key, [e["n"] for e in events], lines) for _, key, events, lines in sent] == [
        (b"E1", [1, 3, 5], [1, 3, 5]), (b"E2", [2, 4, 6], [2, 4, 6]), (b"E1", [7], [7]), (b"E1", ["x" * 50], [8])]
    assert all(len(pack([orjson.dumps(e) for e in events])) <= 60 or len(events) == 1 for *_, events, _ in sent)
    assert batches.waiting == 0 and batches.records == 4 and batches.events == 8
    assert is_packed(PACKED_HEADERS) and is_packed({"Content-Type": b"application/vnd.bcfwatch.events+json"})
    assert not is_packed(None) and not is_packed([("content-type", b"application/json")])
