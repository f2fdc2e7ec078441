"""A USB webcam made in userspace and plugged into vhci-hcd directly: the USB/IP device side.

vhci-hcd (the USB/IP host controller) takes a connected socket through
``/sys/devices/platform/vhci_hcd.0/attach`` and forwards every URB for the
device over it (CMD_SUBMIT); whoever holds the other end is the device. This
module is that device: it answers enumeration from descriptors built from a
profile, the UVC class requests through :class:`UvcRequests`, and streams on
a **bulk** endpoint (uvcvideo supports bulk webcams; the kernel's own UVC
gadget streams isochronously).

Protocol (Documentation/usb/usbip_protocol.rst): 48-byte big-endian
headers; a RET_SUBMIT echoes the command's seqnum and carries IN data; a
CMD_UNLINK cancels a pending URB. No module beyond vhci-hcd and uvcvideo, no
daemon, no TCP port anyone else can reach: the socket pair is local.
"""

from __future__ import annotations

import errno
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from ...errors import EnvironmentProblem
from ...spec import PixelFormat, Size
from ..kmod import kmodule
from . import vhci
from .profile import Format, Profile, frame_buffer_size
from .uvc_requests import COMMIT, OUTPUT_TERMINAL, PROCESSING_UNIT, PU_BITS, SET_CUR, Setup, UvcRequests

# A command's header: command, seqnum, devid, direction, ep, then the seqnum to unlink (CMD_UNLINK)
# or transfer_flags and the transfer length (CMD_SUBMIT, whose setup packet is at 40).
_COMMAND = struct.Struct(">IIIIIIi")
_RET_SUBMIT = struct.Struct(">IIIIIii20x")  # ..., status, actual_length (no isochronous fields)
_RET_UNLINK = struct.Struct(">IIIIIi24x")  # ..., status
_HEADER = 48
# Room for any one command: a control OUT transfer carries at most 64 KiB of data.
_INBOX = 2 * (_HEADER + 0xFFFF)
_IOV_MAX = 1020  # sendmsg's buffers per call (Linux's IOV_MAX is 1024), a multiple of a reply's 3
CMD_SUBMIT, CMD_UNLINK, RET_SUBMIT, RET_UNLINK = 1, 2, 3, 4
_OUT = 0
# SuperSpeed: a bulk packet is 1024 bytes (512 at high speed), and uvcvideo sizes bulk URBs at
# dwMaxPayloadTransferSize, at most 32 packets: a frame takes half the URBs it would at high speed.
_SUPER_SPEED = 5
_STREAM_EP = 0x81
_BULK_PACKET = 1024
# One payload per URB.
MAX_PAYLOAD = 32 * _BULK_PACKET
_PAYLOAD_HEADER = 2  # bHeaderLength, bmHeaderInfo (EOH | EOF | FID)
_CHUNK = MAX_PAYLOAD - _PAYLOAD_HEADER  # frame bytes per payload
_GUID = {PixelFormat.YUYV: bytes.fromhex("5955593200001000800000aa00389b71")}
# Standard requests (bRequest) and descriptor types this device answers.
_GET_STATUS, _CLEAR_FEATURE, _SET_ADDRESS, _GET_DESCRIPTOR = 0x00, 0x01, 0x05, 0x06
_GET_CONFIGURATION, _SET_CONFIGURATION, _GET_INTERFACE = 0x08, 0x09, 0x0A
_DEVICE, _CONFIGURATION, _STRING, _BOS = 1, 2, 3, 0x0F
# Binary device object store: a USB 2.0 extension (no LPM) and the SuperSpeed capability (full, high and
# SuperSpeed; no U1/U2 exit latencies, so the host leaves link power management off).
_BOS_BODY = bytes([7, 0x10, 0x02, 0, 0, 0, 0]) + struct.pack("<BBBBHBBH", 10, 0x10, 0x03, 0, 0x000E, 1, 0, 0)
BOS = struct.pack("<BBHB", 5, _BOS, 5 + len(_BOS_BODY), 2) + _BOS_BODY


