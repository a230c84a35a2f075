"""A live process never carries a dead agent (issue 26): when the worker's agent or one of its tasks crashes,
the process exits with code 1 at once, saying why, so that its supervisor restarts it (and the restart resumes
from the snapshots, as after a kill -9). Each case runs a real worker process on the real broker whose agent or
timer has been made to crash by the test (the production wiring of ``streams/app.py`` is unchanged)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from kafka import KafkaProducer

from bcfwatch.infra.kafka import ensure_topics
from streams.config import WorkerConfig
from tests.support import free_port, wait_for

pytestmark = pytest.mark.kafka

WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path

    from streams.app import GracefulWorker, counting_app
    from streams.config import WorkerConfig

    bootstrap, prefix, datadir, web_port, where = sys.argv[1:]
    config = WorkerConfig(bootstrap=bootstrap, topic_prefix=prefix, partitions=1, datadir=Path(datadir),
                          web_port=int(web_port))
    app = counting_app(config)
    topic = app.topic(f"{prefix}.admission", value_serializer="raw")

    if where == "agent":
        @app.agent(topic)
        async def count_events(stream):
            async for _ in stream:
                raise RuntimeError("the agent broke on an event")
    else:
        @app.timer(interval=0.5)
        async def snapshot_state():
            raise RuntimeError("the snapshot timer broke")

    GracefulWorker(app, loglevel="warning", quiet=True).execute_from_commandline()
""")


@pytest.mark.parametrize("where", ["agent", "timer"])
def test_a_crashed_agent_or_task_ends_the_worker_with_code_1(broker, topic_prefix, tmp_path, where):
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topic_prefix, partitions=1)
    ensure_topics(broker.bootstrap, [config.topics.event("admission")], 1)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    log = tmp_path / "worker.log"
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, str(script), broker.bootstrap, topic_prefix,
                                    str(tmp_path / "data"), str(free_port()), where],
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        if where == "agent":  # one event for it to break on (read from the earliest offset, whenever it joins)
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
            producer.send(config.topics.event("admission"), value=b"{}").get(timeout=30)
            producer.close()
        wait_for(lambda: process.poll() is not None, 120, "the worker to exit after the crash")
        text = log.read_text()
        assert process.returncode == 1, text[-3000:]
        assert "crashed (RuntimeError" in text and "exiting with code 1" in text, text[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
