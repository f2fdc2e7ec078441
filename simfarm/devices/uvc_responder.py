"""The webcam's firmware on a g_uvc node, in userspace: answers the host's UVC requests
(see uvc_requests) and streams what it committed.

The host selects the streaming interface's alternate setting, which arrives
as UVC_EVENT_STREAMON; frames are then whatever the caller's ``on_stream``
starts writing to the :class:`GadgetSink` it is given, until STREAMOFF or a
disconnect (``on_stop``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from ..spec import PixelFormat, Size
from .uvc_function import Event, GadgetNode
from .uvc_gadget import MAX_PACKET, Profile, frame_buffer_size
from .uvc_requests import Committed, Setup, UvcRequests


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
        self.requests = UvcRequests(profile, interfaces, MAX_PACKET, ae_mode=True, on_control=on_control)
        self._on_stream, self._on_stop = on_stream, on_stop
        self.streaming: Committed | None = None
        self._pending: Setup | None = None  # a SET_CUR whose data is on its way
        self._closed = threading.Event()
        self._wake_read, self._wake_write = os.pipe2(os.O_CLOEXEC)
        self.node = GadgetNode(path)
        self._thread = threading.Thread(target=self._run, name=f"uvc-{profile.serial}", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        """Connect the function (the host may enumerate from now on) and answer it."""
        self.node.subscribe()
        self._thread.start()

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
            self._setup(Setup.unpack(payload))
        elif event is Event.DATA and self._pending is not None:
            self.requests.apply(self._pending, self.node.data_of(payload))
            self._pending = None
        elif event is Event.STREAMON:
            self._stream_on()
        elif event in (Event.STREAMOFF, Event.DISCONNECT):
            self._stream_off()

    def _setup(self, setup: Setup) -> None:
        if not setup.is_in:
            accepted = self.requests.accepts(setup)
            self._pending = setup if accepted else None
            self.node.respond(bytes(setup.length) if accepted else None)
        else:
            self.node.respond(self.requests.answer(setup))

    def _stream_on(self) -> None:
        self._stream_off()
        stream = self.requests.committed()
        fmt, size = stream.format.format, stream.frame.size
        count = self.node.start(fmt, size, frame_buffer_size(fmt, size))
        self.streaming = stream
        self._on_stream(fmt, size, stream.fps, GadgetSink(self.node, count, float(1 / stream.fps)))

    def _stream_off(self) -> None:
        if self.streaming is not None:
            self._on_stop()  # the producer stops writing before its buffers go
            self.streaming = None
        self.node.stop()

