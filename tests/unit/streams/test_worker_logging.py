"""The worker's logging: at its default level no library's debug line builds a log record (Faust's start-up
spinner would put the root logger at DEBUG, and aiokafka logs one debug line per record it sends)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SET_UP_LOGGING = textwrap.dedent("""
    import logging
    import sys

    from streams.app import GracefulWorker, counting_app
    from streams.config import WorkerConfig

    app = counting_app(WorkerConfig(bootstrap="127.0.0.1:9", topic_prefix="logging", partitions=1))
    worker = GracefulWorker(app, loglevel="warning", quiet=True)
    worker._setup_logging()  # what the worker does first when it starts
    producer_log = logging.getLogger("aiokafka.producer.producer")
    # (the worker sends stdout to its log: answer on the real one)
    sys.__stdout__.write(f"{producer_log.isEnabledFor(logging.DEBUG)} {producer_log.isEnabledFor(logging.WARNING)}")
""")


def test_at_warning_the_worker_builds_no_debug_records():
    result = subprocess.run([sys.executable, "-c", SET_UP_LOGGING], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]
