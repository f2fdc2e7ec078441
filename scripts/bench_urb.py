#!/usr/bin/env python3
"""Benchmark (issue 12): CPU per bulk URB of the userspace webcam's USB/IP loop, side by side, on the host.

A fake vhci-hcd (this process) streams from a device in a child process the way uvcvideo does:
a COMMIT of YUYV at --size, then five 16 KiB bulk IN URBs kept pending, each resubmitted as its
RET_SUBMIT arrives, until --urbs have been answered. It checks every frame that comes back (payload
headers, frame id toggling, frame size). The device's producer offers frames at --fps (above 30 so
the run is short; below what any row can carry, so no row drops frames). Rows:

    floor          a bare loop, no device: recv a 48-byte command, sendmsg a header and the next
                   payload, precut: what any Python device pays per URB
    BASE (TCP)     the device of git revision BASE (default c8d492a), over loopback TCP as it plugged
    BASE (unix)    the same code over a Unix socket pair, which this tree plugs into vhci-hcd
    this tree      the device here, over a Unix socket pair

and prints the device process's CPU microseconds per URB and each row's ratio to the floor.
Absolute figures depend on the machine and its load: compare rows of one run.

    scripts/bench_urb.py [--size 320x240] [--urbs 6000] [--fps 300] [--rounds 3] [--base c8d492a]
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from simfarm.backends import uvc_profiles
from simfarm.devices import usbip_device
from simfarm.devices.uvc_requests import COMMIT, SET_CUR, STREAMING
from simfarm.frames import pixfmt
from simfarm.spec import PixelFormat, Size

PROFILES = {Size(320, 240): "lowres", Size(640, 480): "generic-720p"}  # YUYV at that size is format 1, frame 1
PENDING = 5  # uvcvideo's URBs per stream (UVC_URBS)
URB_LENGTH = usbip_device.MAX_PAYLOAD
COMMAND = struct.Struct(">IIIIIiiiii8s")  # CMD_SUBMIT: basic header, flags, length, ..., setup
RETURN = struct.Struct(">IIIIIii20x")  # RET_SUBMIT: basic header, status, actual_length
HEADER = 48
REPO = Path(__file__).resolve().parent.parent


def submit(seqnum: int, *, ep: int = 1, out: bool = False, length: int = URB_LENGTH, setup: bytes = bytes(8)) -> bytes:
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


def fake_host(sock: socket.socket, urbs: int, frame_bytes: int) -> tuple[int, int]:
    """Stream like uvcvideo until ``urbs`` bulk URBs are answered: (frames whole, frames bad)."""
    commit = STREAMING.pack(0, 1, 1, 333333, 0, 0, 0, 0, 0, frame_bytes, URB_LENGTH, 48_000_000, 3, 1, 1, 1)
    setup = struct.pack("<BBHHH", 0x21, SET_CUR, COMMIT << 8, 1, len(commit))
    sock.sendall(submit(1, ep=0, out=True, length=len(commit), setup=setup) + commit)
    receive(sock, HEADER)
    sock.sendall(b"".join(submit(seqnum) for seqnum in range(2, 2 + PENDING)))
    seqnum, answered, size, fid, whole, bad = 2 + PENDING, 0, 0, None, 0, 0
    while answered < urbs:
        _command, _seq, _devid, _dir, _ep, status, actual = RETURN.unpack(receive(sock, HEADER))
        payload = receive(sock, actual)
        answered += 1
        if answered + PENDING <= urbs:
            sock.sendall(submit(seqnum))
            seqnum += 1
        info = payload[1]
        size += len(payload) - payload[0]
        if info & 0x02:  # end of frame: whole if its size is right and its frame id toggled
            ok = status == 0 and size == frame_bytes and (fid is None or info & 1 != fid)
            whole, bad, fid, size = whole + ok, bad + (not ok), info & 1, 0
    return whole, bad


def serve_floor(sock: socket.socket, payloads: list[bytes], done: Callable[[], None]) -> None:
    """The floor: per command one recv_into and one sendmsg of a precut payload."""
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
    done()


def floor_payloads(frame: np.ndarray) -> list[bytes]:
    data, chunk, fid, out = frame.tobytes(), URB_LENGTH - 2, 0, []
    for _ in range(2):
        pieces = [data[at:at + chunk] for at in range(0, len(data), chunk)]
        out += [bytes([2, 0x80 | fid | (0x02 if i == len(pieces) - 1 else 0)]) + p for i, p in enumerate(pieces)]
        fid ^= 1
    return out


def load_base(revision: str) -> ModuleType:
    """simfarm/devices/usbip_device.py as of ``revision``, importable beside today's."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{revision}:simfarm/devices/usbip_device.py"],
                            capture_output=True, text=True, check=True).stdout
    name = f"simfarm.devices.usbip_device_{revision}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "simfarm.devices"
    exec(compile(source, f"{revision}:usbip_device.py", "exec"), module.__dict__)
    return module


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

    return module.UsbipWebcamDevice(uvc_profiles.load(PROFILES[size], "bench"), on_stream=feed, on_stop=stopped)


