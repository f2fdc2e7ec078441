"""One USB webcam made of the kernel's gadget stack, fed by simfarm's producers.

A gadget describing the profile is bound to a free usbip-vudc UDC; a
:class:`~simfarm.devices.uvc_responder.Responder` answers the host's
requests on its g_uvc node and, whenever a reader commits a stream, starts a
producer in the format, size and rate the reader chose (the reader
chooses, as with a real webcam); the usbipd given exports it and ``usbip
attach`` plugs it in, where uvcvideo makes its capture node.

The camera's sequence numbers carry on across streams, so a reader that
stops and starts again sees one numbering.
"""

from __future__ import annotations

from fractions import Fraction

from ..devices import nodes, uevents, usbip, uvc_gadget
from ..devices.uvc_gadget import Profile
from ..devices.uvc_responder import GadgetSink, Responder
from ..patterns import PatternLibrary
from ..producers.build import build_producer
from ..producers.producer import Producer
from ..spec import CameraSpec, PixelFormat, Size


class Webcam:
    """Camera ``index``: gadget ``gadget`` (a configfs name) with ``profile``, fed with ``pattern``."""

    def __init__(self, index: int, gadget: str, profile: Profile, library: PatternLibrary,
                 pattern: str = CameraSpec.pattern) -> None:
        self.index = index
        self.gadget = gadget
        self.profile = profile
        self.library = library
        self.pattern = pattern
        self.udc: str | None = None
        self.responder: Responder | None = None
        self.producer: Producer | None = None
        self.attachment: usbip.Attachment | None = None
        self._sequence = 0
        self.error: str | None = None

    def make(self, udc: str) -> None:
        """Make the gadget on ``udc`` and start answering it (not yet plugged in)."""
        uvc_gadget.create(self.gadget, self.profile)
        self.udc = udc
        uvc_gadget.bind(self.gadget, udc)
        self.responder = Responder(uvc_gadget.output_node(udc), self.profile,
                                   uvc_gadget.interface_numbers(self.gadget),
                                   on_stream=self._stream, on_stop=self._stop_producer)
        self.responder.start()

    def plug(self, usbipd_port: int, timeout: float = 60.0) -> None:
        """Attach the gadget; returns once uvcvideo has made its capture node."""
        assert self.udc is not None
        watch = uevents.Watch("usb", "video4linux")
        usbip.attach(usbipd_port, self.udc)
        self.attachment = watch.until(lambda: usbip.find(self.profile.serial), f"{self.gadget} enumerating", timeout)
        watch.until(lambda: self.device, f"a capture node for {self.gadget}", timeout)

    def unplug(self) -> None:
        usbip.detach(self.profile.serial)
        self.attachment = None

    @property
    def device(self) -> str | None:
        """The capture node uvcvideo made (video4linux index 0 of the device's control interface)."""
        if self.attachment is None:
            return None
        return nodes.usb_capture_node(self.attachment.busid)

    def remove(self) -> None:
        """Unplug, stop answering and remove the gadget: everything :meth:`make` and :meth:`plug` did."""
        self.unplug()
        if self.responder is not None:
            self.responder.close()
            self.responder = None
        uvc_gadget.remove(self.gadget, self.profile.serial)

    def _stream(self, fmt: PixelFormat, size: Size, fps: Fraction, sink: GadgetSink) -> None:
        spec = CameraSpec(size=size, fps=fps, format=fmt, pattern=self.pattern)
        self.producer = build_producer(self.index, spec, sink, self.library, sequence=self._sequence)
        self.producer.start()

    def _stop_producer(self) -> None:
        if self.producer is not None:
            self.producer.stop()
            self._sequence = self.producer.sequence
            self.error = self.producer.stats().error or self.error  # kept for status: this runs in the responder
            self.producer = None
