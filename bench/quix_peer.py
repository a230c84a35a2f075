"""The throughput peer (../shared/DESIGN.md): Quix Streams counting the same single-event topics.

Runs in its own venv (``bench/.quix-venv``, made by bench/bench.py; never in the project's .venv): only the
standard library and quixstreams. Per event: JSON decode, a duplicate check on (type, event_id) and per
board/day counters in Quix's RocksDB state (with its changelog topics), the same increments as
``streams.board_state.increments``. Not reproduced: lateness, held events and the 91-day reablement rule,
so this is a lower bound on what the peer would pay for the product's rules. Prints nothing; writes the
moment (``time.time()``) it counts the N-th event to ``--out`` (as bench/faust_floor.py does): the bench times it
from before the process starts, interpreter and imports included, as it times the product's workers.
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path
from typing import Any

from quixstreams import Application, State

EMERGENCY = {"21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"}
OTHER = {"31", "32", "81", "82", "83"}
DELAY = {"nhs": 2, "social_care": 3, "both": 4}


def increments(event: dict[str, Any]) -> dict[int, int]:
    kind, age = event["type"], event["age"]
    if kind == "admission":
        method = event["admission_method"]
        return {0: 1} if method in EMERGENCY else {1: 1} if method in OTHER else {}
    if kind == "discharge":
        found: dict[int, int] = {}
        if event["delayed_days"]:
            found[DELAY[event["delay_attributable_to"]]] = event["delayed_days"]
        if event["into_reablement"] and age >= 65:
            found[6] = 1
        return found
    return {5: 1} if event["permanent"] and age >= 65 else {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="Comma-separated topics.")
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    app = Application(broker_address=args.bootstrap, consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
                      auto_offset_reset="earliest", state_dir=str(args.state_dir), loglevel="WARNING",
                      commit_interval=1.0)
    seen = 0

    def count(event: dict[str, Any], state: State) -> None:
        nonlocal seen
        seen += 1
        duplicate_key = f"seen|{event['type']}|{event['event_id']}"
        if state.get(duplicate_key) is None:
            state.set(duplicate_key, 1)
            day = event["occurred_at"][:10]
            counts = state.get(day) or [0] * 9
            for index, number in increments(event).items():
                counts[index] += number
            state.set(day, counts)
        if seen == args.events:
            args.out.write_text(f"{time.time()}\n")  # the wall clock, as the bench's
            app.stop()

    for name in args.topics.split(","):
        app.dataframe(app.topic(name, value_deserializer="json")).update(count, stateful=True)
    app.run()


if __name__ == "__main__":
    main()
