"""The worker's process never loads the analysis libraries it does not use (pandas, pyarrow, holidays: ~100 MiB
of its RSS): neither the CLI it is started from nor its app imports them, and a command's error wrapper
imports its error types only once an error happened."""

from __future__ import annotations

import subprocess
import sys
import textwrap

IMPORT_THE_WORKER = textwrap.dedent("""
    import sys

    import bcfwatch.cli
    from bcfwatch.cli.common import friendly_errors
    from streams.app import create_app
    from streams.config import WorkerConfig

    create_app(WorkerConfig(bootstrap="127.0.0.1:9", topic_prefix="imports", partitions=1))
    assert friendly_errors(lambda: "ran")() == "ran"  # a command that ends well, in the error wrapper
    print(" ".join(sorted(name for name in ("pandas", "pyarrow", "holidays") if name in sys.modules)) or "none")
""")


def test_the_worker_loads_no_analysis_library():
    result = subprocess.run([sys.executable, "-c", IMPORT_THE_WORKER], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "none"
