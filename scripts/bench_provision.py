#!/usr/bin/env python3
"""Benchmark: how long `simfarm provision --cameras 4` takes, beside the bare kernel cost.

Needs v4l2loopback >= 0.13: run it as `simfarm vm -- scripts/bench_provision.py`
on a machine whose kernel cannot load the module.

    provision   command start to "every camera verified" (CLI, supervisor start, pattern rendering,
                node creation, first frames read back and decoded)
    bare        the same four ADD ioctls, S_FMT on each output, one frame written and read back,
                then REMOVE: the floor any tool pays for the same nodes
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np

from simfarm.devices import nodes
from simfarm.devices.loopback_control import LoopbackConfig, LoopbackControl
from simfarm.spec import PixelFormat, Size

SIZE, FPS = Size(640, 480), Fraction(30)


def provision_seconds(cameras: int) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "simfarm", "provision", "--cameras", str(cameras),
                    "--farm", "bench", "--size", str(SIZE), "--fps", str(FPS)], check=True,
                   stdout=subprocess.DEVNULL)
    elapsed = time.monotonic() - start
    subprocess.run([sys.executable, "-m", "simfarm", "teardown", "--farm", "bench"], check=True,
                   stdout=subprocess.DEVNULL)
    return elapsed


def bare_seconds(cameras: int) -> float:
    frame = np.zeros(SIZE.width * SIZE.height * 2, np.uint8)
    start = time.monotonic()
    with LoopbackControl() as control:
        numbers = [control.add(LoopbackConfig(label=f"bench-bare-{i}")) for i in range(cameras)]
        outputs = [nodes.open_output(n, PixelFormat.YUYV, SIZE, FPS) for n in numbers]
        for n, fd in zip(numbers, outputs):
            os.write(fd, frame)
            reader = os.open(nodes.node_path(n), os.O_RDONLY)
            assert len(os.read(reader, frame.nbytes)) == frame.nbytes
            os.close(reader)
        elapsed = time.monotonic() - start
        for n, fd in zip(numbers, outputs):
            os.close(fd)
            control.remove(n)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description="provision latency benchmark")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prov = [provision_seconds(args.cameras) for _ in range(args.runs)]
    bare = [bare_seconds(args.cameras) for _ in range(args.runs)]
    print(f"{args.cameras} cameras {SIZE}@{FPS}, {args.runs} runs, accel {os.environ.get('SIMFARM_VM_ACCEL', 'host')}")
    print(f"  provision (CLI, to all verified): median {np.median(prov):7.3f} s  min {min(prov):7.3f} s")
    print(f"  bare ioctls + first frame:         median {np.median(bare):7.3f} s  min {min(bare):7.3f} s")
    print(f"  ratio provision / bare: {np.median(prov) / np.median(bare):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
