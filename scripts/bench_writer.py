#!/usr/bin/env python3
"""Benchmark: CPU cost of the numpy writer against FFmpeg, side by side.

For each size, one camera at 30 fps YUYV streams into a pipe (drained by
`cat > /dev/null`) for DURATION seconds, while `ffmpeg -re -f lavfi -i
testsrc2 ... -f rawvideo` streams the same size and rate into the same kind
of sink at the same time. Prints CPU seconds per second of stream for both
and their ratio. Target: the writer costs at most a fifth of FFmpeg.

    scripts/bench_writer.py [--seconds 10] [--sizes 640x480,1280x720]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from fractions import Fraction

FPS = 30


WARMUP = 1.0  # seconds before measuring: process start-up and pattern rendering are not streaming


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far, from the scheduler's ns counters.

    Read the same way for both processes over the same window; rusage would
    only sample at the tick rate, too coarse for a few ms per second.
    """
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def writer_child(size: str, seconds: float) -> None:
    """Runs in a child process: stream into stdout for ``seconds``, then report counters."""
    from simfarm.patterns import PatternLibrary
    from simfarm.producers.build import build_producer
    from simfarm.producers.sinks import FdSink
    from simfarm.spec import CameraSpec

    spec = CameraSpec.parse(size=size, fps=FPS, format="YUYV", pattern="smpte75")
    producer = build_producer(0, spec, FdSink(sys.stdout.fileno()), PatternLibrary())
    producer.start()
    time.sleep(seconds)  # the stream's length, not a wait for an event
    producer.stop()
    stats = producer.stats()
    print(f"{stats.written} {stats.late} {stats.dropped}", file=sys.stderr)


def run_side_by_side(size: str, seconds: float) -> dict:
    def sink() -> subprocess.Popen:
        return subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)

    writer_sink, ffmpeg_sink = sink(), sink()
    length = WARMUP + seconds + 1
    writer = subprocess.Popen([sys.executable, __file__, "--child", size, str(length)],
                              stdout=writer_sink.stdin, stderr=subprocess.PIPE, text=True)
    ffmpeg = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
                               "-i", f"testsrc2=size={size}:rate={FPS}", "-t", str(length),
                               "-f", "rawvideo", "-pix_fmt", "yuyv422", "pipe:1"],
                              stdout=ffmpeg_sink.stdin)
    for s in (writer_sink, ffmpeg_sink):
        s.stdin.close()
    time.sleep(WARMUP)
    before = cpu_seconds(writer.pid), cpu_seconds(ffmpeg.pid)
    time.sleep(seconds)  # the measurement window
    after = cpu_seconds(writer.pid), cpu_seconds(ffmpeg.pid)
    _, err = writer.communicate()
    ffmpeg.wait()
    for s in (writer_sink, ffmpeg_sink):
        s.wait()
    written, late, dropped = err.split()[-3:]
    return {"size": size, "writer": (after[0] - before[0]) / seconds,
            "ffmpeg": (after[1] - before[1]) / seconds,
            "written": int(written), "late": int(late), "dropped": int(dropped)}


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        writer_child(sys.argv[2], float(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sizes", default="640x480,1280x720")
    args = parser.parse_args()
    print(f"{'size':>10}  {'writer cpu/s':>12}  {'ffmpeg cpu/s':>12}  {'ratio':>6}  frames  late  dropped")
    worst = 0.0
    for size in args.sizes.split(","):
        r = run_side_by_side(size, args.seconds)
        ratio = r["writer"] / r["ffmpeg"] if r["ffmpeg"] else float("inf")
        worst = max(worst, ratio)
        print(f"{size:>10}  {r['writer']:12.4f}  {r['ffmpeg']:12.4f}  {ratio:6.3f}  "
              f"{r['written']:6d}  {r['late']:4d}  {r['dropped']:7d}")
    print(f"target: writer <= 0.20 x ffmpeg; worst ratio {worst:.3f} "
          f"({'met' if worst <= 0.2 else 'NOT met'}); expected frames {int((args.seconds + WARMUP + 1) * FPS)} at {Fraction(FPS)} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
