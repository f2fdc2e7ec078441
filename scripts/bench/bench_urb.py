#!/usr/bin/env python3
"""Benchmark (issue 12): CPU per frame and per bulk URB of the userspace webcam's USB/IP loop, side by side.

A fake vhci-hcd (this process) streams YUYV frames of --size from a device in a child process the way
uvcvideo does: a COMMIT, then five bulk IN URBs kept pending, each resubmitted as its RET_SUBMIT
arrives, URBs as large as the device's endpoint makes them (16 KiB at high speed, 32 KiB at
SuperSpeed), until --frames frames have ended. It checks every frame (payload headers, frame id
toggling, frame size). The device's producer offers a fixed frame at --fps (above 30 so the run is
short). Rows:

    floor          no device: per command one recv_into and one sendmsg of a precut payload,
                   in this tree's URB size: what any Python device pays
    BASE (TCP)     the device of git revision BASE (default c8d492a), over loopback TCP as it plugged
    BASE (unix)    the same code over a Unix socket pair, as this tree plugs
    this tree      the device here

Printed: the device process's CPU microseconds per frame (and each row's ratio to the floor's) and
per URB; medians of --rounds rounds that interleave the rows. Absolute figures depend on the machine
and its load: compare rows of one run.

    scripts/bench/bench_urb.py [--size 320x240] [--frames 600] [--fps 300] [--rounds 3] [--base c8d492a]
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import io
import multiprocessing
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import simfarm.errors
import simfarm.spec
from simfarm.backends.uvc import profiles
from simfarm.devices.usb import usbip_device
from simfarm.devices.usb.uvc_requests import COMMIT, SET_CUR, STREAMING
from simfarm.frames import pixfmt
from simfarm.spec import PixelFormat, Size

from _common import take_turns

PROFILES = {Size(320, 240): "lowres", Size(640, 480): "generic-720p"}  # YUYV at that size is format 1, frame 1
PENDING = 5  # uvcvideo's URBs per stream (UVC_URBS)
COMMAND = struct.Struct(">IIIIIiiiii8s")  # CMD_SUBMIT: basic header, flags, length, ..., setup
RETURN = struct.Struct(">IIIIIii20x")  # RET_SUBMIT: basic header, status, actual_length
HEADER = 48
REPO = Path(__file__).resolve().parents[2]


def submit(seqnum: int, length: int, *, ep: int = 1, out: bool = False, setup: bytes = bytes(8)) -> bytes:
    return COMMAND.pack(1, seqnum, 0x10002, 0 if out else 1, ep, 0, length, 0, 0, 0, setup)


def receive(sock: socket.socket, count: int) -> bytes:
    data = bytearray(count)
    view, got = memoryview(data), 0
    while got < count:
        received = sock.recv_into(view[got:])
        if not received:
            raise ConnectionError("the device hung up")
        got += received
    return bytes(data)


def fake_host(sock: socket.socket, frames: int, frame_bytes: int, urb_length: int) -> tuple[int, int, int]:
    """Stream like uvcvideo, in bulk URBs of ``urb_length``, until ``frames`` frames have ended:
    (URBs answered, frames whole, frames bad)."""
    commit = STREAMING.pack(0, 1, 1, 333333, 0, 0, 0, 0, 0, frame_bytes, urb_length, 48_000_000, 3, 1, 1, 1)
    setup = struct.pack("<BBHHH", 0x21, SET_CUR, COMMIT << 8, 1, len(commit))
    sock.sendall(submit(1, len(commit), ep=0, out=True, setup=setup) + commit)
    receive(sock, HEADER)
    sock.sendall(b"".join(submit(seqnum, urb_length) for seqnum in range(2, 2 + PENDING)))
    seqnum, answered, size, fid, whole, bad = 2 + PENDING, 0, 0, None, 0, 0
    while whole + bad < frames:
        _command, _seq, _devid, _dir, _ep, status, actual = RETURN.unpack(receive(sock, HEADER))
        payload = receive(sock, actual)
        answered += 1
        sock.sendall(submit(seqnum, urb_length))
        seqnum += 1
        info = payload[1]
        size += len(payload) - payload[0]
        if info & 0x02:  # end of frame: whole if its size is right and its frame id toggled
            ok = status == 0 and size == frame_bytes and (fid is None or info & 1 != fid)
            whole, bad, fid, size = whole + ok, bad + (not ok), info & 1, 0
    return answered, whole, bad


def serve_floor(sock: socket.socket, payloads: list[bytes], done: Callable[[], None]) -> None:
    """The floor: per command one recv_into and one sendmsg of a precut payload."""
    serve_commands(sock, payloads)
    done()


def serve_commands(sock: socket.socket, payloads: list[bytes]) -> None:
    header, reply = bytearray(HEADER), bytearray(HEADER)
    at = 0
    while sock.recv_into(header, HEADER, socket.MSG_WAITALL) == HEADER:
        _command, seqnum, _devid, direction, _ep, _flags, length, *_rest = COMMAND.unpack(header)
        if direction == 0:  # the COMMIT's data: taken, as a device would
            sock.recv(length, socket.MSG_WAITALL)
            RETURN.pack_into(reply, 0, 3, seqnum, 0, 0, 0, 0, length)
            sock.sendmsg([reply])
            continue
        payload = payloads[at]
        at = (at + 1) % len(payloads)
        RETURN.pack_into(reply, 0, 3, seqnum, 0, 0, 0, 0, len(payload))
        sock.sendmsg([reply, payload])


def floor_payloads(frame: np.ndarray) -> list[bytes]:
    data, chunk, fid, out = frame.tobytes(), usbip_device.MAX_PAYLOAD - 2, 0, []
    for _ in range(2):
        pieces = [data[at:at + chunk] for at in range(0, len(data), chunk)]
        out += [bytes([2, 0x80 | fid | (0x02 if i == len(pieces) - 1 else 0)]) + p for i, p in enumerate(pieces)]
        fid ^= 1
    return out


def load_base(revision: str) -> ModuleType:
    """The USB/IP device module of git revision ``revision``, importable beside today's: that revision's
    package, extracted as package simfarm_base, so its relative imports find its own modules whichever
    layout it had."""
    root = Path(tempfile.mkdtemp(prefix="bench-urb-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "simfarm"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    (root / "simfarm").rename(root / "simfarm_base")
    sys.path.insert(0, str(root))
    # Today's values (PixelFormat, Size) and errors, so that frames and profiles made here mean the same there.
    sys.modules["simfarm_base.spec"], sys.modules["simfarm_base.errors"] = simfarm.spec, simfarm.errors
    moved = (root / "simfarm_base/devices/usb/usbip_device.py").exists()  # the devices/ rooms (issue 20)
    return importlib.import_module("simfarm_base.devices.usb.usbip_device" if moved
                                   else "simfarm_base.devices.usbip_device")


def make_device(module: ModuleType, size: Size, fps: float, done: Callable[[], None]) -> object:
    """``module``'s device, fed a fixed frame at ``fps`` while the host streams; ``done`` once it stops."""
    frame = np.zeros(pixfmt.frame_bytes(PixelFormat.YUYV, size), np.uint8)
    stop = threading.Event()

    def feed(_fmt: PixelFormat, _size: Size, _fps: Fraction, sink: usbip_device.BulkSink) -> None:
        def run() -> None:
            deadline = time.monotonic()
            while not stop.is_set():
                sink.write_frame(frame)
                deadline += 1 / fps
                stop.wait(max(0.0, deadline - time.monotonic()))
        threading.Thread(target=run, daemon=True).start()

    def stopped() -> None:
        stop.set()
        done()

    return module.UsbipWebcamDevice(profiles.load(PROFILES[size], "bench"), on_stream=feed, on_stop=stopped)


