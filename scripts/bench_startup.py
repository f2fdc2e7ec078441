#!/usr/bin/env python3
"""Benchmark: how long CLI commands take to start, as a ratio to Python itself.

Each command runs RUNS times in a fresh interpreter, the commands taking
turns (so a burst of load elsewhere hits all of them alike), against a state
directory of its own with no farm in it. Prints each command's median wall
time divided by the median of `python3 -c pass` measured in the same run.
Target (issue 11): --help, status, teardown, fault and doctor at most 1.5x.

    scripts/bench_startup.py [--runs 11]
    simfarm vm -- scripts/bench_startup.py     # the figure that counts: under TCG
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGET = 1.5
PY = [sys.executable]
SIMFARM = [sys.executable, "-m", "simfarm"]
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


def seconds(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "SIMFARM_STATE_DIR": state}
        for _ in range(args.runs):
            for name, argv in COMMANDS.items():
                times[name].append(seconds(argv, env))
    medians = {name: statistics.median(t) for name, t in times.items()}
    floor = medians["python3 -c pass"]
    print(f"{args.runs} runs each, taking turns; where: {os.environ.get('SIMFARM_VM_ACCEL', 'host')}")
    print(f"{'command':<28} {'median s':>9} {'x python3 -c pass':>18}")
    for name, median in medians.items():
        print(f"{name:<28} {median:9.3f} {median / floor:18.2f}")
    worst = max(medians[name] / floor for name in TARGETED)
    print(f"target: each simfarm command <= {TARGET}x; worst {worst:.2f}x ({'met' if worst <= TARGET else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