def descriptors(profile: Profile) -> tuple[bytes, bytes]:
    """(device, configuration) descriptors of a SuperSpeed UVC 1.1 webcam with a bulk streaming endpoint."""
    device = struct.pack("<BBHBBBBHHHBBBB", 18, 1, 0x0300, 0xEF, 0x02, 0x01, 9, profile.vendor_id,
                         profile.product_id, 0x0100, 1, 2, 3, 1)
    bits = sum(1 << PU_BITS[c.name] for c in profile.controls)
    class_vc = b"".join((
        struct.pack("<BBBBHBBHHHB", 18, 0x24, 0x02, 1, 0x0201, 0, 0, 0, 0, 0, 3) + bytes(3),  # camera, no controls
        struct.pack("<BBBBBHB", 12, 0x24, 0x05, PROCESSING_UNIT, 1, 0, 2) + bits.to_bytes(2, "little")
        + bytes([0, 0]),
        struct.pack("<BBBBHBBB", 9, 0x24, 0x03, OUTPUT_TERMINAL, 0x0101, 0, PROCESSING_UNIT, 0)))
    vc_header = struct.pack("<BBBHHIBB", 13, 0x24, 0x01, 0x0110, 13 + len(class_vc), 48_000_000, 1, 1)
    formats = b"".join(_format(index, fmt) for index, fmt in enumerate(profile.formats, 1))
    color = bytes([6, 0x24, 0x0D, 1, 1, 4])
    count = len(profile.formats)
    vs_length = 13 + count + len(formats) + len(color)
    vs_header = struct.pack("<BBBBHBBBBBBB", 13 + count, 0x24, 0x01, count, vs_length, _STREAM_EP, 0,
                            OUTPUT_TERMINAL, 0, 0, 0, 1) + bytes(count)
    body = b"".join((
        bytes([8, 0x0B, 0, 2, 0x0E, 0x03, 0, 2]),  # interface association: video, interfaces 0-1
        bytes([9, 0x04, 0, 0, 0, 0x0E, 0x01, 0, 2]), vc_header, class_vc,  # video control, no interrupt ep
        bytes([9, 0x04, 1, 0, 1, 0x0E, 0x02, 0, 0]), vs_header, formats, color,  # video streaming
        struct.pack("<BBBBHB", 7, 0x05, _STREAM_EP, 0x02, _BULK_PACKET, 0),  # bulk IN
        bytes([6, 0x30, 0, 0, 0, 0])))  # its SuperSpeed companion: no bursts, no streams
    # bMaxPower counts 8 mA at SuperSpeed: 496 mA, within a root port's 900.
    config = struct.pack("<BBHBBBBB", 9, 0x02, 9 + len(body), 2, 1, 0, 0x80, 62) + body
    return device, config


def _format(index: int, fmt: Format) -> bytes:
    if fmt.format is PixelFormat.MJPEG:
        head = bytes([11, 0x24, 0x06, index, len(fmt.sizes), 0, 1, 0, 0, 0, 0])
        subtype = 0x07
    else:
        head = bytes([27, 0x24, 0x04, index, len(fmt.sizes)]) + _GUID[fmt.format] + bytes([16, 1, 0, 0, 0, 0])
        subtype = 0x05
    frames = b""
    for number, frame in enumerate(fmt.sizes, 1):
        intervals = frame.intervals
        largest = frame_buffer_size(fmt.format, frame.size)
        rate = largest * 8 * max(frame.rates)
        frames += struct.pack("<BBBBBHHIIIIB", 26 + 4 * len(intervals), 0x24, subtype, number, 0, frame.size.width,
                              frame.size.height, int(rate / 4), int(rate), largest, intervals[0], len(intervals))
        frames += b"".join(struct.pack("<I", interval) for interval in intervals)
    return head + frames


def _string(text: str) -> bytes:
    encoded = text.encode("utf-16-le")
    return bytes([2 + len(encoded), _STRING]) + encoded


class BulkSink:
    """A producer's sink: each frame cut into payloads that pending bulk URBs carry to the host.

    A frame that arrives while the last is still going out is dropped (the
    host is not taking them as fast: it stalls, as behind a real webcam; see
    UsbipWebcamDevice.dropped).
    """

    def __init__(self, device: UsbipWebcamDevice) -> None:
        self._device = device
        self._fid = 0

    def write_frame(self, frame: np.ndarray) -> None:
        if self._device.send_frame(memoryview(frame).cast("B"), self._fid):
            self._fid ^= 1

    def close(self) -> None:
        """Nothing to close: the device outlives each stream."""


