#!/usr/bin/env python3
"""Benchmark: how long CLI commands take to start, as a ratio to Python itself.

Each command runs RUNS times in a fresh interpreter, the commands taking
turns (so a burst of load elsewhere hits all of them alike), against a state
directory of its own with no farm in it. Prints each command's median wall
time and median CPU time (user + system, of the command and its children),
each divided by the same median of `python3 -c pass` measured in the same
run. On a machine shared with other work the CPU ratio is the steadier one:
waiting for a core inflates wall times, not CPU times. Target (issue 11):
--help, status, teardown, fault and doctor at most 1.5x.

    scripts/bench/bench_startup.py [--runs 11]
    simfarm vm -- scripts/bench/bench_startup.py     # the figure that counts: under TCG
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

from _common import SIMFARM, met, run_seconds, take_turns, where

TARGET = 1.5
PY = [sys.executable]
COMMANDS: dict[str, list[str]] = {
    "python3 -c pass": [*PY, "-c", "pass"],
    "python3 -c 'import numpy'": [*PY, "-c", "import numpy"],
    "python3 -c 'import cv2'": [*PY, "-c", "import cv2"],
    "simfarm --help": [*SIMFARM, "--help"],
    "simfarm status": [*SIMFARM, "status"],
    "simfarm teardown": [*SIMFARM, "teardown"],
    "simfarm fault list": [*SIMFARM, "fault", "list"],  # no farm: exits 2 after parsing, as a typo would
    "simfarm doctor": [*SIMFARM, "doctor"],
}
# The commands the target is about; the imports above are for scale.
TARGETED = [name for name in COMMANDS if name.startswith("simfarm")]


def bytecode_cached() -> str:
    """How many of simfarm's modules have current bytecode to load. Where none was
    made (an editable install with PYTHONDONTWRITEBYTECODE set) every command
    compiles the modules it imports afresh, which costs about a third of
    Python's own start-up: scripts/setup.sh compiles them."""
    import importlib.util

    import simfarm
    sources = list(Path(simfarm.__file__).parent.rglob("*.py"))
    fresh = sum(1 for src in sources if (pyc := Path(importlib.util.cache_from_source(str(src)))).exists()
                and pyc.stat().st_mtime >= src.stat().st_mtime)
    return f"{fresh} of {len(sources)} simfarm modules"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "SIMFARM_STATE_DIR": state}
        times = take_turns(args.runs, {name: partial(run_seconds, argv, env, check=False, stderr=subprocess.DEVNULL)
                                       for name, argv in COMMANDS.items()})
    wall = {name: statistics.median(w for w, _ in t) for name, t in times.items()}
    cpu = {name: statistics.median(c for _, c in t) for name, t in times.items()}
    base = "python3 -c pass"
    print(f"{args.runs} runs each, taking turns; where: {where()}; bytecode cached: {bytecode_cached()}")
    print(f"{'command':<28} {'wall s':>7} {'x pass':>7} {'CPU s':>7} {'x pass':>7}")
    for name in COMMANDS:
        print(f"{name:<28} {wall[name]:7.3f} {wall[name] / wall[base]:7.2f} {cpu[name]:7.3f} {cpu[name] / cpu[base]:7.2f}")
    for label, medians in (("wall", wall), ("CPU", cpu)):
        worst = max(medians[name] / medians[base] for name in TARGETED)
        print(f"target ({label}): each simfarm command <= {TARGET}x; worst {worst:.2f}x "
              f"({met(worst <= TARGET)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
