#!/usr/bin/env python3
"""The floor of any paced writer (issue 11): a bare Python loop that sleeps to each absolute
deadline and write()s one constant frame, paced as simfarm's producers are (a slot served more
than a quarter period late counts late; slots missed by a whole period are skipped and counted
dropped), with none of their work per frame (no pattern, no code, no faults).

bench_writer.py runs it beside a producer into a pipe; bench_capacity.py runs one per camera
into a v4l2loopback node. Usage:

    scripts/bench/paced_floor.py PATH WxH FPS SECONDS [--wait-go] [--measure-after S] [--measure-for S]

PATH "-" is stdout; a /dev/videoN node is set to YUYV at the size and rate first. ``--wait-go`` prints "ready" once set up and starts at the CLOCK_MONOTONIC
time read from stdin, so many floors start together. At the end it prints "written late
dropped" on stderr, of the slots from ``--measure-after`` seconds on (for ``--measure-for``
seconds: a measuring parent samples the CPU of floors still running).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import stat
import sys
import time
from fractions import Fraction

from simfarm.producers.pacing import LATE_FRACTION


def open_sink(path: str, width: int, height: int, fps: float, frame_bytes: int) -> int:
    if node := re.fullmatch(r"/dev/video(\d+)", path):  # a loopback node takes its format first, as in a farm
        from simfarm.devices.v4l2 import nodes
        from simfarm.spec import PixelFormat, Size
        return nodes.open_output(int(node[1]), PixelFormat.YUYV, Size(width, height), Fraction(fps))
    fd = sys.stdout.fileno() if path == "-" else os.open(path, os.O_WRONLY)
    if stat.S_ISFIFO(os.fstat(fd).st_mode):  # as the producers' sink does (sinks.FdSink)
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, min(frame_bytes, int(open("/proc/sys/fs/pipe-max-size").read())))
    return fd


def run(fd: int, frame: memoryview, fps: float, start: float, seconds: float,
        counted: tuple[float, float]) -> tuple[int, int, int]:
    """Write ``frame`` to ``fd`` at ``fps`` from ``start`` for ``seconds``: (written, late, dropped)
    of the slots due from ``counted[0]`` to ``counted[1]`` seconds after ``start``."""
    period, end = 1 / fps, start + seconds
    counted_from, counted_to = start + counted[0], start + counted[1]
    written = late = dropped = 0
    k = 0
    while (deadline := start + k * period) < end:
        if deadline > (now := time.monotonic()):
            time.sleep(deadline - now)
            now = time.monotonic()  # the wake-up is what is late or not
        behind = int((now - deadline) / period)
        k += behind
        deadline += behind * period
        is_late = now - deadline > LATE_FRACTION * period
        view = frame
        while view:
            view = view[os.write(fd, view):]
        if counted_from <= deadline < counted_to:
            written, late, dropped = written + 1, late + is_late, dropped + behind
        k += 1
    return written, late, dropped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("size")
    parser.add_argument("fps", type=float)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--wait-go", action="store_true")
    parser.add_argument("--measure-after", type=float, default=0.0)
    parser.add_argument("--measure-for", type=float, help="seconds counted (default: to the end)")
    args = parser.parse_args()
    if args.wait_go and args.path == "-":
        parser.error("--wait-go answers on stdout: give a PATH to write frames to")
    width, height = map(int, args.size.split("x"))
    # A black YUYV frame in memory of its own. Not bytes(n): that is calloc'd, all its pages
    # are the kernel's one zero page, and write() would copy a single cached 4 KiB page over
    # and over, far cheaper than any real frame.
    frame = memoryview(bytes(bytearray(b"\x10\x80") * (width * height)))
    fd = open_sink(args.path, width, height, args.fps, frame.nbytes)
    start = time.monotonic()
    if args.wait_go:
        print("ready", flush=True)
        start = float(sys.stdin.readline())
    counted = (args.measure_after, args.measure_after + args.measure_for if args.measure_for else args.seconds)
    print(*run(fd, frame, args.fps, start, args.seconds, counted), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
