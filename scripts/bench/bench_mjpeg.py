#!/usr/bin/env python3
"""Benchmark: CPU per MJPEG frame, full encode against the splice (frames.jpeg_splice), side by side.

For each size one camera's ring (smpte75) is stamped frame after frame by
two Stampers: one told the ring picture each frame shows (what a producer
does: the strip's MCU rows are encoded and spliced) and one told nothing (a
full encode every frame, the path of frames that are not a ring's). Blocks
of FRAMES frames alternate between the two for --rounds rounds, so both see
the same load; CPU time of this process per frame, medians over the rounds,
and full/splice, the figure to read.

    scripts/bench/bench_mjpeg.py [--rounds 5] [--frames 30] [--sizes 320x240,640x480,1280x720]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from fractions import Fraction

from simfarm.frames.code import FrameCode
from simfarm.frames.stamp import Stamper
from simfarm.patterns import PatternLibrary
from simfarm.producers.build import build_source
from simfarm.producers.sources import FrameSource
from simfarm.spec import CameraSpec, PixelFormat, Size


def cpu_per_frame(source: FrameSource, stamper: Stamper, splice: bool, frames: int, start: int) -> float:
    """CPU seconds per frame of stamping ``frames`` frames from ``start`` on."""
    before = time.process_time()
    for index in range(start, start + frames):
        frame = source.frame(index)
        stamper.stamp(frame, FrameCode(0, index, index), frame_index=index, wall_time=0.0,
                      reused=source.reuses_buffers, content=source.content if splice else None)
    return (time.process_time() - before) / frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating blocks per mode and size")
    parser.add_argument("--frames", type=int, default=30, help="frames per block")
    parser.add_argument("--sizes", default="320x240,640x480,1280x720", help="comma-separated WxH")
    args = parser.parse_args()
    if args.rounds < 1 or args.frames < 1:
        print("bench_mjpeg: --rounds and --frames must be at least 1", file=sys.stderr)
        return 2
    library = PatternLibrary()
    print(f"{'size':10} {'full ms/frame':>14} {'splice ms/frame':>16} {'full/splice':>12}")
    for text in args.sizes.split(","):
        spec = CameraSpec(size=Size.parse(text), fps=Fraction(30), format=PixelFormat.MJPEG, pattern="smpte75")
        source, overlays = build_source(spec, library)
        stampers = {mode: Stamper(spec.format, spec.size, overlays) for mode in (False, True)}
        times: dict[bool, list[float]] = {False: [], True: []}
        for splice in (False, True):  # warm-up: the ring picture's one full encode is not per-frame cost
            cpu_per_frame(source, stampers[splice], splice, 2, 0)
        for n in range(args.rounds):
            for splice in (False, True):
                times[splice].append(cpu_per_frame(source, stampers[splice], splice, args.frames,
                                                   2 + n * args.frames))
        full, spliced = statistics.median(times[False]), statistics.median(times[True])
        print(f"{text:10} {full * 1e3:14.2f} {spliced * 1e3:16.2f} {full / spliced:11.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
