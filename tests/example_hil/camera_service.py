"""A tiny camera service, standing in for the one your team tests.

It knows nothing about simfarm: it finds V4L2 capture devices and grabs
frames from them with linuxpy, as a real service would from real cameras.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from linuxpy.video.device import BufferType, Capability, Device, VideoCapture

# v4l2loopback serves buffers from its whole ring (4 buffers as simfarm makes
# the nodes), whatever count the reader asks for, and linuxpy indexes buffers
# by the count it asked for; so ask for the whole ring.
BUFFERS = 4


@dataclass(frozen=True)
class CaptureDevice:
    path: str
    card: str
    driver: str


@dataclass(frozen=True)
class Frame:
    data: bytes
    fourcc: int
    width: int
    height: int


def discover(dev: str = "/dev") -> list[CaptureDevice]:
    """Every capture device present now, in node order."""
    found = []
    for path in sorted(Path(dev).glob("video*"), key=lambda p: int(p.name[5:] or 0)):
        try:
            with Device(path) as device:
                info = device.info
                if Capability.VIDEO_CAPTURE in info.device_capabilities:
                    found.append(CaptureDevice(str(path), info.card, info.driver))
        except OSError:
            continue  # unplugged while we looked: cameras come and go
    return found


def grab(path: str, count: int) -> list[Frame]:
    """The next ``count`` frames of the device, streamed with mmap buffers."""
    frames: list[Frame] = []
    with Device(path) as device, VideoCapture(device, size=BUFFERS) as stream:
        for frame in stream:
            frames.append(Frame(bytes(frame.data), int(frame.pixel_format), frame.width, frame.height))
            if len(frames) == count:
                break
    return frames


def frame_rate(path: str) -> float:
    """The frame rate the device announces."""
    with Device(path) as device:
        return float(device.get_fps(BufferType.VIDEO_CAPTURE))
