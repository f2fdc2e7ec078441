"""What several benchmarks measure alike: processes' CPU and memory from /proc, a window after
a warm-up, waiting for processes started side by side, timing a command, runs taking turns; and
the webcam profile the USB webcam benchmarks stream.

Not a benchmark: the scripts beside it import it (their folder is the first on sys.path).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from simfarm.procfs import stat_fields

if TYPE_CHECKING:
    from simfarm import Farm

T = TypeVar("T")
SIMFARM = [sys.executable, "-m", "simfarm"]
FLOOR = Path(__file__).with_name("paced_floor.py")
TICK = os.sysconf("SC_CLK_TCK")
# A uvc webcam offering both benchmarked formats at both sizes, at 30 fps.
WEBCAM_PROFILE = """\
vendor_id: 0x1d6b
product_id: 0x0102
manufacturer: simfarm
product: Bench Webcam
formats:
  - format: YUYV
    sizes: {320x240: [30], 640x480: [30]}
  - format: MJPEG
    sizes: {320x240: [30], 640x480: [30]}
controls:
  brightness: {min: -64, max: 64, step: 1, default: 0}
"""


def where() -> str:
    """The machine the figures come from: the VM's acceleration (set by `simfarm vm`), or host."""
    return os.environ.get("SIMFARM_VM_ACCEL", "host")


def webcam_profile(directory: str) -> str:
    """WEBCAM_PROFILE written to a file in ``directory``: its path, for --profile."""
    path = Path(directory, "bench-webcam.yaml")
    path.write_text(WEBCAM_PROFILE)
    return str(path)


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def farm_pids(farm: Farm) -> list[int]:
    """The supervisor's and its workers' pids."""
    assert farm.supervisor_pid is not None
    return [farm.supervisor_pid, *(worker["pid"] for worker in farm.status().get("workers", []))]


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of ``pids`` (those still running)."""
    total = 0
    for pid in pids:
        if (fields := stat_fields(pid)) is not None:
            total += int(fields[11]) + int(fields[12])  # stat fields 14 and 15
    return total / TICK


def memory_mb(pids: Iterable[int]) -> tuple[float, float]:
    """Summed (RSS, PSS) of ``pids`` in MB."""
    rss = pss = 0
    for pid in pids:
        try:
            text = open(f"/proc/{pid}/smaps_rollup").read()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss"):
                kb = int(value.split()[0])
                rss, pss = (rss + kb, pss) if key == "Rss" else (rss, pss + kb)
    return rss / 1024, pss / 1024


def window(seconds: float, sample: Callable[[], T], warmup: float = 0.0) -> tuple[T, T, float]:
    """``sample()`` once ``warmup`` seconds have passed and again ``seconds`` later: (first, last, wall
    seconds between them). The warm-up keeps start-up (imports, pattern rendering, first frames) out
    of what is measured."""
    time.sleep(max(0.0, warmup))
    start, first = time.monotonic(), sample()
    time.sleep(seconds)
    end, last = time.monotonic(), sample()
    return first, last, end - start


def wait_started(procs: Sequence[T], started: Callable[[T, float], bool], timeout: float) -> list[T]:
    """Those of ``procs`` for which ``started(proc, seconds left)`` is false. They start side by side,
    so one deadline ``timeout`` seconds away holds for all of them, not ``timeout`` for each."""
    deadline = time.monotonic() + timeout
    return [proc for proc in procs if not started(proc, max(0.0, deadline - time.monotonic()))]


def floor_argv(path: str, size: str, fps: float, seconds: float, *options: str) -> list[str]:
    """The command line of a paced_floor.py writing to ``path`` (see its docstring for ``options``)."""
    return [sys.executable, str(FLOOR), path, size, str(fps), str(seconds), *options]


def run_seconds(argv: list[str], env: Mapping[str, str] | None = None, *, check: bool = True,
                stderr: int | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``argv``, its output dropped; CPU is user + system of the
    command and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr, check=check)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def take_turns(rounds: int, runs: Mapping[str, Callable[[], T]]) -> dict[str, list[T]]:
    """Each of ``runs`` once a round, in turn, for ``rounds`` rounds, so that load from elsewhere on
    the machine touches them alike: name -> its results."""
    results: dict[str, list[T]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            results[name].append(run())
    return results


def medians(rounds: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per key of the first round, the median over ``rounds``."""
    return {key: statistics.median(round_[key] for round_ in rounds) for key in rounds[0]}