class _Frame:
    """A frame going out: its payloads, cut one per URB from one copy of the frame."""

    __slots__ = ("data", "offset", "header", "last")

    def __init__(self, data: memoryview, fid: int) -> None:
        self.data, self.offset = data, 0
        self.header = bytes([_PAYLOAD_HEADER, 0x80 | fid])  # EOH, frame id
        self.last = bytes([_PAYLOAD_HEADER, 0x82 | fid])  # and end of frame

    def payload(self, length: int) -> tuple[bytes, memoryview, bool]:
        """The next payload cut to a URB of ``length`` bytes: (header, data, whether it ends the frame)."""
        end = min(self.offset + _CHUNK, len(self.data))
        last = end == len(self.data)
        header, body = self.last if last else self.header, self.data[self.offset:end]
        self.offset = end
        if length < _PAYLOAD_HEADER + len(body):
            header, body = header[:length], body[:max(0, length - _PAYLOAD_HEADER)]
        return header, body, last


class _Inbox:
    """What vhci-hcd sends, read into one buffer in as large pieces as have arrived and cut into
    commands: a burst of CMD_SUBMITs costs one recv, not two per command."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._buffer = bytearray(_INBOX)
        self._view = memoryview(self._buffer)
        self._start = self._end = 0

    def read(self) -> list[tuple[int, int, int, int, int, bytes, bytes]] | None:
        """The whole commands that have arrived (at least one: waits for it), each (command, seqnum,
        endpoint, unlinked seqnum, length, setup, OUT data); None once vhci-hcd closed its end."""
        commands: list[tuple[int, int, int, int, int, bytes, bytes]] = []
        while not commands:
            if self._start:  # a command's first part: to the front, where the rest joins it
                kept = self._end - self._start
                self._view[:kept] = self._buffer[self._start:self._end]
                self._start, self._end = 0, kept
            received = self._socket.recv_into(self._view[self._end:])
            if not received:
                return None  # detached: vhci-hcd closed its end
            self._end += received
            while (command := self._take()) is not None:
                commands.append(command)
        return commands

    def _take(self) -> tuple[int, int, int, int, int, bytes, bytes] | None:
        at, buffer = self._start, self._buffer
        if self._end - at < _HEADER:
            return None
        command, seqnum, _devid, direction, ep, unlinked, length = _COMMAND.unpack_from(buffer, at)
        extra = length if command == CMD_SUBMIT and direction == _OUT and length > 0 else 0
        if self._end - at < _HEADER + extra:
            return None
        self._start = at + _HEADER + extra
        if ep != 0 or command != CMD_SUBMIT:
            return command, seqnum, ep, unlinked, length, b"", b""  # bulk IN and unlinks need no more
        return command, seqnum, ep, unlinked, length, bytes(buffer[at + 40:at + 48]), \
            bytes(buffer[at + _HEADER:at + _HEADER + extra])


class UsbipWebcamDevice:
    """``profile`` as a USB device on a vhci-hcd port; ``on_stream``/``on_stop`` start and stop frames."""

    def __init__(self, profile: Profile, *, on_stream: Callable[[PixelFormat, Size, Fraction, BulkSink], None],
                 on_stop: Callable[[], None], on_control: Callable[[str, int], None] = lambda n, v: None) -> None:
        self.profile = profile
        self.requests = UvcRequests(profile, (0, 1), MAX_PAYLOAD, ae_mode=False, on_control=on_control)
        self._device, self._config = descriptors(profile)
        self._strings = [profile.manufacturer, profile.product, profile.serial]
        self._on_stream, self._on_stop = on_stream, on_stop
        self._lock = threading.Lock()
        self._urbs: deque[tuple[int, int]] = deque()  # pending bulk IN URBs: (seqnum, length)
        self._frame: _Frame | None = None  # the frame going out
        self._copy = memoryview(bytearray())  # its data (see send_frame)
        self._streaming = False
        # Frames dropped while streaming because the last was still going out: the host (uvcvideo's
        # URBs through vhci-hcd) took them slower than they came. Shown in status, summed over streams.
        self.dropped = 0
        # What went to the host over every connection: for status (an exported webcam's counters).
        self.frames_sent = 0
        self.bytes_sent = 0
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._starting: threading.Thread | None = None
        self.port: int | None = None
        self.error: str | None = None

    def plug(self) -> int:
        """Attach to a free SuperSpeed vhci-hcd port; returns the port (enumeration follows)."""
        kmodule.ensure("vhci_hcd")
        port = vhci.free_port()
        # A Unix socket pair: vhci-hcd asks only for a stream socket, and it skips loopback TCP's
        # per-segment work (and Nagle's delays) on every URB.
        device_end, host_end = socket.socketpair()
        try:
            vhci.attach(port, host_end.fileno(), _SUPER_SPEED)
        except EnvironmentProblem:
            device_end.close()
            raise
        finally:
            host_end.close()  # the kernel holds its own reference now
        self.port = port
        self.serve(device_end)
        return port

    def serve(self, connection: socket.socket) -> None:
        """Be the device at this end of ``connection`` (vhci-hcd's, or a test's, at the other), in a thread."""
        self._socket = connection
        self.error = None  # a new connection: what ended the last one is history
        self._thread = threading.Thread(target=self._serve, name=f"usbip-{self.profile.serial}", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Until the device loop of the last ``serve`` has ended: the host closed its end, or it was shut down."""
        if self._thread is not None:
            self._thread.join()

    def unplug(self) -> None:
        """Detach from vhci-hcd (the host sees the cable pulled) and wait for the device to stop."""
        if self.port is None:
            return
        vhci.detach(self.port)
        self.wait()
        self.port = None

    def send_frame(self, data: memoryview, fid: int) -> bool:
        """Queue a frame for the host, its payloads marked with frame id ``fid``; False (nothing queued)
        while the last is still going out or nothing streams."""
        with self._lock:
            if self._frame is not None or not self._streaming:
                self.dropped += self._streaming
                return False
            # The one copy (producers stamp their ring frames in place), into a buffer kept for the next
            # frame: once the last payload went to sendmsg the kernel holds its own copy. Each payload
            # is a slice of it.
            if len(self._copy) < len(data):
                self._copy = memoryview(bytearray(len(data)))
            copy = self._copy[:len(data)]
            copy[:] = data
            self._frame = _Frame(copy, fid)
            self._flush()
            return True

    def _flush(self) -> None:
        """Answer pending URBs from the frame going out, all in one write (lock held)."""
        frame, buffers = self._frame, []
        while self._urbs and frame is not None:
            seqnum, length = self._urbs.popleft()
            header, body, last = frame.payload(length)
            buffers += (_RET_SUBMIT.pack(RET_SUBMIT, seqnum, 0, 0, 0, 0, len(header) + len(body)), header, body)
            if last:
                frame = None
                self.frames_sent += 1
        self._frame = frame
        if buffers:
            self._send(buffers)

    def _serve(self) -> None:
        assert self._socket is not None
        inbox = _Inbox(self._socket)
        try:
            while (commands := inbox.read()) is not None:
                urbs: list[tuple[int, int]] = []
                for command, seqnum, ep, unlinked, length, setup, data in commands:
                    if command == CMD_SUBMIT and ep != 0:
                        urbs.append((seqnum, length))
                        continue
                    self._take_urbs(urbs)  # first: an unlink must find the URBs submitted before it
                    urbs = []
                    if command == CMD_SUBMIT:
                        self._submit(seqnum, setup, data)
                    elif command == CMD_UNLINK:
                        self._unlink(seqnum, unlinked)
                self._take_urbs(urbs)
        except Exception as exc:  # surfaced through status (and the supervisor's log): the device is gone
            self.error = f"{type(exc).__name__}: {exc}"
            print(f"usb device {self.profile.serial}: {self.error}", file=sys.stderr, flush=True)
        finally:
            self._stop_stream()
            with self._lock:
                self._urbs.clear()  # the host's URBs died with the connection: a replug starts afresh
            self._socket.close()

    def _take_urbs(self, urbs: list[tuple[int, int]]) -> None:
        """Pend bulk IN URBs and answer what the frame going out can: one lock round trip for them all."""
        if urbs:
            with self._lock:
                self._urbs.extend(urbs)
                self._flush()

    def _submit(self, seqnum: int, setup_bytes: bytes, data: bytes) -> None:
        """A control transfer on endpoint 0."""
        setup = Setup.unpack(setup_bytes)
        if setup.request_type & 0x60 == 0x20:  # class request: UVC
            if setup.is_in:
                answer = self.requests.answer(setup)
            elif self.requests.accepts(setup):
                self.requests.apply(setup, data)
                answer = b""
            else:
                answer = None
        else:
            answer = self._standard(setup)
        with self._lock:
            # An OUT request's actual_length is what the device took: uvcvideo checks it.
            self._reply(seqnum, answer, None if setup.is_in else len(data))
        if answer is not None and not setup.is_in and setup.request == SET_CUR and setup.selector == COMMIT \
                and setup.interface == 1:
            self._start_stream()

    def _standard(self, setup: Setup) -> bytes | None:
        kind, index = setup.value >> 8, setup.value & 0xFF
        if setup.request == _GET_DESCRIPTOR:
            if kind == _DEVICE:
                return self._device[:setup.length]
            if kind == _CONFIGURATION:
                return self._config[:setup.length]
            if kind == _STRING:
                text = b"\x04\x03\x09\x04" if index == 0 else (
                    _string(self._strings[index - 1]) if index <= len(self._strings) else None)
                return text[:setup.length] if text is not None else None
            if kind == _BOS:
                return BOS[:setup.length]
            return None  # no device qualifier: a SuperSpeed device has none
        if setup.request == _GET_STATUS:
            return b"\x00\x00"[:setup.length]
        if setup.request == _GET_CONFIGURATION:
            return b"\x01"
        if setup.request == _GET_INTERFACE:
            return b"\x00"
        if setup.request == _CLEAR_FEATURE and setup.request_type == 0x02 and setup.index == _STREAM_EP:
            self._stop_stream()  # uvcvideo clears the bulk endpoint's halt when it stops streaming
        if setup.request in (_SET_ADDRESS, _SET_CONFIGURATION):
            self._stop_stream()  # the host reset the port (or enumerates afresh): no stream survives that
        return b""  # SET_ADDRESS, SET_CONFIGURATION, SET_INTERFACE, features: nothing to keep

    def _reply(self, seqnum: int, data: bytes | None, taken: int | None = None) -> None:
        """RET_SUBMIT for ``seqnum``: IN ``data``, or ``taken`` bytes of OUT data; None stalls (lock held)."""
        status, payload = (-errno.EPIPE, b"") if data is None else (0, data)
        actual = len(payload) if taken is None or data is None else taken
        self._send([_RET_SUBMIT.pack(RET_SUBMIT, seqnum, 0, 0, 0, status, actual), payload])

    def _send(self, buffers: list[bytes | memoryview]) -> None:
        """Write ``buffers`` in order (lock held): one sendmsg for as many replies as they hold."""
        assert self._socket is not None
        self.bytes_sent += sum(map(len, buffers))
        for start in range(0, len(buffers), _IOV_MAX):
            part = buffers[start:start + _IOV_MAX]
            sent = self._socket.sendmsg(part)
            if sent < sum(map(len, part)):  # cut short (a signal): the rest, in order
                self._socket.sendall(b"".join(part)[sent:])

    def _unlink(self, seqnum: int, target: int) -> None:
        with self._lock:
            pending = next((urb for urb in self._urbs if urb[0] == target), None)
            if pending is not None:
                self._urbs.remove(pending)
            status = -errno.ECONNRESET if pending is not None else 0  # 0: answered already
            self._send([_RET_UNLINK.pack(RET_UNLINK, seqnum, 0, 0, 0, status)])

    def _start_stream(self) -> None:
        """Start frames in a thread of their own: a producer takes seconds to render its pattern under
        emulation, and meanwhile the host's requests (URBs, unlinks) must still be answered."""
        self._stop_stream()
        stream = self.requests.committed()
        with self._lock:
            self._streaming = True
        self._starting = threading.Thread(target=self._on_stream, daemon=True, name=f"start-{self.profile.serial}",
                                          args=(stream.format.format, stream.frame.size, stream.fps, BulkSink(self)))
        self._starting.start()

    def _stop_stream(self) -> None:
        with self._lock:
            was, self._streaming = self._streaming, False
            self._frame = None
        if self._starting is not None:
            self._starting.join()  # the producer exists (or failed) before it is stopped
            self._starting = None
        if was:
            self._on_stop()

