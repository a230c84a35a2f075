"""Run `bcfwatch worker` as a child process (the demo and the tests use it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from streams.config import WorkerConfig


class WorkerProcess:
    def __init__(self, config: WorkerConfig, log: Path, launcher: tuple[str, ...] = ("-m", "bcfwatch.cli")) -> None:
        """``launcher``: what follows the Python interpreter before ``worker ARGS`` (the benchmark's memory
        attribution runs the same command under tracemalloc: ``("-m", "bench.traced_worker", OUT)``)."""
        self.config = config
        self.log = log
        self.launcher = launcher
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.log, "ab")
        self.process = subprocess.Popen(
            [sys.executable, *self.launcher, "worker", "--topic-prefix", self.config.topic_prefix,
             "--bootstrap", self.config.bootstrap, "--partitions", str(self.config.partitions),
             "--web-port", str(self.config.web_port), "--datadir", str(self.config.datadir),
             "--metrics-port", str(self.config.metrics_port or 0),
             "--snapshot-seconds", str(self.config.snapshot_seconds)],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=os.environ.copy(),
        )
        handle.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to save anything."""
        assert self.process is not None, "kill() after start()"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None
