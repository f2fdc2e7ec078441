#!/usr/bin/env python3
"""Benchmark (issue 12): USB webcams (--backend uvc) beside v4l2loopback cameras, in one run.

    provision  `simfarm provision --cameras 4` at 640x480@30 until every camera is verified:
               loopback, then uvc (four webcams plugged into vhci-hcd and enumerated)
    streams    the four uvc webcams read at once, each by a linuxpy mmap reader in a process of
               its own that decodes only the code strip, for --seconds,
               at 320x240 and 640x480 in YUYV and MJPEG, 30 fps: frames per second each reader
               got, sequence numbers missing between the first and last code it decoded (of
               them, how many the webcams dropped because the host had not yet taken the last
               frame: status' usb.dropped; the rest the readers were too slow for), the slots
               the webcams' producers skipped because they could not serve them in time (never
               produced, so not missing: sequence numbers count written frames), and
               the farm's CPU seconds (supervisor and workers) per camera per second; side by
               side with the webcams run in the supervisor (workers 0) and in worker processes
               (the default: one per core)

Needs vhci-hcd, uvcvideo and v4l2loopback: `simfarm vm -- scripts/bench/bench_uvc.py`. Aim (issue
12): 640x480@30 MJPEG and 320x240@30 YUYV with no missing frames on 4 cameras.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

from simfarm import Farm
from simfarm.devices.v4l2 import capture
from simfarm.frames.code import decode
from simfarm.spec import CameraSpec, PixelFormat, Size

from _common import SIMFARM, cpu_seconds, farm_pids, run_seconds, webcam_profile

CAMERAS = 4
FPS = Fraction(30)
STREAMS = [(Size(320, 240), PixelFormat.YUYV), (Size(640, 480), PixelFormat.YUYV),
           (Size(320, 240), PixelFormat.MJPEG), (Size(640, 480), PixelFormat.MJPEG)]


def provision_seconds(*args: str) -> float:
    """Wall time of `simfarm provision` with ``args`` (the farm is torn down afterwards)."""
    took, _ = run_seconds([*SIMFARM, "provision", "--cameras", str(CAMERAS), "--farm", "bench",
                           "--size", "640x480", "--fps", "30", *args])
    subprocess.run([*SIMFARM, "teardown", "--farm", "bench"], check=True, stdout=subprocess.DEVNULL)
    return took


def read_for(device: str, spec: CameraSpec, seconds: float) -> tuple[int, int]:
    """Stream ``device`` for ``seconds`` after its first frame: (frames got, sequence numbers missing)."""
    frames, sequences, end = 0, [], None
    for frame in capture.stream_luma(device, spec, count=10**9, timeout=120, strip_only=True):
        end = end or time.monotonic() + seconds
        frames += 1
        if (code := decode(frame.luma)) is not None:
            sequences.append(code.sequence)
        if time.monotonic() >= end:
            break
    missing = sequences[-1] - sequences[0] + 1 - len(set(sequences)) if sequences else 0
    return frames, missing


def usb_dropped(farm: Farm) -> int:
    return sum(cam["usb"]["dropped"] for cam in farm.status()["cameras"])


def skipped_slots(farm: Farm) -> dict[int, int]:
    """Per streaming camera, the slots its producer could not serve in time (status ``dropped``), since
    its stream started."""
    return {cam["camera"]: cam["dropped"] for cam in farm.status()["cameras"] if cam["state"] == "streaming"}


def stream_all(farm: Farm, size: Size, fmt: PixelFormat, seconds: float) -> tuple[float, int, int, int, float]:
    """(fps per camera, frames missing in all, frames the webcams dropped, slots their producers
    skipped, the farm's CPU s per camera per s) of one stream setting."""
    spec = CameraSpec(size=size, fps=FPS, format=fmt)
    pids, dropped = farm_pids(farm), usb_dropped(farm)
    # What a reader loads at its first MJPEG frame, loaded before they fork: under emulation it took
    # a second, and the webcams' next 30 frames counted as missing.
    for module in ("cv2", "simfarm.frames.jpeg_splice"):
        importlib.import_module(module)
    # A reader process per webcam, as a service would have: readers sharing one interpreter's GIL
    # missed frames that the webcams had sent.
    with multiprocessing.get_context("fork").Pool(len(farm.cameras)) as readers:
        before, start = cpu_seconds(pids), time.monotonic()
        pending = readers.starmap_async(read_for, [(cam.device, spec, seconds) for cam in farm.cameras])
        skipped: dict[int, int] = {}
        while not pending.ready():  # a stream's producer and its counters go when its reader stops
            skipped.update(skipped_slots(farm))
            pending.wait(0.5)
        results = pending.get()
        elapsed, used = time.monotonic() - start, cpu_seconds(pids) - before
    fps = sum(frames for frames, _ in results) / len(results) / seconds
    return (fps, sum(missing for _, missing in results), usb_dropped(farm) - dropped, sum(skipped.values()),
            used / elapsed / len(results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each stream setting is read")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        profile = webcam_profile(tmp)
        loopback = provision_seconds()
        uvc = provision_seconds("--backend", "uvc", "--profile", profile)
        print(f"provision --cameras {CAMERAS} 640x480@30: loopback {loopback:.1f} s, uvc {uvc:.1f} s "
              f"({uvc / loopback:.1f}x)")
        spec = CameraSpec(size=Size(320, 240), fps=FPS, profile=profile)
        print(f"{'stream':18} {'webcams run in':16} {'fps/camera':>10} {'missing':>8} {'by webcam':>9} "
              f"{'slots skipped':>13} {'CPU s/s per camera':>19}")
        for workers in (0, None):
            with Farm.provision(CAMERAS, name="bench", spec=spec, backend="uvc", workers=workers) as farm:
                where = f"{len(farm_pids(farm)) - 1} workers" if workers is None else "the supervisor"
                for size, fmt in STREAMS:
                    fps, missing, dropped, skipped, cpu = stream_all(farm, size, fmt, args.seconds)
                    print(f"{fmt.name + ' ' + str(size) + '@30':18} {where:16} {fps:10.1f} {missing:8d} "
                          f"{dropped:9d} {skipped:13d} {cpu:19.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
