"""The worker's requests to glibc's allocator and to the cycle collector do what bcfwatch/infra/memory.py says,
each in a fresh process (an allocator's state is the process's)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from bcfwatch.infra import memory

glibc_only = pytest.mark.skipif(memory.malloc_info() is None, reason="glibc's allocator only")


def run(script: str, *, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          check=True, timeout=60, env=env)
    return done.stdout.strip()


LARGE_BLOCKS = """
    from bcfwatch.infra import memory
    {setting}
    big = bytearray(4 << 20)  # freed: glibc would raise its mmap threshold to 4 MiB
    del big
    before = memory.malloc_info().hblks
    values = [bytearray(256 * 1024) for _ in range(8)]  # packed record values
    print(memory.malloc_info().hblks - before)
"""


@glibc_only
def test_large_blocks_stay_mapped_once_the_threshold_is_fixed():
    assert run(LARGE_BLOCKS.format(setting="assert memory.keep_large_blocks_mapped()")) == "8"
    assert run(LARGE_BLOCKS.format(setting="")) == "0"  # glibc's default: from the heap, kept when freed


@glibc_only
def test_freed_heap_pages_are_handed_back():
    script = """
        import re
        from pathlib import Path
        from bcfwatch.infra import memory

        def rss() -> int:
            return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) // 1024

        blocks = [bytes(2048) + bytes([n % 256]) for n in range(60_000)]  # 120 MiB from glibc's heap
        kept = blocks[::50]  # a few live blocks spread over it: the heap's top cannot shrink
        del blocks
        before = rss()
        assert memory.hand_back_freed_memory()
        print(before - rss())
    """
    assert int(run(script)) > 60  # MiB handed back


@glibc_only
def test_an_operators_threshold_is_kept():
    script = """
        from bcfwatch.infra import memory
        print(memory.keep_large_blocks_mapped())
    """
    for setting in ({"MALLOC_MMAP_THRESHOLD_": "65536"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}):
        assert run(script, env={**os.environ, **setting}) == "False"


@glibc_only
def test_freed_memory_is_handed_back_at_most_every_interval():
    now = [100.0]
    freed = memory.FreedMemoryReturn(every_seconds=10.0, clock=lambda: now[0])
    assert not freed.tick()  # just started
    now[0] += 9.9
    assert not freed.tick()
    now[0] += 0.1
    freed.tick()  # due: trimmed (whether any page was free is glibc's answer)
    assert freed.last == 110.0
    now[0] += 5
    assert not freed.tick() and freed.last == 110.0


CYCLE_COLLECTOR = """
    import gc
    from bcfwatch.infra import memory
    {setting}
    collections = []
    gc.callbacks.append(lambda phase, info: collections.append(info["generation"]) if phase == "start" else None)
    events = [[number] for number in range(40_000)]  # 40,000 small containers, as a few packed records make
    print(gc.get_threshold(), len(collections), gc.get_freeze_count() > 1_000)
"""


def test_the_cycle_collector_runs_less_often_and_leaves_start_up_objects_alone():
    setting = "assert memory.collect_cycles_less_often() == (700, 10, 10); memory.freeze_start_up_objects()"
    assert run(CYCLE_COLLECTOR.format(setting=setting)) == "(50000, 20, 20) 0 True"
    thresholds, collections, frozen = run(CYCLE_COLLECTOR.format(setting="")).rsplit(" ", 2)
    assert thresholds == "(700, 10, 10)" and int(collections) > 50 and frozen == "False"  # CPython's defaults
