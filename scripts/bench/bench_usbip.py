#!/usr/bin/env python3
"""Benchmark (issue 21): webcams plugged into the farm's own vhci-hcd beside webcams imported over
USB/IP on TCP 127.0.0.1, in one run.

    Two uvc farms of --cameras webcams each, both running their webcams in the supervisor: "local"
    (plugged into vhci-hcd through a socket pair, as without --usbip-listen) and "imported" (--usbip-listen 127.0.0.1:0, every webcam imported
    back into the same kernel with simfarm attach, so its URBs cross a TCP connection). For
    MJPEG 640x480@30 and YUYV 320x240@30, the webcams of one farm are read at once, each by a
    linuxpy mmap reader in a process of its own that decodes only the code strip, for --seconds
    (the farms take turns, so they never share the CPU): frames per second each reader got,
    sequence numbers missing between the first and last code it decoded, the median and 95th
    percentile latency from the time in the code (when the farm made the frame) to the reader
    having it, and CPU seconds per webcam per second on the farm side (supervisor and workers)
    and on the importing side (vhci-hcd's vhci_rx/vhci_tx kernel threads, which carry every
    URB to and from the device's socket, local or TCP alike).

Needs vhci-hcd and uvcvideo: `simfarm vm -- scripts/bench/bench_usbip.py`.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

from simfarm import Farm
from simfarm.devices.v4l2 import capture
from simfarm.frames.code import decode
from simfarm.publishers.usbip import importer
from simfarm.spec import CameraSpec, PixelFormat, Size

from _common import cpu_seconds, farm_pids, webcam_profile, where

FPS = Fraction(30)
STREAMS = [(Size(640, 480), PixelFormat.MJPEG), (Size(320, 240), PixelFormat.YUYV)]
VHCI_THREADS = ("vhci_rx", "vhci_tx")


def kernel_threads(names: tuple[str, ...]) -> list[int]:
    """Pids of the kernel threads called one of ``names`` (children of kthreadd, pid 2)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
            if comm in names and rest[1] == "2":
                found.append(int(entry.name))
    return found


def read_for(device: str, spec: CameraSpec, seconds: float) -> tuple[int, int, list[float]]:
    """Stream ``device`` for ``seconds`` after its first frame: (frames got, sequence numbers missing,
    each decoded frame's latency in ms)."""
    frames, sequences, latencies, end = 0, [], [], None
    for frame in capture.stream_luma(device, spec, count=10**9, timeout=120, strip_only=True):
        got_ms = time.time() * 1000
        end = end or time.monotonic() + seconds
        frames += 1
        if (code := decode(frame.luma)) is not None:
            sequences.append(code.sequence)
            latencies.append(code.latency_ms(got_ms))
        if time.monotonic() >= end:
            break
    missing = sequences[-1] - sequences[0] + 1 - len(set(sequences)) if sequences else 0
    return frames, missing, latencies


def stream(farm: Farm, nodes: list[str], size: Size, fmt: PixelFormat, seconds: float) -> dict[str, float]:
    """One farm's webcams (``nodes``) read at once in ``fmt`` ``size``@30 for ``seconds``."""
    spec = CameraSpec(size=size, fps=FPS, format=fmt)
    farm_side, vhci_side = farm_pids(farm), kernel_threads(VHCI_THREADS)
    with multiprocessing.get_context("fork").Pool(len(nodes)) as readers:
        before = cpu_seconds(farm_side), cpu_seconds(vhci_side)
        start = time.monotonic()
        results = readers.starmap(read_for, [(node, spec, seconds) for node in nodes])
        elapsed = time.monotonic() - start
        used = cpu_seconds(farm_side) - before[0], cpu_seconds(vhci_side) - before[1]
    latencies = sorted(ms for _, _, each in results for ms in each)
    per_webcam_second = elapsed * len(nodes)
    return {"fps": sum(frames for frames, _, _ in results) / len(nodes) / seconds,
            "missing": sum(missing for _, missing, _ in results),
            "p50": statistics.median(latencies) if latencies else float("nan"),
            "p95": latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan"),
            "farm": used[0] / per_webcam_second, "vhci": used[1] / per_webcam_second}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each stream setting is read")
    parser.add_argument("--cameras", type=int, default=2, help="webcams per farm")
    args = parser.parse_args()
    # What a reader loads at its first MJPEG frame, loaded before they fork (see bench_uvc.py).
    for module in ("cv2", "simfarm.frames.jpeg_splice"):
        importlib.import_module(module)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        profile = webcam_profile(tmp)
        spec = CameraSpec(size=Size(320, 240), fps=FPS, profile=profile)
        # In the supervisor, as an exporting farm's webcams always are: the rows differ only in the transport.
        local = stack.enter_context(Farm.provision(args.cameras, name="bench-local", spec=spec, backend="uvc",
                                                   workers=0))
        exporting = stack.enter_context(Farm.provision(args.cameras, name="bench-net", spec=spec, backend="uvc",
                                                       usbip_listen="127.0.0.1:0"))
        host, port = exporting.status()["usbip"]["listen"].rsplit(":", 1)
        # From status: an exported webcam has no node on the farm's side, so Farm.cameras leaves it out.
        imported = [importer.attach(host, int(port), camera=cam["label"]) for cam in exporting.status()["cameras"]]
        stack.callback(importer.detach, None)
        farms = {"local vhci": (local, [cam.device for cam in local.cameras]),
                 "TCP 127.0.0.1": (exporting, [str(one.node) for one in imported])}
        print(f"{where()}, {args.cameras} webcams per farm, {args.seconds:.0f} s per row")
        print(f"{'stream':18} {'webcams':14} {'fps/webcam':>10} {'missing':>8} {'latency p50':>11} "
              f"{'p95 ms':>7} {'farm CPU':>9} {'vhci CPU':>9}")
        for size, fmt in STREAMS:
            for name, (farm, nodes) in farms.items():
                row = stream(farm, nodes, size, fmt, args.seconds)
                print(f"{fmt.name + ' ' + str(size) + '@30':18} {name:14} {row['fps']:10.1f} {row['missing']:8d} "
                      f"{row['p50']:11.1f} {row['p95']:7.1f} {row['farm']:9.3f} {row['vhci']:9.3f}", flush=True)
    print("CPU: seconds per webcam per second; farm: supervisor and workers; vhci: vhci-hcd's kernel threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
