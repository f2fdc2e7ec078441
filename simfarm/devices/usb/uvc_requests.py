"""A UVC webcam's answers to the host's class requests, whatever carries them.

The host (uvcvideo) first reads each control's GET_INFO/GET_MIN/GET_MAX/
GET_RES/GET_DEF/GET_CUR, then negotiates a stream through the PROBE control
(the reader proposes format, size and interval; the answer is the closest
the profile offers, plus the frame and payload sizes) and COMMITs it.
SET_CUR on a control calls ``on_control``. Entity ids are those the stock
gadget gives its units (drivers/usb/gadget/function/f_uvc.c): camera
terminal 1, processing unit 2, output terminal 3.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from .profile import Control, Format, FrameSize, Profile, frame_buffer_size

# UVC 1.1 request codes (bRequest).
SET_CUR, GET_CUR, GET_MIN, GET_MAX, GET_RES, GET_LEN, GET_INFO, GET_DEF = 0x01, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87
PROBE, COMMIT = 0x01, 0x02
# struct uvc_streaming_control, UVC 1.1 (34 bytes; 1.0 readers take the first 26).
STREAMING = struct.Struct("<HBBIHHHHHIIIBBBB")
_INFO_GET_SET = b"\x03"
CAMERA_TERMINAL, PROCESSING_UNIT, OUTPUT_TERMINAL = 1, 2, 3
# Processing-unit control selectors, and their bit in the unit's bmControls.
PU_SELECTORS = {"brightness": 0x02, "contrast": 0x03, "gain": 0x04, "saturation": 0x07}
PU_BITS = {"brightness": 0, "contrast": 1, "saturation": 3, "gain": 9}
AE_MODE = 0x02  # the stock gadget's camera terminal advertises auto exposure (fixed at auto here)
_REQUEST_ERROR_CODE = 0x02  # interface control: why the last request stalled
_CLOCK_HZ = 48_000_000


@dataclass(frozen=True)
class Setup:
    """A class request from the host (struct usb_ctrlrequest)."""

    request_type: int
    request: int
    value: int
    index: int
    length: int

    @classmethod
    def unpack(cls, data: bytes) -> Setup:
        return cls(*struct.unpack_from("<BBHHH", data))

    @property
    def is_in(self) -> bool:
        return bool(self.request_type & 0x80)

    @property
    def interface(self) -> int:
        return self.index & 0xFF

    @property
    def entity(self) -> int:
        return self.index >> 8

    @property
    def selector(self) -> int:
        return self.value >> 8


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
    """The stream a reader committed to."""

    format: Format
    frame: FrameSize
    interval: int  # 100 ns units

    @property
    def fps(self) -> Fraction:
        return Fraction(10_000_000, self.interval)


class UvcRequests:
    """``profile``'s answers on interfaces (control, streaming); ``max_payload`` is the most the
    carrier moves per payload (dwMaxPayloadTransferSize)."""

    def __init__(self, profile: Profile, interfaces: tuple[int, int], max_payload: int, *,
                 ae_mode: bool, on_control: Callable[[str, int], None] = lambda name, value: None) -> None:
        self.profile = profile
        self._control_interface, self._streaming_interface = interfaces
        self._max_payload = max_payload
        self._on_control = on_control
        self.controls: dict[tuple[int, int], _Value] = {
            (PROCESSING_UNIT, PU_SELECTORS[c.name]): _value(c) for c in profile.controls}
        if ae_mode:
            self.controls[(CAMERA_TERMINAL, AE_MODE)] = _Value("<B", 0x02, 0x02, 0x02, 0x02, 0x02)
        self.probe = self.commit = self._negotiate(1, 1, 0)
        self._error_code = 0

    def control(self, name: str) -> int:
        return next(v.current for v in self.controls.values() if v.name == name)

    def committed(self) -> Committed:
        _hint, format_index, frame_index, interval, *_ = STREAMING.unpack(self.commit)
        fmt = self.profile.formats[format_index - 1]
        return Committed(fmt, fmt.sizes[frame_index - 1], interval)

    def accepts(self, setup: Setup) -> bool:
        """Whether an OUT request (SET_CUR) has somewhere to go; otherwise it stalls."""
        if setup.request != SET_CUR:
            return False
        if setup.interface == self._streaming_interface:
            return setup.selector in (PROBE, COMMIT)
        return setup.interface == self._control_interface and (setup.entity, setup.selector) in self.controls

    def answer(self, setup: Setup) -> bytes | None:
        """The data for an IN request, cut to its length; None stalls it."""
        answer = self._answer(setup)
        self._error_code = 0 if answer is not None else 0x06  # "invalid control"
        return answer[:setup.length] if answer is not None else None

    def _answer(self, setup: Setup) -> bytes | None:
        if setup.interface == self._streaming_interface and setup.selector in (PROBE, COMMIT):
            if setup.request == GET_INFO:
                return _INFO_GET_SET
            if setup.request == GET_LEN:
                return struct.pack("<H", STREAMING.size)
            current = self.probe if setup.selector == PROBE else self.commit
            return current if setup.request == GET_CUR else self._negotiate(1, 1, 0)
        if setup.interface == self._control_interface and setup.entity == 0:
            return bytes([self._error_code]) if setup.selector == _REQUEST_ERROR_CODE else None
        if setup.interface == self._control_interface and (value := self.controls.get((setup.entity,
                                                                                       setup.selector))):
            return value.answer(setup.request)
        return None

    def apply(self, setup: Setup, data: bytes) -> None:
        """Take a SET_CUR's data (one :meth:`accepts` let through)."""
        if setup.interface == self._streaming_interface:
            fields = STREAMING.unpack(data.ljust(STREAMING.size, b"\0"))
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
        return STREAMING.pack(0, format_index, frame_index, chosen, 0, 0, 0, 0, 0,
                              frame_buffer_size(fmt.format, frame.size), self._max_payload, _CLOCK_HZ, 3, 1, 1, 1)


def _value(control: Control) -> _Value:
    return _Value("<h", control.minimum, control.maximum, control.step, control.default, control.default,
                  control.name)
