#!/usr/bin/env python3
"""Benchmark: how many cameras stream on time, simfarm beside one FFmpeg per camera (issue 11).

Needs v4l2loopback >= 0.13: run it as `simfarm vm -- scripts/bench/bench_capacity.py`
on a machine whose kernel cannot load the module.

For N = 1, 2, 4, 8, ... cameras in each series (640x480@30 and 320x240@15
YUYV, smpte75), a real farm (Farm.provision, as many worker processes as
provision gives by default, or ``--workers``) streams for ``--seconds`` after
a warm-up, and from its status counters and /proc it prints:

    late %      slots served after their deadline / slots (status ``late``)
    dropped %   slots skipped because the producer was too late for them (``dropped``)
    CPU/cam     CPU seconds per stream second per camera, supervisor and workers together
    RSS, PSS    resident and proportional memory of the supervisor and its workers, in MB
                (workers are forked: RSS counts the pages they share once per process, PSS splits them)
    PSS/cam     PSS / N

and the same for the farm with its cameras in the supervisor alone
(``simfarm-1proc``, workers 0: how a farm ran before it had workers), and for
N processes of the usual recipe, each
`ffmpeg -re -f lavfi -i testsrc2=size=WxH:rate=F -pix_fmt yuyv422 -f v4l2 /dev/videoX`
on a node of its own. FFmpeg does not count late frames; with -re a process
that cannot keep up falls behind and stays behind, so its late % is the
shortfall of frames written against N * fps * seconds (a lower bound), and
it drops none. And the floor: N processes of scripts/bench/paced_floor.py, each a
bare Python loop writing one constant frame to a node of its own at the rate,
paced and counted as the producers are (late, dropped) but doing none of their
work: what paced writing alone costs here, one process per camera. The four
take turns at each N, so that load from elsewhere
on the machine hits them alike; each stops after the first N whose late and
dropped % together pass ``--collapse`` (default 50 %), or when it fails to
start. A tool holds N cameras when both are under 1 %.

Memory target (issue 11): 32 identical cameras cost at most 2x the memory of
one plus their frame buffers (one per camera: W * H * 2 bytes in YUYV),
judged on PSS.

``--json FILE`` writes every figure for scripts/bench/plot_capacity.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from simfarm import Farm
from simfarm.devices.loopback.control import LoopbackConfig, LoopbackControl
from simfarm.devices.v4l2 import nodes
from simfarm.errors import SimfarmError
from simfarm.producers.pacing import spread_phase
from simfarm.spec import CameraSpec, Size

from _common import cpu_seconds, farm_pids, floor_argv, memory_mb, met, wait_started, where, window

SERIES = (("640x480", 30), ("320x240", 15))
FARM = "capbench"
FFMPEG_START_S = 300.0  # every FFmpeg writing frames (every floor ready); they start slowly under emulation
FLOOR_MARGIN_S = 5.0  # floors write on past the window, so its CPU is sampled while every one still runs


@dataclass
class Point:
    tool: str  # simfarm | simfarm-1proc | ffmpeg | floor
    size: str
    fps: int
    cameras: int
    late_pct: float
    dropped_pct: float
    cpu_per_camera: float  # CPU s per stream s
    rss_mb: float
    pss_mb: float
    processes: int

    @property
    def pss_per_camera_mb(self) -> float:
        return self.pss_mb / self.cameras

    @property
    def off_time_pct(self) -> float:
        """Slots not served on time: late, or dropped (never served)."""
        return self.late_pct + self.dropped_pct


def simfarm_point(cameras: int, size: str, fps: int, seconds: float, warmup: float,
                  workers: int | None) -> Point:
    spec = CameraSpec.parse(size=size, fps=fps)
    with Farm.provision(cameras, name=FARM, spec=spec, workers=workers, timeout=600) as farm:
        pids = farm_pids(farm)

        def sample() -> tuple[float, int, int, int]:
            cams = farm.status()["cameras"]
            return (cpu_seconds(pids), sum(c["written"] for c in cams),
                    sum(c["late"] for c in cams), sum(c["dropped"] for c in cams))

        (cpu0, written0, late0, dropped0), (cpu1, written1, late1, dropped1), elapsed = window(seconds, sample, warmup)
        rss, pss = memory_mb(pids)
    slots = max(1, (written1 - written0) + (dropped1 - dropped0))
    return Point("simfarm", size, fps, cameras, 100 * (late1 - late0) / slots, 100 * (dropped1 - dropped0) / slots,
                 (cpu1 - cpu0) / elapsed / cameras, rss, pss, len(pids))


class FfmpegCamera:
    """One `ffmpeg -re ... -f v4l2` process on a node, counting the frames it reports written."""

    def __init__(self, number: int, size: str, fps: int) -> None:
        self.frames = 0
        self.started = threading.Event()
        self.process = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostats", "-progress", "pipe:1",
             "-stats_period", "0.25", "-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
             "-pix_fmt", "yuyv422", "-f", "v4l2", nodes.node_path(number)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("frame="):
                self.frames = int(line[6:])
                if self.frames:
                    self.started.set()
        self.started.set()  # it ended: nobody waits for it any longer

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


@contextmanager
def loopback_nodes(count: int) -> Iterator[list[int]]:
    with LoopbackControl() as control:
        numbers = [control.add(LoopbackConfig(label=f"capbench-ff-{i}")) for i in range(count)]
        try:
            yield numbers
        finally:
            for number in numbers:
                control.remove(number)


def ffmpeg_point(cameras: int, size: str, fps: int, seconds: float, warmup: float) -> Point:
    with loopback_nodes(cameras) as numbers:
        procs = [FfmpegCamera(number, size, fps) for number in numbers]
        try:
            # The event is set when FFmpeg ends too: whether it wrote is judged once all had their time.
            wait_started(procs, lambda proc, left: proc.started.wait(left), FFMPEG_START_S)
            if failed := [proc for proc in procs if proc.process.poll() is not None or not proc.frames]:
                raise RuntimeError(f"{len(failed)} of {cameras} FFmpegs wrote no frame")
            pids = [proc.process.pid for proc in procs]
            (cpu0, frames0), (cpu1, frames1), elapsed = window(
                seconds, lambda: (cpu_seconds(pids), sum(p.frames for p in procs)), warmup)
            rss, pss = memory_mb(pids)
        finally:
            for proc in procs:
                proc.stop()
    expected = cameras * fps * elapsed
    return Point("ffmpeg", size, fps, cameras, max(0.0, 100 * (1 - (frames1 - frames0) / expected)), 0.0,
                 (cpu1 - cpu0) / elapsed / cameras, rss, pss, cameras)


def floor_ready(proc: subprocess.Popen[str], left: float) -> bool:
    assert proc.stdout is not None
    return bool(select.select([proc.stdout], [], [], left)[0]) and proc.stdout.readline() == "ready\n"


def floor_point(cameras: int, size: str, fps: int, seconds: float, warmup: float) -> Point:
    """N floors (paced_floor.py), one process per node, started together."""
    with loopback_nodes(cameras) as numbers:
        procs = [subprocess.Popen(floor_argv(nodes.node_path(number), size, fps, warmup + seconds + FLOOR_MARGIN_S,
                                             "--wait-go", "--measure-after", str(warmup),
                                             "--measure-for", str(seconds)),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for number in numbers]
        try:
            if silent := wait_started(procs, floor_ready, FFMPEG_START_S):
                proc = silent[0]
                raise RuntimeError(f"a floor did not start: {proc.stderr.read() if proc.poll() else 'no answer'}")
            # Phases spread over the period as a farm's cameras have them: all deadlines at once
            # would make every floor but the first late in a queue of writes.
            start = time.monotonic() + 0.5
            for index, proc in enumerate(procs):
                assert proc.stdin is not None
                proc.stdin.write(f"{start + spread_phase(index) / fps}\n")
                proc.stdin.flush()
            pids = [proc.pid for proc in procs]
            cpu0, cpu1, elapsed = window(seconds, lambda: cpu_seconds(pids), start + warmup - time.monotonic())
            rss, pss = memory_mb(pids)
            counts = [tuple(map(int, proc.communicate(timeout=FFMPEG_START_S)[1].split()[-3:])) for proc in procs]
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    written, late, dropped = (sum(column) for column in zip(*counts))
    slots = max(1, written + dropped)
    return Point("floor", size, fps, cameras, 100 * late / slots, 100 * dropped / slots,
                 (cpu1 - cpu0) / elapsed / cameras, rss, pss, cameras)


def measure(tool: str, cameras: int, size: str, fps: int, args: argparse.Namespace) -> Point:
    if tool == "ffmpeg":
        return ffmpeg_point(cameras, size, fps, args.seconds, args.warmup)
    if tool == "floor":
        return floor_point(cameras, size, fps, args.seconds, args.warmup)
    workers = 0 if tool == "simfarm-1proc" else args.workers
    point = simfarm_point(cameras, size, fps, args.seconds, args.warmup, workers)
    point.tool = tool
    return point


def series(tools: list[str], size: str, fps: int, args: argparse.Namespace) -> list[Point]:
    """Every tool at N = 1, 2, 4, ... in turn, each until it collapses."""
    points: list[Point] = []
    running, cameras = list(tools), 1
    while running and cameras <= args.max:
        for tool in list(running):
            try:
                point = measure(tool, cameras, size, fps, args)
            except (SimfarmError, RuntimeError, OSError) as exc:
                print(f"  {tool} {size}@{fps} x{cameras}: failed: {exc}", flush=True)
                running.remove(tool)
                continue
            points.append(point)
            print(f"  {tool:<13} {size}@{fps:<3} {cameras:>4} {point.late_pct:7.2f} {point.dropped_pct:8.2f} "
                  f"{point.cpu_per_camera:8.4f} {point.processes:>5} {point.rss_mb:8.1f} {point.pss_mb:8.1f} "
                  f"{point.pss_per_camera_mb:8.2f}", flush=True)
            if point.off_time_pct > args.collapse:
                running.remove(tool)
        cameras *= 2
    return points


def capacity(points: list[Point], tool: str, size: str, limit: float = 1.0) -> int:
    """The most cameras of ``tool`` at ``size`` with late and dropped % each under ``limit``; 0 if none."""
    return max((p.cameras for p in points if p.tool == tool and p.size == size and p.late_pct < limit
                and p.dropped_pct < limit), default=0)


def memory_check(points: list[Point], size: str, many: int = 32) -> str:
    by_count = {p.cameras: p for p in points if p.tool == "simfarm" and p.size == size}
    if 1 not in by_count or many not in by_count:
        return f"memory ({size}): no {many}-camera point to judge"
    one, lots = by_count[1].pss_mb, by_count[many].pss_mb
    frame = Size.parse(size).width * Size.parse(size).height * 2 / 2**20
    allowed = 2 * one + many * frame
    return (f"memory ({size}): {many} cameras {lots:.1f} MB PSS, 1 camera {one:.1f} MB; target <= 2 x {one:.1f} + "
            f"{many} x {frame:.2f} (frame buffers) = {allowed:.1f} MB: {met(lots <= allowed)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per point")
    parser.add_argument("--warmup", type=float, default=3.0, help="streaming before the window opens")
    parser.add_argument("--max", type=int, default=64, help="most cameras tried")
    parser.add_argument("--collapse", type=float, default=50.0, help="late %% that ends a series")
    parser.add_argument("--workers", type=int, help="simfarm's worker processes (default: provision's)")
    parser.add_argument("--tools", default="simfarm,simfarm-1proc,ffmpeg,floor", help="which to measure, comma-separated")
    parser.add_argument("--series", default=",".join(f"{size}@{fps}" for size, fps in SERIES),
                        help="which series, comma-separated SIZE@FPS")
    parser.add_argument("--json", help="write every figure here (for scripts/bench/plot_capacity.py)")
    args = parser.parse_args()
    print(f"where: {where()}, {len(os.sched_getaffinity(0))} CPUs, "
          f"kernel {platform.release()}; {args.seconds:g} s per point after {args.warmup:g} s")
    print(f"  {'tool':<13} {'series':<10} {'cams':>4} {'late %':>7} {'dropped%':>8} {'CPU/cam':>8} {'procs':>5} "
          f"{'RSS MB':>8} {'PSS MB':>8} {'PSS/cam':>8}")
    chosen = [(size, int(fps)) for size, _, fps in (item.partition("@") for item in args.series.split(","))]
    points = [point for size, fps in chosen for point in series(args.tools.split(","), size, fps, args)]
    for size, fps in chosen:
        held = {tool: capacity(points, tool, size) for tool in ("simfarm", "simfarm-1proc", "ffmpeg", "floor")}
        ratio = f"{held['simfarm'] / held['ffmpeg']:.0f}x" if held["ffmpeg"] else "FFmpeg held none"
        print(f"{size}@{fps}: cameras under 1 % late and 1 % dropped: simfarm {held['simfarm']}, in one process "
              f"{held['simfarm-1proc']}, one FFmpeg per camera {held['ffmpeg']} (simfarm / FFmpeg: {ratio}), "
              f"the floor {held['floor']}")
        print(memory_check(points, size))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"where": where(), "cpus": len(os.sched_getaffinity(0)),
                       "seconds": args.seconds, "workers": args.workers,
                       "points": [{**asdict(p), "pss_per_camera_mb": p.pss_per_camera_mb,
                                "off_time_pct": p.off_time_pct} for p in points]},
                      out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
