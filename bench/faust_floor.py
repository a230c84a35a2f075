"""The floor Faust itself puts under the product: an agent that only counts and acknowledges each event.

Run by `make bench` (bench/bench.py) on the same topics as the product; prints the seconds from process
start to the N-th event, the same way the product row is timed (start-up and group join included).
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

import faust


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="Comma-separated topics.")
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--datadir", type=Path, required=True)
    parser.add_argument("--web-port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--take", type=int, default=0, help="Consume in stream.take batches of this size.")
    args = parser.parse_args()
    app = faust.App(f"bench-floor-{uuid.uuid4().hex[:8]}", broker=f"kafka://{args.bootstrap}",
                    datadir=str(args.datadir), topic_partitions=args.partitions,
                    consumer_auto_offset_reset="earliest", web_host="127.0.0.1", web_port=args.web_port,
                    web_bind="127.0.0.1", stream_buffer_maxsize=16_384)
    events = app.topic(*args.topics.split(","), key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=args.partitions)

    @app.agent(events)
    async def count(stream):
        seen = 0
        batches = stream.take(args.take, within=1.0) if args.take else None
        async for item in batches or stream:
            seen += len(item) if args.take else 1
            if seen >= args.events:
                args.out.write_text(f"{time.time()}\n")  # the wall clock, as the bench's

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
