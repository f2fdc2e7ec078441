"""USB webcams driven by uvcvideo, fed by simfarm's producers: :class:`UsbWebcam`, a userspace
USB device on vhci-hcd (simfarm.devices.usb.usbip_device) streaming on a bulk endpoint.

Whenever a reader commits a stream, a producer starts in the format, size and
rate the reader chose (as with a real webcam), and the camera's sequence numbers carry on
across streams, so a reader that stops and starts again sees one numbering.
"""

from __future__ import annotations

from fractions import Fraction

from ...devices.udev import uevents
from ...devices.usb import vhci
from ...devices.usb.profile import Profile
from ...devices.usb.usbip_device import UsbipWebcamDevice
from ...devices.v4l2 import nodes
from ...faults import FaultSet
from ...frames.picture import ControlRange, Picture
from ...patterns import PatternLibrary
from ...producers.build import build_producer, shared_cycle
from ...producers.producer import Producer
from ...producers.progress import Progress, ProgressCell
from ...producers.sinks import Sink
from ...producers.sources import Cycle
from ...spec import CameraSpec, PixelFormat, Size


class FrameFeed:
    """Camera ``index``'s frames: a producer per stream a reader commits, in its format, size
    and rate, numbering on from the last stream; ``faults`` and ``picture`` (the webcam's
    controls) outlive each producer."""

    def __init__(self, index: int, library: PatternLibrary, pattern: str = CameraSpec.pattern, *,
                 faults: FaultSet | None = None, picture: Picture | None = None) -> None:
        self.index = index
        self.library = library
        self.pattern = pattern
        self.faults = faults
        self.picture = picture
        self.producer: Producer | None = None
        self.stream: CameraSpec | None = None  # what a reader streams now
        self._sequence, self._clock = 0, 0.0
        self._progress: ProgressCell | None = None
        self._resume: Progress | None = None
        # Each stream's pre-rendered cycle, kept between streams: readers (v4l2-compliance, FFmpeg
        # probing) start and stop streams often, and rendering takes seconds under emulation.
        self._cycles: dict[tuple[PixelFormat, Size, Fraction], Cycle] = {}
        self.error: str | None = None

    def track(self, progress: ProgressCell, resume: Progress | None) -> None:
        """Producers note where they stand in ``progress``; the next stream carries on from ``resume``."""
        self._progress, self._resume = progress, resume

    def start(self, fmt: PixelFormat, size: Size, fps: Fraction, sink: Sink) -> None:
        spec = CameraSpec(size=size, fps=fps, format=fmt, pattern=self.pattern)
        self._cycles[(fmt, size, fps)] = shared_cycle(spec, self.library)
        if self.faults is not None:
            self.faults.set_format(fmt, size)
            self.faults.fps = Fraction(fps)  # jitter is capped by the period of the stream in force
        self.producer = build_producer(self.index, spec, sink, self.library, faults=self.faults,
                                       sequence=self._sequence, clock=self._clock, picture=self.picture,
                                       progress=self._progress, resume=self._resume)
        self._resume = None  # carried on from: the next stream continues from this one
        self.stream = spec
        self.producer.start()

    def stop(self) -> None:
        if self.producer is not None:
            self.producer.stop(final=False)  # the camera's faults carry on into the next stream
            self._sequence, self._clock = self.producer.sequence, self.producer.clock
            self.error = self.producer.stats().error or self.error  # kept for status: this runs in the USB thread
            self.producer = None
            self.stream = None

    @property
    def sequence(self) -> int:
        """The next frame's sequence number, streaming or not."""
        return self.producer.sequence if self.producer is not None else self._sequence


class UsbWebcam:
    """Camera ``index`` as a userspace USB device on vhci-hcd (see simfarm.devices.usb.usbip_device):
    the webcam that streams on stock kernels. Controls a reader sets change the picture."""

    def __init__(self, index: int, profile: Profile, library: PatternLibrary,
                 pattern: str = CameraSpec.pattern, *, faults: FaultSet | None = None) -> None:
        self.profile = profile
        self.picture = Picture({c.name: ControlRange(c.minimum, c.maximum, c.default) for c in profile.controls})
        self.feed = FrameFeed(index, library, pattern, faults=faults, picture=self.picture)
        self.usb = UsbipWebcamDevice(profile, on_stream=self.feed.start, on_stop=self.feed.stop,
                                     on_control=self.picture.set)

    def plug(self, timeout: float = 60.0) -> None:
        """Attach; returns once uvcvideo has made the capture node."""
        watch = uevents.Watch("usb", "video4linux")
        self.usb.plug()
        watch.until(lambda: self.device, f"a capture node for {self.profile.serial}", timeout)

    def unplug(self) -> None:
        """Detach; returns once uvcvideo's nodes are gone."""
        found = self.attachment
        watch = uevents.Watch("video4linux")
        self.usb.unplug()
        if found is not None:
            vhci.wait_nodes_gone(found.busid, watch)

    @property
    def attachment(self) -> vhci.Attachment | None:
        return vhci.find(self.profile.serial)

    @property
    def device(self) -> str | None:
        found = self.attachment
        return nodes.usb_capture_node(found.busid) if found else None

