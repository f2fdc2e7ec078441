"""The userspace webcam: its descriptors well-formed (uvcvideo refuses the device otherwise) and
saying what the profile says; its USB/IP loop, driven over a socket pair the way vhci-hcd drives it."""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest

from simfarm.backends.uvc import profiles
from simfarm.devices.usb.usbip_device import BOS, MAX_PAYLOAD, BulkSink, UsbipWebcamDevice, descriptors
from simfarm.devices.usb.uvc_requests import COMMIT, SET_CUR, STREAMING
from simfarm.spec import PixelFormat, Size


def walk(config: bytes) -> list[bytes]:
    found, at = [], 0
    while at < len(config):
        length = config[at]
        assert length >= 2 and at + length <= len(config)
        found.append(config[at:at + length])
        at += length
    return found


@pytest.mark.parametrize("name", sorted(profiles.available()))
def test_descriptors_are_well_formed_and_carry_the_profile(name: str) -> None:
    profile = profiles.load(name, "s")
    device, config = descriptors(profile)
    assert len(device) == device[0] == 18
    assert struct.unpack_from("<HH", device, 8) == (profile.vendor_id, profile.product_id)
    parts = walk(config)
    assert struct.unpack_from("<H", config, 2)[0] == len(config)
    streaming = parts[next(i for i, p in enumerate(parts) if p[1] == 0x04 and p[2] == 1):]  # interface 1 on
    # UVC class-specific interface descriptors: VS format descriptors, one per format, each
    # followed by one frame descriptor per size, with the profile's sizes and intervals.
    formats = [p for p in streaming if p[1] == 0x24 and p[2] in (0x04, 0x06)]
    assert [f[4] for f in formats] == [len(f.sizes) for f in profile.formats]
    frames = [p for p in streaming if p[1] == 0x24 and p[2] in (0x05, 0x07)]
    expected = [(s.size.width, s.size.height, tuple(s.intervals)) for f in profile.formats for s in f.sizes]
    assert [(*struct.unpack_from("<HH", p, 5), struct.unpack_from(f"<{p[25]}I", p, 26)) for p in frames] == expected
    # The class-specific totals cover exactly their descriptors.
    vc_header = next(p for p in parts if p[1] == 0x24 and p[2] == 0x01 and len(p) == 13 and p[3:5] == b"\x10\x01")
    vc_total = struct.unpack_from("<H", vc_header, 5)[0]
    start = config.index(vc_header)
    assert sum(len(p) for p in walk(config[start:start + vc_total])) == vc_total
    at = next(i for i, p in enumerate(parts) if p[1] == 0x05)
    endpoint, companion = parts[at], parts[at + 1]
    assert (endpoint[2], endpoint[3], struct.unpack_from("<H", endpoint, 4)[0]) == (0x81, 0x02, 1024)  # bulk IN
    assert companion[1] == 0x30  # SuperSpeed endpoint companion, which a SuperSpeed endpoint must have


def test_a_superspeed_device_with_its_binary_object_store() -> None:
    device, _config = descriptors(profiles.load("lowres", "s"))
    assert struct.unpack_from("<H", device, 2)[0] == 0x0300 and device[7] == 9  # USB 3.0, ep0 of 2**9 bytes
    assert (BOS[1], struct.unpack_from("<H", BOS, 2)[0], BOS[4]) == (0x0F, len(BOS), 2)
    capabilities = walk(BOS[5:])
    assert [c[2] for c in capabilities] == [0x02, 0x03]  # USB 2.0 extension, SuperSpeed


