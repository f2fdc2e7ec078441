"""The gadget-side node of a UVC function (driver ``g_uvc``): its events, answers and buffers.

include/uapi/linux/usb/g_uvc.h: the host's class requests arrive as
UVC_EVENT_SETUP (a usb_ctrlrequest); an IN request is answered with
UVCIOC_SEND_RESPONSE carrying the data, an OUT one (SET_CUR) by accepting
its length, after which the data arrives as UVC_EVENT_DATA; a negative
length stalls the request. The function connects to the bus only once a
process subscribes to UVC_EVENT_SETUP, so that subscription comes last.
Frames go out through an ordinary V4L2 output queue (MMAP buffers).
"""

from __future__ import annotations

import ctypes
import enum
import errno
import mmap
import os
import select
import struct

from linuxpy.ioctl import ioctl
from linuxpy.video import device as v4l2
from linuxpy.video import raw

from ..spec import PixelFormat, Size

_PRIVATE_START = 0x08000000
# _IOW('U', 1, struct uvc_request_data { __s32 length; __u8 data[60]; })
_SEND_RESPONSE = (1 << 30) | (64 << 16) | (ord("U") << 8) | 1
_RESPONSE_DATA = 60
OUTPUT, MMAP = v4l2.BufferType.VIDEO_OUTPUT, v4l2.Memory.MMAP


class Event(enum.IntEnum):
    CONNECT = _PRIVATE_START
    DISCONNECT = _PRIVATE_START + 1
    STREAMON = _PRIVATE_START + 2
    STREAMOFF = _PRIVATE_START + 3
    SETUP = _PRIVATE_START + 4
    DATA = _PRIVATE_START + 5


class GadgetNode:
    """An open g_uvc node: the process holding it is the webcam's firmware."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self._maps: list[mmap.mmap] = []

    def subscribe(self) -> None:
        """Ask for every UVC event; SETUP last, since subscribing to it connects the function."""
        for event in (Event.CONNECT, Event.DISCONNECT, Event.STREAMON, Event.STREAMOFF, Event.DATA,
                      Event.SETUP):
            subscription = raw.v4l2_event_subscription()
            subscription.type = int(event)
            ioctl(self.fd, raw.IOC.SUBSCRIBE_EVENT, subscription)

    def wait_event(self, wakeup: int, timeout: float | None = None) -> tuple[Event, bytes] | None:
        """The next event and its 64 payload bytes; None when ``wakeup`` became readable or on timeout."""
        poller = select.poll()
        poller.register(self.fd, select.POLLPRI)
        poller.register(wakeup, select.POLLIN)
        for fd, _ in poller.poll(None if timeout is None else timeout * 1000):
            if fd == wakeup:
                return None
        try:
            event = ioctl(self.fd, raw.IOC.DQEVENT, raw.v4l2_event())
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EAGAIN):  # nothing pending after all
                return None
            raise
        return Event(event.type), bytes(event.u)

    @staticmethod
    def data_of(payload: bytes) -> bytes:
        length = struct.unpack_from("<i", payload)[0]
        return payload[4:4 + max(0, min(length, _RESPONSE_DATA))]

    def respond(self, data: bytes | None) -> None:
        """Answer the pending request with ``data`` (accepting an OUT request's data stage); None stalls it."""
        response = struct.pack("<i60s", -errno.EL2HLT if data is None else len(data), data or b"")
        ioctl(self.fd, _SEND_RESPONSE, ctypes.create_string_buffer(response, len(response)))

    def start(self, fmt: PixelFormat, size: Size, max_frame: int, buffers: int = 4) -> int:
        """Set the output format, map ``buffers`` buffers and stream on; returns how many were mapped."""
        out = raw.v4l2_format()
        out.type = OUTPUT
        out.fmt.pix.width, out.fmt.pix.height = size.width, size.height
        out.fmt.pix.pixelformat = raw.v4l2_fourcc(*fmt.value)
        out.fmt.pix.field = raw.Field.NONE
        out.fmt.pix.sizeimage = max_frame  # a JPEG's length varies: the gadget sizes buffers by this
        v4l2.set_raw_format(self.fd, out)
        count = v4l2.request_buffers(self.fd, OUTPUT, MMAP, buffers).count
        self._maps = [v4l2.mmap_from_buffer(self.fd, v4l2.query_buffer(self.fd, OUTPUT, MMAP, index))
                      for index in range(count)]
        v4l2.stream_on(self.fd, OUTPUT)
        return count

    def send(self, index: int, frame: memoryview) -> None:
        """Queue ``frame`` in buffer ``index`` (one the caller owns: never queued or dequeued since)."""
        length = min(len(frame), len(self._maps[index]))  # a JPEG larger than the bound is cut, not lost
        self._maps[index][:length] = frame[:length]
        v4l2.enqueue_buffer(self.fd, OUTPUT, MMAP, length, index)

    def reclaim(self, timeout: float) -> int | None:
        """A buffer the gadget has sent, waiting up to ``timeout`` s; None when none came back."""
        if not select.select([], [self.fd], [], timeout)[1]:
            return None
        try:
            return v4l2.dequeue_buffer(self.fd, OUTPUT, MMAP).index
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return None
            raise

    def stop(self) -> None:
        """Stream off and free the buffers (the host stopped reading, or went away)."""
        if not self._maps:
            return
        try:
            v4l2.stream_off(self.fd, OUTPUT)
        except OSError:
            pass  # the function is gone with the bus: the buffers still need unmapping
        for buffer in self._maps:
            buffer.close()
        self._maps = []
        v4l2.free_buffers(self.fd, OUTPUT, MMAP)

    def close(self) -> None:
        self.stop()
        os.close(self.fd)
