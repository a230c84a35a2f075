"""Where the time goes: sample a running process with py-spy and summarise its stacks as a table.

``python -m bench.spy --pid PID --seconds 60`` prints the functions with the most samples on top of the stack
(self) and the project functions with the most samples anywhere on it (inclusive), as Markdown. The
benchmark's national-year row calls :func:`profile` on the worker and on the replay while they run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PROJECT_FOLDERS = ("/bcfwatch/", "/streams/", "/producers/", "/monitors/")


@dataclass(frozen=True)
class Profile:
    """Samples of one process: the stack leaves (self) and every frame on the stack (inclusive)."""

    what: str
    samples: int
    leaves: Counter
    frames: Counter

    def table(self, top: int = 12) -> str:
        lines = [f"**{self.what}**: {self.samples:,} samples", "",
                 "| self % | function (top of the stack) | | inclusive % | project function (anywhere on it) |",
                 "|---:|---|---|---:|---|"]
        leaves = self.leaves.most_common(top)
        frames = [(name, count) for name, count in self.frames.most_common()
                  if any(folder in name for folder in PROJECT_FOLDERS) and "/bcfwatch/cli/" not in name][:top]
        for i in range(max(len(leaves), len(frames))):
            left = (f"{100 * leaves[i][1] / self.samples:.1f} | `{leaves[i][0]}`" if i < len(leaves) else " | ")
            right = (f"{100 * frames[i][1] / self.samples:.1f} | `{frames[i][0]}`" if i < len(frames) else " | ")
            lines.append(f"| {left} | | {right} |")
        return "\n".join(lines)


def _frame_name(frame: str) -> str:
    """``function (path/to/file.py:123)`` -> ``function (file.py)``, folders after site-packages or the repo kept."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/main/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({'/' + path if not path.startswith('/') else path})"


def summarise(raw: str, what: str) -> Profile:
    """A profile from py-spy's raw (collapsed) output: ``frame;frame;... count`` per line, root first."""
    leaves: Counter = Counter()
    frames: Counter = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        names = [_frame_name(frame) for frame in stack.split(";") if frame]
        if not names:
            continue
        samples += count
        leaves[names[-1]] += count
        for name in set(names):
            frames[name] += count
    return Profile(what, samples, leaves, frames)


def profile(pid: int, seconds: float, what: str) -> Profile:
    """Sample ``pid`` for ``seconds`` (py-spy, 100 Hz, without pausing it) and summarise."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "stacks.txt"
        subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--duration",
                        str(int(seconds)), "--format", "raw", "--nonblocking", "--output", str(out)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return summarise(out.read_text(), what)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--what", default="process")
    args = parser.parse_args()
    print(profile(args.pid, args.seconds, args.what).table())


if __name__ == "__main__":
    main()
