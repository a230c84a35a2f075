"""The bulk replay's column-wise packing sends exactly what the line-by-line path sends: the same events, wire
byte for byte, per board and type in line order, and the same rejected lines with the same reasons."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import orjson
import pytest

from bcfwatch.core.boards import load_boards
from bcfwatch.core.events import RECORDS, InvalidEvent, wire_fields
from producers import columnar_packing
from producers.columnar_packing import ChunkPacking, log_chunks, pack_chunk
from producers.eventlog.compact import Reading
from producers.eventlog.logformat import check_line, line_spans, parse_json_line, physical_lines
from producers.generate import GeneratorSpec, generate_frame, write_log
from producers.packing import BoardBatches
from producers.pseudonym import Pseudonymiser
from tests.unit.producers.eventlog.test_reader import edge_lines

PSEUDONYMISER = Pseudonymiser(b"k" * 32, key_id="test-key")
TYPE_OF = {record: event_type for event_type, record in RECORDS.items()}


def line_by_line(chunk: bytes, first_number: int) -> tuple[dict, list]:
    """What the line path makes of a chunk: (type, board) -> [(line, wire)], and [(line, reason code, reason)]."""
    streams: dict[tuple[str, str], list] = defaultdict(list)
    rejected = []
    for offset, raw in enumerate(chunk.split(b"\n")[:-1] if chunk.endswith(b"\n") else chunk.split(b"\n")):
        line = parse_json_line(first_number + offset, raw.removesuffix(b"\r"))
        if line is None:
            continue
        try:
            record, fields, digits = check_line(line, load_boards())
        except InvalidEvent as error:
            rejected.append((line.number, error.reason, str(error)))
            continue
        wire = wire_fields(record, fields, PSEUDONYMISER.pseudonym(digits), PSEUDONYMISER.key_id)
        streams[(TYPE_OF[record], fields["board"])].append((line.number, wire))
    return dict(streams), rejected


def column_wise(chunk: bytes, first_number: int, **limits) -> tuple[dict, list]:
    """What the column-wise packing makes of a chunk, in line_by_line's shape; each record's value is checked
    byte for byte against the line path's wires of the same lines."""
    packed = pack_chunk(chunk, first_number, load_boards(), PSEUDONYMISER, Reading.fresh(), **limits)
    wires = {number: wire for stream in line_by_line(chunk, first_number)[0].values() for number, wire in stream}
    streams: dict[tuple[str, str], list] = defaultdict(list)
    for event_type, board, value, lines in packed.records:
        assert value == b"[" + b",".join(wires.get(number, b"?") for number in lines) + b"]"
        elements = orjson.loads(value)
        streams[(event_type, board)] += [(number, wires[number]) for number in lines]
        assert all(element["type"] == event_type and element["board"] == board for element in elements)
    rejected = [(line.number, error.reason, str(error)) for line, error in packed.rejected]
    assert packed.lines == sum(map(len, streams.values())) + len(rejected)
    assert sum(packed.produced.values()) == sum(map(len, streams.values()))
    return dict(streams), rejected


def test_edge_lines_pack_as_the_line_path_sends_them():
    chunk = b"\n".join(edge_lines() * 3) + b"\n"
    expected = line_by_line(chunk, 1)
    assert column_wise(chunk, 1) == expected
    assert sum(map(len, expected[0].values())) > 100 and len(expected[1]) > 50  # both kinds are exercised


@pytest.mark.parametrize("first_number", [1, 1_000_001])
def test_a_generated_log_packs_as_the_line_path_sends_it(tmp_path, monkeypatch, first_number):
    path = tmp_path / "log.jsonl"
    spec = GeneratorSpec(date(2015, 4, 1), date(2015, 5, 15), scale=0.01, seed=7, late_share=0.05,
                         duplicate_share=0.02, malformed_share=0.02)
    write_log(generate_frame(spec), path)
    chunk = path.read_bytes()
    expected = line_by_line(chunk, first_number)
    one_at_a_time = []
    monkeypatch.setattr(columnar_packing, "check_line",
                        lambda line, boards: one_at_a_time.append(line) or check_line(line, boards))
    assert column_wise(chunk, first_number) == expected
    events = sum(map(len, expected[0].values()))
    assert events > 5_000 and expected[1]
    assert len(one_at_a_time) < 0.1 * events  # the bad lines and a few neighbours, not the log