def serve(device: Any, sock: socket.socket) -> None:
    if hasattr(device, "serve"):
        device.serve(sock)
    else:  # the base revision started its thread inside plug()
        device._socket = sock
        threading.Thread(target=device._serve, daemon=True).start()


def device_process(row: str, sock: socket.socket, host_end: socket.socket, size: Size, fps: float, base: str,
                   report: Connection) -> None:
    """Child: serve ``row``'s device until the host hangs up; report the process's CPU seconds."""
    host_end.close()  # the parent's: only the parent's copy may stay, so its close is the hang-up
    finished = threading.Event()
    if row == "floor":
        payloads = floor_payloads(np.zeros(pixfmt.frame_bytes(PixelFormat.YUYV, size), np.uint8))
        start = time.process_time()
        threading.Thread(target=serve_floor, args=(sock, payloads, finished.set), daemon=True).start()
    else:
        device = make_device(usbip_device if row == "this tree" else load_base(base), size, fps, finished.set)
        start = time.process_time()  # loading code and profile is not the loop's
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


def run_row(row: str, args: argparse.Namespace) -> tuple[float, int, int]:
    """(device CPU seconds, frames whole, frames bad) of one row."""
    host_end, device_end = connected_pair(row.endswith("(TCP)"))
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(
        target=device_process, args=(row, device_end, host_end, args.size, args.fps, args.base, sender))
    child.start()
    device_end.close()
    whole, bad = fake_host(host_end, args.urbs, pixfmt.frame_bytes(PixelFormat.YUYV, args.size))
    host_end.close()
    cpu = receiver.recv()
    child.join()
    return cpu, whole, bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=Size.parse, default=Size(320, 240), help="320x240 or 640x480 (YUYV)")
    parser.add_argument("--urbs", type=int, default=6000, help="bulk URBs answered per row and round")
    parser.add_argument("--fps", type=float, default=300.0, help="frames the producer offers per second")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all rows; medians are printed")
    parser.add_argument("--base", default="c8d492a", help="the git revision to compare with")
    args = parser.parse_args()
    if args.size not in PROFILES or args.urbs < 100 or args.fps <= 0 or args.rounds < 1:
        print("bench_urb: --size 320x240 or 640x480, --urbs >= 100, --fps > 0, --rounds >= 1", file=sys.stderr)
        return 2
    rows = ["floor", f"{args.base} (TCP)", f"{args.base} (unix)", "this tree"]
    print(f"YUYV {args.size}, {args.urbs} bulk URBs of {URB_LENGTH} bytes, {PENDING} pending, frames offered "
          f"at {args.fps:g} fps, median of {args.rounds} rounds")
    # Rounds interleave the rows, so a change of load on a shared machine touches every row alike.
    runs: dict[str, list[tuple[float, int, int]]] = {row: [] for row in rows}
    for _ in range(args.rounds):
        for row in rows:
            runs[row].append(run_row(row, args))
    print(f"{'device':18} {'CPU us/URB':>10} {'x floor':>8} {'frames whole':>13} {'bad':>4}")
    floor = statistics.median(cpu for cpu, _, _ in runs["floor"])
    for row in rows:
        cpu = statistics.median(cpu for cpu, _, _ in runs[row])
        whole, bad = sum(w for _, w, _ in runs[row]), sum(b for _, _, b in runs[row])
        print(f"{row:18} {cpu / args.urbs * 1e6:10.1f} {cpu / floor:8.2f} {whole:13d} {bad:4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
