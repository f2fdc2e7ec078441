"""The webcam's firmware, in userspace: answers the host's UVC requests and streams what it committed.

The host (uvcvideo) first reads each control's GET_INFO/GET_MIN/GET_MAX/
GET_RES/GET_DEF/GET_CUR, then negotiates a stream through the PROBE
control (the reader proposes format, size and interval; this answers with
the closest it offers, plus the frame and payload sizes), COMMITs it, and
selects the streaming interface's alternate setting, which arrives as
UVC_EVENT_STREAMON. Frames are then whatever the caller's ``on_stream``
starts writing to the :class:`GadgetSink` it is given, until STREAMOFF or a
disconnect (``on_stop``). SET_CUR on a control calls ``on_control``.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..spec import PixelFormat, Size
from .uvc_function import Event, GadgetNode, Setup
from .uvc_gadget import MAX_PACKET, Control, Profile, frame_buffer_size

# UVC 1.1 request codes (bRequest).
SET_CUR, GET_CUR, GET_MIN, GET_MAX, GET_RES, GET_LEN, GET_INFO, GET_DEF = 0x01, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87
PROBE, COMMIT = 0x01, 0x02
# struct uvc_streaming_control, UVC 1.1 (34 bytes; 1.0 readers take the first 26).
_STREAMING = struct.Struct("<HBBIHHHHHIIIBBBB")
_INFO_GET_SET = b"\x03"
# Entity ids the stock gadget gives its units (drivers/usb/gadget/function/f_uvc.c), and the
# processing-unit selectors of the controls a profile may name.
CAMERA_TERMINAL, PROCESSING_UNIT = 1, 2
PU_SELECTORS = {"brightness": 0x02, "contrast": 0x03, "gain": 0x04, "saturation": 0x07}
_AE_MODE = 0x02  # the camera terminal's one control in the stock descriptor: auto exposure, fixed at auto
_REQUEST_ERROR_CODE = 0x02  # interface control: why the last request stalled
_CLOCK_HZ = 48_000_000


@dataclass
class _Value:
    """One control's range and current value, packed as the host expects (``fmt``)."""

    fmt: str
    minimum: int
    maximum: int
    step: int
    default: int
    current: int
    name: str | None = None  # a profile control's name, for on_control

    def answer(self, request: int) -> bytes | None:
        values = {GET_CUR: self.current, GET_MIN: self.minimum, GET_MAX: self.maximum, GET_RES: self.step,
                  GET_DEF: self.default}
        if request == GET_INFO:
            return _INFO_GET_SET
        if request == GET_LEN:
            return struct.pack("<H", struct.calcsize(self.fmt))
        return struct.pack(self.fmt, values[request]) if request in values else None


@dataclass(frozen=True)
class Committed:
    """What the reader committed to: 1-based indexes into the profile, and the frame interval."""

    format_index: int
    frame_index: int
    interval: int


class GadgetSink:
    """A producer's sink writing to the gadget's output queue.

    A frame goes into a free buffer; when all are queued it waits for the
    gadget to send one, up to a frame period, and otherwise drops the frame
    (the reader stalls: nothing is sent meanwhile, as with a real webcam).
    """

    def __init__(self, node: GadgetNode, buffers: int, period: float) -> None:
        self._node = node
        self._free = list(range(buffers))
        self._period = period
        self.dropped = 0

    def write_frame(self, frame: np.ndarray) -> None:
        index = self._free.pop() if self._free else self._node.reclaim(self._period)
        if index is None:
            self.dropped += 1
            return
        self._node.send(index, memoryview(frame).cast("B"))

    def close(self) -> None:
        """The responder streams off: nothing of the node is the sink's to close."""