class FakeHost:
    """vhci-hcd's side of the connection, as uvcvideo drives it: commands out, replies in."""

    COMMAND = struct.Struct(">IIIIIiiiii8s")
    REPLY = struct.Struct(">IIIIIi")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seqnum = 0
        self.outs: set[int] = set()  # OUT transfers: their replies carry no data

    def submit(self, *, ep: int = 1, length: int = MAX_PAYLOAD, setup: bytes = bytes(8), data: bytes = b"") -> int:
        self.seqnum += 1
        out = ep == 0 and not setup[0] & 0x80
        if out:
            self.outs.add(self.seqnum)
        self.sock.sendall(self.COMMAND.pack(1, self.seqnum, 0x10002, 0 if out else 1, ep, 0, length, 0, 0, 0, setup)
                          + data)
        return self.seqnum

    def unlink(self, target: int) -> int:
        self.seqnum += 1
        self.sock.sendall(struct.pack(">IIIIII24x", 2, self.seqnum, 0x10002, 0, 0, target))
        return self.seqnum

    def reply(self) -> tuple[int, int, int, bytes]:
        """(command, seqnum, status, data) of the next reply."""
        header = self.read(48)
        command, seqnum, _devid, _direction, _ep, status = self.REPLY.unpack_from(header)
        length = struct.unpack_from(">i", header, 24)[0] if command == 3 and seqnum not in self.outs else 0
        return command, seqnum, status, self.read(length)

    def read(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            assert chunk, "the device hung up"
            data += chunk
        return data


@pytest.fixture()
def streaming() -> Iterator[tuple[FakeHost, BulkSink, UsbipWebcamDevice, threading.Event]]:
    """A device serving a fake host that has committed YUYV 320x240: (host, the producer's sink, device,
    set once the stream stops)."""
    streams: list[tuple[PixelFormat, Size, Fraction, BulkSink]] = []
    started, stopped = threading.Event(), threading.Event()

    def on_stream(fmt: PixelFormat, size: Size, fps: Fraction, sink: BulkSink) -> None:
        streams.append((fmt, size, fps, sink))
        started.set()

    device = UsbipWebcamDevice(profiles.load("lowres", "s"), on_stream=on_stream, on_stop=stopped.set)
    host_end, device_end = socket.socketpair()
    device.serve(device_end)
    host = FakeHost(host_end)
    commit = STREAMING.pack(0, 1, 1, 333333, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 1, 1)
    seqnum = host.submit(ep=0, length=len(commit), setup=struct.pack("<BBHHH", 0x21, SET_CUR, COMMIT << 8, 1,
                                                                       len(commit)), data=commit)
    assert host.reply() == (3, seqnum, 0, b"")
    started.wait()
    (fmt, size, fps, sink), = streams
    assert (fmt, size, round(fps)) == (PixelFormat.YUYV, Size(320, 240), 30)
    yield host, sink, device, stopped
    host_end.close()
    stopped.wait()


def test_a_frame_goes_out_in_payloads_one_per_pending_urb_with_its_frame_id(streaming) -> None:
    host, sink, device, _stopped = streaming
    frames = [(np.arange(320 * 240 * 2) % 251).astype(np.uint8), np.full(320 * 240 * 2, 7, np.uint8)]
    urbs = [host.submit() for _ in range(5)]  # uvcvideo keeps five pending
    for fid, frame in enumerate(frames):
        sink.write_frame(frame)
        got, payloads = b"", []
        while not payloads or not payloads[-1][1] & 0x02:  # to the end of frame
            command, seqnum, status, data = host.reply()
            assert (command, seqnum, status) == (3, urbs.pop(0), 0)
            assert len(data) <= MAX_PAYLOAD
            payloads.append(data[:2])
            got += data[2:]
            urbs.append(host.submit())
        assert got == frame.tobytes()
        assert payloads == [bytes([2, 0x80 | fid])] * (len(payloads) - 1) + [bytes([2, 0x82 | fid])]
    assert device.dropped == 0


def test_a_frame_offered_while_one_is_going_out_is_dropped_and_counted(streaming) -> None:
    host, sink, device, _stopped = streaming
    frame = np.zeros(320 * 240 * 2, np.uint8)
    sink.write_frame(frame)  # no URB pending: all of it waits
    sink.write_frame(frame)
    assert device.dropped == 1
    seqnum = host.submit()
    assert host.reply()[:3] == (3, seqnum, 0)


def test_unlink_cancels_a_pending_urb_and_finds_an_answered_one_gone(streaming) -> None:
    host, sink, _device, _stopped = streaming
    first, second = host.submit(), host.submit()
    unlinked = host.unlink(second)
    assert host.reply()[:3] == (4, unlinked, -errno.ECONNRESET)
    sink.write_frame(np.zeros(100, np.uint8))
    assert host.reply()[:3] == (3, first, 0)
    unlinked = host.unlink(first)
    assert host.reply()[:3] == (4, unlinked, 0)


def test_the_host_hanging_up_stops_the_stream(streaming) -> None:
    host, _sink, device, stopped = streaming
    host.sock.shutdown(socket.SHUT_RDWR)
    stopped.wait()
    assert device.error is None