def serve(device: Any, sock: socket.socket) -> None:
    if hasattr(device, "serve"):
        device.serve(sock)
    else:  # the base revision started its thread inside plug()
        device._socket = sock
        threading.Thread(target=device._serve, daemon=True).start()


def device_process(module: ModuleType | None, sock: socket.socket, host_end: socket.socket, size: Size, fps: float,
                   report: Connection) -> None:
    """Child: serve ``module``'s device (None: the floor) until the host hangs up; report the process's CPU
    seconds."""
    host_end.close()  # the parent's: only the parent's copy may stay, so its close is the hang-up
    finished = threading.Event()
    if module is None:
        payloads = floor_payloads(np.zeros(pixfmt.frame_bytes(PixelFormat.YUYV, size), np.uint8))
        start = time.process_time()
        threading.Thread(target=serve_floor, args=(sock, payloads, finished.set), daemon=True).start()
    else:
        device = make_device(module, size, fps, finished.set)
        start = time.process_time()  # loading the profile is not the loop's
        serve(device, sock)
    finished.wait()
    report.send(time.process_time() - start)


def connected_pair(tcp: bool) -> tuple[socket.socket, socket.socket]:
    if not tcp:
        return socket.socketpair()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host_end = socket.create_connection(listener.getsockname())
        device_end, _ = listener.accept()
    return host_end, device_end