class Responder:
    """Runs ``profile``'s firmware on the g_uvc node at ``path`` in a thread of its own."""

    def __init__(self, path: str, profile: Profile, interfaces: tuple[int, int], *,
                 on_stream: Callable[[PixelFormat, Size, Fraction, GadgetSink], None],
                 on_stop: Callable[[], None],
                 on_control: Callable[[str, int], None] = lambda name, value: None) -> None:
        self.profile = profile
        self._control_interface, self._streaming_interface = interfaces
        self._on_stream, self._on_stop, self._on_control = on_stream, on_stop, on_control
        self.controls: dict[tuple[int, int], _Value] = {
            (PROCESSING_UNIT, PU_SELECTORS[c.name]): _value(c) for c in profile.controls}
        self.controls[(CAMERA_TERMINAL, _AE_MODE)] = _Value("<B", 0x02, 0x02, 0x02, 0x02, 0x02)
        self.probe = self.commit = self._negotiate(1, 1, 0)
        self.streaming: Committed | None = None
        self._pending: Setup | None = None  # a SET_CUR whose data is on its way
        self._error_code = 0
        self._closed = threading.Event()
        self._wake_read, self._wake_write = os.pipe2(os.O_CLOEXEC)
        self.node = GadgetNode(path)
        self._thread = threading.Thread(target=self._run, name=f"uvc-{profile.serial}", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        """Connect the function (the host may enumerate from now on) and answer it."""
        self.node.subscribe()
        self._thread.start()

    def control(self, name: str) -> int:
        return next(v.current for v in self.controls.values() if v.name == name)

    def close(self) -> None:
        self._closed.set()
        os.write(self._wake_write, b"x")
        self._thread.join()
        self._stream_off()
        self.node.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _run(self) -> None:
        try:
            while not self._closed.is_set():
                if (event := self.node.wait_event(self._wake_read)) is not None:
                    self._handle(*event)
        except Exception as exc:  # surfaced through status; the supervisor decides
            self.error = f"{type(exc).__name__}: {exc}"

    def _handle(self, event: Event, payload: bytes) -> None:
        if event is Event.SETUP:
            self._setup(self.node.setup_of(payload))
        elif event is Event.DATA and self._pending is not None:
            self._data(self._pending, self.node.data_of(payload))
            self._pending = None
        elif event is Event.STREAMON:
            self._stream_on()
        elif event in (Event.STREAMOFF, Event.DISCONNECT):
            self._stream_off()

    def _setup(self, setup: Setup) -> None:
        if not setup.is_in:
            accepted = setup.request == SET_CUR and self._target(setup) is not None
            self._pending = setup if accepted else None
            self.node.respond(bytes(setup.length) if accepted else None)
            return
        answer = self._answer(setup)
        self._error_code = 0 if answer is not None else 0x06  # "invalid control"
        self.node.respond(answer[:setup.length] if answer is not None else None)

    def _target(self, setup: Setup) -> object | None:
        """What a SET_CUR writes to: the probe, the commit, or a control; None stalls it."""
        if setup.interface == self._streaming_interface:
            return setup.selector if setup.selector in (PROBE, COMMIT) else None
        if setup.interface == self._control_interface:
            return self.controls.get((setup.entity, setup.selector))
        return None

    def _answer(self, setup: Setup) -> bytes | None:
        if setup.interface == self._streaming_interface and setup.selector in (PROBE, COMMIT):
            if setup.request == GET_INFO:
                return _INFO_GET_SET
            if setup.request == GET_LEN:
                return struct.pack("<H", _STREAMING.size)
            current = self.probe if setup.selector == PROBE else self.commit
            return current if setup.request == GET_CUR else self._negotiate(1, 1, 0)
        if setup.interface == self._control_interface and setup.entity == 0:
            return bytes([self._error_code]) if setup.selector == _REQUEST_ERROR_CODE else None
        if setup.interface == self._control_interface and (value := self.controls.get((setup.entity,
                                                                                       setup.selector))):
            return value.answer(setup.request)
        return None

    def _data(self, setup: Setup, data: bytes) -> None:
        if setup.interface == self._streaming_interface:
            fields = _STREAMING.unpack(data.ljust(_STREAMING.size, b"\0"))
            negotiated = self._negotiate(fields[1], fields[2], fields[3])
            if setup.selector == PROBE:
                self.probe = negotiated
            else:
                self.commit = negotiated
            return
        value = self.controls[(setup.entity, setup.selector)]
        value.current = max(value.minimum, min(value.maximum, struct.unpack_from(value.fmt, data)[0]))
        if value.name is not None:
            self._on_control(value.name, value.current)

    def _negotiate(self, format_index: int, frame_index: int, interval: int) -> bytes:
        """The stream closest to the reader's proposal that the profile offers, packed."""
        formats = self.profile.formats
        format_index = format_index if 1 <= format_index <= len(formats) else 1
        fmt = formats[format_index - 1]
        frame_index = frame_index if 1 <= frame_index <= len(fmt.sizes) else 1
        frame = fmt.sizes[frame_index - 1]
        offered = frame.intervals
        chosen = min(offered, key=lambda i: abs(i - interval)) if interval else offered[0]
        return _STREAMING.pack(0, format_index, frame_index, chosen, 0, 0, 0, 0, 0,
                               frame_buffer_size(fmt.format, frame.size), MAX_PACKET, _CLOCK_HZ, 3, 1, 1, 1)

    def _stream_on(self) -> None:
        self._stream_off()
        _hint, format_index, frame_index, interval, *_ = _STREAMING.unpack(self.commit)
        fmt = self.profile.formats[format_index - 1]
        frame = fmt.sizes[frame_index - 1]
        count = self.node.start(fmt.format, frame.size, frame_buffer_size(fmt.format, frame.size))
        fps = Fraction(10_000_000, interval)
        self.streaming = Committed(format_index, frame_index, interval)
        self._on_stream(fmt.format, frame.size, fps, GadgetSink(self.node, count, float(1 / fps)))

    def _stream_off(self) -> None:
        if self.streaming is not None:
            self._on_stop()  # the producer stops writing before its buffers go
            self.streaming = None
        self.node.stop()


def _value(control: Control) -> _Value:
    return _Value("<h", control.minimum, control.maximum, control.step, control.default, control.default,
                  control.name)