def test_records_keep_to_the_size_limits_and_a_large_event_goes_alone():
    base = {"type": "admission", "board": "E09000012", "occurred_at": "2015-06-01T09:30:00Z",
            "nhs_number": "9434765919", "age": 70, "admission_method": "21", "provider": "RQX"}
    lines = [orjson.dumps({**base, "event_id": f"e-{i}", "provider": "P" * (3000 if i == 5 else 3)})
             for i in range(40)]
    chunk = b"\n".join(lines) + b"\n"
    packed = pack_chunk(chunk, 1, load_boards(), PSEUDONYMISER, Reading.fresh(), max_events=7, max_bytes=2_000)
    numbers = [numbers for *_, numbers in packed.records]
    assert [6] in numbers  # the large one, alone
    for _, _, value, record in packed.records:
        assert len(record) <= 7 and (len(value) <= 2_000 or len(record) == 1)
    # filled exactly as the line-by-line packing fills its batches
    batches: list = []
    line_path = BoardBatches(lambda topic, key, value, lines: batches.append((value, lines)), max_events=7,
                             max_bytes=2_000)
    ((_, stream),) = line_by_line(chunk, 1)[0].items()  # one board, one type
    for number, wire in stream:
        line_path.add("admission", "E09000012", wire, number)
    line_path.flush()
    assert [(value, lines) for *_, value, lines in packed.records] == batches


@pytest.mark.parametrize("content", [
    b"\xef\xbb\xbfone\ntwo\r\n\nthree\nfour",  # a byte-order mark, CRLF, a blank line, no final newline
    b"one\ntwo\nthree\n", b"", b"\n\n", b"a very long line that spans many chunks\nshort\n",
])
@pytest.mark.parametrize("chunk_bytes", [1, 5, 1 << 20])
@pytest.mark.parametrize("after_line", [0, 1, 3, 10])
def test_log_chunks_are_the_physical_lines_after_the_checkpoint(tmp_path, content, chunk_bytes, after_line):
    path = tmp_path / "log.jsonl"
    path.write_bytes(content)
    expected = [(number, raw) for number, raw in physical_lines(path) if number > after_line]
    got, skipped = [], 0
    for first, chunk, lines, skip in log_chunks(path, after_line, chunk_bytes):
        skipped += skip
        starts, ends = line_spans(chunk)
        assert len(starts) == lines
        got += [(first + i, chunk[s:e]) for i, (s, e) in enumerate(zip(starts, ends, strict=True))]
    assert got == expected
    assert skipped == min(after_line, sum(1 for _ in physical_lines(path)))


def test_packing_processes_give_what_one_process_gives(tmp_path):
    path = tmp_path / "log.jsonl"
    spec = GeneratorSpec(date(2015, 4, 1), date(2015, 4, 20), scale=0.01, seed=8, malformed_share=0.01)
    write_log(generate_frame(spec), path)

    def packed(processes: int) -> list:
        packing = ChunkPacking(load_boards(), PSEUDONYMISER, processes)
        return [(first, lines, skipped, chunk.records, [(line.number, str(error), error.reason)
                                                        for line, error in chunk.rejected])
                for first, lines, skipped, chunk in packing.chunks(path, 100, 64 * 1024) if chunk is not None]

    in_processes = packed(2)
    assert len(in_processes) > 4 and in_processes[0][0] == 101 and in_processes[0][2] == 100
    assert in_processes == packed(1)
    assert any(rejected for *_, rejected in in_processes)