def run_row(module: ModuleType | None, tcp: bool, args: argparse.Namespace) -> tuple[float, int, int]:
    """(device CPU seconds, URBs answered, frames bad) of one row."""
    host_end, device_end = connected_pair(tcp)
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(
        target=device_process, args=(module, device_end, host_end, args.size, args.fps, sender))
    child.start()
    device_end.close()
    urb_length = (module or usbip_device).MAX_PAYLOAD  # uvcvideo sizes URBs by the device's endpoint
    urbs, _whole, bad = fake_host(host_end, args.frames, pixfmt.frame_bytes(PixelFormat.YUYV, args.size), urb_length)
    host_end.shutdown(socket.SHUT_WR)  # hang up, and take what the device still sends until it does too
    while host_end.recv(1 << 16):
        pass
    host_end.close()
    cpu = receiver.recv()
    child.join()
    return cpu, urbs, bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=Size.parse, default=Size(320, 240), help="320x240 or 640x480 (YUYV)")
    parser.add_argument("--frames", type=int, default=600, help="frames streamed per row and round")
    parser.add_argument("--fps", type=float, default=300.0, help="frames the producer offers per second")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all rows; medians are printed")
    parser.add_argument("--base", default="c8d492a", help="the git revision to compare with")
    args = parser.parse_args()
    if args.size not in PROFILES or args.frames < 10 or args.fps <= 0 or args.rounds < 1:
        print("bench_urb: --size 320x240 or 640x480, --frames >= 10, --fps > 0, --rounds >= 1", file=sys.stderr)
        return 2
    base = load_base(args.base)
    rows: dict[str, tuple[ModuleType | None, bool]] = {
        "floor": (None, False), f"{args.base} (TCP)": (base, True), f"{args.base} (unix)": (base, False),
        "this tree": (usbip_device, False)}
    print(f"YUYV {args.size}, {args.frames} frames per row, {PENDING} URBs pending, frames offered at {args.fps:g} "
          f"fps, median of {args.rounds} rounds; URBs of {base.MAX_PAYLOAD} bytes ({args.base}), "
          f"{usbip_device.MAX_PAYLOAD} (this tree, floor)")
    # Rounds interleave the rows, so a change of load on a shared machine touches every row alike.
    runs = take_turns(args.rounds, {row: partial(run_row, module, tcp, args) for row, (module, tcp) in rows.items()})
    print(f"{'device':18} {'CPU us/frame':>12} {'x floor':>8} {'URBs/frame':>10} {'CPU us/URB':>10} {'frames bad':>10}")
    floor = statistics.median(cpu for cpu, _, _ in runs["floor"])
    for row, results in runs.items():
        cpu = statistics.median(cpu for cpu, _, _ in results)
        urbs = statistics.median(urbs for _, urbs, _ in results)
        print(f"{row:18} {cpu / args.frames * 1e6:12.0f} {cpu / floor:8.2f} {urbs / args.frames:10.1f} "
              f"{cpu / urbs * 1e6:10.1f} {sum(bad for _, _, bad in results):10d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
